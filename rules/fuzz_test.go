package rules

import (
	"net/netip"
	"testing"

	"github.com/moatmail/moat/filters"
)

// FuzzRuleExpr compiles arbitrary expressions through the validation path
// of the configuration and evaluates those that compile: neither may panic,
// and Validate and NewPipeline must agree.
func FuzzRuleExpr(f *testing.F) {
	for _, s := range []string{
		`has("GTUBE")`,
		`score > 8 && !tls`,
		`symbols["BAYES_SPAM"] >= 4 || ip == "192.0.2.1"`,
		`from endsWith "@bank.example" && rcpt in rcpts`,
		`len(headers("Received")) > 30 && size > 1000`,
		`header("Subject") matches "(?i)viagra"`,
		`any(rcpts, # startsWith "abuse@")`,
		`rcpts[3] == ""`,
		`$env.helo == auth`,
		`let x = score; x > 1`,
		`score +`,
		`"unterminated`,
		``,
	} {
		f.Add(s)
	}
	msg := filters.ParseMessage([]byte(testMessage))
	in := &filters.Input{
		Conn: &filters.Connection{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "mx.example"},
		Env:  &filters.Envelope{From: "a@b.example", Rcpts: []string{"c@d.example"}},
		Msg:  msg,
	}
	syms := []filters.Symbol{{Name: "GTUBE", Score: 1}, {Name: "BAYES_SPAM", Score: 4}}
	f.Fuzz(func(t *testing.T, src string) {
		cfg := Config{Rules: []RuleConfig{{Name: "FUZZ", Expr: src, Score: 1}}}
		verr := cfg.Validate()
		p, err := NewPipeline(cfg, nil, nil)
		if (verr == nil) != (err == nil) {
			t.Fatalf("Validate says %v, NewPipeline says %v", verr, err)
		}
		if err != nil {
			return
		}
		v := p.Decide(filters.StageData, in, found(syms...), nil)
		if n := len(v.Symbols); n != 2 && n != 3 {
			t.Fatalf("%d symbols after one rule over two", n)
		}
	})
}
