package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// TestMain lets the crash test run this test binary as a moat server
// process: with MOAT_TEST_SERVE set, it is `moat serve -config $value`.
func TestMain(m *testing.M) {
	if cfg := os.Getenv("MOAT_TEST_SERVE"); cfg != "" {
		os.Exit(run([]string{"serve", "-config", cfg}, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// testConfig is a configuration for tests: every listener on a random
// loopback port, data under dir.
func testConfig(dir, extra string) string {
	return testConfigWith(dir, testDisabled, extra)
}

// testDisabled are the filters tests switch off unless they test them:
// those that need DNS or clamd.
const testDisabled = `"rdns", "spf", "dkim", "dmarc", "antivirus"`

// testConfigWith is testConfig with its own list of disabled filters.
func testConfigWith(dir, disabled, extra string) string {
	return fmt.Sprintf(`
data_dir = %q
[listen]
smtp = "127.0.0.1:0"
smtps = "127.0.0.1:0"
imap = "127.0.0.1:0"
imaps = "127.0.0.1:0"
pop3 = "127.0.0.1:0"
pop3s = "127.0.0.1:0"
metrics = "127.0.0.1:0"
[smtp]
hostname = "mx.example.com"
local_domains = ["example.com", "example.org"]
max_message_bytes = 65536
[filters]
disabled = [%s]
[log]
level = "warn"
%s`, dir, disabled, extra)
}

// startTest starts moat in-process and stops it when the test ends.
func startTest(t *testing.T, extra string) *app {
	t.Helper()
	a := startConfig(t, testConfig(t.TempDir(), extra), startOptions{})
	t.Cleanup(func() { a.Close(t.Context()) })
	return a
}

// startConfig starts moat in-process on the configuration text, logging
// warnings to the test; the caller stops it.
func startConfig(t *testing.T, text string, opts startOptions) *app {
	t.Helper()
	cfg, err := parseConfig(text, "test")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := startWith(cfg, log, io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// clientTLS trusts the certificate moat generated in dataDir.
func clientTLS(t testing.TB, dataDir string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dataDir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in cert.pem")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// smtpResult is the outcome of one SMTP transaction, as the client saw it.
type smtpResult struct {
	code  int    // the first failing reply code, or 250
	ecode string // its enhanced code
	text  string
	at    string // the command that failed ("RCPT bob@x", "DATA")
}

func (r smtpResult) String() string {
	return fmt.Sprintf("%s: %d %s %s", r.at, r.code, r.ecode, r.text)
}

// send runs one transaction over STARTTLS and reports where it stopped.
func send(t testing.TB, addr string, tc *tls.Config, from string, to []string, msg string) smtpResult {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, tc)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	fail := func(at string, err error) smtpResult {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			t.Fatalf("%s: %v", at, err)
		}
		ec := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		return smtpResult{code: se.Code, ecode: ec, text: se.Message, at: at}
	}
	if err := c.Mail(from, nil); err != nil {
		return fail("MAIL", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return fail("RCPT "+r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fail("DATA", err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return fail("DATA body", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return fail("DATA end", err)
	}
	c.Quit()
	return smtpResult{code: 250, text: resp.StatusText, at: "DATA end"}
}

// message builds a well-formed message.
func message(from, to, subject, body string) string {
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%s>\r\n\r\n%s\r\n",
		from, to, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), "test@example.net", body)
}

// imapLogin opens an IMAP session over STARTTLS.
func imapLogin(t testing.TB, addr string, tc *tls.Config, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: tc})
	if err != nil {
		t.Fatalf("imap dial: %v", err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		t.Fatalf("imap login %s: %v", user, err)
	}
	return c
}

// fetchAll returns the full text of every message in a mailbox.
func fetchAll(t testing.TB, c *imapclient.Client, mailbox string) []string {
	t.Helper()
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(allMessages(sel.NumMessages), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", mailbox, err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.FindBodySection(section))
	}
	return out
}

// needTool returns the path of an external program, or skips the test
// (fails it under CI=true, where every tool must be installed).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; CI must install it (.ci/run)", name)
		}
		t.Skipf("%s is not installed: skipping (apt-get install %s)", name, name)
	}
	return p
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(nilWriter{}, nil)) }

// allMessages is the sequence range 1:n.
func allMessages(n uint32) imap.SeqSet {
	var set imap.SeqSet
	set.AddRange(1, n)
	return set
}
