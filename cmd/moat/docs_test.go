package main

import (
	"testing"
	"net/netip"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/rules"
)

func TestDocsExplore(t *testing.T) {
	raw := []byte("Subject: Win money\r\nReceived: a\r\nreceived: b\r\nFrom: x@y.example\r\n\r\nbody\r\n")
	in := &filters.Input{
		Conn: &filters.Connection{RemoteIP: netip.MustParseAddr("::ffff:192.0.2.7"), Helo: "mail.example.net"},
		Env:  &filters.Envelope{From: "Bob@Bank.example", Rcpts: []string{"a@example.com", "b@example.org"}},
		Msg:  filters.ParseMessage(raw),
	}
	syms := []filters.Symbol{{Name: "GTUBE", Score: 2}, {Name: "RDNS_NONE", Score: 1}}
	for _, e := range []string{
		`symbols["NOPE"] == 0`,
		`symbols["GTUBE"] >= 2`,
		`"GTUBE" in symbols`,
		`has("GTUBE")`,
		`score == 3`,
		`ip == "192.0.2.7"`,
		`from endsWith "@bank.example"`,
		`lower(from) endsWith "@bank.example"`,
		`len(headers("received")) == 2`,
		`header("subject") matches "(?i)money"`,
		`any(rcpts, # endsWith "@example.org")`,
		`size == 0`,
		`size > 10`,
		`rcpt == ""`,
		`helo == "mail.example.net"`,
		`!tls && auth == ""`,
		`rcpts[5] == "x"`,
		`header("X-Missing") == ""`,
		`ip startsWith "192.0.2."`,
		`"RDNS_NONE" in keys(symbols)`,
		`from contains "@"`,
	} {
		cfg := rules.Config{Rules: []rules.RuleConfig{{Name: "R", Expr: e, Score: 0.5}}}
		p, err := rules.NewPipeline(cfg, nil, nil)
		if err != nil {
			t.Logf("%s: %v", e, err)
			continue
		}
		v := p.Decide(filters.StageData, in, syms, nil, false)
		t.Logf("%-45s matched=%v score=%v", e, len(v.Symbols) == 3, v.Score)
	}
}
