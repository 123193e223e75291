package greylist

import (
	"context"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

// start is when the tests' clocks start.
var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// outcomes records what the filter reports.
type outcomes struct {
	mu      sync.Mutex
	checked []string
	expired chan int
}

func (o *outcomes) Checked(s string) {
	o.mu.Lock()
	o.checked = append(o.checked, s)
	o.mu.Unlock()
}

func (o *outcomes) Expired(n int, err error) {
	if o.expired != nil && err == nil {
		select {
		case o.expired <- n:
		default: // the test has seen enough runs
		}
	}
}

func (o *outcomes) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.checked) == 0 {
		return ""
	}
	return o.checked[len(o.checked)-1]
}

// env is a filter over a fresh store with a controllable clock, which
// only the test's goroutine moves.
type env struct {
	f   *Filter
	st  Store
	now time.Time
	obs *outcomes
	cfg Config
}

func (e *env) advance(d time.Duration) { e.now = e.now.Add(d) }

func openStore(t testing.TB, path string) *SQLiteStore {
	t.Helper()
	st, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// setup is a filter over a fresh SQLite store.
func setup(t testing.TB, cfg Config) *env {
	t.Helper()
	return setupOn(t, cfg, openStore(t, filepath.Join(t.TempDir(), "greylist.db")))
}

// setupOn is a filter over st.
func setupOn(t testing.TB, cfg Config, st Store) *env {
	t.Helper()
	e := &env{st: st, now: start, obs: &outcomes{}, cfg: cfg}
	var err error
	if e.f, err = New(cfg, st, Options{Now: func() time.Time { return e.now }, Observer: e.obs}); err != nil {
		t.Fatal(err)
	}
	return e
}

// attempt is one RCPT as the filter sees it.
type attempt struct {
	ip, from, rcpt string
	auth           string
	prior          *filters.Result
}

func (a attempt) input() *filters.Input {
	ip := a.ip
	if ip == "" {
		ip = "192.0.2.25"
	}
	rcpt := a.rcpt
	if rcpt == "" {
		rcpt = "user@example.com"
	}
	return &filters.Input{
		Conn:  &filters.Connection{ID: "c1", RemoteIP: netip.MustParseAddr(ip), AuthUser: a.auth},
		Env:   &filters.Envelope{From: a.from},
		Rcpt:  rcpt,
		Prior: a.prior,
	}
}

func (e *env) check(t testing.TB, a attempt) filters.Result {
	t.Helper()
	r, err := e.f.Check(context.Background(), a.input())
	if err != nil {
		t.Fatalf("Check(%+v): %v", a, err)
	}
	return r
}

// verdict sums up a result: the symbol name ("" for none) and whether it
// demands tempfail.
func verdict(t testing.TB, r filters.Result) (string, bool) {
	t.Helper()
	sym := ""
	if len(r.Symbols) > 1 {
		t.Fatalf("%d symbols, want at most 1: %+v", len(r.Symbols), r.Symbols)
	}
	if len(r.Symbols) == 1 {
		sym = r.Symbols[0].Name
		if r.Symbols[0].Score != 0 {
			t.Errorf("%s scores %v, want 0", sym, r.Symbols[0].Score)
		}
	}
	tempfail := false
	for _, d := range r.Demands {
		if d.Action != policies.ActionTempfail {
			t.Errorf("demand %v, want tempfail", d.Action)
		}
		tempfail = true
	}
	return sym, tempfail
}

// step is one attempt at a time after the start of a scenario.
type step struct {
	at       time.Duration
	a        attempt
	sym      string
	tempfail bool
	outcome  string
}

func runSteps(t *testing.T, e *env, steps []step) {
	t.Helper()
	begin := e.now
	for i, s := range steps {
		if now := begin.Add(s.at); now.Before(e.now) {
			t.Fatalf("step %d goes back in time", i)
		} else {
			e.now = now
		}
		sym, tempfail := verdict(t, e.check(t, s.a))
		if sym != s.sym || tempfail != s.tempfail || e.obs.last() != s.outcome {
			t.Errorf("step %d (+%v %+v): symbol %q tempfail %v outcome %q, want %q %v %q",
				i, s.at, s.a, sym, tempfail, e.obs.last(), s.sym, s.tempfail, s.outcome)
		}
	}
}

func TestGreylisting(t *testing.T) {
	const day = 24 * time.Hour
	a := attempt{ip: "192.0.2.25", from: "alice@example.net", rcpt: "bob@example.com"}
	with := func(f func(*attempt)) attempt { b := a; f(&b); return b }
	tests := []struct {
		name  string
		steps []step
	}{
		{"first attempt, early retries, pass, later attempts", []step{
			{0, a, SymNew, true, OutcomeNew},
			{time.Minute, a, SymEarly, true, OutcomeEarly},
			{5*time.Minute - time.Second, a, SymEarly, true, OutcomeEarly},
			{5 * time.Minute, a, SymPassed, false, OutcomePassed},
			{6 * time.Minute, a, "", false, OutcomeKnown},
			{2 * day, a, "", false, OutcomeKnown},
		}},
		{"the client's network is the /24 and the /64", []step{
			{0, a, SymNew, true, OutcomeNew},
			{10 * time.Minute, with(func(b *attempt) { b.ip = "192.0.2.200" }), SymPassed, false, OutcomePassed},
			{11 * time.Minute, with(func(b *attempt) { b.ip = "192.0.3.25" }), SymNew, true, OutcomeNew},
			{12 * time.Minute, with(func(b *attempt) { b.ip = "::ffff:192.0.2.1" }), "", false, OutcomeKnown},
			{13 * time.Minute, with(func(b *attempt) { b.ip = "2001:db8:1:2::25" }), SymNew, true, OutcomeNew},
			{20 * time.Minute, with(func(b *attempt) { b.ip = "2001:db8:1:2:ffff::1" }), SymPassed, false, OutcomePassed},
			{21 * time.Minute, with(func(b *attempt) { b.ip = "2001:db8:1:3::25" }), SymNew, true, OutcomeNew},
		}},
		{"sender and recipient are part of the triplet", []step{
			{0, a, SymNew, true, OutcomeNew},
			{5 * time.Minute, a, SymPassed, false, OutcomePassed},
			{6 * time.Minute, with(func(b *attempt) { b.rcpt = "carol@example.com" }), SymNew, true, OutcomeNew},
			{6 * time.Minute, with(func(b *attempt) { b.from = "mallory@example.net" }), SymNew, true, OutcomeNew},
			{6 * time.Minute, with(func(b *attempt) { b.from = "" }), SymNew, true, OutcomeNew},
			{7 * time.Minute, with(func(b *attempt) { b.from = "ALICE@Example.NET"; b.rcpt = "Bob@EXAMPLE.com" }), "", false, OutcomeKnown},
			{8 * time.Minute, with(func(b *attempt) { b.from = "alice+list-17@example.net" }), "", false, OutcomeKnown},
			{11 * time.Minute, with(func(b *attempt) { b.from = "<>" }), SymPassed, false, OutcomePassed},
		}},
		{"a triplet not retried within the window is forgotten", []step{
			{0, a, SymNew, true, OutcomeNew},
			{time.Minute, a, SymEarly, true, OutcomeEarly},
			{day, a, SymNew, true, OutcomeNew},
			{day + 4*time.Minute, a, SymEarly, true, OutcomeEarly},
			{day + 5*time.Minute, a, SymPassed, false, OutcomePassed},
		}},
		{"a passed triplet lives 35 days from its latest use", []step{
			{0, a, SymNew, true, OutcomeNew},
			{5 * time.Minute, a, SymPassed, false, OutcomePassed},
			{5*time.Minute + 30*day, a, "", false, OutcomeKnown},
			{5*time.Minute + 64*day, a, "", false, OutcomeKnown},
			{5*time.Minute + 99*day, a, SymNew, true, OutcomeNew},
		}},
		{"a use within the hour does not extend the lifetime", []step{
			{0, a, SymNew, true, OutcomeNew},
			{5 * time.Minute, a, SymPassed, false, OutcomePassed},
			{5*time.Minute + 59*time.Minute, a, "", false, OutcomeKnown},
			{5*time.Minute + 35*day, a, SymNew, true, OutcomeNew},
		}},
	}
	eachStore(t, func(t *testing.T, open func(testing.TB) Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.AutoAllowAfter = 0
				runSteps(t, setupOn(t, cfg, open(t)), tt.steps)
			})
		}
	})
}

func TestReasons(t *testing.T) {
	e := setup(t, DefaultConfig())
	a := attempt{ip: "192.0.2.25", from: "alice@example.net", rcpt: "bob@example.com"}
	r := e.check(t, a)
	if got, want := r.Demands[0].Reason, "greylisted: first attempt of 192.0.2.0/24 <alice@example.net> -> <bob@example.com>; retry after 5m0s"; got != want {
		t.Errorf("new: reason %q, want %q", got, want)
	}
	e.advance(2 * time.Minute)
	if r = e.check(t, a); !strings.Contains(r.Symbols[0].Reason, "3m0s too early (attempt 2)") {
		t.Errorf("early: reason %q", r.Symbols[0].Reason)
	}
	e.advance(5 * time.Minute)
	if r = e.check(t, a); r.Symbols[0].Reason != "delayed 7m0s (2 attempts deferred)" {
		t.Errorf("passed: reason %q", r.Symbols[0].Reason)
	}
}

func TestAutoAllow(t *testing.T) {
	// passTriplets makes n triplets of a network pass, spaced by gap.
	passTriplets := func(t *testing.T, e *env, ip string, n int, gap time.Duration) {
		t.Helper()
		for i := range n {
			a := attempt{ip: ip, from: "sender@example.net", rcpt: string(rune('a'+i)) + "@example.com"}
			if sym, _ := verdict(t, e.check(t, a)); sym != SymNew {
				t.Fatalf("triplet %d: %q, want %s", i, sym, SymNew)
			}
			e.advance(5 * time.Minute)
			if sym, _ := verdict(t, e.check(t, a)); sym != SymPassed {
				t.Fatalf("triplet %d: %q, want %s", i, sym, SymPassed)
			}
			e.advance(gap)
		}
	}
	fresh := attempt{ip: "192.0.2.99", from: "other@example.org", rcpt: "new@example.com"}
	tests := []struct {
		name   string
		after  int
		passes int
		gap    time.Duration // between passes
		wait   time.Duration // after the last pass
		want   string        // outcome of a new triplet of the network
	}{
		{"five passes an hour apart allow the network", 5, 5, time.Hour, 0, OutcomeAllowed},
		{"four passes do not", 5, 4, time.Hour, 0, OutcomeNew},
		{"passes within the hour count once", 5, 5, 10 * time.Minute, 0, OutcomeNew},
		{"turned off", 0, 6, time.Hour, 0, OutcomeNew},
		{"the allow list forgets an idle network", 5, 5, time.Hour, 36 * 24 * time.Hour, OutcomeNew},
		{"a network allowed after 2", 2, 2, time.Hour, 0, OutcomeAllowed},
	}
	eachStore(t, func(t *testing.T, open func(testing.TB) Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.AutoAllowAfter = tt.after
				e := setupOn(t, cfg, open(t))
				passTriplets(t, e, "192.0.2.25", tt.passes, tt.gap)
				e.advance(tt.wait)
				sym, tempfail := verdict(t, e.check(t, fresh))
				if got := e.obs.last(); got != tt.want {
					t.Errorf("new triplet of the network: outcome %q, want %q", got, tt.want)
				}
				if (tt.want == OutcomeAllowed) != (sym == "" && !tempfail) {
					t.Errorf("outcome %q with symbol %q tempfail %v", e.obs.last(), sym, tempfail)
				}
				// Another network is never allowed by this one's passes.
				verdict(t, e.check(t, attempt{ip: "198.51.100.7", from: "x@example.org"}))
				if got := e.obs.last(); got != OutcomeNew {
					t.Errorf("another network: outcome %q, want new", got)
				}
			})
		}
	})
}

func TestAutoAllowRefreshedOnUse(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AutoAllowAfter = 1
	e := setup(t, cfg)
	a := attempt{from: "a@example.net"}
	e.check(t, a)
	e.advance(5 * time.Minute)
	e.check(t, a) // passes: one pass counted, the network is allowed
	for i := range 3 {
		e.advance(30 * 24 * time.Hour)
		e.check(t, attempt{from: "a@example.net", rcpt: string(rune('x'+i)) + "@example.com"})
		if got := e.obs.last(); got != OutcomeAllowed {
			t.Fatalf("use %d, 30 days after the previous: %q, want allowed", i, got)
		}
	}
}

func TestOperatorAllow(t *testing.T) {
	tests := []struct {
		name  string
		allow string
		until time.Duration // from now; 0 for no end
		ip    string
		want  string
	}{
		{"network allowed", "192.0.2.0/24", 0, "192.0.2.25", OutcomeAllowed},
		{"allowed until later", "192.0.2.0/24", time.Hour, "192.0.2.25", OutcomeAllowed},
		{"allow expired", "192.0.2.0/24", -time.Second, "192.0.2.25", OutcomeNew},
		{"another network", "192.0.2.0/24", 0, "192.0.3.25", OutcomeNew},
		{"IPv6", "2001:db8:1:2::/64", 0, "2001:db8:1:2::99", OutcomeAllowed},
	}
	eachStore(t, func(t *testing.T, open func(testing.TB) Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := setupOn(t, DefaultConfig(), open(t))
				var until time.Time
				if tt.until != 0 {
					until = e.now.Add(tt.until)
				}
				if err := Allow(context.Background(), e.st, netip.MustParsePrefix(tt.allow), until); err != nil {
					t.Fatal(err)
				}
				e.check(t, attempt{ip: tt.ip, from: "a@example.net"})
				if got := e.obs.last(); got != tt.want {
					t.Errorf("outcome %q, want %q", got, tt.want)
				}
			})
		}
	})
}

func TestPassByOperator(t *testing.T) {
	e := setup(t, DefaultConfig())
	a := attempt{ip: "192.0.2.25", from: "a@example.net", rcpt: "b@example.com"}
	e.check(t, a) // new
	ip := netip.MustParseAddr(a.ip)
	if err := Pass(context.Background(), e.st, e.cfg.Triplet(ip, a.from, a.rcpt), e.now, e.cfg.PassLifetime); err != nil {
		t.Fatal(err)
	}
	if sym, tempfail := verdict(t, e.check(t, a)); sym != "" || tempfail || e.obs.last() != OutcomeKnown {
		t.Errorf("after Pass: %q %v %q, want a known triplet", sym, tempfail, e.obs.last())
	}
}

func TestSkipped(t *testing.T) {
	spf := func(v filters.AuthValue) *filters.Result {
		return &filters.Result{Auth: []filters.AuthResult{{Method: "spf", Value: v}}}
	}
	dnswl := &filters.Result{Symbols: []filters.Symbol{{Name: DNSWLSymbol, Score: -2}}}
	tests := []struct {
		name string
		cfg  func(*Config)
		a    attempt
		want string
	}{
		{"authenticated client", nil, attempt{auth: "alice@example.com"}, OutcomeSkipAuth},
		{"loopback", nil, attempt{ip: "127.0.0.1"}, OutcomeSkipNetwork},
		{"IPv6 loopback", nil, attempt{ip: "::1"}, OutcomeSkipNetwork},
		{"private", nil, attempt{ip: "10.1.2.3"}, OutcomeSkipNetwork},
		{"unique local", nil, attempt{ip: "fd12::1"}, OutcomeSkipNetwork},
		{"private greylisted without allow_networks", func(c *Config) { c.AllowNetworks = nil }, attempt{ip: "10.1.2.3"}, OutcomeNew},
		{"a configured network", func(c *Config) { c.AllowNetworks = []string{"198.51.100.0/24"} }, attempt{ip: "198.51.100.9"}, OutcomeSkipNetwork},
		{"postmaster", nil, attempt{rcpt: "Postmaster@example.com"}, OutcomeSkipRecipient},
		{"abuse with an extension", nil, attempt{rcpt: "abuse+spam@example.org"}, OutcomeSkipRecipient},
		{"a configured domain", func(c *Config) { c.AllowRecipients = []string{"@lists.example.com"} }, attempt{rcpt: "x@lists.example.com"}, OutcomeSkipRecipient},
		{"a configured address", func(c *Config) { c.AllowRecipients = []string{"sales@example.com"} }, attempt{rcpt: "sales@example.com"}, OutcomeSkipRecipient},
		{"the address on another domain", func(c *Config) { c.AllowRecipients = []string{"sales@example.com"} }, attempt{rcpt: "sales@example.org"}, OutcomeNew},
		{"DNSWL", nil, attempt{prior: dnswl}, OutcomeSkipDNSWL},
		{"DNSWL with skip_dnswl off", func(c *Config) { c.SkipDNSWL = false }, attempt{prior: dnswl}, OutcomeNew},
		{"SPF pass", nil, attempt{prior: spf(filters.AuthPass)}, OutcomeSkipSPF},
		{"SPF pass with skip_spf_pass off", func(c *Config) { c.SkipSPFPass = false }, attempt{prior: spf(filters.AuthPass)}, OutcomeNew},
		{"SPF softfail", nil, attempt{prior: spf(filters.AuthSoftFail)}, OutcomeNew},
		{"SPF neutral", nil, attempt{prior: spf(filters.AuthNeutral)}, OutcomeNew},
		{"iprev pass is not SPF", nil, attempt{prior: &filters.Result{Auth: []filters.AuthResult{{Method: "iprev", Value: filters.AuthPass}}}}, OutcomeNew},
		{"a stranger", nil, attempt{}, OutcomeNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			e := setup(t, cfg)
			r := e.check(t, tt.a)
			if got := e.obs.last(); got != tt.want {
				t.Fatalf("outcome %q, want %q", got, tt.want)
			}
			if skipped := tt.want != OutcomeNew; skipped != r.IsZero() {
				t.Errorf("result %+v for outcome %q", r, tt.want)
			}
			if tt.want != OutcomeNew {
				// A skipped attempt leaves nothing behind.
				if es, _ := e.st.Triplets(context.Background(), netip.Prefix{}, 0); len(es) != 0 {
					t.Errorf("skipped attempt stored %d triplets", len(es))
				}
			}
		})
	}
}

func TestCheckErrors(t *testing.T) {
	e := setup(t, DefaultConfig())
	tests := []struct {
		name string
		in   *filters.Input
		want string
	}{
		{"no input", nil, "no client address"},
		{"no address", &filters.Input{Conn: &filters.Connection{}, Rcpt: "a@example.com"}, "no client address"},
		{"no recipient", &filters.Input{Conn: &filters.Connection{RemoteIP: netip.MustParseAddr("192.0.2.1")}}, "no recipient"},
	}
	for _, tt := range tests {
		if _, err := e.f.Check(context.Background(), tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestFailingStore(t *testing.T) {
	e := setup(t, DefaultConfig())
	e.check(t, attempt{}) // the store works
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := e.f.Check(context.Background(), attempt{}.input())
	if err == nil {
		t.Fatalf("Check over a closed store = %+v, want an error", r)
	}
	if !strings.Contains(err.Error(), "greylist") {
		t.Errorf("error %q does not say greylist", err)
	}
	// Skipped attempts do not need the store.
	if _, err := e.f.Check(context.Background(), attempt{ip: "127.0.0.1"}.input()); err != nil {
		t.Errorf("loopback over a closed store: %v", err)
	}
}

func TestStateSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "greylist.db")
	now := start
	clock := func() time.Time { return now }
	cfg := DefaultConfig()
	cfg.AutoAllowAfter = 1
	a := attempt{from: "a@example.net"}
	early := attempt{from: "b@example.net"}

	st, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := New(cfg, st, Options{Now: clock})
	for _, in := range []*filters.Input{a.input(), early.input()} {
		if _, err := f.Check(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(5 * time.Minute)
	if r, _ := f.Check(context.Background(), a.input()); !r.HasSymbol(SymPassed) {
		t.Fatalf("retry: %+v, want %s", r, SymPassed)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	obs := &outcomes{}
	f, _ = New(cfg, openStore(t, path), Options{Now: clock, Observer: obs})
	now = now.Add(time.Minute)
	f.Check(context.Background(), attempt{from: "a@example.net", rcpt: "x@example.com"}.input())
	f.Check(context.Background(), a.input())
	f.Check(context.Background(), attempt{ip: "198.51.100.1", from: "b@example.net"}.input())
	f.Check(context.Background(), attempt{ip: "198.51.100.1", from: "b@example.net"}.input())
	want := []string{OutcomeAllowed, OutcomeAllowed, OutcomeNew, OutcomeEarly}
	if strings.Join(obs.checked, " ") != strings.Join(want, " ") {
		t.Errorf("after reopening: %v, want %v", obs.checked, want)
	}
}

func TestRunExpiry(t *testing.T) {
	e := setup(t, DefaultConfig())
	for _, from := range []string{"a@example.net", "b@example.net", "c@example.net"} {
		e.check(t, attempt{from: from})
	}
	later := e.now.Add(DefaultRetryWindow)
	obs := &outcomes{expired: make(chan int, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- RunExpiry(ctx, e.st, 5*time.Millisecond, Options{Now: func() time.Time { return later }, Observer: obs})
	}()
	if n := <-obs.expired; n != 3 {
		t.Errorf("first expiry removed %d, want 3", n)
	}
	if n := <-obs.expired; n != 0 {
		t.Errorf("second expiry removed %d, want 0", n)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("RunExpiry returned %v, want context.Canceled", err)
	}
	if es, _ := e.st.Triplets(context.Background(), netip.Prefix{}, 0); len(es) != 0 {
		t.Errorf("%d triplets left after expiry", len(es))
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"no delay", func(c *Config) { c.Delay = 0 }, ""},
		{"negative delay", func(c *Config) { c.Delay = -time.Second }, "delay: -1s is negative"},
		{"window not past delay", func(c *Config) { c.RetryWindow = 5 * time.Minute }, "retry_window: 5m0s is not longer than delay 5m0s"},
		{"short pass lifetime", func(c *Config) { c.PassLifetime = time.Minute }, "pass_lifetime: 1m0s is below 1h0m0s"},
		{"negative auto allow", func(c *Config) { c.AutoAllowAfter = -1 }, "auto_allow_after: -1 is negative"},
		{"short auto allow lifetime", func(c *Config) { c.AutoAllowLifetime = 0 }, "auto_allow_lifetime: 0s is below 1h0m0s"},
		{"auto allow off, lifetime unused", func(c *Config) { c.AutoAllowAfter, c.AutoAllowLifetime = 0, 0 }, ""},
		{"ipv4 prefix", func(c *Config) { c.IPv4Prefix = 0 }, "ipv4_prefix: 0 is outside 8..32"},
		{"ipv6 prefix", func(c *Config) { c.IPv6Prefix = 200 }, "ipv6_prefix: 200 is outside 32..128"},
		{"bad network", func(c *Config) { c.AllowNetworks = []string{"10.0.0.0/8", "nonsense"} }, `allow_networks[1]: "nonsense"`},
		{"bad recipient", func(c *Config) { c.AllowRecipients = []string{"postmaster"} }, `allow_recipients[0]: "postmaster" is not user@domain`},
		{"expire interval", func(c *Config) { c.ExpireInterval = time.Second }, "expire_interval: 1s is below 1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mod(&cfg)
			got := ""
			if err := cfg.Validate(); err != nil {
				got = err.Error()
			}
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
				t.Errorf("Validate = %q, want %q", got, tt.want)
			}
			// New refuses what Validate refuses.
			if _, err := New(cfg, &SQLiteStore{}, Options{}); (err == nil) != (got == "") {
				t.Errorf("New: %v", err)
			}
		})
	}
	if _, err := New(DefaultConfig(), nil, Options{}); err == nil {
		t.Error("New without a store succeeded")
	}
}

func TestFilterContract(t *testing.T) {
	e := setup(t, DefaultConfig())
	if e.f.Name() != "greylist" || e.f.Stage() != filters.StageRcpt {
		t.Errorf("Name %q Stage %v, want greylist at rcpt", e.f.Name(), e.f.Stage())
	}
	seen := map[string]bool{}
	for _, s := range e.f.Symbols() {
		seen[s] = true
	}
	for _, s := range []string{SymNew, SymEarly, SymPassed} {
		if !seen[s] {
			t.Errorf("Symbols() lacks %s", s)
		}
	}
}

func TestConfigTOML(t *testing.T) {
	const file = `
path = "grey.db"
delay = "2m"
retry_window = "48h"
pass_lifetime = "720h"
auto_allow_after = 3
auto_allow_lifetime = "240h"
ipv4_prefix = 22
ipv6_prefix = 56
allow_networks = ["192.0.2.0/24"]
allow_recipients = ["@lists.example.com"]
skip_dnswl = false
skip_spf_pass = false
expire_interval = "30m"
`
	cfg := DefaultConfig()
	md, err := toml.Decode(file, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Errorf("keys not decoded: %v", u)
	}
	want := Config{Path: "grey.db", Delay: 2 * time.Minute, RetryWindow: 48 * time.Hour, PassLifetime: 720 * time.Hour,
		AutoAllowAfter: 3, AutoAllowLifetime: 240 * time.Hour, IPv4Prefix: 22, IPv6Prefix: 56,
		AllowNetworks: []string{"192.0.2.0/24"}, AllowRecipients: []string{"@lists.example.com"},
		ExpireInterval: 30 * time.Minute}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("decoded %+v\nwant    %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}
