package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// fixtures is the zone folder shared by the whole module.
const fixtures = "../../testdata/dns"

// outcome is how a lookup ended, for table tests.
type outcome int

const (
	ok outcome = iota
	nxdomain
	nodata
	invalid
	servfail
	timeout
	refused
)

func (o outcome) String() string {
	return [...]string{"ok", "nxdomain", "nodata", "invalid", "servfail", "timeout", "refused"}[o]
}

// classify maps a lookup error to an outcome and checks that the two
// predicates agree with it.
func classify(t *testing.T, err error) outcome {
	t.Helper()
	if err == nil {
		return ok
	}
	nf, tmp := IsNotFound(err), IsTemporary(err)
	if nf == tmp {
		t.Errorf("%v: IsNotFound=%v IsTemporary=%v, want exactly one", err, nf, tmp)
	}
	var de *net.DNSError
	if !errors.As(err, &de) {
		t.Errorf("%v (%T) is not a *net.DNSError", err, err)
	}
	switch {
	case errors.Is(err, ErrNXDomain):
		return nxdomain
	case errors.Is(err, ErrNoData):
		return nodata
	case errors.Is(err, ErrInvalidName):
		return invalid
	case errors.Is(err, ErrServFail):
		return servfail
	case errors.Is(err, ErrRcode):
		return refused
	case de != nil && de.IsTimeout:
		return timeout
	}
	t.Errorf("unclassified error %v", err)
	return -1
}

// newTestResolver starts a server with the fixture zones and returns a
// resolver asking it, with a short timeout.
func newTestResolver(t *testing.T) (*DNS, *dnstest.Server) {
	t.Helper()
	srv := dnstest.Start(t, dnstest.LoadZoneDir(t, fixtures))
	cfg := DefaultConfig()
	cfg.Upstream = srv.Addr()
	cfg.Timeout = 200 * time.Millisecond
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d, srv
}

func TestLookupTXT(t *testing.T) {
	d, srv := newTestResolver(t)
	srv.ServFail("broken.example.test")
	tests := []struct {
		name string
		want []string
		out  outcome
	}{
		{"example.test", []string{"v=spf1 ip4:192.0.2.0/24 -all"}, ok},
		// Each record's strings are joined, records stay apart.
		{"multi.example.test.", []string{"part one, part two", "second record"}, ok},
		// Presentation escapes are undone: the bytes on the wire.
		{"esc.example.test", []string{"quote\" back\\ semi; tab\t"}, ok},
		{"www.example.test", nil, nodata},
		{"missing.example.test", nil, nxdomain},
		{"broken.example.test", nil, servfail},
		{"example.org", nil, refused},
		{"", nil, invalid},
		{"b\u00fccher.example.test", nil, invalid},
		{strings.Repeat("a", 64) + ".example.test", nil, invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.LookupTXT(context.Background(), tt.name)
			if out := classify(t, err); out != tt.out {
				t.Fatalf("outcome %v (%v), want %v", out, err, tt.out)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLookupIP(t *testing.T) {
	d, srv := newTestResolver(t)
	srv.ServFail("broken.example.test")
	tests := []struct {
		host string
		want []string
		out  outcome
	}{
		{"www.example.test", []string{"192.0.2.80", "2001:db8::80"}, ok},
		{"WWW.EXAMPLE.TEST.", []string{"192.0.2.80", "2001:db8::80"}, ok},
		{"v6only.example.test", []string{"2001:db8::6"}, ok},
		{"mail.example.test", []string{"192.0.2.125", "192.0.2.25"}, ok}, // sorted as strings
		{"chain.example.test", []string{"192.0.2.80", "2001:db8::80"}, ok},
		{"x.y.wild.example.test", []string{"192.0.2.99"}, ok},
		{"b.deep.example.test", nil, nodata},
		{"nothing.example.test", nil, nxdomain},
		{"dangling.example.test", nil, nxdomain},
		{"broken.example.test", nil, servfail},
		// No literal shortcut: an address is asked as a name.
		{"192.0.2.80", nil, refused},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, err := d.LookupIP(context.Background(), tt.host)
			if out := classify(t, err); out != tt.out {
				t.Fatalf("outcome %v (%v), want %v", out, err, tt.out)
			}
			if gs := sortedStrings(got); !slices.Equal(gs, tt.want) {
				t.Errorf("got %v, want %v", gs, tt.want)
			}
		})
	}
}

func TestLookupIPPartialFailure(t *testing.T) {
	// A answers, AAAA times out: the whole lookup is temporary, never a
	// partial list a check could call definitive.
	srv := dnstest.Start(t, map[string]string{"p.test": "h A 192.0.2.1\n"})
	cfg := DefaultConfig()
	cfg.Upstream = srv.Addr()
	cfg.Timeout = 100 * time.Millisecond
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.LookupIP(context.Background(), "h.p.test"); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	// Keep the A answer cached, forget the AAAA one, then make the
	// server mute.
	a, found := d.cache.get(key{"h.p.test.", dns.TypeA}, time.Now())
	if !found {
		t.Fatal("A answer not cached")
	}
	d.cache = newCache(10)
	d.cache.put(key{"h.p.test.", dns.TypeA}, a, time.Now().Add(time.Hour))
	srv.Hang("h.p.test")
	got, err := d.LookupIP(context.Background(), "h.p.test")
	if !IsTemporary(err) || got != nil {
		t.Errorf("got %v, %v; want a temporary error", got, err)
	}
}

// sortedStrings returns the addresses as sorted strings.
func sortedStrings(addrs []netip.Addr) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

// onlyResolver hides every method but those of Resolver, as a resolver of
// another package (a test stub) would.
type onlyResolver struct{ Resolver }

func TestLookupA(t *testing.T) {
	d, srv := newTestResolver(t)
	srv.ServFail("broken.example.test")
	tests := []struct {
		host string
		want []string
		out  outcome
	}{
		{"www.example.test", []string{"192.0.2.80"}, ok},
		{"mail.example.test", []string{"192.0.2.125", "192.0.2.25"}, ok},
		{"chain.example.test", []string{"192.0.2.80"}, ok},
		{"x.y.wild.example.test", []string{"192.0.2.99"}, ok},
		{"v6only.example.test", nil, nodata},
		{"nothing.example.test", nil, nxdomain},
		{"broken.example.test", nil, servfail},
		{"192.0.2.80", nil, refused},
	}
	for _, tt := range tests {
		for _, via := range []struct {
			name string
			r    Resolver
		}{{"LookupA", d}, {"LookupIP", onlyResolver{d}}} {
			t.Run(tt.host+" via "+via.name, func(t *testing.T) {
				got, err := LookupIPv4(context.Background(), via.r, tt.host)
				if out := classify(t, err); out != tt.out {
					t.Fatalf("outcome %v (%v), want %v", out, err, tt.out)
				}
				if gs := sortedStrings(got); !slices.Equal(gs, tt.want) {
					t.Errorf("got %v, want %v", gs, tt.want)
				}
			})
		}
	}
	// LookupA asks for A records only: a DNS list sees one query per
	// lookup, and a name without AAAA records costs nothing more.
	got, err := d.LookupA(context.Background(), "short.example.test")
	if err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.30")}) {
		t.Fatalf("got %v, %v; want 192.0.2.30", got, err)
	}
	if n4, n6 := srv.QueriesFor("short.example.test", dns.TypeA), srv.QueriesFor("short.example.test", dns.TypeAAAA); n4 != 1 || n6 != 0 {
		t.Errorf("%d A and %d AAAA queries; want 1 and 0", n4, n6)
	}
}

func TestLookupMX(t *testing.T) {
	d, _ := newTestResolver(t)
	got, err := d.LookupMX(context.Background(), "Example.Test")
	if err != nil {
		t.Fatal(err)
	}
	var gs []string
	for _, mx := range got {
		gs = append(gs, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
	}
	want := []string{"5 mx0.example.test.", "10 mx1.example.test.", "20 mx2.example.test."}
	if !slices.Equal(gs, want) {
		t.Errorf("got %v, want %v", gs, want)
	}
	if _, err := d.LookupMX(context.Background(), "www.example.test"); !errors.Is(err, ErrNoData) {
		t.Errorf("no MX: err = %v, want ErrNoData", err)
	}
}

func TestLookupAddr(t *testing.T) {
	d, _ := newTestResolver(t)
	tests := []struct {
		addr string
		want []string
		out  outcome
	}{
		{"192.0.2.25", []string{"mail.example.test."}, ok},
		{"::ffff:192.0.2.25", []string{"mail.example.test."}, ok},
		{"2001:db8::25", []string{"v6mail.example.test."}, ok},
		{"192.0.2.29", []string{"multi29.example.test.", "other.example.test."}, ok},
		{"192.0.2.30", nil, nodata},
		{"192.0.2.31", nil, nxdomain},
		{"2001:db8::99", nil, nxdomain},
		{"198.51.100.1", nil, refused},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := d.LookupAddr(context.Background(), netip.MustParseAddr(tt.addr))
			if out := classify(t, err); out != tt.out {
				t.Fatalf("outcome %v (%v), want %v", out, err, tt.out)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := d.LookupAddr(context.Background(), netip.Addr{}); !IsNotFound(err) || !errors.Is(err, ErrInvalidName) {
		t.Errorf("zero Addr: %v", err)
	}
}

func TestTimeoutIsRetriedOnceAndTemporary(t *testing.T) {
	d, srv := newTestResolver(t)
	srv.Hang("www.example.test")
	_, err := d.LookupTXT(context.Background(), "www.example.test")
	if out := classify(t, err); out != timeout {
		t.Fatalf("outcome %v (%v), want timeout", out, err)
	}
	if n := srv.QueriesFor("www.example.test", dns.TypeTXT); n != 2 {
		t.Errorf("%d queries, want 2 (one retry)", n)
	}
	// A temporary failure is not cached.
	srv.Heal("www.example.test")
	if _, err := d.LookupTXT(context.Background(), "www.example.test"); !errors.Is(err, ErrNoData) {
		t.Errorf("after heal: %v, want ErrNoData", err)
	}
}

func TestUpstreamDown(t *testing.T) {
	// A UDP port with nothing behind it: the kernel answers ICMP port
	// unreachable (connection refused) or nothing (timeout); temporary
	// either way.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	cfg := DefaultConfig()
	cfg.Upstream = addr
	cfg.Timeout = 100 * time.Millisecond
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.LookupMX(context.Background(), "example.test")
	if !IsTemporary(err) || IsNotFound(err) {
		t.Errorf("err = %v, want temporary", err)
	}
}

func TestContext(t *testing.T) {
	d, srv := newTestResolver(t)
	srv.Delay("example.test", 150*time.Millisecond) // under the 200 ms timeout

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.LookupTXT(cancelled, "example.test"); !IsTemporary(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	// The caller leaves at its deadline; the shared query goes on and
	// fills the cache for the next caller.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := d.LookupTXT(ctx, "example.test")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v, want a timeout", err)
	}
	got, err := d.LookupTXT(context.Background(), "example.test")
	if err != nil || len(got) != 1 {
		t.Errorf("after: %q, %v", got, err)
	}
	if n := srv.QueriesFor("example.test", dns.TypeTXT); n != 1 {
		t.Errorf("%d queries, want 1", n)
	}
}

func TestTruncationFallsBackToTCP(t *testing.T) {
	var zone strings.Builder
	var want []string
	for i := range 20 {
		s := fmt.Sprintf("%02d %s", i, strings.Repeat("k", 240))
		fmt.Fprintf(&zone, "big TXT %q %q\n", s[:120], s[120:])
		want = append(want, s)
	}
	srv := dnstest.Start(t, map[string]string{"big.test": zone.String()})
	cfg := DefaultConfig()
	cfg.Upstream = srv.Addr()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.LookupTXT(context.Background(), "big.big.test")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("got %d records, want all %d complete", len(got), len(want))
	}
	if srv.TCPQueries() != 1 || srv.Queries() != 2 {
		t.Errorf("%d queries, %d over TCP; want 2 and 1", srv.Queries(), srv.TCPQueries())
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"ipv6 upstream", func(c *Config) { c.Upstream = "[::1]:5353" }, ""},
		{"no cache", func(c *Config) { c.CacheSize = 0; c.NegativeTTL = 0 }, ""},
		{"no port", func(c *Config) { c.Upstream = "127.0.0.1" }, "upstream"},
		{"no host", func(c *Config) { c.Upstream = ":53" }, "upstream"},
		{"bad port", func(c *Config) { c.Upstream = "127.0.0.1:domain" }, "upstream"},
		{"port 0", func(c *Config) { c.Upstream = "127.0.0.1:0" }, "upstream"},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "timeout"},
		{"negative cache", func(c *Config) { c.CacheSize = -1 }, "cache_size"},
		{"negative ttl", func(c *Config) { c.NegativeTTL = -time.Second }, "negative"},
		{"min above max", func(c *Config) { c.MinTTL = 2 * time.Hour }, "min_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want one about %q", err, tt.want)
			}
			if _, nerr := New(cfg); (nerr == nil) != (err == nil) {
				t.Errorf("New disagrees with Validate: %v", nerr)
			}
		})
	}
}
