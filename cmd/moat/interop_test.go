package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
)

// TestSwaks drives moat with swaks, a foreign SMTP client, over STARTTLS.
func TestSwaks(t *testing.T) {
	swaks := needTool(t, "swaks")
	a := startTest(t, "")
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		to      string
		body    string
		wantOK  bool
		wantOut string
	}{
		{"delivered", "alice@example.com", "hello from swaks", true, "250 2.0.0 OK queued as"},
		{"relay refused", "someone@elsewhere.example", "x", false, "554 5.7.1 Relay access denied"},
		{"unknown user", "nobody@example.com", "x", false, "550 5.1.1"},
		{"gtube rejected", "alice@example.com", gtubeString, false, "550 5.7.1 Message refused by policy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(swaks, "--server", a.Addr("smtp"), "--tls", "--helo", "swaks.example.net",
				"--from", "sender@example.net", "--to", tc.to,
				"--header", "Subject: swaks "+tc.name, "--body", tc.body).CombinedOutput()
			if (err == nil) != tc.wantOK {
				t.Fatalf("swaks exit: %v, want ok=%v\n%s", err, tc.wantOK, out)
			}
			if !strings.Contains(string(out), tc.wantOut) {
				t.Fatalf("swaks output lacks %q:\n%s", tc.wantOut, out)
			}
		})
	}
	c := imapLogin(t, a.Addr("imap"), clientTLS(t, a.cfg.DataDir), "alice@example.com", "pw")
	defer c.Close()
	msgs := fetchAll(t, c, "INBOX")
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: swaks delivered") || !strings.Contains(msgs[0], "hello from swaks") {
		t.Fatalf("INBOX after swaks = %q", msgs)
	}
}

// pythonIMAP is run by Python's imaplib: a refused plaintext login, then
// STARTTLS, LOGIN, SELECT, SEARCH, FETCH, STORE and a second FETCH of the
// flags. It prints what it saw, one fact per line.
const pythonIMAP = `
import imaplib, ssl, sys
host, port, cafile, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
m = imaplib.IMAP4(host, port)
try:
    m.login(user, password)
    print("plaintext-login: accepted")
except imaplib.IMAP4.error as e:
    print("plaintext-login: refused")
m.starttls(ssl_context=ssl.create_default_context(cafile=cafile))
typ, _ = m.login(user, password)
print("login:", typ)
typ, data = m.select("INBOX")
print("exists:", data[0].decode())
typ, data = m.search(None, "ALL")
print("search:", data[0].decode())
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print("subject:", data[0][1].decode().strip())
m.store("1", "+FLAGS", "\\Flagged")
typ, data = m.fetch("1", "(FLAGS)")
print("flags:", data[0].decode())
typ, data = m.list()
print("list:", " ".join(sorted(l.decode().rsplit(" ", 1)[-1].strip('"') for l in data)))
m.logout()
`

// TestPythonIMAP drives moat's IMAP server with Python's imaplib.
func TestPythonIMAP(t *testing.T) {
	python := needTool(t, "python3")
	a := startTest(t, "")
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	res := send(t, a.Addr("smtp"), clientTLS(t, a.cfg.DataDir), "bob@example.net", []string{"alice@example.com"},
		message("bob@example.net", "alice@example.com", "for imaplib", "body"))
	if res.code != 250 {
		t.Fatal(res)
	}
	out, err := runPython(t, python, pythonIMAP, a, "imap", "alice@example.com")
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	for _, want := range []string{
		"plaintext-login: refused",
		"login: OK",
		"exists: 1",
		"search: 1",
		"subject: Subject: for imaplib",
		`\Flagged`,
		"list: Drafts INBOX Junk Quarantine Sent Trash",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("imaplib output lacks %q:\n%s", want, out)
		}
	}
}

func splitAddr(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

// pythonReview moves the first message of Quarantine to INBOX with UID
// MOVE, as a mail client does when a user releases a message.
const pythonReview = `
import imaplib, ssl, sys
host, port, cafile, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
m = imaplib.IMAP4(host, port)
m.starttls(ssl_context=ssl.create_default_context(cafile=cafile))
m.login(user, password)
typ, data = m.select("Quarantine")
print("quarantine-before:", data[0].decode())
typ, data = m.uid("SEARCH", None, "ALL")
uid = data[0].split()[0].decode()
typ, data = m.uid("MOVE", uid, "INBOX")
print("move:", typ)
typ, data = m.select("Quarantine")
print("quarantine-after:", data[0].decode())
typ, data = m.select("INBOX")
print("inbox-after:", data[0].decode())
m.logout()
`

// TestQuarantineReleaseByIMAPClient: a message quarantined by the pipeline
// is moved to INBOX by Python's imaplib; it appears once in INBOX, leaves
// Quarantine, its verdict record goes, and the classifier's ham count grows
// by one.
func TestQuarantineReleaseByIMAPClient(t *testing.T) {
	python := needTool(t, "python3")
	a := startTest(t, e2ePolicies)
	if _, err := a.store.AddUser(context.Background(), "quarantine@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"quarantine@example.com"},
		message("bob@example.net", "quarantine@example.com", "held", gtubeString)); r.code != 250 {
		t.Fatal(r)
	}
	before, err := a.bayes.Store().Totals(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := runPython(t, python, pythonReview, a, "imap", "quarantine@example.com")
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	for _, want := range []string{"quarantine-before: 1", "move: OK", "quarantine-after: 0", "inbox-after: 1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("imaplib output lacks %q:\n%s", want, out)
		}
	}
	if entries, err := a.quar.List(context.Background(), ""); err != nil || len(entries) != 0 {
		t.Errorf("quarantine records after release: %v, %v", entries, err)
	}
	a.review.Close() // flush the training queue
	a.review = nil
	if got := metricValue(t, a, `moat_review_events_total{kind="ham"}`); got != "1" {
		t.Errorf("ham review events = %q, want 1", got)
	}
	after, err := a.bayes.Store().Totals(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if after.Ham != before.Ham+1 || after.Spam != before.Spam {
		t.Errorf("classifier totals %+v after the release, were %+v: want one more ham", after, before)
	}
}

// metricValue reads one sample from /metrics.
func metricValue(t *testing.T, a *app, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr("metrics") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	return ""
}

// pythonPOP3 reads and deletes every message over POP3 with STLS.
const pythonPOP3 = `
import poplib, ssl, sys
host, port, cafile, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
p = poplib.POP3(host, port)
p.stls(context=ssl.create_default_context(cafile=cafile))
p.user(user); p.pass_(password)
count, size = p.stat()
print("stat:", count)
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    print("subject:", [l.decode() for l in lines if l.startswith(b"Subject:")][0])
    p.dele(i)
print("uidl-lines:", len(p.uidl()[1]))
p.quit()
`

// TestPythonPOP3 delivers over SMTP, reads and deletes over POP3 with
// Python's poplib, and checks over IMAP that the deletions were applied.
func TestPythonPOP3(t *testing.T) {
	python := needTool(t, "python3")
	a := startTest(t, "")
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	for _, subj := range []string{"pop-one", "pop-two"} {
		if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"},
			message("bob@example.net", "alice@example.com", subj, "body")); r.code != 250 {
			t.Fatal(r)
		}
	}
	out, err := runPython(t, python, pythonPOP3, a, "pop3", "alice@example.com")
	if err != nil {
		t.Fatalf("poplib: %v\n%s", err, out)
	}
	for _, want := range []string{"stat: 2", "subject: Subject: pop-one", "subject: Subject: pop-two", "uidl-lines: 0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("poplib output lacks %q:\n%s", want, out)
		}
	}
	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	defer c.Close()
	if msgs := fetchAll(t, c, "INBOX"); len(msgs) != 0 {
		t.Errorf("INBOX holds %d after POP3 DELE and QUIT, want 0", len(msgs))
	}
}

// runPython runs a Python client script against moat's listener (by
// name): its arguments are host, port, the CA file and the user's
// address and password ("pw").
func runPython(t *testing.T, python, script string, a *app, listener, user string) ([]byte, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), listener+".py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port := splitAddr(t, a.Addr(listener))
	return exec.Command(python, path, host, port, filepath.Join(a.cfg.DataDir, "tls", "cert.pem"), user, "pw").CombinedOutput()
}
