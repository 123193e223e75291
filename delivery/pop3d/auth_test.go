package pop3d

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatmail/moat/gateway/throttle"
)

func TestCapa(t *testing.T) {
	strict := newEnv(t, Config{})
	lenient := newEnv(t, Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true}})
	always := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION moat"}
	for _, tc := range []struct {
		name    string
		connect func(t *testing.T) *client
		want    []string
		unwant  []string
	}{
		{"plaintext, not exempt", func(t *testing.T) *client { return strict.dial(t) },
			[]string{"STLS"}, []string{"USER", "SASL PLAIN"}},
		{"plaintext loopback, exempt", func(t *testing.T) *client { return lenient.dial(t) },
			[]string{"STLS", "USER", "SASL PLAIN"}, nil},
		{"after STLS", func(t *testing.T) *client { return strict.dialSTLS(t) },
			[]string{"USER", "SASL PLAIN"}, []string{"STLS"}},
		{"POP3S", func(t *testing.T) *client { return strict.dialTLS(t) },
			[]string{"USER", "SASL PLAIN"}, []string{"STLS"}},
		{"after login", func(t *testing.T) *client { return strict.login(t, aliceAddr, alicePass) },
			nil, []string{"STLS", "USER", "SASL PLAIN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := tc.connect(t)
			if !strings.HasPrefix(cl.greeting, "+OK") {
				t.Errorf("greeting %q", cl.greeting)
			}
			status, caps := cl.multi("CAPA")
			if !strings.HasPrefix(status, "+OK") {
				t.Fatalf("CAPA: %q", status)
			}
			for _, c := range append(append([]string(nil), always...), tc.want...) {
				if !hasLine(caps, c) {
					t.Errorf("CAPA %v lacks %q", caps, c)
				}
			}
			for _, c := range tc.unwant {
				if hasLine(caps, c) {
					t.Errorf("CAPA %v lists %q", caps, c)
				}
			}
			if got := cl.cmd("QUIT"); !strings.HasPrefix(got, "+OK") {
				t.Errorf("QUIT: %q", got)
			}
		})
	}
}

func TestPlaintextLoginRefused(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		name  string
		lines []string
	}{
		{"USER", []string{"USER " + aliceAddr}},
		{"PASS after USER", []string{"USER " + aliceAddr, "PASS " + alicePass}},
		{"AUTH PLAIN", []string{"AUTH PLAIN " + plain("", aliceAddr, alicePass)}},
		{"AUTH PLAIN continued", []string{"AUTH PLAIN"}},
		{"bare AUTH", []string{"AUTH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := e.dial(t)
			for _, l := range tc.lines {
				// RFC 3206 §4: a policy refusal carries [AUTH].
				if got := cl.cmd(l); !strings.HasPrefix(got, "-ERR [AUTH]") {
					t.Errorf("%s in clear: %q, want -ERR [AUTH]", l, got)
				}
			}
			if got := cl.cmd("STAT"); !strings.HasPrefix(got, "-ERR") {
				t.Errorf("STAT after refused login: %q", got)
			}
		})
	}
	if got := e.observed.list(); len(got) != 6 || slices.ContainsFunc(got, func(r string) bool { return r != throttle.ReasonPlaintext }) {
		t.Errorf("observed %v, want 6 × %s", got, throttle.ReasonPlaintext)
	}
}

// nonLoopbackAddr returns an address of this host that is not loopback.
func nonLoopbackAddr() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP
		}
	}
	return nil
}

func TestPlaintextExemptionIsLoopbackOnly(t *testing.T) {
	e := newEnv(t, Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true}})
	cl := e.dial(t)
	cl.mustLogin(aliceAddr, alicePass)
	cl.cmd("QUIT")

	ip := nonLoopbackAddr()
	if ip == nil {
		t.Skip("no non-loopback address to test from")
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skip(err)
	}
	go e.srv.Serve(l)
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	remote := newClient(t, c)
	_, caps := remote.multi("CAPA")
	if hasLine(caps, "USER") || hasLine(caps, "SASL PLAIN") || !hasLine(caps, "STLS") {
		t.Errorf("CAPA from %v = %v, want STLS and no USER nor SASL", ip, caps)
	}
	if got := remote.cmd("USER " + aliceAddr); !strings.HasPrefix(got, "-ERR [AUTH]") {
		t.Errorf("USER in clear from %v: %q, want -ERR [AUTH]", ip, got)
	}
	remote.stls(e.clientTLS)
	remote.mustLogin(aliceAddr, alicePass)
}

func TestLoginOverTLS(t *testing.T) {
	e := newEnv(t, Config{})
	msg := message("one", "hello\r\n")
	e.deliver(t, e.alice, msg)
	size := strconv.Itoa(len(msg))
	for _, tc := range []struct {
		name    string
		connect func(t *testing.T) *client
		auth    []string
	}{
		{"STLS USER/PASS", func(t *testing.T) *client { return e.dialSTLS(t) },
			[]string{"USER Alice@Example.com", "PASS " + alicePass}},
		{"POP3S USER/PASS", func(t *testing.T) *client { return e.dialTLS(t) },
			[]string{"USER " + aliceAddr, "PASS " + alicePass}},
		{"STLS AUTH PLAIN initial response", func(t *testing.T) *client { return e.dialSTLS(t) },
			[]string{"AUTH PLAIN " + plain("", aliceAddr, alicePass)}},
		{"POP3S AUTH PLAIN same authzid", func(t *testing.T) *client { return e.dialTLS(t) },
			[]string{"auth plain " + plain(aliceAddr, "ALICE@example.com", alicePass)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := tc.connect(t)
			var got string
			for _, l := range tc.auth {
				got = cl.cmd(l)
			}
			if got != "+OK Maildrop locked and ready, 1 messages ("+size+" octets)" {
				t.Errorf("login: %q", got)
			}
			if got := cl.cmd("STAT"); got != "+OK 1 "+size {
				t.Errorf("STAT: %q", got)
			}
			if got := cl.cmd("QUIT"); !strings.HasPrefix(got, "+OK") {
				t.Errorf("QUIT: %q", got)
			}
		})
	}
}

func TestAuthPlainContinuation(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		name     string
		response string // sent after "+ "
		want     string
		reason   string // observed, if any
	}{
		{"valid", plain("", aliceAddr, alicePass), "+OK Maildrop locked", ""},
		{"cancelled", "*", "-ERR Authentication cancelled", ""},
		{"bad base64", "not base64!", "-ERR Invalid base64", ""},
		{"empty", "=", "-ERR [AUTH] Malformed", ""},
		{"no password", plain("", aliceAddr, ""), "-ERR [AUTH] Malformed", ""},
		{"wrong password", plain("", aliceAddr, "nope"), "-ERR [AUTH] Authentication failed", throttle.ReasonCredentials},
		{"unknown user", plain("", "mallory@example.com", "nope"), "-ERR [AUTH] Authentication failed", throttle.ReasonCredentials},
		{"other identity", plain(bobAddr, aliceAddr, alicePass), "-ERR [AUTH] Authorization identity", throttle.ReasonIdentity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.observed.list())
			cl := e.dialSTLS(t)
			if got := cl.cmd("AUTH PLAIN"); got != "+ " {
				t.Fatalf("AUTH PLAIN: %q, want the empty challenge %q", got, "+ ")
			}
			if got := cl.cmd(tc.response); !strings.HasPrefix(got, tc.want) {
				t.Errorf("response %q: %q, want %q…", tc.response, got, tc.want)
			}
			obs := e.observed.list()[before:]
			if tc.reason == "" && len(obs) != 0 || tc.reason != "" && (len(obs) != 1 || obs[0] != tc.reason) {
				t.Errorf("observed %v, want %q", obs, tc.reason)
			}
			cl.cmd("QUIT")
		})
	}
	cl := e.dialSTLS(t)
	if got := cl.cmd("AUTH CRAM-MD5"); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("AUTH CRAM-MD5: %q", got)
	}
	if status, mechs := cl.multi("AUTH"); !strings.HasPrefix(status, "+OK") || !slices.Equal(mechs, []string{"PLAIN"}) {
		t.Errorf("bare AUTH: %q %v, want the list [PLAIN]", status, mechs)
	}
}

// TestSTLSDropsPlaintextTail: commands sent in clear after STLS, in the same
// write, must not run inside the TLS session (CVE-2011-0411).
func TestSTLSDropsPlaintextTail(t *testing.T) {
	e := newEnv(t, Config{})
	cl := e.dial(t)
	cl.send("STLS\r\nUSER " + aliceAddr + "\r\n")
	if got := cl.line(); got != "+OK Begin TLS negotiation" {
		t.Fatalf("STLS: %q", got)
	}
	cl.stlsHandshake(e.clientTLS)
	if got := cl.cmd("PASS " + alicePass); got != "-ERR USER first" {
		t.Errorf("PASS after injected USER: %q, want -ERR USER first", got)
	}
	if got := cl.cmd("STLS"); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("second STLS: %q", got)
	}
}

func TestWrongPasswordThrottled(t *testing.T) {
	e := newEnv(t, Config{})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	e.srv.gate.Throttle().SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	var slept []time.Duration
	e.srv.gate.SetSleep(func(d time.Duration) bool {
		mu.Lock()
		slept = append(slept, d)
		mu.Unlock()
		return true
	})
	for _, tc := range []struct {
		pass      string
		wantSleep time.Duration // 0: none
		wantOK    bool
	}{
		{"wrong1", 0, false},
		{"wrong2", 0, false},
		{"wrong3", 0, false},
		{"wrong4", time.Second, false},
		{"wrong5", 2 * time.Second, false},
		// The right password after five failures waits too: the delay
		// comes before the check, or it would tell a guesser when to
		// stop waiting.
		{alicePass, 4 * time.Second, true},
	} {
		mu.Lock()
		slept = nil
		mu.Unlock()
		// A new connection each time: the count is per address and
		// account, not per connection.
		cl := e.dialSTLS(t)
		if got := cl.cmd("USER " + aliceAddr); got != "+OK Send PASS" {
			t.Fatalf("USER: %q", got)
		}
		got := cl.cmd("PASS " + tc.pass)
		if tc.wantOK != strings.HasPrefix(got, "+OK") {
			t.Fatalf("PASS %q: %q, want ok=%v", tc.pass, got, tc.wantOK)
		}
		if !tc.wantOK && got != "-ERR [AUTH] Authentication failed" {
			t.Errorf("PASS %q: %q, want -ERR [AUTH]", tc.pass, got)
		}
		mu.Lock()
		gotSleep := slept
		mu.Unlock()
		switch {
		case tc.wantSleep == 0 && len(gotSleep) != 0:
			t.Errorf("PASS %q slept %v, want no delay", tc.pass, gotSleep)
		case tc.wantSleep != 0 && (len(gotSleep) != 1 || gotSleep[0] != tc.wantSleep):
			t.Errorf("PASS %q slept %v, want [%v]", tc.pass, gotSleep, tc.wantSleep)
		}
		cl.cmd("QUIT")
	}
	if got := e.observed.list(); len(got) != 5 || got[0] != throttle.ReasonCredentials {
		t.Errorf("observed %v, want 5 × %s", got, throttle.ReasonCredentials)
	}

	// Twenty quiet minutes halve the address's count twice (5 → 1).
	mu.Lock()
	now = now.Add(20 * time.Minute)
	slept = nil
	mu.Unlock()
	e.login(t, bobAddr, bobPass).cmd("QUIT")
	mu.Lock()
	defer mu.Unlock()
	if len(slept) != 0 {
		t.Errorf("after a quiet period, login slept %v", slept)
	}
}

func TestTooManyLoginFailuresClose(t *testing.T) {
	e := newEnv(t, Config{})
	e.srv.gate.SetSleep(func(time.Duration) bool { return true })
	cl := e.dialSTLS(t)
	for i := 0; i < maxLoginFailures-1; i++ {
		cl.cmd("USER " + aliceAddr)
		if got := cl.cmd("PASS wrong"); got != "-ERR [AUTH] Authentication failed" {
			t.Fatalf("attempt %d: %q", i+1, got)
		}
	}
	cl.cmd("USER " + aliceAddr)
	cl.send("PASS wrong\r\n")
	if got := cl.line(); got != "-ERR [AUTH] Authentication failed" {
		t.Errorf("last attempt: %q", got)
	}
	if got := cl.line(); got != "-ERR Too many errors, closing connection" {
		t.Errorf("after %d failures: %q", maxLoginFailures, got)
	}
	if !cl.closed() {
		t.Error("connection still open")
	}
}
