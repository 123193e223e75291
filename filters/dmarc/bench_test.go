package dmarc

import (
	"context"
	"testing"

	"github.com/moatmail/moat/filters"
)

// BenchmarkCheck is the per-message cost of a DMARC evaluation on a busy
// gateway: the policy records are in the resolver's cache (the first
// check fills it).
func BenchmarkCheck(b *testing.B) {
	for _, bc := range []struct {
		name, from string
		prior      *filters.Result
	}{
		{"pass-dkim", "From: Alice <a@reject.test>", &filters.Result{Auth: []filters.AuthResult{spf(pass, "b@other.example"), dkim(pass, "reject.test")}}},
		{"fail-reject", "From: Alice <a@reject.test>", &filters.Result{Auth: []filters.AuthResult{spf(pass, "b@other.example")}}},
		{"fail-org-fallback-pct", "From: Alice <a@mail.pct50.test>", nil},
		{"no-record", "From: Alice <a@norecord.test>", nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f, _ := setup(b)
			in := &filters.Input{Msg: message(bc.from), Prior: bc.prior}
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
