package ratelimit

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

// hits counts what the Limiter reports.
type hits struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *hits) Limited(limit string) {
	h.mu.Lock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[limit]++
	h.mu.Unlock()
}

func (h *hits) get(limit string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[limit]
}

// env is a Limiter over a memory store with a clock that only the test's
// goroutine moves.
type env struct {
	l   *Limiter
	now time.Time
	obs *hits
	fs  map[filters.Stage]filters.Filter
}

// noLimits is the default configuration with every limit off.
func noLimits() Config {
	cfg := DefaultConfig()
	for _, r := range []*Rate{&cfg.Connections, &cfg.MessagesPerNetwork, &cfg.MessagesPerSender,
		&cfg.RecipientsPerNetwork, &cfg.RecipientsPerSender, &cfg.BadRecipients, &cfg.MessagesPerUser, &cfg.RecipientsPerUser} {
		*r = Rate{}
	}
	return cfg
}

func setup(t testing.TB, cfg Config) *env {
	t.Helper()
	return setupStore(t, cfg, NewMemoryStore(cfg.MaxKeys))
}

// setupStore is setup over st.
func setupStore(t testing.TB, cfg Config, st Store) *env {
	t.Helper()
	e := &env{now: t0, obs: &hits{}, fs: map[filters.Stage]filters.Filter{}}
	var err error
	if e.l, err = New(cfg, st, Options{Now: func() time.Time { return e.now }, Observer: e.obs}); err != nil {
		t.Fatal(err)
	}
	for _, f := range e.l.Filters() {
		e.fs[f.Stage()] = f
	}
	return e
}

// client is who is checked.
type client struct {
	ip    string
	from  string
	auth  string
	spfOK bool
}

func (c client) input() *filters.Input {
	in := &filters.Input{
		Conn: &filters.Connection{ID: "c", RemoteIP: netip.MustParseAddr(c.ip), AuthUser: c.auth},
		Env:  &filters.Envelope{From: c.from},
		Rcpt: "user@example.com",
	}
	if c.spfOK {
		in.Prior = &filters.Result{Auth: []filters.AuthResult{{Method: "spf", Value: filters.AuthPass}}}
	}
	return in
}

// check runs the filter of stage for c and returns the symbol it found
// ("" for none), checking that a symbol comes with a tempfail demand.
func (e *env) check(t testing.TB, stage filters.Stage, c client) string {
	t.Helper()
	sym, _ := e.checkText(t, stage, c)
	return sym
}

// checkText is check that also returns the reply text of the demand
// (filters.Demand.Text).
func (e *env) checkText(t testing.TB, stage filters.Stage, c client) (sym, text string) {
	t.Helper()
	r, err := e.fs[stage].Check(context.Background(), c.input())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(r.Symbols) == 0 {
		if !r.IsZero() {
			t.Errorf("no symbol but %+v", r)
		}
		return "", ""
	}
	if len(r.Symbols) != 1 || len(r.Demands) != 1 || r.Demands[0].Action != policies.ActionTempfail || r.Symbols[0].Score != 0 {
		t.Errorf("result %+v, want one symbol of score 0 with a tempfail demand", r)
		return r.Symbols[0].Name, ""
	}
	if r.Fact(FactLimit) == "" {
		t.Errorf("no %s fact with %s", FactLimit, r.Symbols[0].Name)
	}
	return r.Symbols[0].Name, r.Demands[0].Text
}

func TestFlood(t *testing.T) {
	abuser := client{ip: "203.0.113.66", from: "flood@example.net"}
	neighbour := client{ip: "203.0.113.67", from: "flood@example.net"} // another host, same /24
	other := client{ip: "198.51.100.7", from: "calm@example.org"}
	abuser6 := client{ip: "2001:db8:1:2::66", from: "flood@example.net"}
	sibling6 := client{ip: "2001:db8:1:2::ffff", from: "flood@example.net"} // same /64
	tests := []struct {
		name    string
		cfg     func(*Config)
		stage   filters.Stage
		sym     string
		limit   string
		flood   client
		n       int // attempts of the flooder
		passes  int // of which pass
		bystand client
		shares  bool // the bystander shares the flooder's bucket
	}{
		{"connections", func(c *Config) { c.Connections = Rate{10, time.Minute} }, filters.StageConnect,
			SymConn, "connections", abuser, 50, 10, other, false},
		{"connections, the /32 is the client", func(c *Config) { c.Connections = Rate{10, time.Minute} }, filters.StageConnect,
			SymConn, "connections", abuser, 50, 10, neighbour, false},
		{"connections, a /24 when configured", func(c *Config) { c.Connections, c.IPv4Prefix = Rate{10, time.Minute}, 24 }, filters.StageConnect,
			SymConn, "connections", abuser, 50, 10, neighbour, true},
		{"connections, IPv6 /64", func(c *Config) { c.Connections = Rate{10, time.Minute} }, filters.StageConnect,
			SymConn, "connections", abuser6, 50, 10, sibling6, true},
		{"messages per network", func(c *Config) { c.MessagesPerNetwork = Rate{20, time.Hour} }, filters.StageMail,
			SymMsgNetwork, "messages_per_network", abuser, 30, 20, other, false},
		{"messages per sender", func(c *Config) { c.MessagesPerSender = Rate{5, time.Hour} }, filters.StageMail,
			SymMsgSender, "messages_per_sender", abuser, 30, 5, other, false},
		{"recipients per network", func(c *Config) { c.RecipientsPerNetwork = Rate{100, time.Hour} }, filters.StageRcpt,
			SymRcptNetwork, "recipients_per_network", abuser, 150, 100, other, false},
		{"recipients per sender", func(c *Config) { c.RecipientsPerSender = Rate{40, time.Hour} }, filters.StageRcpt,
			SymRcptSender, "recipients_per_sender", abuser, 150, 40, other, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := noLimits()
			tt.cfg(&cfg)
			e := setup(t, cfg)
			passed := 0
			for i := range tt.n {
				switch sym := e.check(t, tt.stage, tt.flood); sym {
				case "":
					passed++
				case tt.sym:
				default:
					t.Fatalf("attempt %d: %s, want %s", i, sym, tt.sym)
				}
			}
			if passed != tt.passes {
				t.Errorf("%d of %d flood attempts passed, want %d", passed, tt.n, tt.passes)
			}
			if got := e.obs.get(tt.limit); got != tt.n-tt.passes {
				t.Errorf("observer counted %d hits of %s, want %d", got, tt.limit, tt.n-tt.passes)
			}
			got := e.check(t, tt.stage, tt.bystand)
			if want := map[bool]string{true: tt.sym, false: ""}[tt.shares]; got != want {
				t.Errorf("bystander %+v: %q, want %q", tt.bystand, got, want)
			}
			// The bucket refills: a tenth of the period later, a tenth
			// of the limit passes again.
			rate := e.l.limits[e.l.limitByName(t, tt.limit)].rate
			e.now = e.now.Add(rate.Per / 10)
			passed = 0
			for range tt.n {
				if e.check(t, tt.stage, tt.flood) == "" {
					passed++
				}
			}
			if passed != rate.Limit/10 {
				t.Errorf("after %v, %d passed, want %d", rate.Per/10, passed, rate.Limit/10)
			}
		})
	}
}

// limitByName is the index of the limit with that TOML key.
func (l *Limiter) limitByName(t testing.TB, name string) int {
	for i, lim := range l.limits {
		if lim.name == name {
			return i
		}
	}
	t.Fatalf("no limit %q", name)
	return -1
}

func TestSenderKey(t *testing.T) {
	tests := []struct {
		name   string
		flood  client
		other  client
		shares bool
	}{
		{"a forged sender from elsewhere does not use up the victim's allowance",
			client{ip: "203.0.113.66", from: "ceo@bank.example"},
			client{ip: "198.51.100.7", from: "ceo@bank.example", spfOK: true}, false},
		{"two clients forging one sender count apart",
			client{ip: "203.0.113.66", from: "ceo@bank.example"},
			client{ip: "198.51.100.7", from: "ceo@bank.example"}, false},
		{"an SPF-authorised sender counts as one across its servers",
			client{ip: "198.51.100.7", from: "news@shop.example", spfOK: true},
			client{ip: "198.51.100.8", from: "News@Shop.Example", spfOK: true}, true},
		{"bounces count per network only",
			client{ip: "203.0.113.66", from: ""},
			client{ip: "198.51.100.7", from: ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := noLimits()
			cfg.MessagesPerSender = Rate{3, time.Hour}
			e := setup(t, cfg)
			for range 10 {
				e.check(t, filters.StageMail, tt.flood)
			}
			got := e.check(t, filters.StageMail, tt.other)
			if want := map[bool]string{true: SymMsgSender, false: ""}[tt.shares]; got != want {
				t.Errorf("second client: %q, want %q", got, want)
			}
		})
	}
}

func TestBadRecipients(t *testing.T) {
	ctx := context.Background()
	cfg := noLimits()
	cfg.BadRecipients = Rate{5, time.Hour}
	cfg.RecipientsPerNetwork = Rate{1000, time.Hour}
	e := setup(t, cfg)
	attacker := netip.MustParseAddr("203.0.113.66")
	for i := range 5 {
		over, err := e.l.RecipientRefused(ctx, attacker)
		if err != nil {
			t.Fatal(err)
		}
		want := i == 4
		if over != want {
			t.Errorf("refusal %d: over %v, want %v", i+1, over, want)
		}
		if sym := e.check(t, filters.StageRcpt, client{ip: attacker.String()}); (sym != "") != want {
			t.Errorf("after refusal %d: rcpt check %q", i+1, sym)
		}
	}
	if over, _ := e.l.RecipientRefused(ctx, attacker); !over {
		t.Error("a sixth refusal is not over")
	}
	if over, _ := e.l.RefusalsOver(ctx, attacker); !over {
		t.Error("RefusalsOver is false for the attacker")
	}
	if sym := e.check(t, filters.StageRcpt, client{ip: "203.0.113.66", from: "x@example.net"}); sym != SymBadRcpt {
		t.Errorf("a known recipient from the attacker: %q, want %s", sym, SymBadRcpt)
	}
	// The peeks took no recipient token: the check was refused whole.
	if over, _ := e.l.RefusalsOver(ctx, netip.MustParseAddr("198.51.100.7")); over {
		t.Error("another client is over")
	}
	if sym := e.check(t, filters.StageRcpt, client{ip: "198.51.100.7"}); sym != "" {
		t.Errorf("another client: %q", sym)
	}
	// A refusal allowance refills: 12 minutes give one back.
	e.now = e.now.Add(12 * time.Minute)
	if over, _ := e.l.RefusalsOver(ctx, attacker); over {
		t.Error("still over after the refill")
	}
	if got := e.obs.get("bad_recipients"); got != 3 {
		t.Errorf("observer counted %d bad_recipients hits, want 3 (two rcpt checks and RefusalsOver)", got)
	}
	// Exempt clients and an unset limit count nothing.
	for _, ip := range []string{"127.0.0.1", "::1"} {
		for range 10 {
			if over, err := e.l.RecipientRefused(ctx, netip.MustParseAddr(ip)); over || err != nil {
				t.Fatalf("exempt %s: over %v, %v", ip, over, err)
			}
		}
	}
	off := setup(t, noLimits())
	for range 10 {
		if over, _ := off.l.RecipientRefused(ctx, attacker); over {
			t.Fatal("over with bad_recipients off")
		}
	}
}

func TestExemptAndOff(t *testing.T) {
	cfg := noLimits()
	cfg.Connections = Rate{1, time.Hour}
	cfg.ExemptNetworks = []string{"127.0.0.0/8", "192.0.2.0/24"}
	e := setup(t, cfg)
	for _, ip := range []string{"127.0.0.1", "::ffff:127.0.0.2", "192.0.2.200"} {
		for range 5 {
			if sym := e.check(t, filters.StageConnect, client{ip: ip}); sym != "" {
				t.Fatalf("exempt %s: %s", ip, sym)
			}
		}
	}
	// The mail and rcpt limits are off: nothing is ever counted.
	for range 100 {
		if e.check(t, filters.StageMail, client{ip: "203.0.113.1", from: "a@b"}) != "" ||
			e.check(t, filters.StageRcpt, client{ip: "203.0.113.1", from: "a@b"}) != "" {
			t.Fatal("a limit that is off held a client back")
		}
	}
}

func TestReason(t *testing.T) {
	cfg := noLimits()
	cfg.MessagesPerSender = Rate{1, time.Hour}
	e := setup(t, cfg)
	c := client{ip: "203.0.113.66", from: "Flood\x01@Example.net"}
	e.check(t, filters.StageMail, c)
	r, _ := e.fs[filters.StageMail].Check(context.Background(), c.input())
	want := `sender "flood\x01@example.net" from 203.0.113.66/32 is over messages_per_sender (1 per 1h0m0s)`
	if r.Demands[0].Reason != want || r.Symbols[0].Reason != want {
		t.Errorf("reason %q, want %q", r.Demands[0].Reason, want)
	}
	if r.Fact(FactLimit) != "messages_per_sender" {
		t.Errorf("fact %q", r.Fact(FactLimit))
	}
}

func TestCheckErrors(t *testing.T) {
	e := setup(t, DefaultConfig())
	for _, in := range []*filters.Input{nil, {}, {Conn: &filters.Connection{}}} {
		if _, err := e.fs[filters.StageConnect].Check(context.Background(), in); err == nil {
			t.Errorf("Check(%+v) succeeded", in)
		}
	}
}

// failing is a store that is down.
type failing struct{}

func (failing) Take(context.Context, time.Time, []Request) (int, error) {
	return 0, context.DeadlineExceeded
}
func (failing) Close() error { return nil }

func TestFailingStore(t *testing.T) {
	l, err := New(DefaultConfig(), failing{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range l.Filters() {
		if _, err := f.Check(context.Background(), client{ip: "203.0.113.1", from: "a@b"}.input()); err == nil {
			t.Errorf("%s over a failing store: no error", f.Name())
		}
	}
	if _, err := l.RecipientRefused(context.Background(), netip.MustParseAddr("203.0.113.1")); err == nil {
		t.Error("RecipientRefused over a failing store: no error")
	}
	if _, err := l.RefusalsOver(context.Background(), netip.MustParseAddr("203.0.113.1")); err == nil {
		t.Error("RefusalsOver over a failing store: no error")
	}
}

func TestFilters(t *testing.T) {
	e := setup(t, DefaultConfig())
	fs := e.l.Filters()
	want := []struct {
		name  string
		stage filters.Stage
		syms  string
		after string
	}{
		{NameConnect, filters.StageConnect, SymConn, ""},
		{NameMail, filters.StageMail, SymMsgNetwork + " " + SymMsgSender + " " + SymMsgUser, "spf"},
		{NameRcpt, filters.StageRcpt, SymBadRcpt + " " + SymRcptNetwork + " " + SymRcptSender + " " + SymRcptUser, ""},
	}
	if len(fs) != len(want) {
		t.Fatalf("%d filters, want %d", len(fs), len(want))
	}
	for i, f := range fs {
		w := want[i]
		syms := strings.Join(f.(filters.SymbolDeclarer).Symbols(), " ")
		after := strings.Join(f.(filters.Sequenced).After(), " ")
		if f.Name() != w.name || f.Stage() != w.stage || syms != w.syms || after != w.after {
			t.Errorf("filter %d: %s at %v with %s after %q, want %s at %v with %s after %q",
				i, f.Name(), f.Stage(), syms, after, w.name, w.stage, w.syms, w.after)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"all off", func(c *Config) { *c = noLimits() }, ""},
		{"ipv4 prefix", func(c *Config) { c.IPv4Prefix = 40 }, "ipv4_prefix: 40 is outside 8..32"},
		{"ipv6 prefix", func(c *Config) { c.IPv6Prefix = 8 }, "ipv6_prefix: 8 is outside 32..128"},
		{"exempt network", func(c *Config) { c.ExemptNetworks = []string{"10.0.0.1/8"} }, "exempt_networks[0]"},
		{"max keys", func(c *Config) { c.MaxKeys = 10 }, "max_keys: 10 is below 1024"},
		{"negative limit", func(c *Config) { c.Connections.Limit = -1 }, "connections.limit: -1 is negative"},
		{"no period", func(c *Config) { c.BadRecipients.Per = 0 }, "bad_recipients.per: 0s is below 1s"},
		{"a limit off needs no period", func(c *Config) { c.BadRecipients = Rate{} }, ""},
		{"user messages period", func(c *Config) { c.MessagesPerUser.Per = time.Millisecond }, "messages_per_user.per: 1ms is below 1s"},
		{"negative user recipients", func(c *Config) { c.RecipientsPerUser.Limit = -5 }, "recipients_per_user.limit: -5 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mod(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
			if _, nerr := New(cfg, failing{}, Options{}); (nerr == nil) != (err == nil) {
				t.Errorf("New error %v with Validate error %v", nerr, err)
			}
		})
	}
	if _, err := New(DefaultConfig(), nil, Options{}); err == nil {
		t.Error("New without a store succeeded")
	}
}

func TestConfigTOML(t *testing.T) {
	const file = `
ipv4_prefix = 24
ipv6_prefix = 48
exempt_networks = ["127.0.0.0/8", "192.0.2.0/24"]
max_keys = 50000
connections = { limit = 30, per = "1m" }
messages_per_network = { limit = 100, per = "1h" }
messages_per_sender = { limit = 0 }
recipients_per_network = { limit = 500, per = "1h" }
recipients_per_sender = { limit = 200, per = "30m" }
bad_recipients = { limit = 10, per = "24h" }
messages_per_user = { limit = 20 }
recipients_per_user = { limit = 300, per = "30m" }
`
	cfg := DefaultConfig()
	md, err := toml.Decode(file, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Errorf("keys not decoded: %v", u)
	}
	want := Config{IPv4Prefix: 24, IPv6Prefix: 48, ExemptNetworks: []string{"127.0.0.0/8", "192.0.2.0/24"}, MaxKeys: 50000,
		Connections: Rate{30, time.Minute}, MessagesPerNetwork: Rate{100, time.Hour},
		// An inline table sets the keys it names: per keeps its default.
		MessagesPerSender:    Rate{0, time.Hour},
		RecipientsPerNetwork: Rate{500, time.Hour}, RecipientsPerSender: Rate{200, 30 * time.Minute},
		BadRecipients:   Rate{10, 24 * time.Hour},
		MessagesPerUser: Rate{20, time.Hour}, RecipientsPerUser: Rate{300, 30 * time.Minute}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("decoded %+v\nwant    %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}
