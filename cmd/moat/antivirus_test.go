package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters/antivirus/clamdtest"
)

// withAttachment builds a multipart message with a base64 attachment, in
// lines of 76 characters (RFC 2045 §6.8).
func withAttachment(subject string, payload []byte) string {
	b64 := base64.StdEncoding.EncodeToString(payload)
	var lines []string
	for len(b64) > 76 {
		lines, b64 = append(lines, b64[:76]), b64[76:]
	}
	lines = append(lines, b64)
	return fmt.Sprintf("From: <bob@example.net>\r\nTo: <alice@example.com>\r\nSubject: %s\r\n"+
		"Date: %s\r\nMessage-ID: <%s@example.net>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"+
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"file.bin\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b1--\r\n", subject, time.Now().Format(time.RFC1123Z), subject, strings.Join(lines, "\r\n"))
}

// TestAntivirusThroughSMTP runs moat against Debian's clamd, started on a
// signature database the test writes: a virus is refused with 554 5.7.0,
// clean mail passes, and with clamd gone mail is deferred with 451 4.7.1
// while everything acknowledged before stays stored.
func TestAntivirusThroughSMTP(t *testing.T) {
	clamd := clamdtest.Start(t)
	a, tc := startWithAntivirus(t, clamd.Unix, "", "alice@example.com")
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
// scores past the reject threshold; a real PDF passes, and so does a
// shell script (ATTACH_UNIX_SCRIPT, weak) and a zip of sources.
func TestAttachmentPolicyThroughSMTP(t *testing.T) {
	a := startTest(t, "")
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
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
	// A workbook whose only macros are an Excel 4.0 macro sheet, declared
	// in [Content_Types].xml (no vbaProject.bin): ATTACH_MACRO (10)
	// reaches the quarantine threshold.
	xlsx := zipOf(t, map[string]string{
		"[Content_Types].xml": `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
			`<Override PartName="/xl/macrosheets/sheet1.xml" ContentType="application/vnd.ms-excel.macrosheet+xml"/></Types>`,
		"xl/workbook.xml":           `<?xml version="1.0"?><workbook/>`,
		"xl/macrosheets/sheet1.xml": `<?xml version="1.0"?><xm:macrosheet/>`,
	})
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"},
		withName("prices", "prices.xlsx", xlsx)); r.code != 250 {
		t.Fatalf("prices.xlsx: %v, want 250 (held)", r)
	}
	// A tar.gz cut in the middle of its deflate stream: what follows the
	// cut is unseen, ATTACH_ARCHIVE_UNREADABLE (4) tags nothing alone.
	tgz := gzipped(t, tarOf(t, "app.log", rand.New(rand.NewPCG(1, 2))))
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"},
		withName("logs", "logs.tar.gz", append(tgz[:len(tgz)/2:len(tgz)/2], tgz[len(tgz)-8:]...))); r.code != 250 {
		t.Fatalf("logs.tar.gz: %v, want 250", r)
	}
	// A shell script a list member shares, and a source zip holding
	// one: ATTACH_UNIX_SCRIPT (1) on the first, nothing on the zip; both
	// reach INBOX with the PDF and the cut archive.
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"},
		withName("backup script", "swasort", []byte("#!/bin/sh\nsort -u \"$1\"\n"))); r.code != 250 {
		t.Fatalf("swasort: %v, want 250", r)
	}
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"},
		withName("sources", "tool-1.0.zip", zipOf(t, map[string]string{"tool-1.0/configure": "#!/bin/sh\necho ok\n", "tool-1.0/build.sh": "make\n"}))); r.code != 250 {
		t.Fatalf("tool-1.0.zip: %v, want 250", r)
	}
	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	inbox := fetchAll(t, c, "INBOX")
	c.Close()
	if len(inbox) != 4 {
		t.Fatalf("INBOX holds %d messages, want 4 (report.pdf, logs.tar.gz, swasort, tool-1.0.zip)", len(inbox))
	}
	if !strings.Contains(inbox[2], "ATTACH_UNIX_SCRIPT") || strings.Contains(inbox[2], "X-Spam-Flag") {
		t.Errorf("the shell script: want ATTACH_UNIX_SCRIPT and no tag in\n%.600s", inbox[2])
	}
	if strings.Contains(inbox[3], "ATTACH_") {
		t.Errorf("the source zip: want no attachment symbol in\n%.600s", inbox[3])
	}

	body, _ := io.ReadAll(mustGet(t, "http://"+a.Addr("metrics")+"/metrics"))
	for _, want := range []string{`moat_symbol_hits_total{symbol="ATTACH_EXECUTABLE"} 1`, `moat_symbol_hits_total{symbol="ATTACH_DOUBLE_EXT"} 1`,
		`moat_symbol_hits_total{symbol="ATTACH_MACRO"} 1`, `moat_symbol_hits_total{symbol="ATTACH_ARCHIVE_UNREADABLE"} 1`,
		`moat_symbol_hits_total{symbol="ATTACH_UNIX_SCRIPT"} 1`,
		`moat_messages_total{action="quarantine"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// zipOf returns a zip of the named files, deflated.
func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for name, data := range files {
		f, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(data))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// tarOf returns a tar of one file of 64 KiB from r.
func tarOf(t *testing.T, name string, r *rand.Rand) []byte {
	t.Helper()
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	if err := w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// gzipped returns data gzipped.
func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
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

// TestAntivirusPerPolicyAndOutage: rules naming the policy hold a virus
// for one domain and refuse it for the other; then clamd is killed while
// several clients are sending. Every message gets 250 or 451 4.7.1 (never
// a 5yz: clamd's fault is no reason to refuse mail for good), every 250 is
// in the mailbox, and once clamd is back the deferred messages, sent again
// as a client would, are delivered: nothing is lost.
func TestAntivirusPerPolicyAndOutage(t *testing.T) {
	clamd := clamdtest.Start(t)
	a, tc := startWithAntivirus(t, clamd.TCP, `
[[rules.rule]]
name = "VIRUS_FOUND"
expr = 'has("VIRUS") && policy != "domain:example.org"'
action = "reject"
reply = "554 5.7.0"

[[rules.rule]]
name = "VIRUS_HELD"
expr = 'has("VIRUS") && policy == "domain:example.org"'
action = "quarantine"

[policies.domains."example.org"]
subject_prefix = "[LAB]"
`, "alice@example.com", "carol@example.org")
	eicar := withAttachment("eicar", []byte(clamdtest.EICAR))
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"}, eicar); r.code != 554 || r.ecode != "5.7.0" {
		t.Fatalf("EICAR to example.com: %v, want 554 5.7.0", r)
	}
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"carol@example.org"}, eicar); r.code != 250 {
		t.Fatalf("EICAR to example.org: %v, want 250 (quarantined)", r)
	}
	c := imapLogin(t, a.Addr("imap"), tc, "carol@example.org", "pw")
	held := fetchAll(t, c, "Quarantine")
	c.Close()
	if len(held) != 1 || !strings.Contains(held[0], "Subject: eicar") {
		t.Fatalf("carol's Quarantine holds %d messages, want the EICAR one", len(held))
	}

	// clamd killed under load.
	const senders, perSender = 4, 15
	type outcome struct {
		subject string
		code    int
		err     error
	}
	results := make(chan outcome, senders*perSender)
	var wg sync.WaitGroup
	started := make(chan struct{}, senders*perSender)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				subject := fmt.Sprintf("load-%d-%d", s, i)
				err := trySend(a.Addr("smtp"), tc, "alice@example.com", withAttachment(subject, []byte("clean "+subject)))
				o := outcome{subject: subject, err: err}
				var se *smtp.SMTPError
				switch {
				case err == nil:
					o.code = 250
				case errors.As(err, &se):
					o.code, o.err = se.Code, nil
					if se.EnhancedCode != (smtp.EnhancedCode{4, 7, 1}) {
						o.err = fmt.Errorf("enhanced code %v: %w", se.EnhancedCode, err)
					}
				}
				results <- o
				started <- struct{}{}
			}
		}()
	}
	for range senders * perSender / 3 {
		<-started // a third of the messages are through: kill clamd now
	}
	clamd.Kill(t)
	wg.Wait()
	close(results)

	var accepted, deferred []string
	for o := range results {
		switch {
		case o.code == 250:
			accepted = append(accepted, o.subject)
		case o.code == 451 && o.err == nil:
			deferred = append(deferred, o.subject)
		default:
			t.Errorf("%s: code %d, %v; want 250 or 451 4.7.1", o.subject, o.code, o.err)
		}
	}
	if len(deferred) == 0 {
		t.Fatalf("no message was deferred with clamd killed (%d accepted)", len(accepted))
	}

	// clamd back: the client retries what was deferred.
	clamd.Restart(t)
	for _, subject := range deferred {
		if err := trySend(a.Addr("smtp"), tc, "alice@example.com", withAttachment(subject, []byte("clean "+subject))); err != nil {
			t.Errorf("retry of %s with clamd back: %v", subject, err)
		}
	}
	c = imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	defer c.Close()
	inbox := fetchAll(t, c, "INBOX")
	seen := map[string]int{}
	for _, m := range inbox {
		for _, line := range strings.Split(m, "\r\n") {
			if subject, ok := strings.CutPrefix(line, "Subject: "); ok {
				seen[subject]++
				break
			}
		}
	}
	for s := range senders {
		for i := range perSender {
			if subject := fmt.Sprintf("load-%d-%d", s, i); seen[subject] != 1 {
				t.Errorf("%s is in INBOX %d times, want once", subject, seen[subject])
			}
		}
	}
	t.Logf("clamd killed under load: %d accepted, %d deferred with 451 4.7.1 and delivered on retry", len(accepted), len(deferred))
}

// startWithAntivirus starts moat with the antivirus on clamd at address
// (and extra configuration), with the users given (password "pw").
func startWithAntivirus(t *testing.T, address, extra string, users ...string) (*app, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := parseConfig(testConfigWith(dir, `"rdns", "spf", "dkim", "dmarc"`, fmt.Sprintf("[filters.antivirus]\naddress = %q\n%s", address, extra)), "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(cfg, discardLogger(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	for _, u := range users {
		if _, err := a.store.AddUser(context.Background(), u, "pw", mailstore.RoleUser); err != nil {
			t.Fatal(err)
		}
	}
	return a, clientTLS(t, cfg.DataDir)
}
