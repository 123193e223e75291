package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moatmail/moat/filters/state"
	"github.com/moatmail/moat/filters/state/redistest"

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

// BenchmarkTake is the store alone answering the rcpt check's shape
// (three buckets, one a peek) on each store: memory, and Redis on
// loopback (one Lua round trip).
func BenchmarkTake(b *testing.B) {
	r := Rate{Limit: 1 << 30, Per: time.Hour}
	run := func(b *testing.B, s Store) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			reqs := []Request{{Key: "bad-rcpt:198.51.100.7/32", Rate: r, Cost: 1, Peek: true},
				{Key: "rcpt-net:198.51.100.7/32", Rate: r, Cost: 1}, {Key: "rcpt-from:0123456789abcdef", Rate: r, Cost: 1}}
			if denied, err := s.Take(ctx, time.Now(), reqs); err != nil || denied >= 0 {
				b.Fatal(denied, err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, NewMemoryStore(DefaultMaxKeys)) })
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		cfg := state.DefaultConfig()
		cfg.Backend, cfg.Address = state.BackendRedis, srv.Addr()
		rdb, err := state.NewClient(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer rdb.Close()
		run(b, NewRedisStore(rdb, "bench:"))
	})
}
