package resolver

import (
	"context"
	"net/netip"
	"sync"
	"testing"

	"github.com/moatmail/moat/filters/resolver/dnstest"
)

func TestCounted(t *testing.T) {
	srv := dnstest.Start(t, map[string]string{"example.test.": "$TTL 300\n@ IN SOA ns1 h 1 3600 600 86400 60\n@ IN TXT \"v=spf1 -all\"\n@ IN MX 10 mx\nmx IN A 192.0.2.25\n"})
	cfg := DefaultConfig()
	cfg.Upstream = srv.Addr()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	c := Counted(r, func(qtype string) { mu.Lock(); got[qtype]++; mu.Unlock() })
	ctx := context.Background()
	for range 2 { // the second time from the cache: counted all the same
		if txt, err := c.LookupTXT(ctx, "example.test"); err != nil || len(txt) != 1 {
			t.Fatalf("TXT: %v, %v", txt, err)
		}
	}
	if mx, err := c.LookupMX(ctx, "example.test"); err != nil || len(mx) != 1 {
		t.Fatalf("MX: %v, %v", mx, err)
	}
	if ips, err := c.LookupIP(ctx, "mx.example.test"); err != nil || len(ips) != 1 {
		t.Fatalf("IP: %v, %v", ips, err)
	}
	// No zone for the reverse name: the server refuses, and the lookup
	// still counts.
	c.LookupAddr(ctx, netip.MustParseAddr("192.0.2.25"))
	want := map[string]int{"TXT": 2, "MX": 1, "A+AAAA": 1, "PTR": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("counts %v, want %v", got, want)
			break
		}
	}
}
