package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// clock is a settable clock for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// cacheZone has records with known TTLs. Its SOA has TTL 600 and MINIMUM
// 120: negative answers may be cached 120 s (RFC 2308 §5).
const cacheZone = `
$TTL 300
@      SOA ns h 1 3600 600 86400 120
t300   TXT "five minutes"
t30 30 TXT "thirty seconds"
t0 0   TXT "do not cache"
t2h 7200 TXT "two hours"
c60 60 CNAME t300
`

// newClockResolver returns a resolver on cacheZone whose cache follows a
// fake clock, with cfg changed by change.
func newClockResolver(t *testing.T, change func(*Config)) (*DNS, *dnstest.Server, *clock) {
	t.Helper()
	srv := dnstest.Start(t, map[string]string{"c.test": cacheZone})
	cfg := DefaultConfig()
	cfg.Upstream = srv.Addr()
	change(&cfg)
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	d.now = clk.Now
	return d, srv, clk
}

func TestCacheTTL(t *testing.T) {
	tests := []struct {
		name   string
		qname  string
		change func(*Config)
		// cachedFor is how long the answer stays cached: a lookup at
		// cachedFor-1s is a hit, one at cachedFor is a miss.
		cachedFor time.Duration
	}{
		{"record TTL", "t300.c.test", func(*Config) {}, 300 * time.Second},
		{"short TTL", "t30.c.test", func(*Config) {}, 30 * time.Second},
		{"CNAME TTL is the smallest", "c60.c.test", func(*Config) {}, 60 * time.Second},
		{"max_ttl clamps", "t2h.c.test", func(*Config) {}, time.Hour},
		{"min_ttl clamps", "t30.c.test", func(c *Config) { c.MinTTL = 90 * time.Second }, 90 * time.Second},
		{"min_ttl lifts TTL 0", "t0.c.test", func(c *Config) { c.MinTTL = 5 * time.Second }, 5 * time.Second},
		{"lower max_ttl", "t300.c.test", func(c *Config) { c.MaxTTL = 10 * time.Second }, 10 * time.Second},
		{"NXDOMAIN: SOA MINIMUM", "none.c.test", func(*Config) {}, 120 * time.Second},
		{"NODATA: SOA MINIMUM", "t300.c.test.", func(*Config) {}, 120 * time.Second},
		{"negative_ttl caps", "none.c.test", func(c *Config) { c.NegativeTTL = 20 * time.Second }, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, srv, clk := newClockResolver(t, tt.change)
			qtype := dns.TypeTXT
			lookup := func() { _, _ = d.LookupTXT(context.Background(), tt.qname) }
			if tt.name == "NODATA: SOA MINIMUM" {
				qtype = dns.TypeMX
				lookup = func() { _, _ = d.LookupMX(context.Background(), tt.qname) }
			}
			lookup()
			clk.Advance(tt.cachedFor - time.Second)
			lookup()
			if n := srv.QueriesFor(tt.qname, qtype); n != 1 {
				t.Fatalf("%d queries before expiry, want 1 (cache hit)", n)
			}
			clk.Advance(time.Second)
			lookup()
			if n := srv.QueriesFor(tt.qname, qtype); n != 2 {
				t.Errorf("%d queries after expiry, want 2", n)
			}
		})
	}
}

func TestCacheNotUsed(t *testing.T) {
	tests := []struct {
		name   string
		qname  string
		change func(*Config)
	}{
		{"TTL 0", "t0.c.test", func(*Config) {}},
		{"cache disabled", "t300.c.test", func(c *Config) { c.CacheSize = 0 }},
		{"negative caching disabled", "none.c.test", func(c *Config) { c.NegativeTTL = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, srv, _ := newClockResolver(t, tt.change)
			for range 3 {
				_, _ = d.LookupTXT(context.Background(), tt.qname)
			}
			if n := srv.QueriesFor(tt.qname, dns.TypeTXT); n != 3 {
				t.Errorf("%d queries, want 3 (no caching)", n)
			}
		})
	}
}

func TestCacheHitKeepsAnswerAndError(t *testing.T) {
	d, srv, _ := newClockResolver(t, func(*Config) {})
	for i := range 2 {
		got, err := d.LookupTXT(context.Background(), "T300.C.Test.")
		if err != nil || len(got) != 1 || got[0] != "five minutes" {
			t.Errorf("lookup %d: %q, %v", i, got, err)
		}
		_, err = d.LookupTXT(context.Background(), "none.c.test")
		if !IsNotFound(err) || !errors.Is(err, ErrNXDomain) {
			t.Errorf("lookup %d: %v, want NXDOMAIN", i, err)
		}
	}
	if n := srv.Queries(); n != 2 {
		t.Errorf("%d queries, want 2", n)
	}
}

func TestCacheWithoutSOAIsNotNegativelyCached(t *testing.T) {
	r := new(dns.Msg)
	r.SetQuestion("x.test.", dns.TypeA)
	r.Response = true
	r.Rcode = dns.RcodeNameError
	a, ttl, err := parseResponse(r, "x.test.", dns.TypeA)
	if err != nil || !errors.Is(a.neg, ErrNXDomain) || ttl != 0 {
		t.Errorf("got %v, %v, %v; want NXDOMAIN with TTL 0 (RFC 2308 §5)", a, ttl, err)
	}
}

func TestLRUEviction(t *testing.T) {
	c := newCache(2)
	now := time.Now()
	later := now.Add(time.Hour)
	ka, kb, kc := key{"a.", 1}, key{"b.", 1}, key{"c.", 1}
	c.put(ka, answer{neg: ErrNoData}, later)
	c.put(kb, answer{neg: ErrNoData}, later)
	if _, ok := c.get(ka, now); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put(kc, answer{neg: ErrNoData}, later)
	for _, tt := range []struct {
		k    key
		want bool
	}{{ka, true}, {kb, false}, {kc, true}} {
		if _, ok := c.get(tt.k, now); ok != tt.want {
			t.Errorf("%v present = %v, want %v", tt.k, ok, tt.want)
		}
	}
	if c.len() != 2 {
		t.Errorf("len %d, want 2", c.len())
	}
	c.put(ka, answer{neg: ErrNXDomain}, later) // update in place
	if a, _ := c.get(ka, now); a.neg != ErrNXDomain || c.len() != 2 {
		t.Errorf("update: %v, len %d", a.neg, c.len())
	}
	if _, ok := c.get(ka, later); ok || c.len() != 1 {
		t.Errorf("expired entry returned or kept (len %d)", c.len())
	}
}

func TestCoalescing(t *testing.T) {
	d, srv, _ := newClockResolver(t, func(c *Config) { c.CacheSize = 0 })
	srv.Delay("t300.c.test", 100*time.Millisecond)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			got, err := d.LookupTXT(context.Background(), "t300.c.test")
			if err == nil && (len(got) != 1 || got[0] != "five minutes") {
				err = fmt.Errorf("got %q", got)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// Without a cache, only coalescing keeps this at one (or, if a
	// goroutine started after the answer, a few: never n).
	if q := srv.QueriesFor("t300.c.test", dns.TypeTXT); q < 1 || q > 3 {
		t.Errorf("%d queries for %d concurrent lookups, want 1", q, n)
	}
}
