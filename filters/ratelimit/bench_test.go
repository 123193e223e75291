package ratelimit

import (
	"context"
	"fmt"
	"testing"

	"github.com/moatmail/moat/filters"
)

// BenchmarkCheckRcpt is the costliest check: three buckets (refused
// recipients, recipients per network and per sender) in one Take, under
// the limits.
func BenchmarkCheckRcpt(b *testing.B) {
	cfg := DefaultConfig()
	cfg.RecipientsPerNetwork.Limit, cfg.RecipientsPerSender.Limit = 1<<30, 1<<30
	e := setup(b, cfg)
	f := e.fs[filters.StageRcpt]
	in := client{ip: "198.51.100.7", from: "alice@example.net"}.input()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r, err := f.Check(ctx, in); err != nil || !r.IsZero() {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkCheckConnectParallel is the connection check of many
// sessions from many clients at once (one bucket each), under the limit.
func BenchmarkCheckConnectParallel(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Connections.Limit = 1 << 30
	e := setup(b, cfg)
	f := e.fs[filters.StageConnect]
	ctx := context.Background()
	ins := make([]*filters.Input, 1024)
	for i := range ins {
		ins[i] = client{ip: fmt.Sprintf("198.51.%d.%d", i/256, i%256)}.input()
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := f.Check(ctx, ins[i%len(ins)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkTakeNewKeys fills a store past its bound: every Take makes a
// bucket and evicts one.
func BenchmarkTakeNewKeys(b *testing.B) {
	s := NewMemoryStore(numShards * 16)
	r := DefaultConfig().Connections
	ctx := context.Background()
	reqs := make([]Request, 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		reqs[0] = Request{Key: fmt.Sprintf("conn:%d", i), Rate: r, Cost: 1}
		if _, err := s.Take(ctx, t0, reqs); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
