package spf

import (
	"context"
	"testing"
)

// BenchmarkCheck is the per-message cost of an SPF check on a busy
// gateway: every record is in the resolver's cache (the first check
// fills it). The record includes another and ends in -all, and the
// client matches the included ip4 term.
func BenchmarkCheck(b *testing.B) {
	for _, bc := range []struct{ name, from string }{
		{"ip4", "a@ip4.spf.test"},
		{"include", "a@include.spf.test"},
		{"mx", "a@mx.spf.test"},
		{"ten-includes", "a@ten.spf.test"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f, _ := setup(b)
			in := input("192.0.2.10", bc.from, "h.example.net")
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
