package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/queue"
	"github.com/moatmail/moat/delivery/queue/queuetest"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/gtube"
	"github.com/moatmail/moat/filters/headers"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/quarantine"
	"github.com/moatmail/moat/rules"
)

// mapVerifier answers VerifyRecipient from a map; absent addresses exist.
type mapVerifier map[string]error

func (v mapVerifier) VerifyRecipient(_ context.Context, addr string) error { return v[addr] }

// countingGuard counts the recipients refused as unknown.
type countingGuard struct {
	mu      sync.Mutex
	refused int
}

func (g *countingGuard) RefusalsOver(context.Context, netip.Addr) (bool, error) { return false, nil }

func (g *countingGuard) RecipientRefused(context.Context, netip.Addr) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refused++
	return false, nil
}

// probe is a data-stage filter that records that it ran.
type probe struct {
	name string
	mu   sync.Mutex
	runs int
}

func (p *probe) Name() string         { return p.name }
func (p *probe) Stage() filters.Stage { return filters.StageData }
func (p *probe) ran() int             { p.mu.Lock(); defer p.mu.Unlock(); return p.runs }
func (p *probe) Check(context.Context, *filters.Input) (filters.Result, error) {
	p.mu.Lock()
	p.runs++
	p.mu.Unlock()
	return filters.Result{}, nil
}

// relayEnv is a gateway with a relay domain, a submission listener and
// the fakes behind them.
type relayEnv struct {
	mx, sub string // listener addresses
	store   *mailstore.Store
	quar    *quarantine.Quarantine
	out     *queuetest.Memory
	guard   *countingGuard
	probe   *probe // a filter outside the default submission set
	signed  []string
	admin   mailstore.User
	alice   mailstore.User
	tls     *tls.Config
}

type relayOpts struct {
	cfg      Config
	policies policies.Config
	verifier queue.RecipientVerifier
}

func (e *relayEnv) Sign(domain string, msg []byte) ([]byte, error) {
	e.signed = append(e.signed, domain)
	if domain == "fail.example" {
		return nil, errors.New("no key file")
	}
	return []byte("DKIM-Signature: v=1; d=" + domain + "; fake\r\n"), nil
}

func startRelay(t *testing.T, o relayOpts) *relayEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := mailstore.Open(mailstore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &relayEnv{store: st, out: &queuetest.Memory{}, guard: &countingGuard{}, probe: &probe{name: "probe"}}
	if e.alice, err = st.AddUser(ctx, "alice@example.com", "alice-pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	if e.admin, err = st.AddUser(ctx, "postmaster@example.com", "admin-pw", mailstore.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if e.quar, err = quarantine.New(quarantine.Config{}, st); err != nil {
		t.Fatal(err)
	}
	h, _ := headers.New(headers.DefaultConfig())
	g, _ := gtube.New(gtube.DefaultConfig())
	p, err := rules.NewPipeline(rules.Config{}, []filters.Filter{h, g, e.probe}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pols, err := policies.New(o.policies)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.cfg
	cfg.Hostname = "mx.example.com"
	cfg.LocalDomains = []string{"example.com"}
	cfg.RelayDomains = []string{"relay.example"}
	cfg.QuarantineOwner = "postmaster@example.com"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tlsCfg, _, err := LoadTLS(TLSConfig{}, dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	e.tls = &tls.Config{InsecureSkipVerify: true}
	srv, err := New(cfg, tlsCfg, Deps{
		Judge: &Judge{Pipeline: p, Policies: pols, Recipients: e.guard}, Store: st, Quarantine: e.quar,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Outbound: e.out, Verifier: o.verifier, Signer: e,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		addr *string
		opts ListenOptions
	}{{&e.mx, ListenOptions{Name: "mx"}}, {&e.sub, ListenOptions{Name: "submission", Submission: true}}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*l.addr = ln.Addr().String()
		go srv.Serve(ln, l.opts)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return e
}

// reply is an SMTP reply as a string, "250" for success.
func reply(err error) string {
	if err == nil {
		return "250"
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	return err.Error()
}

// transact runs MAIL, RCPT for each of to and DATA on c, and returns the
// reply of each RCPT and of the end of DATA ("-" when DATA was not sent).
func transact(t *testing.T, c *smtp.Client, from string, to []string, msg string) ([]string, string) {
	t.Helper()
	if err := c.Mail(from, nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	var rcpts []string
	ok := false
	for _, r := range to {
		err := c.Rcpt(r, nil)
		rcpts = append(rcpts, reply(err))
		ok = ok || err == nil
	}
	if !ok {
		c.Reset()
		return rcpts, "-"
	}
	w, err := c.Data()
	if err != nil {
		return rcpts, reply(err)
	}
	io.WriteString(w, msg)
	return rcpts, reply(w.Close())
}

func dialMX(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	return c
}

const plainMsg = "From: <s@far.example>\r\nTo: <known@relay.example>\r\nSubject: hello\r\nDate: Sat, 05 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@far.example>\r\n\r\nHello.\r\n"

// relayVerifier answers for the recipients the tests use.
var relayVerifier = mapVerifier{
	"nobody@relay.example": queue.ErrNoRecipient,
	"busy@relay.example":   &queue.ReplyError{Code: 452, Enhanced: [3]int{4, 2, 2}, Text: "mailbox full"},
	"plain@relay.example":  &queue.ReplyError{Code: 450, Text: "try later"},
	"odd@relay.example":    &queue.ReplyError{Code: 451, Enhanced: [3]int{5, 1, 1}, Text: "inconsistent"},
	"down@relay.example":   errors.New("callout: connection refused"),
}

// TestRelayAndSubmission runs the relay and submission tests on one
// gateway (every start creates users, whose password hashing is slow
// under -race). The login test goes last: its failures slow later logins
// from loopback, as they should.
func TestRelayAndSubmission(t *testing.T) {
	cfg := Config{}
	cfg.Submission.HideClientIP = true
	cfg.Submission.SendAs = map[string][]string{"alice@example.com": {"sales@example.com", "@alice.example", "@fail.example"}}
	e := startRelay(t, relayOpts{cfg: cfg, verifier: relayVerifier, policies: policies.Config{
		// The quarantine test's recipient: quarantined, never rejected.
		Recipients: map[string]policies.PolicyConfig{"held@relay.example": {Reject: policies.ThresholdOff()}}}})
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *relayEnv)
	}{
		{"relay verification", testRelayRecipientVerification},
		{"relay mixed transaction", testRelayMixedTransaction},
		{"relay quarantine", testRelayQuarantineAndRelease},
		{"submission needs TLS", testSubmissionAuthNeedsTLS},
		{"submission senders", testSubmissionSenders},
		{"submission delivery", testSubmissionDelivery},
		{"submission login", testSubmissionLogin},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, e) })
	}
}

func testRelayRecipientVerification(t *testing.T, e *relayEnv) {
	c := dialMX(t, e.mx)
	for _, tc := range []struct{ rcpt, want string }{
		{"known@relay.example", "250"},
		{"nobody@relay.example", "550 5.1.1"},
		{"busy@relay.example", "452 4.2.2"}, // the downstream's 4xx passed through
		{"plain@relay.example", "450 4.4.0"},
		{"odd@relay.example", "451 4.4.0"}, // never a 5.x.x on a 4xx
		{"down@relay.example", "451 4.3.0"},
		{"x@elsewhere.example", "554 5.7.1"}, // still no open relay
	} {
		if err := c.Mail("s@far.example", nil); err != nil {
			t.Fatal(err)
		}
		if got := reply(c.Rcpt(tc.rcpt, nil)); got != tc.want {
			t.Errorf("RCPT %s: %s, want %s", tc.rcpt, got, tc.want)
		}
		c.Reset()
	}
	if e.guard.refused != 1 {
		t.Errorf("the guard counted %d unknown recipients, want 1 (nobody@relay.example)", e.guard.refused)
	}
}

func testRelayMixedTransaction(t *testing.T, e *relayEnv) {
	c := dialMX(t, e.mx)
	before := len(e.out.Taken())
	rcpts, data := transact(t, c, "s@far.example", []string{"alice@example.com", "known@relay.example", "Known@Relay.example"}, plainMsg)
	if !slices.Equal(rcpts, []string{"250", "250", "250"}) || data != "250" {
		t.Fatalf("RCPT %v, DATA %s", rcpts, data)
	}
	msgs := e.out.Taken()[before:]
	if len(msgs) != 1 {
		t.Fatalf("queued %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.From != "s@far.example" || !slices.Equal(m.Rcpts, []string{"known@relay.example"}) || m.Origin != "inbound" {
		t.Errorf("queued %+v", m)
	}
	head := string(m.Header)
	if !strings.HasPrefix(head, "Received: from client.example.net ([127.0.0.1])") || !strings.Contains(head, "X-Spam-Status: No") ||
		!strings.HasSuffix(string(m.Body), "Hello.\r\n") {
		t.Errorf("queued header %q", head)
	}
	inbox := messagesIn(t, e.store, e.alice.ID, "INBOX")
	if len(inbox) != 1 || !strings.HasPrefix(inbox[0], head) {
		t.Errorf("alice's INBOX: %q; want the message with the same trace fields as the queued one", inbox)
	}

	// The queue fails: 451 for the whole message.
	e.out.Fail(errors.New("spool: no space left on device"))
	if _, data := transact(t, c, "s@far.example", []string{"known@relay.example"}, plainMsg); data != "451 4.3.0" {
		t.Errorf("DATA with a failing queue: %s, want 451 4.3.0", data)
	}
	e.out.Fail(nil)
}

func testRelayQuarantineAndRelease(t *testing.T, e *relayEnv) {
	c := dialMX(t, e.mx)
	spam := strings.Replace(plainMsg, "Hello.", "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X", 1)
	before := len(e.out.Taken())
	if _, data := transact(t, c, "s@far.example", []string{"held@relay.example"}, spam); data != "250" {
		t.Fatalf("DATA: %s", data)
	}
	if n := len(e.out.Taken()); n != before {
		t.Fatalf("quarantined mail was queued (%d)", n-before)
	}
	list, err := e.quar.List(context.Background(), "held@relay.example")
	if err != nil || len(list) != 1 {
		t.Fatalf("quarantine list: %v, %v", list, err)
	}
	held := list[0]
	if !slices.Equal(held.Onward, []string{"held@relay.example"}) || held.Holder != e.admin.ID {
		t.Errorf("record: onward %v holder %d; want the relay recipient held by the admin (%d)", held.Onward, held.Holder, e.admin.ID)
	}
	if n := len(messagesIn(t, e.store, e.admin.ID, mailstore.QuarantineMailbox)); n != 1 {
		t.Errorf("the admin's Quarantine holds %d, want 1", n)
	}
	e.quar.SetOnward(e.out)
	if n, err := e.quar.Release(context.Background(), held.ID); err != nil || n != 1 {
		t.Fatalf("release: %d, %v", n, err)
	}
	msgs := e.out.Taken()[before:]
	if len(msgs) != 1 || msgs[0].Origin != "release" || !slices.Equal(msgs[0].Rcpts, held.Onward) ||
		!strings.Contains(string(msgs[0].Body), "GTUBE") || !strings.HasPrefix(string(msgs[0].Body), "Received: ") {
		t.Fatalf("released: %+v", msgs)
	}
}

// messagesIn returns the messages of a user's mailbox.
func messagesIn(t *testing.T, st *mailstore.Store, user int64, mailbox string) []string {
	t.Helper()
	ctx := context.Background()
	mb, err := st.Mailbox(ctx, user, mailbox)
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
