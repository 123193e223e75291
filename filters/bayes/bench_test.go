package bayes

import (
	"context"
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/state"
	"github.com/moatmail/moat/filters/state/redistest"
)

// BenchmarkClassify10KB classifies a 10 KB message through the whole path
// (parse, MIME walk, tokenise, look up, combine) against a model trained on
// 400 synthetic messages.
func BenchmarkClassify10KB(b *testing.B) {
	c := trainedClassifier(b, DefaultConfig(), 200, 200)
	spam, _ := synthCorpus(1234, 1, 0, 10*1024)
	raw := spam[0].Raw
	ctx := context.Background()
	if _, err := c.Classify(ctx, "", filters.ParseMessage(raw)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := c.Classify(ctx, "", filters.ParseMessage(raw))
			if err != nil || !r.Trained {
				b.Fatal(r, err)
			}
		}
	})
}

// BenchmarkTokenize10KB is the tokenizer alone on the same message.
func BenchmarkTokenize10KB(b *testing.B) {
	spam, _ := synthCorpus(1234, 1, 0, 10*1024)
	msg := filters.ParseMessage(spam[0].Raw)
	cc := msg.Content()
	b.SetBytes(int64(len(spam[0].Raw)))
	b.ReportAllocs()
	for b.Loop() {
		Features(msg, cc)
	}
}

// BenchmarkClassify10KBStores is BenchmarkClassify10KB over the SQLite
// store and over Redis on loopback: both classify from the mirror.
func BenchmarkClassify10KBStores(b *testing.B) {
	spam, _ := synthCorpus(1234, 1, 0, 10*1024)
	raw := spam[0].Raw
	run := func(b *testing.B, c *Classifier) {
		trainSpam, trainHam := synthCorpus(7, 200, 200, 1500)
		ctx := context.Background()
		if _, err := c.LearnBatch(ctx, "", trainSpam, trainHam); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Classify(ctx, "", filters.ParseMessage(raw)); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, err := c.Classify(ctx, "", filters.ParseMessage(raw))
				if err != nil || !r.Trained {
					b.Fatal(r, err)
				}
			}
		})
	}
	b.Run("sqlite", func(b *testing.B) { run(b, newTestClassifier(b, DefaultConfig())) })
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		cfg := state.DefaultConfig()
		cfg.Backend, cfg.Address, cfg.ReadTimeout = state.BackendRedis, srv.Addr(), time.Minute
		rdb, err := state.NewClient(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer rdb.Close()
		st, err := NewRedisStore(context.Background(), rdb, "bench:", DefaultConfig().MaxTokens)
		if err != nil {
			b.Fatal(err)
		}
		c, err := NewClassifier(DefaultConfig(), st)
		if err != nil {
			b.Fatal(err)
		}
		run(b, c)
	})
}
