package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters/antivirus/clamdtest"
)

// withAttachment builds a multipart message with a base64 attachment.
func withAttachment(subject string, payload []byte) string {
	return fmt.Sprintf("From: <bob@example.net>\r\nTo: <alice@example.com>\r\nSubject: %s\r\n"+
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@example.net>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"+
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"file.bin\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b1--\r\n", subject, subject, base64.StdEncoding.EncodeToString(payload))
}

// TestAntivirusThroughSMTP runs moat against Debian's clamd, started on a
// signature database the test writes: a virus is refused with 554 5.7.0,
// clean mail passes, and with clamd gone mail is deferred with 451 4.7.1
// while everything acknowledged before stays stored.
func TestAntivirusThroughSMTP(t *testing.T) {
	clamd := clamdtest.Start(t)
	dir := t.TempDir()
	cfg, err := parseConfig(testConfigWith(dir, `"rdns"`, fmt.Sprintf(`
[filters.antivirus]
address = %q
`, clamd.Unix)), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(cfg, discardLogger(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, cfg.DataDir)
	try := func(msg string) smtpResult {
		return send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"}, msg)
	}
	if r := try(withAttachment("clean-1", []byte("just a file"))); r.code != 250 {
		t.Fatalf("clean message: %v", r)
	}
	if r := try(withAttachment("eicar", []byte(clamdtest.EICAR))); r.code != 554 || r.ecode != "5.7.0" {
		t.Fatalf("EICAR: %v, want 554 5.7.0", r)
	}
	if r := try(withAttachment("marker", []byte("x "+clamdtest.Marker+" y"))); r.code != 554 || r.ecode != "5.7.0" {
		t.Fatalf("custom signature: %v, want 554 5.7.0", r)
	}
	if r := try(withAttachment("clean-2", []byte("another file"))); r.code != 250 {
		t.Fatalf("clean message: %v", r)
	}
	clamd.Kill(t)
	if r := try(withAttachment("while-clamd-is-down", []byte("a file"))); r.code != 451 || r.ecode != "4.7.1" {
		t.Fatalf("with clamd down: %v, want 451 4.7.1", r)
	}
	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	defer c.Close()
	msgs := fetchAll(t, c, "INBOX")
	if len(msgs) != 2 {
		t.Fatalf("INBOX holds %d messages, want the 2 clean ones acknowledged with 250", len(msgs))
	}
}

// TestAttachmentPolicyThroughSMTP: a Windows executable named like a PDF
// scores past the reject threshold; a real PDF passes.
func TestAttachmentPolicyThroughSMTP(t *testing.T) {
	a := startTest(t, "")
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	exe := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), make([]byte, 200)...)
	withName := func(subject, name string, payload []byte) string {
		return strings.Replace(withAttachment(subject, payload), `filename="file.bin"`, `filename="`+name+`"`, 1)
	}
	pdf := []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"},
		withName("invoice", "invoice.pdf.exe", exe)); r.code != 550 || r.ecode != "5.7.1" {
		t.Fatalf("invoice.pdf.exe: %v, want 550 5.7.1", r)
	}
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"},
		withName("report", "report.pdf", pdf)); r.code != 250 {
		t.Fatalf("report.pdf: %v, want 250", r)
	}
	body, _ := io.ReadAll(mustGet(t, "http://"+a.Addr("metrics")+"/metrics"))
	for _, want := range []string{`moat_symbol_hits_total{symbol="ATTACH_EXECUTABLE"} 1`, `moat_symbol_hits_total{symbol="ATTACH_DOUBLE_EXT"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func mustGet(t *testing.T, url string) io.Reader {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp.Body
}
