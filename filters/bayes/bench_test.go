package bayes

import (
	"context"
	"testing"

	"github.com/moatmail/moat/filters"
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
