package greylist

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCheckKnown is the common case: a correspondent whose triplet
// passed before (two reads: the network's record and the triplet).
func BenchmarkCheckKnown(b *testing.B) {
	e := setup(b, DefaultConfig())
	a := attempt{from: "alice@example.net", rcpt: "bob@example.com"}
	e.check(b, a)
	e.advance(DefaultDelay)
	if r := e.check(b, a); !r.HasSymbol(SymPassed) {
		b.Fatalf("setup: %+v", r)
	}
	in := a.input()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.f.Check(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckKnownParallel is BenchmarkCheckKnown from many sessions.
func BenchmarkCheckKnownParallel(b *testing.B) {
	e := setup(b, DefaultConfig())
	a := attempt{from: "alice@example.net", rcpt: "bob@example.com"}
	e.check(b, a)
	e.advance(DefaultDelay)
	e.check(b, a)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		in := a.input()
		for pb.Next() {
			if _, err := e.f.Check(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCheckNew is a first attempt: a read, then a write transaction
// (a spam run's path).
func BenchmarkCheckNew(b *testing.B) {
	st := openStore(b, filepath.Join(b.TempDir(), "g.db"))
	f, err := New(DefaultConfig(), st, Options{Now: func() time.Time { return time.Unix(1_700_000_000, 0) }})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		in := attempt{from: "spammer@example.net", rcpt: fmt.Sprintf("u%d@example.com", i)}.input()
		if r, err := f.Check(ctx, in); err != nil || !r.HasSymbol(SymNew) {
			b.Fatal(r, err)
		}
	}
}
