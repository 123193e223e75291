package imapd

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/moatmail/moat/gateway/throttle"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{}, ""},
		{"explicit", Config{LoginConfig: throttle.LoginConfig{AuthConcurrency: 2}, AppendLimit: 1 << 20, IdleTimeout: 31 * time.Minute}, ""},
		{"negative append limit", Config{AppendLimit: -1}, "append_limit"},
		{"append limit above 32 bits", Config{AppendLimit: 1 << 32}, "append_limit"},
		{"append limit below a LITERAL- literal", Config{AppendLimit: 1000}, "append_limit"},
		{"short idle timeout", Config{IdleTimeout: time.Minute}, "idle_timeout"},
		{"negative auth concurrency", Config{LoginConfig: throttle.LoginConfig{AuthConcurrency: -1}}, "auth_concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if cfg.AppendLimit == 0 || cfg.IdleTimeout == 0 || cfg.AuthConcurrency == 0 {
					t.Errorf("defaults not filled: %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate error = %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
	if got := (&Config{}); got.Validate() == nil && got.AppendLimit != 50<<20 {
		t.Errorf("default AppendLimit = %d, want 50 MiB", got.AppendLimit)
	}
}

func TestInvalidConfigFailsServe(t *testing.T) {
	srv := New(Config{AppendLimit: -5}, nil, nil, nil, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := srv.Serve(l); err == nil || !strings.Contains(err.Error(), "append_limit") {
		t.Errorf("Serve = %v, want the config error", err)
	}
}

// rawConn is a hand-driven IMAP connection, for asserting exact responses.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	r    *bufio.Reader
	next int
	// greeting is the server's first line.
	greeting string
}

func newRawConn(t testing.TB, c net.Conn) *rawConn {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	rc.greeting = strings.TrimSpace(rc.line())
	return rc
}

func (rc *rawConn) line() string {
	rc.t.Helper()
	l, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatal(err)
	}
	return l
}

// cmd sends one command and returns the untagged lines and the tagged one.
func (rc *rawConn) cmd(line string) (untagged []string, tagged string) {
	rc.t.Helper()
	tag := "a" + itoa(uint32(rc.next))
	rc.next++
	if _, err := rc.c.Write([]byte(tag + " " + line + "\r\n")); err != nil {
		rc.t.Fatal(err)
	}
	for {
		l := strings.TrimSpace(rc.line())
		if strings.HasPrefix(l, tag+" ") {
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}

// rawExchange sends lines on a fresh plaintext connection and returns the
// greeting and the tagged reply to the last line.
func rawExchange(t *testing.T, addr string, lines ...string) (greeting, reply string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRawConn(t, c)
	for _, line := range lines {
		_, reply = rc.cmd(line)
	}
	return rc.greeting, reply
}

func TestPlaintextLoginRefused(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		name, line string
	}{
		{"LOGIN", "LOGIN alice@example.com " + alicePass},
		{"AUTHENTICATE PLAIN", "AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXNlY3JldA=="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			greeting, reply := rawExchange(t, e.addr, tc.line)
			// RFC 3501 §6.2.3: LOGINDISABLED tells clients not to try.
			if !strings.Contains(greeting, "LOGINDISABLED") || !strings.Contains(greeting, "STARTTLS") ||
				strings.Contains(greeting, "AUTH=PLAIN") {
				t.Errorf("greeting = %q, want STARTTLS and LOGINDISABLED, no AUTH=PLAIN", greeting)
			}
			if !strings.HasPrefix(reply, "a0 NO [PRIVACYREQUIRED]") {
				t.Errorf("reply = %q, want NO [PRIVACYREQUIRED]", reply)
			}
		})
	}
	c, err := imapclient.DialInsecure(e.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login("alice@example.com", alicePass).Wait()
	if imapCode(err) != imap.ResponseCodePrivacyRequired {
		t.Errorf("imapclient login over plaintext: err = %v, want PRIVACYREQUIRED", err)
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
	_, reply := rawExchange(t, e.addr, "LOGIN alice@example.com "+alicePass)
	if !strings.HasPrefix(reply, "a0 OK") {
		t.Errorf("loopback plaintext login: %q, want OK", reply)
	}
	ip := nonLoopbackAddr()
	if ip == nil {
		t.Skip("no non-loopback address to test from")
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skip(err)
	}
	go e.srv.Serve(l)
	greeting, reply := rawExchange(t, l.Addr().String(), "LOGIN alice@example.com "+alicePass)
	if !strings.Contains(greeting, "LOGINDISABLED") {
		t.Errorf("greeting from %v = %q, want LOGINDISABLED", ip, greeting)
	}
	if !strings.HasPrefix(reply, "a0 NO [PRIVACYREQUIRED]") {
		t.Errorf("plaintext login from %v: %q, want NO [PRIVACYREQUIRED]", ip, reply)
	}
}

func TestLoginOverTLS(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		name string
		dial func() (*imapclient.Client, error)
		auth func(*imapclient.Client) error
	}{
		{"STARTTLS LOGIN", func() (*imapclient.Client, error) { return imapclient.DialStartTLS(e.addr, e.options(nil)) },
			func(c *imapclient.Client) error { return c.Login("Alice@Example.com", alicePass).Wait() }},
		{"IMAPS LOGIN", func() (*imapclient.Client, error) { return imapclient.DialTLS(e.tlsAddr, e.options(nil)) },
			func(c *imapclient.Client) error { return c.Login("alice@example.com", alicePass).Wait() }},
		{"STARTTLS AUTHENTICATE PLAIN", func() (*imapclient.Client, error) { return imapclient.DialStartTLS(e.addr, e.options(nil)) },
			func(c *imapclient.Client) error {
				return c.Authenticate(sasl.NewPlainClient("", "alice@example.com", alicePass))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !c.Caps().Has("AUTH=PLAIN") || c.Caps().Has(imap.CapLoginDisabled) {
				t.Errorf("caps before login over TLS = %v, want AUTH=PLAIN", c.Caps())
			}
			if err := tc.auth(c); err != nil {
				t.Fatalf("auth: %v", err)
			}
			caps, err := c.Capability().Wait()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapIMAP4rev2, imap.CapIdle, imap.CapMove,
				imap.CapUIDPlus, imap.CapSpecialUse, imap.CapNamespace, imap.CapLiteralMinus, imap.CapESearch, imap.CapListStatus,
				imap.CapUnselect, imap.CapEnable, "APPENDLIMIT=52428800"} {
				if _, ok := caps[want]; !ok {
					t.Errorf("capability %s missing from %v", want, caps)
				}
			}
			// See the capabilities comment in server.go.
			for _, unwanted := range []imap.Cap{imap.CapLiteralPlus, imap.CapCondStore, imap.CapLoginDisabled, imap.CapStartTLS} {
				if _, ok := caps[unwanted]; ok {
					t.Errorf("capability %s advertised after login", unwanted)
				}
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Errorf("SELECT after login: %v", err)
			}
		})
	}
}

func TestAuthenticateOtherIdentityRefused(t *testing.T) {
	e := newEnv(t, Config{})
	c, err := imapclient.DialStartTLS(e.addr, e.options(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Authenticate(sasl.NewPlainClient("bob@example.com", "alice@example.com", alicePass))
	if imapCode(err) != imap.ResponseCodeAuthorizationFailed {
		t.Errorf("AUTHENTICATE as someone else: %v, want AUTHORIZATIONFAILED", err)
	}
	if got := e.observed.list(); len(got) != 1 || got[0] != throttle.ReasonIdentity {
		t.Errorf("observed %v, want [%s]", got, throttle.ReasonIdentity)
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
	c, err := imapclient.DialStartTLS(e.addr, e.options(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
		// The right password after five failures waits too: the
		// delay comes before the check, or it would tell a guesser
		// when to stop waiting.
		{alicePass, 4 * time.Second, true},
	} {
		mu.Lock()
		slept = nil
		mu.Unlock()
		err := c.Login("alice@example.com", tc.pass).Wait()
		if tc.wantOK != (err == nil) {
			t.Fatalf("login with %q: %v, want ok=%v", tc.pass, err, tc.wantOK)
		}
		if !tc.wantOK && imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("login with %q: %v, want AUTHENTICATIONFAILED", tc.pass, err)
		}
		mu.Lock()
		got := slept
		mu.Unlock()
		switch {
		case tc.wantSleep == 0 && len(got) != 0:
			t.Errorf("login with %q slept %v, want no delay", tc.pass, got)
		case tc.wantSleep != 0 && (len(got) != 1 || got[0] != tc.wantSleep):
			t.Errorf("login with %q slept %v, want [%v]", tc.pass, got, tc.wantSleep)
		}
	}
	if got := e.observed.list(); len(got) != 5 || got[0] != throttle.ReasonCredentials {
		t.Errorf("observed %v, want 5 × %s", got, throttle.ReasonCredentials)
	}

	// Twenty quiet minutes halve the address's count twice (5 → 1).
	mu.Lock()
	now = now.Add(20 * time.Minute)
	slept = nil
	mu.Unlock()
	c2 := e.dial(t, "bob@example.com", bobPass, nil)
	defer c2.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(slept) != 0 {
		t.Errorf("after a quiet period, login slept %v", slept)
	}
}
