package resolver

import (
	"context"
	"testing"

	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// benchResolver returns a resolver on the fixture zones.
func benchResolver(b *testing.B, cacheSize int) *DNS {
	b.Helper()
	srv := dnstest.Start(b, dnstest.LoadZoneDir(b, fixtures))
	cfg := DefaultConfig()
	cfg.Upstream = srv.Addr()
	cfg.CacheSize = cacheSize
	d, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkLookupTXTCached is the common case of a busy gateway: the
// answer is in the cache.
func BenchmarkLookupTXTCached(b *testing.B) {
	d := benchResolver(b, DefaultCacheSize)
	ctx := context.Background()
	if _, err := d.LookupTXT(ctx, "example.test"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.LookupTXT(ctx, "example.test"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupTXTUncached is one UDP round trip over loopback to the
// in-process test server per lookup.
func BenchmarkLookupTXTUncached(b *testing.B) {
	d := benchResolver(b, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.LookupTXT(ctx, "example.test"); err != nil {
			b.Fatal(err)
		}
	}
}
