package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/queue/queuetest"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// submissionConfig is a test configuration with the submission listeners.
func submissionConfig(dir, extra string) string {
	return fmt.Sprintf(`
data_dir = %q
[listen]
smtp = "127.0.0.1:0"
submission = "127.0.0.1:0"
submissions = "127.0.0.1:0"
metrics = "127.0.0.1:0"
[smtp]
hostname = "mx.example.com"
local_domains = ["example.com", "example.org"]
max_message_bytes = 65536
[smtp.submission]
hide_client_ip = true
send_as = { "alice@example.com" = ["@example.org"] }
[filters]
disabled = [%s]
[log]
level = "warn"
%s`, dir, testDisabled, extra)
}

// startSubmission starts moat with submission listeners, the users alice
// and bob (password "pw-"+name), and the test queue.
func startSubmission(t *testing.T, dir, extra string) (*app, *queuetest.Memory) {
	t.Helper()
	out := &queuetest.Memory{}
	a := startConfig(t, submissionConfig(dir, extra), startOptions{outbound: out})
	t.Cleanup(func() { a.Close(context.Background()) })
	for _, u := range []string{"alice", "bob"} {
		if _, err := a.store.AddUser(context.Background(), u+"@example.com", "pw-"+u, mailstore.RoleUser); err != nil {
			t.Fatal(err)
		}
	}
	return a, out
}

// inbox returns the messages in a user's INBOX, read from the store.
func inbox(t *testing.T, st *mailstore.Store, addr string) []string {
	t.Helper()
	ctx := context.Background()
	u, err := st.LookupUser(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.Mailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		raw, err := st.ReadMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(raw))
	}
	return out
}

// swaks runs swaks against addr and returns its transcript and whether it
// exited 0.
func swaks(t *testing.T, addr string, args ...string) (string, bool) {
	t.Helper()
	bin := needTool(t, "swaks")
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, append([]string{"--server", host, "--port", port, "--helo", "laptop.example.net",
		"--timeout", "20"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// smtplibScript submits with Python's smtplib; it prints the outcome of
// each step.
const smtplibScript = `
import smtplib, ssl, sys, base64
addr, user, pw, sender, rcpt, hdrfrom = sys.argv[1:7]
host, port = addr.rsplit(":", 1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, int(port), local_hostname="laptop.example.net", timeout=20)
s.ehlo()
code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode())
print("auth-before-tls", code, "auth" in s.esmtp_features)
s.starttls(context=ctx)
s.ehlo()
code, _ = s.docmd("MAIL", "FROM:<%s>" % sender)
print("mail-before-auth", code)
s.rset()
try:
    s.login(user, pw)
    print("login ok")
except smtplib.SMTPAuthenticationError as e:
    print("login refused", e.smtp_code); sys.exit(0)
msg = "From: %s\r\nTo: %s\r\nSubject: from smtplib\r\nDate: Sat, 05 Dec 2026 12:00:00 +0000\r\nMessage-ID: <%s.smtplib@example.com>\r\n\r\nSent with smtplib.\r\n" % (hdrfrom, rcpt, sender.replace("@", "."))
try:
    s.sendmail(sender, [rcpt], msg)
    print("sent")
except smtplib.SMTPSenderRefused as e:
    print("sender refused", e.smtp_code)
except smtplib.SMTPDataError as e:
    print("data refused", e.smtp_code)
s.quit()
`

// debianPython returns Debian's python3 (quick to start, with
// python3-dkim), or whichever python3 is on the PATH.
func debianPython(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return needTool(t, "python3")
}

// smtplib runs smtplibScript and returns what it printed.
func smtplib(t *testing.T, python, addr, user, pw, sender, rcpt, hdrFrom string) string {
	t.Helper()
	out, err := exec.Command(python, "-c", smtplibScript, addr, user, pw, sender, rcpt, hdrFrom).CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	return string(out)
}

func TestSubmissionClients(t *testing.T) {
	needTool(t, "swaks")
	python := debianPython(t)
	a, out := startSubmission(t, t.TempDir(), "")
	sub, subs := a.Addr("submission"), a.Addr("submissions")

	t.Run("smtplib", func(t *testing.T) {
		got := smtplib(t, python, sub, "alice@example.com", "pw-alice", "alice@example.com", "carol@far.example", "alice@example.com")
		for _, want := range []string{"auth-before-tls 538 False", "mail-before-auth 530", "login ok", "sent"} {
			if !strings.Contains(got, want) {
				t.Errorf("smtplib: no %q in\n%s", want, got)
			}
		}
		queued := out.To("carol@far.example")
		if len(queued) != 1 || !strings.Contains(queued[0], "Sent with smtplib.") {
			t.Fatalf("queued for carol@far.example: %q", queued)
		}
		got = smtplib(t, python, sub, "alice@example.com", "pw-alice", "bob@example.com", "carol@far.example", "bob@example.com")
		if !strings.Contains(got, "sender refused 553") {
			t.Errorf("sending as bob: %s", got)
		}
		got = smtplib(t, python, sub, "alice@example.com", "pw-alice", "alice@example.com", "carol@far.example", "bob@example.com")
		if !strings.Contains(got, "data refused 550") {
			t.Errorf("From: bob with alice's envelope: %s", got)
		}
	})

	t.Run("swaks local", func(t *testing.T) {
		tr, ok := swaks(t, sub, "--tls", "--auth", "LOGIN", "--auth-user", "alice@example.com", "--auth-password", "pw-alice",
			"--from", "alice@example.com", "--to", "bob@example.com", "--header", "Subject: to bob")
		if !ok {
			t.Fatalf("swaks failed:\n%s", tr)
		}
		msgs := inbox(t, a.store, "bob@example.com")
		if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: to bob") {
			t.Fatalf("bob's INBOX: %q", msgs)
		}
		head := msgs[0][:strings.Index(msgs[0], "\r\n\r\n")]
		if !strings.Contains(head, "Received: from laptop.example.net\r\n\tby mx.example.com (moat) with ESMTPSA") ||
			strings.Contains(head, "127.0.0.1") {
			t.Errorf("trace of submitted mail (hide_client_ip):\n%s", head)
		}
	})

	t.Run("swaks implicit TLS", func(t *testing.T) {
		tr, ok := swaks(t, subs, "--tls-on-connect", "--auth", "PLAIN", "--auth-user", "alice@example.com",
			"--auth-password", "pw-alice", "--from", "alice@example.org", "--to", "dave@far.example",
			"--header", "From: alice@example.org")
		if !ok {
			t.Fatalf("swaks on 465 failed:\n%s", tr)
		}
		if q := out.To("dave@far.example"); len(q) != 1 || !strings.Contains(q[0], "with ESMTPSA") {
			t.Errorf("queued for dave: %q", q)
		}
	})

	t.Run("swaks as another", func(t *testing.T) {
		tr, ok := swaks(t, sub, "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.com", "--auth-password", "pw-alice",
			"--from", "bob@example.com", "--to", "carol@far.example")
		if ok || !strings.Contains(tr, "553 5.7.1") {
			t.Errorf("sending as bob:\n%s", tr)
		}
	})

	// A wrong password last: it slows every later login from loopback
	// (the throttle, as on IMAP). (The gateway's tests try the others.)
	t.Run("wrong password", func(t *testing.T) {
		tr, ok := swaks(t, sub, "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.com", "--auth-password", "guess",
			"--from", "alice@example.com", "--to", "carol@far.example")
		if ok || !strings.Contains(tr, "535 5.7.8") {
			t.Errorf("wrong password:\n%s", tr)
		}
	})

	if v := metricValue(t, a, `moat_submission_logins_total{result="credentials"}`); v != "1" {
		t.Errorf("failed submission logins counted %q, want 1", v)
	}
	// smtplib as bob at MAIL and in From, swaks as bob.
	if v := metricValue(t, a, `moat_submission_messages_total{result="sender_refused"}`); v != "3" {
		t.Errorf("refused senders counted %q, want 3", v)
	}
}

// dkimVerifyScript runs dkimpy's dkimverify on each file named after the
// DNS port, with dnspython's resolver pointed at the test's DNS server,
// in one process (importing dkimpy is slow), and prints one line per file:
// its name and what dkimverify said, or "import failed".
const dkimVerifyScript = `
import io, sys, contextlib
try:
    import dns.resolver
    from dkim.dkimverify import main
except ImportError as e:
    print("import failed", e); sys.exit(0)
r = dns.resolver.Resolver(configure=False)
r.nameservers = ["127.0.0.1"]
r.port = int(sys.argv[1])
dns.resolver.default_resolver = r
for name in sys.argv[2:]:
    out = io.StringIO()
    sys.argv = ["dkimverify"]
    sys.stdin = io.TextIOWrapper(open(name, "rb"))
    with contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit:
            pass
        except Exception as e:
            print("error", repr(e))
    print(name, out.getvalue().strip())
`

func TestSubmissionDKIM(t *testing.T) {
	needTool(t, "dkimverify")
	python := debianPython(t) // Debian's, with python3-dkim
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "moat.toml")
	if err := os.WriteFile(cfgFile, []byte(submissionConfig(dir, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	zones := map[string]string{}
	for _, k := range []struct{ domain, algo string }{{"example.com", "rsa"}, {"example.org", "ed25519"}} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"dkim", "keygen", "-config", cfgFile, "-selector", "s1", "-algo", k.algo, k.domain},
			nil, &stdout, &stderr); code != 0 {
			t.Fatalf("dkim keygen: %s", stderr.String())
		}
		var record string
		for _, line := range strings.Split(stdout.String(), "\n") {
			if strings.HasPrefix(line, "s1._domainkey.") {
				record = line
			}
		}
		if record == "" {
			t.Fatalf("keygen printed no record:\n%s", stdout.String())
		}
		zones[k.domain] = record + "\n"
		fi, err := os.Stat(filepath.Join(dir, "dkim", k.domain+".s1.key"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v, %v", fi, err)
		}
	}
	dns := dnstest.Start(t, zones)
	_, port, _ := strings.Cut(dns.Addr(), ":")
	a, out := startSubmission(t, dir, `
[dkim_signing.domains."example.com"]
selector = "s1"
[dkim_signing.domains."example.org"]
selector = "s1"
`)
	var files []string
	want := map[string]string{}
	for _, from := range []string{"alice@example.com", "alice@example.org"} {
		rcpt := "x-" + strings.ReplaceAll(from, "@", ".") + "@far.example"
		if got := smtplib(t, python, a.Addr("submission"), "alice@example.com", "pw-alice", from, rcpt, from); !strings.Contains(got, "sent") {
			t.Fatalf("submitting as %s: %s", from, got)
		}
		q := out.To(rcpt)
		if len(q) != 1 || !strings.HasPrefix(q[0], "DKIM-Signature: ") {
			t.Fatalf("queued as %s: %q", from, q)
		}
		signed := filepath.Join(dir, from+".eml")
		changed := filepath.Join(dir, from+".changed.eml")
		os.WriteFile(signed, []byte(q[0]), 0o600)
		os.WriteFile(changed, []byte(strings.Replace(q[0], "Sent with smtplib.", "Sent with something else.", 1)), 0o600)
		files = append(files, signed, changed)
		want[signed], want[changed] = "signature ok", "body hash mismatch"
	}
	got, err := exec.Command(python, append([]string{"-c", dkimVerifyScript, port}, files...)...).CombinedOutput()
	if err != nil || strings.HasPrefix(string(got), "import failed") {
		if os.Getenv("CI") != "true" && err == nil {
			t.Skipf("python3-dkim is not importable: %s", got)
		}
		t.Fatalf("dkimverify: %v\n%s", err, got)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		name, result, _ := strings.Cut(line, " ")
		// dkimverify raises on a body hash mismatch rather than print
		// "signature verification failed".
		if w, ok := want[name]; !ok || !strings.Contains(result, w) || w != "signature ok" && strings.Contains(result, "signature ok") {
			t.Errorf("dkimverify %s: %q, want %q", filepath.Base(name), result, w)
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Errorf("dkimverify said nothing of %v:\n%s", want, got)
	}
	if dns.Queries() < 2 {
		t.Errorf("dkimverify asked the test DNS %d times: the keys were not looked up there", dns.Queries())
	}
}

// smtpStepsScript logs in over STARTTLS and runs the commands given
// ("MAIL:addr", "RCPT:addr", "DATA"), printing each command's reply on a
// line of its own: "MAIL 451 4.7.1 text".
const smtpStepsScript = `
import smtplib, ssl, sys
addr, user, pw = sys.argv[1:4]
host, port = addr.rsplit(":", 1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, int(port), local_hostname="laptop.example.net", timeout=20)
s.starttls(context=ctx)
s.ehlo()
s.login(user, pw)
n = 0
for step in sys.argv[4:]:
    verb, _, arg = step.partition(":")
    if verb == "MAIL":
        code, text = s.docmd("MAIL", "FROM:<%s>" % arg)
    elif verb == "RCPT":
        code, text = s.docmd("RCPT", "TO:<%s>" % arg)
    else:
        code, text = s.docmd("DATA")
        if code == 354:
            n += 1
            msg = "From: %s\r\nTo: undisclosed-recipients:;\r\nSubject: rate %d\r\nDate: Sat, 05 Dec 2026 12:00:00 +0000\r\nMessage-ID: <rate%d.%s>\r\n\r\nBody.\r\n.\r\n" % (user, n, n, user)
            s.send(msg.encode())
            code, text = s.getreply()
    print(verb, code, text.decode().replace("\n", " "))
s.quit()
`

// TestSubmissionRateLimit: a user over their message or recipient rate
// gets 451 4.7.1, with a text that says so, at the MAIL or RCPT that is
// one too many, before DATA; another user is unaffected. The client is
// on loopback, an exempt network: the per-user limits apply anyway
// (webmail on the same host is how a stolen password often sends).
func TestSubmissionRateLimit(t *testing.T) {
	python := debianPython(t)
	a, out := startSubmission(t, t.TempDir(), `
[filters.ratelimit]
messages_per_user = { limit = 2, per = "1h" }
recipients_per_user = { limit = 3 }
`)
	steps := func(user string, cmds ...string) []string {
		t.Helper()
		args := append([]string{"-c", smtpStepsScript, a.Addr("submission"), user, "pw-" + strings.TrimSuffix(user, "@example.com")}, cmds...)
		got, err := exec.Command(python, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("smtplib as %s: %v\n%s", user, err, got)
		}
		return strings.Split(strings.TrimSpace(string(got)), "\n")
	}
	const (
		msgLimited  = "451 4.7.1 Message rate limit reached for your account, try again later"
		rcptLimited = "451 4.7.1 Recipient rate limit reached for your account, try again later"
	)
	got := steps("alice@example.com",
		"MAIL:alice@example.com", "RCPT:r1@far.example", "RCPT:r2@far.example", "DATA",
		"MAIL:alice@example.com", "RCPT:r3@far.example", "RCPT:r4@far.example", "DATA",
		"MAIL:alice@example.com")
	want := []string{"MAIL 250", "RCPT 250", "RCPT 250", "DATA 250",
		"MAIL 250", "RCPT 250", "RCPT " + rcptLimited, "DATA 250",
		"MAIL " + msgLimited}
	if len(got) != len(want) {
		t.Fatalf("alice's replies:\n%s\nwant %d lines", strings.Join(got, "\n"), len(want))
	}
	for i, w := range want {
		if got[i] != w && !strings.HasPrefix(got[i], w+" ") {
			t.Errorf("alice's step %d: %q, want %q", i+1, got[i], w)
		}
	}
	for rcpt, n := range map[string]int{"r1@far.example": 1, "r3@far.example": 1, "r4@far.example": 0} {
		if q := out.To(rcpt); len(q) != n {
			t.Errorf("queued for %s: %d messages, want %d", rcpt, len(q), n)
		}
	}

	// bob, from the same address, has his own allowance.
	got = steps("bob@example.com", "MAIL:bob@example.com", "RCPT:r6@far.example", "RCPT:r7@far.example", "DATA")
	if len(got) != 4 {
		t.Fatalf("bob's replies:\n%s", strings.Join(got, "\n"))
	}
	for i, w := range []string{"MAIL 250", "RCPT 250", "RCPT 250", "DATA 250"} {
		if !strings.HasPrefix(got[i], w+" ") {
			t.Errorf("bob's step %d: %q, want %q", i+1, got[i], w)
		}
	}
	if q := out.To("r6@far.example"); len(q) != 1 {
		t.Errorf("queued for bob's r6@far.example: %d", len(q))
	}

	for limit, want := range map[string]string{"messages_per_user": "1", "recipients_per_user": "1"} {
		if v := metricValue(t, a, `moat_ratelimit_hits_total{limit="`+limit+`"}`); v != want {
			t.Errorf("moat_ratelimit_hits_total{limit=%q} = %q, want %s", limit, v, want)
		}
	}
}
