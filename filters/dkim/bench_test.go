package dkim

import (
	"context"
	"testing"

	"github.com/moatmail/moat/filters"
)

// BenchmarkCheck is the per-message cost of DKIM verification on a busy
// gateway: the key records are in the resolver's cache (the first check
// fills it). The message is the small one of the tests; most of the cost
// is the public-key operation.
func BenchmarkCheck(b *testing.B) {
	k := testKeys(b)
	for _, bc := range []struct {
		name string
		raw  func() string
	}{
		{"rsa2048", func() string { return sign(b, plain, "gen.dkim.test", "rsa", k.rsa, nil) }},
		{"ed25519", func() string { return sign(b, plain, "gen.dkim.test", "ed", k.ed, nil) }},
		{"rfc8463-two-signatures", func() string { return rfc8463 }},
		{"l=-dkimpy", func() string { return readFile(b, "testdata/length-relaxed.eml") }},
		{"unsigned", func() string { return plain }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f, _ := setup(b, DefaultConfig())
			in := &filters.Input{Msg: filters.ParseMessage([]byte(bc.raw()))}
			ctx := context.Background()
			if _, err := f.Check(ctx, in); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Check(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
