package dnsbl

import (
	"context"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/dnsxl"
	"github.com/moatmail/moat/filters/dnsxl/rbldnstest"
	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/resolver/dnstest"
	"github.com/moatmail/moat/policies"
)

// The lists rbldnsd serves to the tests. Every list lists its RFC 5782
// §5 test entry 127.0.0.2, except all.test, which lists everything
// (127.0.0.1 too), as a list that refuses a querier does.
var datasets = []rbldnstest.Dataset{
	{Zone: "zen.test", Type: "ip4set", Data: `
127.0.0.2
192.0.2.10 :127.0.0.4:
192.0.2.11 :127.0.0.10:
192.0.2.12 :127.0.0.2:
`},
	{Zone: "zen.test", Type: "ip6trie", Data: "2001:db8::10 :127.0.0.4:\n"},
	{Zone: "bl.test", Type: "ip4set", Data: "127.0.0.2\n192.0.2.10\n192.0.2.20\n192.0.2.21\n"},
	{Zone: "wl.test", Type: "ip4set", Data: `
127.0.0.2 :127.0.10.2:
192.0.2.20 :127.0.10.2:
192.0.2.21 :127.0.10.0:
`},
	{Zone: "all.test", Type: "ip4set", Data: "0.0.0.0/1\n128.0.0.0/1\n"},
	{Zone: "refuse.test", Type: "ip4set", Data: "127.0.0.2\n192.0.2.10 :127.255.255.254:\n"},
}

// routed sends lookups of names under slow.test to one resolver (a
// dnstest server that hangs them) and the others to another (rbldnsd):
// moat has one resolver, the test has two servers. It counts lookups.
type routed struct {
	lists, slow resolver.Resolver
	n           atomic.Int64
}

func (r *routed) pick(name string) resolver.Resolver {
	r.n.Add(1)
	if strings.HasSuffix(strings.TrimSuffix(name, "."), ".slow.test") {
		return r.slow
	}
	return r.lists
}

func (r *routed) LookupA(ctx context.Context, host string) ([]netip.Addr, error) {
	return resolver.LookupIPv4(ctx, r.pick(host), host)
}
func (r *routed) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return r.pick(host).LookupIP(ctx, host)
}
func (r *routed) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return r.pick(name).LookupTXT(ctx, name)
}
func (r *routed) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	return r.pick(name).LookupMX(ctx, name)
}
func (r *routed) LookupAddr(ctx context.Context, a netip.Addr) ([]string, error) {
	return r.lists.LookupAddr(ctx, a)
}

// setup starts rbldnsd with the datasets and a dnstest server whose
// slow.test hangs, and returns a resolver routing between them.
func setup(t *testing.T) *routed {
	t.Helper()
	lists := rbldnstest.Start(t, datasets...)
	slow := dnstest.Start(t, map[string]string{"slow.test.": "2.0.0.127 A 127.0.0.2\n"})
	slow.Hang("10.2.0.192.slow.test")
	return &routed{lists: rbldnstest.Resolver(t, lists.Addr(), resolver.DefaultCacheSize),
		slow: rbldnstest.Resolver(t, slow.Addr(), resolver.DefaultCacheSize)}
}

// list is a list table.
func list(zone string, weight float64, codes string) dnsxl.ListConfig {
	return dnsxl.ListConfig{Zone: zone, Weight: weight, Codes: codes}
}

// newFilter returns a filter over r with the default configuration but
// for lists.
func newFilter(t *testing.T, r resolver.Resolver, obs dnsxl.Observer, lists ...dnsxl.ListConfig) *Filter {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Lists = lists
	f, err := New(cfg, r, obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// check runs the filter over a connection from ip, under a deadline of
// a second as the pipeline's (which ends the wait for a hanging list).
func check(f *Filter, ip string) (filters.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	in := &filters.Input{Conn: &filters.Connection{ID: "c1", RemoteIP: netip.MustParseAddr(ip)}, Rcpt: "a@example.com"}
	return f.Check(ctx, in)
}

// score returns the score of symbol name in r, and whether it is there.
func score(r filters.Result, name string) (float64, bool) {
	for _, s := range r.Symbols {
		if s.Name == name {
			return s.Score, true
		}
	}
	return 0, false
}

func TestCheck(t *testing.T) {
	r := setup(t)
	zen := list("zen.test", 3, "127.0.0.[2..11]")
	tests := []struct {
		name      string
		lists     []dnsxl.ListConfig
		threshold float64
		ip        string
		block     float64 // DNSBL_LISTED's score, 0 for none
		allow     float64 // DNSWL_LISTED's score, 0 for none
		reject    bool
		facts     []string
		reason    string // part of DNSBL_LISTED's reason
	}{
		{name: "IPv4 listed", lists: []dnsxl.ListConfig{list("bl.test", 1, "")}, threshold: 0,
			ip: "192.0.2.10", block: 1, facts: []string{"bl.test"}, reason: "listed by bl.test 127.0.0.2"},
		{name: "IPv4 not listed", lists: []dnsxl.ListConfig{list("bl.test", 1, "")},
			ip: "192.0.2.99"},
		{name: "IPv4-mapped client", lists: []dnsxl.ListConfig{list("bl.test", 1, "")}, threshold: 0,
			ip: "::ffff:192.0.2.10", block: 1, facts: []string{"bl.test"}},
		{name: "IPv6 listed, over the threshold", lists: []dnsxl.ListConfig{zen}, threshold: 1,
			ip: "2001:db8::10", block: 3, reject: true, facts: []string{"zen.test"}, reason: "zen.test 127.0.0.4"},
		{name: "IPv6 not listed", lists: []dnsxl.ListConfig{zen}, ip: "2001:db8::11"},
		{name: "code in the filter", lists: []dnsxl.ListConfig{list("zen.test", 3, "127.0.0.[2..9]")}, threshold: 1,
			ip: "192.0.2.10", block: 3, reject: true, facts: []string{"zen.test"}},
		{name: "code the filter excludes", lists: []dnsxl.ListConfig{list("zen.test", 3, "127.0.0.[2..9]")}, threshold: 1,
			ip: "192.0.2.11"},
		{name: "code of the other table of the zone", threshold: 1, ip: "192.0.2.11",
			lists: []dnsxl.ListConfig{list("zen.test", 3, "127.0.0.[2..9]"), list("zen.test", 0.5, "127.0.0.[10;11]")},
			block: 0.5, facts: []string{"zen.test"}, reason: "zen.test 127.0.0.10"},
		{name: "weights reach the threshold", threshold: 1, ip: "192.0.2.10",
			lists: []dnsxl.ListConfig{list("zen.test", 0.5, ""), list("bl.test", 0.5, "")},
			block: 1, reject: true, facts: []string{"zen.test", "bl.test"}, reason: "zen.test 127.0.0.4, bl.test 127.0.0.2"},
		{name: "weights stay below the threshold", threshold: 1, ip: "192.0.2.20",
			lists: []dnsxl.ListConfig{list("zen.test", 0.5, ""), list("bl.test", 0.5, "")},
			block: 0.5, facts: []string{"bl.test"}},
		{name: "allow list offsets a block list", threshold: 1, ip: "192.0.2.20",
			lists: []dnsxl.ListConfig{list("bl.test", 2, ""), list("wl.test", -2, "127.0.[0..255].[1..3]")},
			block: 2, allow: -2, facts: []string{"bl.test", "wl.test"}},
		{name: "allow list code excluded", threshold: 1, ip: "192.0.2.21",
			lists: []dnsxl.ListConfig{list("bl.test", 2, ""), list("wl.test", -2, "127.0.[0..255].[1..3]")},
			block: 2, reject: true, facts: []string{"bl.test"}},
		{name: "a list that answers everything is ignored", threshold: 1, ip: "192.0.2.99",
			lists: []dnsxl.ListConfig{list("all.test", 5, ""), list("bl.test", 1, "")}},
		{name: "the other lists still count", threshold: 1, ip: "192.0.2.10",
			lists: []dnsxl.ListConfig{list("all.test", 5, ""), list("bl.test", 1, "")},
			block: 1, reject: true, facts: []string{"bl.test"}},
		{name: "a refusal is no listing", threshold: 1, ip: "192.0.2.10",
			lists: []dnsxl.ListConfig{list("refuse.test", 5, "")}},
		{name: "a list that times out counts for nothing", threshold: 2, ip: "192.0.2.10",
			lists: []dnsxl.ListConfig{list("slow.test", 5, ""), list("bl.test", 1, "")},
			block: 1, facts: []string{"bl.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Lists, cfg.Threshold = tt.lists, tt.threshold
			f, err := New(cfg, r, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := check(f, tt.ip)
			if err != nil {
				t.Fatal(err)
			}
			b, hasB := score(res, SymListed)
			a, hasA := score(res, SymAllowed)
			if hasB != (tt.block != 0) || math.Abs(b-tt.block) > 1e-9 || hasA != (tt.allow != 0) || a != tt.allow {
				t.Errorf("symbols %+v, want %s %v and %s %v", res.Symbols, SymListed, tt.block, SymAllowed, tt.allow)
			}
			if got := res.FactValues(FactList); !slices.Equal(got, tt.facts) {
				t.Errorf("facts %v, want %v", got, tt.facts)
			}
			rejected := len(res.Demands) == 1 && res.Demands[0].Action == policies.ActionReject
			if rejected != tt.reject || len(res.Demands) > 1 {
				t.Errorf("demands %+v, want reject=%v", res.Demands, tt.reject)
			}
			if tt.reason != "" && (len(res.Symbols) == 0 || !strings.Contains(res.Symbols[0].Reason, tt.reason)) {
				t.Errorf("symbols %+v, want a reason saying %q", res.Symbols, tt.reason)
			}
		})
	}
}

func TestEveryListFailed(t *testing.T) {
	r := setup(t)
	f := newFilter(t, r, nil, list("slow.test", 5, ""))
	res, err := check(f, "192.0.2.10")
	if err == nil || !resolver.IsTemporary(err) || !res.IsZero() {
		t.Fatalf("got %+v, %v; want a temporary error and nothing else", res, err)
	}
	if !strings.Contains(err.Error(), "slow.test") {
		t.Errorf("error %q does not name the list", err)
	}
	// Lists that are ignored are not failures: nothing is found.
	f = newFilter(t, r, nil, list("all.test", 5, ""))
	if res, err := check(f, "192.0.2.10"); err != nil || !res.IsZero() {
		t.Errorf("got %+v, %v; want nothing", res, err)
	}
}

func TestListSymbols(t *testing.T) {
	r := setup(t)
	f := newFilter(t, r, nil,
		dnsxl.ListConfig{Zone: "zen.test", Weight: 3, Codes: "127.0.0.[2..9]", Symbol: "RBL_ZEN_SBL"},
		dnsxl.ListConfig{Zone: "zen.test", Weight: 1, Codes: "127.0.0.[10;11]", Symbol: "RBL_ZEN_PBL"},
		dnsxl.ListConfig{Zone: "wl.test", Weight: -1, Symbol: "RCVD_IN_WL"})
	if got, want := f.Symbols(), []string{SymListed, SymAllowed, "RBL_ZEN_SBL", "RBL_ZEN_PBL", "RCVD_IN_WL"}; !slices.Equal(got, want) {
		t.Errorf("Symbols %v, want %v", got, want)
	}
	res, err := check(f, "192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.Symbols {
		names = append(names, s.Name)
		if s.Name == "RBL_ZEN_SBL" && (s.Score != 0 || s.Reason != "zen.test 127.0.0.4") {
			t.Errorf("list symbol %+v, want score 0 and the codes", s)
		}
	}
	if want := []string{SymListed, "RBL_ZEN_SBL"}; !slices.Equal(names, want) {
		t.Errorf("symbols %v, want %v", names, want)
	}
}

func TestSkipped(t *testing.T) {
	r := setup(t)
	cfg := DefaultConfig()
	cfg.Lists = []dnsxl.ListConfig{list("bl.test", 1, "")}
	f, err := New(cfg, r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "fd00::1",
		"fe80::1", "169.254.1.1", "100.64.1.1", "0.0.0.0", "::", "::ffff:10.0.0.1"} {
		if res, err := check(f, ip); err != nil || !res.IsZero() {
			t.Errorf("%s: got %+v, %v; want nothing", ip, res, err)
		}
	}
	ctx := context.Background()
	listed := netip.MustParseAddr("192.0.2.10")
	for _, in := range []*filters.Input{
		{Conn: &filters.Connection{RemoteIP: listed, AuthUser: "alice"}},
		{Conn: &filters.Connection{RemoteIP: listed}, Prior: &filters.Result{Facts: []filters.Fact{{Name: FactList, Value: "bl.test"}}}},
	} {
		if res, err := f.Check(ctx, in); err != nil || !res.IsZero() {
			t.Errorf("%+v: got %+v, %v; want nothing", in, res, err)
		}
	}
	if n := r.n.Load(); n != 0 {
		t.Errorf("%d lookups for skipped clients, want 0", n)
	}
	// A skip list of the operator's replaces the default one.
	cfg.SkipNetworks = []string{"192.0.2.0/28"}
	if f, err = New(cfg, r, nil, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := check(f, "192.0.2.10"); err != nil || !res.IsZero() {
		t.Errorf("got %+v, %v; want nothing", res, err)
	}
	if res, err := check(f, "192.0.2.20"); err != nil || res.IsZero() {
		t.Errorf("got %+v, %v; want a listing", res, err)
	}
}

// counter is an Observer that counts lookups by outcome.
type counter struct{ n [8]atomic.Int64 }

func (c *counter) ObserveLookup(_ string, st dnsxl.Status) { c.n[st].Add(1) }
func (c *counter) ObserveUsable(string, bool)              {}

func TestObserver(t *testing.T) {
	r := setup(t)
	obs := &counter{}
	f := newFilter(t, r, obs, list("bl.test", 1, ""), list("all.test", 1, ""), list("slow.test", 1, ""))
	if _, err := check(f, "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	for st, want := range map[dnsxl.Status]int64{dnsxl.Listed: 1, dnsxl.Unusable: 1, dnsxl.Failed: 1, dnsxl.NotListed: 0} {
		if got := obs.n[st].Load(); got != want {
			t.Errorf("%v: %d lookups, want %d", st, got, want)
		}
	}
}

func TestConfigAndContract(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"postscreen example", func(c *Config) {
			c.Lists = []dnsxl.ListConfig{list("zen.spamhaus.org", 3, "127.0.0.[2..11]"), list("bl.example", 1, "127.0.0.4"),
				list("list.dnswl.org", -2, "127.0.[0..255].[1..3]")}
		}, ""},
		{"threshold 0", func(c *Config) { c.Threshold = 0 }, ""},
		{"negative threshold", func(c *Config) { c.Threshold = -1 }, "threshold"},
		{"NaN threshold", func(c *Config) { c.Threshold = math.NaN() }, "threshold"},
		{"probe_interval 0", func(c *Config) { c.ProbeInterval = 0 }, "probe_interval"},
		{"probe_interval in nanoseconds", func(c *Config) { c.ProbeInterval = 300 }, "probe_interval: 300ns is below 1s"},
		{"bad network", func(c *Config) { c.SkipNetworks = []string{"10.0.0.0/8", "10.0.0.1"} }, "skip_networks[1]"},
		{"bad list", func(c *Config) { c.Lists = []dnsxl.ListConfig{list("bl.example", 1, "127.0.0.[2..]")} }, "list[0].codes"},
		{"list symbol taken by the filter", func(c *Config) {
			c.Lists = []dnsxl.ListConfig{{Zone: "bl.example", Weight: 1, Symbol: SymAllowed}}
		}, "list[0].symbol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			verr := cfg.Validate()
			_, err := New(cfg, &routed{}, nil, nil)
			for _, e := range []error{verr, err} {
				if (tt.want == "") != (e == nil) || (e != nil && !strings.Contains(e.Error(), tt.want)) {
					t.Errorf("err %v, want %q", e, tt.want)
				}
			}
		})
	}
	if _, err := New(DefaultConfig(), nil, nil, nil); err == nil {
		t.Error("nil resolver accepted")
	}
	f, err := New(DefaultConfig(), &routed{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "dnsbl" || f.Stage() != filters.StageRcpt {
		t.Errorf("Name %q, Stage %v", f.Name(), f.Stage())
	}
	for _, in := range []*filters.Input{nil, {}, {Conn: &filters.Connection{}}} {
		if _, err := f.Check(context.Background(), in); err == nil {
			t.Errorf("no error for input %+v", in)
		}
	}
	// Without lists the filter asks nothing.
	if res, err := f.Check(context.Background(), &filters.Input{Conn: &filters.Connection{RemoteIP: netip.MustParseAddr("192.0.2.10")}}); err != nil || !res.IsZero() {
		t.Errorf("no lists: %+v, %v", res, err)
	}
}

func TestTOML(t *testing.T) {
	const text = `
threshold = 2
probe_interval = "10m"
skip_networks = ["10.0.0.0/8"]

[[list]]
zone = "zen.spamhaus.org"
weight = 3
codes = "127.0.0.[2..11]"
symbol = "RBL_SPAMHAUS"

[[list]]
zone = "list.dnswl.org"
weight = -2
codes = "127.0.[0..255].[1..3]"
`
	cfg := DefaultConfig()
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Errorf("undecoded keys %v", u)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []dnsxl.ListConfig{
		{Zone: "zen.spamhaus.org", Weight: 3, Codes: "127.0.0.[2..11]", Symbol: "RBL_SPAMHAUS"},
		{Zone: "list.dnswl.org", Weight: -2, Codes: "127.0.[0..255].[1..3]"},
	}
	if cfg.Threshold != 2 || cfg.ProbeInterval != 10*time.Minute || !slices.Equal(cfg.SkipNetworks, []string{"10.0.0.0/8"}) ||
		!slices.Equal(cfg.Lists, want) {
		t.Errorf("decoded %+v", cfg)
	}
}
