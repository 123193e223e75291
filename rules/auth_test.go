package rules

import (
	"testing"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

func auth(method string, v filters.AuthValue, ptype, name, value string) filters.AuthResult {
	return filters.AuthResult{Method: method, Value: v, Props: []filters.AuthProp{{Type: ptype, Name: name, Value: value}}}
}

func TestSenderAuthenticated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		from  string
		found filters.Result
		want  bool
	}{
		{"nothing checked", "bob@example.net", filters.Result{}, false},
		{"spf pass", "bob@example.net", filters.Result{Auth: []filters.AuthResult{auth("spf", filters.AuthPass, "smtp", "mailfrom", "bob@example.net")}}, true},
		{"spf softfail", "bob@example.net", filters.Result{Auth: []filters.AuthResult{auth("spf", filters.AuthSoftFail, "smtp", "mailfrom", "bob@example.net")}}, false},
		{"spf pass for the HELO of a bounce", "", filters.Result{Auth: []filters.AuthResult{auth("spf", filters.AuthPass, "smtp", "helo", "mx.example.net")}}, false},
		{"dkim pass, same domain", "bob@example.net", filters.Result{Auth: []filters.AuthResult{auth("dkim", filters.AuthPass, "header", "d", "EXAMPLE.net")}}, true},
		{"dkim pass, parent domain (relaxed)", "bob@mail.example.net", filters.Result{Auth: []filters.AuthResult{auth("dkim", filters.AuthPass, "header", "d", "example.net")}}, true},
		{"dkim pass, other domain", "bob@example.net", filters.Result{Auth: []filters.AuthResult{auth("dkim", filters.AuthPass, "header", "d", "mailer.example")}}, false},
		{"dkim pass, sibling under a public suffix", "bob@a.co.uk", filters.Result{Auth: []filters.AuthResult{auth("dkim", filters.AuthPass, "header", "d", "b.co.uk")}}, false},
		{"dkim fail", "bob@example.net", filters.Result{Auth: []filters.AuthResult{auth("dkim", filters.AuthFail, "header", "d", "example.net")}}, false},
		{"dmarc pass for another From domain", "ceo@partner.example", filters.Result{Auth: []filters.AuthResult{auth("dmarc", filters.AuthPass, "header", "from", "evil.example")}}, false},
		{"dmarc pass, aligned", "ceo@partner.example", filters.Result{Auth: []filters.AuthResult{auth("dmarc", filters.AuthPass, "header", "from", "partner.example")}}, true},
	} {
		if got := senderAuthenticated(tc.from, &tc.found); got != tc.want {
			t.Errorf("%s: senderAuthenticated = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAuthEnv: rules read the sender-authentication variables.
func TestAuthEnv(t *testing.T) {
	p, err := NewPipeline(Config{Rules: []RuleConfig{
		{Name: "SPOOFED_BANK", Expr: `from_domain == "bank.example" && dmarc != "pass" && spf == "fail" && !sender_auth`, Score: 7},
		{Name: "SIGNED_BY_BANK", Expr: `"bank.example" in dkim_domains`, Score: -2},
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := &filters.Input{Env: &filters.Envelope{From: "x@bank.example"}}
	spoof := Result{Result: filters.Result{
		Auth:  []filters.AuthResult{auth("spf", filters.AuthFail, "smtp", "mailfrom", "x@bank.example"), auth("dmarc", filters.AuthFail, "header", "from", "bank.example")},
		Facts: []filters.Fact{{Name: factFromDomain, Value: "bank.example"}},
	}}
	if v := p.Decide(filters.StageData, in, spoof, policies.Builtin()); v.Score != 7 {
		t.Errorf("spoofed: score %v (%v), want 7", v.Score, v.Symbols)
	}
	signed := Result{Result: filters.Result{
		Auth:  []filters.AuthResult{auth("dkim", filters.AuthPass, "header", "d", "bank.example")},
		Facts: []filters.Fact{{Name: factFromDomain, Value: "bank.example"}, {Name: factDKIMDomain, Value: "bank.example"}},
	}}
	if v := p.Decide(filters.StageData, in, signed, policies.Builtin()); v.Score != -2 {
		t.Errorf("signed: score %v (%v), want -2", v.Score, v.Symbols)
	}
}
