package rules

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

// message10KB builds a plausible 10 KB message.
func message10KB() []byte {
	var b strings.Builder
	b.WriteString("Received: from mx.sender.example (mx.sender.example [192.0.2.1])\r\n\tby mx.example.com with ESMTPS id abc123\r\n")
	b.WriteString("Received: from internal.sender.example by mx.sender.example\r\n")
	b.WriteString("From: Alice <alice@sender.example>\r\nTo: bob@example.com\r\nSubject: Quarterly figures\r\n")
	b.WriteString("Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1234@sender.example>\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for i := 0; b.Len() < 10*1024; i++ {
		fmt.Fprintf(&b, "Line %d of the body, with enough words to look like a real paragraph of text.\r\n", i)
	}
	return []byte(b.String())
}

// BenchmarkPipelineData10KB runs the data stage the way the gateway does
// (Run, then Decide) with two cheap filters and three rules on a 10 KB
// message.
func BenchmarkPipelineData10KB(b *testing.B) {
	fs := []filters.Filter{
		&fakeFilter{name: "headers", stage: filters.StageData,
			check: func(_ context.Context, in *filters.Input) ([]filters.Symbol, error) {
				if in.Msg.Header.Get("Date") == "" {
					return []filters.Symbol{{Name: "MISSING_DATE", Score: 1}}, nil
				}
				return []filters.Symbol{{Name: "HAS_DATE", Score: 0}}, nil
			}},
		&fakeFilter{name: "size", stage: filters.StageData,
			check: func(_ context.Context, in *filters.Input) ([]filters.Symbol, error) {
				return []filters.Symbol{{Name: "SIZE_SMALL", Score: 0.1}}, nil
			}},
	}
	cfg := Config{Rules: []RuleConfig{
		{Name: "GTUBE_QUARANTINE", Expr: `has("GTUBE")`, Action: "quarantine", Reason: "GTUBE test string"},
		{Name: "NO_TLS_SMALL", Expr: `!tls && has("SIZE_SMALL") && score > 0`, Score: 0.5},
		{Name: "MANY_HOPS", Expr: `len(headers("Received")) > 10 || header("Subject") == ""`, Score: 2},
	}}
	p, err := NewPipeline(cfg, fs, nil)
	if err != nil {
		b.Fatal(err)
	}
	pol := policies.Builtin()
	raw := message10KB()
	in := &filters.Input{
		Conn: &filters.Connection{ID: "c1", RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "mx.sender.example"},
		Env:  &filters.Envelope{From: "alice@sender.example", Rcpts: []string{"bob@example.com"}},
		Msg:  filters.ParseMessage(raw),
	}
	ctx := context.Background()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := p.Run(ctx, filters.StageData, in, pol.Runs)
		v := p.Decide(filters.StageData, in, r, pol)
		if v.Action != policies.ActionAccept || len(v.Symbols) != 3 {
			b.Fatalf("verdict %s", v)
		}
	}
}
