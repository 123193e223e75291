package dnsbl

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/dnsxl"
	"github.com/moatmail/moat/filters/dnsxl/rbldnstest"
	"github.com/moatmail/moat/filters/resolver"
)

// BenchmarkCheck checks a client against five lists served by rbldnsd,
// with a cold resolver (no cache: every check asks the five lists) and a
// warm one (every answer cached), for a client listed in all five and
// one listed in none.
func BenchmarkCheck(b *testing.B) {
	var sets []rbldnstest.Dataset
	var lists []dnsxl.ListConfig
	for i := 1; i <= 5; i++ {
		zone := fmt.Sprintf("z%d.test", i)
		sets = append(sets, rbldnstest.Dataset{Zone: zone, Type: "ip4set", Data: "127.0.0.2\n192.0.2.10\n"})
		lists = append(lists, dnsxl.ListConfig{Zone: zone, Weight: 1})
	}
	srv := rbldnstest.Start(b, sets...)
	for _, cache := range []struct {
		name string
		size int
	}{{"cold", 0}, {"warm", resolver.DefaultCacheSize}} {
		for _, ip := range []string{"192.0.2.10", "192.0.2.99"} {
			b.Run(fmt.Sprintf("%s/%s", cache.name, ip), func(b *testing.B) {
				rcfg := resolver.DefaultConfig()
				rcfg.Upstream = srv.Addr()
				rcfg.CacheSize = cache.size
				r, err := resolver.New(rcfg)
				if err != nil {
					b.Fatal(err)
				}
				cfg := DefaultConfig()
				cfg.Lists, cfg.Threshold = lists, 0
				f, err := New(cfg, r, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				in := &filters.Input{Conn: &filters.Connection{RemoteIP: netip.MustParseAddr(ip)}}
				ctx := context.Background()
				// The first check probes the lists (and fills a warm
				// cache).
				if _, err := f.Check(ctx, in); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := f.Check(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
