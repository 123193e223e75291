package gateway

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/rules"
)

// dialSubmission opens a submission session over STARTTLS, logged in as
// user with password pw unless pw is empty.
func dialSubmission(t *testing.T, e *relayEnv, user, pw string) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(e.sub, e.tls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if pw != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, pw)); err != nil {
			t.Fatalf("AUTH: %v", err)
		}
	}
	return c
}

func submitted(from, to string) string {
	return "From: Alice <" + from + ">\r\nTo: <" + to + ">\r\nSubject: sent\r\nDate: Sat, 05 Dec 2026 12:00:00 +0000\r\nMessage-ID: <2@example.com>\r\n\r\nHi.\r\n"
}

func testSubmissionAuthNeedsTLS(t *testing.T, e *relayEnv) {
	out := dialogue(t, e.sub, "EHLO client.example.net\r\n", "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXB3\r\n",
		"MAIL FROM:<alice@example.com>\r\n", "QUIT\r\n")
	if strings.Contains(out, "AUTH PLAIN") && strings.Contains(out, "250-AUTH") {
		t.Errorf("AUTH advertised before STARTTLS:\n%s", out)
	}
	if !strings.Contains(out, "250-STARTTLS") {
		t.Errorf("STARTTLS not offered:\n%s", out)
	}
	if !strings.Contains(out, "\r\n538 5.7.11 ") {
		t.Errorf("AUTH before TLS not refused with 538 5.7.11:\n%s", out)
	}
	if !strings.Contains(out, "\r\n530 5.7.0 ") {
		t.Errorf("MAIL before AUTH not refused with 530 5.7.0:\n%s", out)
	}
}

func testSubmissionLogin(t *testing.T, e *relayEnv) {
	for _, tc := range []struct {
		name string
		auth sasl.Client
		want string
	}{
		{"plain", sasl.NewPlainClient("", "alice@example.com", "alice-pw"), "250"},
		{"login, upper case", sasl.NewLoginClient("Alice@Example.com", "alice-pw"), "250"},
		{"wrong password", sasl.NewPlainClient("", "alice@example.com", "guess"), "535 5.7.8"},
		{"other identity", sasl.NewPlainClient("postmaster@example.com", "alice@example.com", "alice-pw"), "535 5.7.8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialSubmission(t, e, "", "")
			if got := reply(c.Auth(tc.auth)); got != tc.want {
				t.Errorf("AUTH: %s, want %s", got, tc.want)
			}
		})
	}
}

func testSubmissionSenders(t *testing.T, e *relayEnv) {
	c := dialSubmission(t, e, "alice@example.com", "alice-pw")
	for _, tc := range []struct{ from, want string }{
		{"alice@example.com", "250"},
		{"alice+lists@example.com", "250"},
		{"sales@example.com", "250"},
		{"anyone@alice.example", "250"},
		{"", "250"}, // RFC 8098 disposition notifications
		{"postmaster@example.com", "553 5.7.1"},
		{"alice@example.org", "553 5.7.1"},
	} {
		if got := reply(c.Mail(tc.from, nil)); got != tc.want {
			t.Errorf("MAIL FROM:<%s>: %s, want %s", tc.from, got, tc.want)
		}
		c.Reset()
	}
	// The From field too.
	for _, tc := range []struct{ from, want string }{
		{"alice@example.com", "250"},
		{"sales@example.com", "250"},
		{"postmaster@example.com", "550 5.7.1"},
	} {
		_, data := transact(t, c, "alice@example.com", []string{"bob@far.example"}, submitted(tc.from, "bob@far.example"))
		if data != tc.want {
			t.Errorf("From: %s: %s, want %s", tc.from, data, tc.want)
		}
	}
	two := strings.Replace(submitted("alice@example.com", "bob@far.example"), "From: Alice <alice@example.com>",
		"From: alice@example.com, postmaster@example.com", 1)
	if _, data := transact(t, c, "alice@example.com", []string{"bob@far.example"}, two); data != "550 5.7.1" {
		t.Errorf("From with another user's address beside hers: %s, want 550 5.7.1", data)
	}
}

func testSubmissionDelivery(t *testing.T, e *relayEnv) {
	c := dialSubmission(t, e, "alice@example.com", "alice-pw")
	before, probed := len(e.out.Taken()), e.probe.ran()
	rcpts, data := transact(t, c, "alice@example.com",
		[]string{"postmaster@example.com", "bob@far.example", "known@relay.example", "nobody@example.com", "nobody@relay.example"},
		submitted("alice@example.com", "bob@far.example"))
	if !slices.Equal(rcpts, []string{"250", "250", "250", "550 5.1.1", "550 5.1.1"}) || data != "250" {
		t.Fatalf("RCPT %v, DATA %s", rcpts, data)
	}
	msgs := e.out.Taken()[before:]
	if len(msgs) != 1 || msgs[0].Origin != "submission" || !slices.Equal(msgs[0].Rcpts, []string{"bob@far.example", "known@relay.example"}) {
		t.Fatalf("queued %+v", msgs)
	}
	head := string(msgs[0].Header)
	if !strings.HasPrefix(head, "DKIM-Signature: v=1; d=example.com; fake\r\nReceived: from localhost\r\n\tby mx.example.com (moat) with ESMTPSA") ||
		strings.Contains(head, "127.0.0.1") || strings.Contains(head, "X-Spam") {
		t.Errorf("submitted header:\n%s", head)
	}
	inbox := messagesIn(t, e.store, e.admin.ID, "INBOX")
	if len(inbox) != 1 || !strings.HasPrefix(inbox[0], head) {
		t.Errorf("the local recipient's INBOX: %q", inbox)
	}
	if e.probe.ran() != probed {
		t.Errorf("a filter outside smtp.submission.filters ran on submission")
	}
	// A signing fault is temporary.
	if _, data := transact(t, c, "alice@fail.example", []string{"bob@far.example"}, submitted("alice@fail.example", "bob@far.example")); data != "451 4.3.0" {
		t.Errorf("DATA with a failing signer: %s, want 451 4.3.0", data)
	}
}

// TestSubmissionOptions runs the tests of non-default submission
// settings on one gateway.
func TestSubmissionOptions(t *testing.T) {
	cfg := Config{GreetPause: 2 * time.Second}
	cfg.Submission.Filters = []string{"probe", "gtube"}
	cfg.Submission.AllowPlaintextLoopback = true
	e := startRelay(t, relayOpts{cfg: cfg})
	t.Run("filters", func(t *testing.T) { testSubmissionFilters(t, e) })
	t.Run("plaintext loopback", func(t *testing.T) { testSubmissionPlaintextLoopback(t, e) })
	t.Run("no greeting pause", func(t *testing.T) { testSubmissionWithoutGreetPause(t, e) })
}

func testSubmissionFilters(t *testing.T, e *relayEnv) {
	c := dialSubmission(t, e, "alice@example.com", "alice-pw")
	if _, data := transact(t, c, "alice@example.com", []string{"bob@far.example"}, submitted("alice@example.com", "bob@far.example")); data != "250" {
		t.Fatalf("DATA %s", data)
	}
	if e.probe.ran() != 1 {
		t.Errorf("probe ran %d times, want 1: smtp.submission.filters names it", e.probe.ran())
	}
	// The MX listener still runs it as before.
	mx := dialMX(t, e.mx)
	if _, data := transact(t, mx, "s@far.example", []string{"alice@example.com"}, plainMsg); data != "250" {
		t.Fatalf("MX DATA %s", data)
	}
	if e.probe.ran() != 2 {
		t.Errorf("probe ran %d times after an MX message, want 2", e.probe.ran())
	}
}

func testSubmissionWithoutGreetPause(t *testing.T, e *relayEnv) {
	conn, err := net.Dial("tcp", e.sub)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "220 ") {
		t.Errorf("submission greeting %q, %v; want the whole greeting at once (no postscreen pause)", line, err)
	}
}

func testSubmissionPlaintextLoopback(t *testing.T, e *relayEnv) {
	c, err := smtp.Dial(e.sub)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewLoginClient("alice@example.com", "alice-pw")); err != nil {
		t.Fatalf("AUTH LOGIN in clear from loopback, allowed: %v", err)
	}
}

// TestRefusalText: the text a demand asks for (a user over their own
// rate limit) reaches an authenticated client only; a stranger gets the
// generic text, with the same code either way.
func TestRefusalText(t *testing.T) {
	const text = "Message rate limit reached for your account, try again later"
	for _, tc := range []struct {
		name string
		auth string
		v    rules.Verdict
		want string // "" for no refusal
	}{
		{"authenticated", "alice@example.com", rules.Verdict{Action: policies.ActionTempfail, Text: text}, "451 4.7.1 " + text},
		{"stranger", "", rules.Verdict{Action: policies.ActionTempfail, Text: text}, "451 4.7.1 " + errPolicyTemp.Message},
		{"no text", "alice@example.com", rules.Verdict{Action: policies.ActionTempfail}, "451 4.7.1 " + errPolicyTemp.Message},
		{"a rule's reply code", "alice@example.com", rules.Verdict{Action: policies.ActionReject, Reply: rules.Reply{Code: 554, Enhanced: [3]int{5, 7, 0}}},
			"554 5.7.0 " + errPolicy.Message},
		{"accepted", "alice@example.com", rules.Verdict{Action: policies.ActionAccept, Text: text}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &session{info: filters.Connection{AuthUser: tc.auth}}
			got := ""
			if err := s.refusalOf(tc.v); err != nil {
				got = fmt.Sprintf("%s %s", reply(err), err.Message)
			}
			if got != tc.want {
				t.Errorf("reply %q, want %q", got, tc.want)
			}
		})
	}
}
