package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// postfix is Debian's Postfix, started by a test as the downstream server
// from a configuration folder of its own (its own queue_directory and
// data_directory, an smtpd on a loopback port), delivering relay.test and
// origin.test into virtual mailboxes (Maildir) under dir/mail that the
// test reads. It is started and stopped with `postfix -c DIR start|stop`,
// its own service manager.
type postfix struct {
	t    *testing.T
	dir  string
	addr string
}

// postfixMaster is the configuration written to master.cf: Debian's
// services, none chrooted, smtpd on the test's port only.
const postfixMaster = `%s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// startPostfix writes a configuration and starts Postfix; mailboxes are
// the virtual addresses it knows, access its check_recipient_access table.
func startPostfix(t *testing.T, mailboxes []string, access string) *postfix {
	t.Helper()
	return startPostfixAt(t, freeAddr(t), mailboxes, access)
}

// startPostfixAt is startPostfix with smtpd on addr.
func startPostfixAt(t *testing.T, addr string, mailboxes []string, access string) *postfix {
	t.Helper()
	bin := needTool(t, "postfix")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the Postfix tests run as root (postfix start needs it)")
		}
		t.Skip("postfix start needs root: skipping")
	}
	// Not t.TempDir: Postfix's users must reach into it (0755), and it is
	// removed only after Postfix has stopped.
	dir, err := os.MkdirTemp("", "moat-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	p := &postfix{t: t, dir: dir, addr: addr}
	for _, d := range []string{"conf", "spool", "data", "mail"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	// mail_owner (postfix) writes data_directory; the virtual agent
	// delivers as nobody (65534).
	if err := chownTo(filepath.Join(dir, "data"), "postfix"); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(dir, "mail"), 65534, 65534)
	var vmail strings.Builder
	for _, m := range mailboxes {
		fmt.Fprintf(&vmail, "%s %s/\n", m, strings.ReplaceAll(m, "@", "_"))
	}
	p.write("vmailbox", vmail.String())
	p.write("access", access)
	p.write("main.cf", fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
myhostname = downstream.test
mydomain = downstream.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
default_transport = error:no outbound mail from the test downstream
relay_transport = error:no outbound mail from the test downstream
alias_maps =
alias_database =
virtual_mailbox_domains = relay.test, origin.test
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = texthash:%[1]s/conf/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_recipient_restrictions = check_recipient_access texthash:%[1]s/conf/access, permit_mynetworks, reject_unauth_destination
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
smtputf8_enable = no
biff = no
`, dir))
	p.write("master.cf", fmt.Sprintf(postfixMaster, p.addr))
	if out, err := exec.Command(bin, "-c", filepath.Join(dir, "conf"), "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, p.log())
	}
	t.Cleanup(p.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix does not listen on %s:\n%s", p.addr, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

func chownTo(path, user string) error {
	out, err := exec.Command("id", "-u", user).Output()
	if err != nil {
		return fmt.Errorf("user %s: %w", user, err)
	}
	var uid int
	fmt.Sscan(string(out), &uid)
	return os.Chown(path, uid, -1)
}

func (p *postfix) write(name, text string) {
	p.t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, "conf", name), []byte(text), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *postfix) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// reload makes Postfix read its tables again.
func (p *postfix) reload() {
	p.t.Helper()
	if out, err := exec.Command("postfix", "-c", filepath.Join(p.dir, "conf"), "reload").CombinedOutput(); err != nil {
		p.t.Fatalf("postfix reload: %v\n%s", err, out)
	}
}

// stop stops Postfix with its own command and waits for its master to
// exit, then removes the folder.
func (p *postfix) stop() {
	pidText, _ := os.ReadFile(filepath.Join(p.dir, "spool", "pid", "master.pid"))
	var pid int
	fmt.Sscan(strings.TrimSpace(string(pidText)), &pid)
	exec.Command("postfix", "-c", filepath.Join(p.dir, "conf"), "stop").Run()
	for i := 0; pid > 0 && i < 200; i++ {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if testing.Verbose() || p.t.Failed() {
		p.t.Logf("postfix log:\n%s", p.log())
	}
	os.RemoveAll(p.dir)
}

// mailbox returns the messages delivered to addr.
func (p *postfix) mailbox(addr string) [][]byte {
	dir := filepath.Join(p.dir, "mail", strings.ReplaceAll(addr, "@", "_"), "new")
	ents, _ := os.ReadDir(dir)
	var out [][]byte
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, b)
		}
	}
	return out
}

func TestPostfixDownstream(t *testing.T) {
	pf := startPostfix(t, []string{"user@relay.test", "later@relay.test", "refused@relay.test", "a@origin.test"},
		"later@relay.test 451 4.2.0 try later\nrefused@relay.test 550 5.7.1 not from you\n")
	routes := func(verify string) *Routes {
		rs, err := NewRoutes(mustRoutes(t,
			RouteConfig{Domains: []string{"relay.test", "origin.test"}, Hosts: []string{pf.addr}, Verify: verify}))
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	dir := t.TempDir()
	open := func() *Queue {
		q := testQueue(t, dir, func(c *Config, o *Options) {
			o.Routes = routes("none")
			c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour // retries only when the test asks
		})
		q.Start()
		return q
	}
	q := open()
	ctx := context.Background()

	t.Run("relay delivery", func(t *testing.T) {
		if _, err := q.Enqueue(ctx, &Message{From: "a@origin.test", Rcpts: []string{"user@relay.test"},
			Header: []byte("Received: from client by moat.test\r\n"), Body: testMessage("postfix relay")}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the message in the mailbox", func() bool { return len(pf.mailbox("user@relay.test")) == 1 })
		got := pf.mailbox("user@relay.test")[0]
		if !bytes.Contains(got, []byte("Subject: postfix relay")) || !bytes.Contains(got, []byte("Received: from client by moat.test")) ||
			!bytes.Contains(got, []byte("Return-Path: <a@origin.test>")) {
			t.Errorf("delivered message:\n%s", got)
		}
	})

	t.Run("callout", func(t *testing.T) {
		v, err := NewVerifier(routes("callout"), VerifierOptions{Hostname: "moat.test", Log: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyRecipient(ctx, "user@relay.test"); err != nil {
			t.Errorf("known user: %v", err)
		}
		if err := v.VerifyRecipient(ctx, "nobody@relay.test"); !errors.Is(err, ErrNoRecipient) {
			t.Errorf("unknown user: %v, want ErrNoRecipient", err)
		}
		var re *ReplyError
		if err := v.VerifyRecipient(ctx, "later@relay.test"); !errors.As(err, &re) || !re.Temporary() || re.Code != 451 {
			t.Errorf("deferred user: %v, want Postfix's 451 passed through", err)
		}
		if n := v.Callouts(); n != 3 {
			t.Errorf("%d callouts, want 3", n)
		}
	})

	t.Run("4xx retried", func(t *testing.T) {
		id, err := q.Enqueue(ctx, &Message{From: "a@origin.test", Rcpts: []string{"later@relay.test"}, Body: testMessage("postfix later")})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the deferred attempt", func() bool {
			info, _, _ := Show(dir, id)
			return len(info.Rcpts) == 1 && info.Rcpts[0].Attempts == 1
		})
		info, _, _ := Show(dir, id)
		if !strings.HasPrefix(info.Rcpts[0].Last, "451 4.2.0") || info.Rcpts[0].Status != "pending" {
			t.Fatalf("after the 451: %+v", info.Rcpts[0])
		}
		// The downstream lifts its refusal; moat restarts (a new
		// connection, so that Postfix's reloaded table answers) and retries.
		pf.write("access", "refused@relay.test 550 5.7.1 not from you\n")
		pf.reload()
		q.Close(ctx)
		q = open()
		if err := q.Retry(id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the retried message in the mailbox", func() bool { return len(pf.mailbox("later@relay.test")) == 1 })
	})

	t.Run("5xx bounced once", func(t *testing.T) {
		id, err := q.Enqueue(ctx, &Message{From: "a@origin.test", Rcpts: []string{"refused@relay.test", "user@relay.test"},
			Body: testMessage("postfix refused")})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the bounce in the sender's mailbox", func() bool { return len(pf.mailbox("a@origin.test")) == 1 })
		waitFor(t, "the spool to empty", func() bool { return spoolEmpty(t, dir) })
		if n := len(pf.mailbox("user@relay.test")); n != 2 {
			t.Errorf("the accepted recipient has %d messages, want 2", n)
		}
		dsn := pf.mailbox("a@origin.test")[0]
		if !bytes.Contains(dsn, []byte("Return-Path: <>")) {
			t.Errorf("the bounce was not sent from the null sender:\n%s", dsn)
		}
		perMsg, perRcpt, headers := parseDSN(t, dsn)
		if perMsg.Get("X-Moat-Queue-ID") != id || perMsg.Get("Reporting-MTA") != "dns; moat.test" {
			t.Errorf("per-message fields %v", perMsg.Map())
		}
		if len(perRcpt) != 1 {
			t.Fatalf("%d recipients in the report, want 1", len(perRcpt))
		}
		r := perRcpt[0]
		if r.Get("Final-Recipient") != "rfc822; refused@relay.test" || r.Get("Action") != "failed" || r.Get("Status") != "5.7.1" ||
			!strings.HasPrefix(r.Get("Diagnostic-Code"), "smtp; 550 5.7.1") || r.Get("Remote-MTA") != "dns; 127.0.0.1" {
			t.Errorf("per-recipient fields %v", r.Map())
		}
		if !strings.Contains(headers, "Subject: postfix refused") {
			t.Errorf("returned headers %q", headers)
		}
		// Nothing else arrives: one bounce, once.
		time.Sleep(300 * time.Millisecond)
		if n := len(pf.mailbox("a@origin.test")); n != 1 {
			t.Errorf("%d bounces, want 1", n)
		}
	})
}
