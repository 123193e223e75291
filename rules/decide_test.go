package rules

import (
	"crypto/tls"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

const testMessage = "From: a@sender.example\r\n" +
	"To: b@example.com\r\n" +
	"Subject: Hello\r\n" +
	"Received: from one\r\n" +
	"Received: from two\r\n" +
	"\r\n" +
	"body\r\n"

func testPolicies(t *testing.T) *policies.Set {
	t.Helper()
	s, err := policies.New(policies.Config{
		Default: policies.PolicyConfig{
			AllowSenders: []string{"@partner.example"},
			BlockSenders: []string{".spammer.example"},
		},
		Domains: map[string]policies.PolicyConfig{
			"example.com": {Quarantine: policies.ThresholdAt(6), Reject: policies.ThresholdOff()},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testRules() []RuleConfig {
	return []RuleConfig{
		{Name: "GTUBE_QUARANTINE", Expr: `has("GTUBE")`, Action: "quarantine", Reason: "GTUBE test string"},
		{Name: "VIRUS_REJECT", Expr: `has("CLAM_VIRUS")`, Action: "reject", Reason: "virus found"},
		{Name: "NO_TLS_BAD_SPF", Expr: `!tls && has("SPF_FAIL")`, Score: 3},
		{Name: "PILE_UP", Expr: `has("NO_TLS_BAD_SPF") && score >= 8`, Score: 2.5},
		{Name: "SYMBOL_MAP", Expr: `symbols["BAYES_SPAM"] >= 4`, Score: 0.5},
		{Name: "DNSBL_REFUSE", Stage: "connect", Expr: `has("DNSBL_LISTED") && ip != "192.0.2.99"`, Action: "reject", Reason: "listed"},
		{Name: "EARLY_QUARANTINE", Stage: "rcpt", Expr: `rcpt == "trap@example.com"`, Action: "quarantine", Reason: "spam trap"},
		{Name: "EARLY_TEMPFAIL", Stage: "helo", Expr: `helo == "tempfail.example"`, Action: "tempfail"},
		{Name: "HELO_LOCAL", Stage: "helo", Expr: `helo == "localhost"`, Score: 4},
		{Name: "HEADERS_SEEN", Expr: `header("subject") == "Hello" && len(headers("Received")) == 2 && headers("Received")[1] == "from two" && size > 50`, Score: 0.25},
		{Name: "AUTH_USER", Stage: "mail", Expr: `auth == "carol" && from == "carol@example.com" && rcpts == []`, Score: -10},
	}
}

func TestDecide(t *testing.T) {
	pols := testPolicies(t)
	p, err := NewPipeline(Config{Rules: testRules()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := filters.ParseMessage([]byte(testMessage))
	input := func(from, rcpt string, tlsOn bool) *filters.Input {
		in := &filters.Input{
			Conn: &filters.Connection{ID: "c1", RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "mx.sender.example"},
			Env:  &filters.Envelope{From: from, Rcpts: []string{rcpt}},
			Rcpt: rcpt,
			Msg:  msg,
		}
		if tlsOn {
			in.Conn.TLS = &tls.ConnectionState{}
		}
		return in
	}
	tests := []struct {
		name        string
		stage       filters.Stage
		in          *filters.Input
		rcpt        string // selects the policy
		symbols     []filters.Symbol
		auth        []filters.AuthResult // what the sender-authentication checks found
		tempfail    bool
		want        policies.Action
		wantScore   float64
		wantSymbols []string // sorted
		wantReasons []string // each must be in Reasons
		wantPolicy  string
	}{
		{
			name: "clean", stage: filters.StageData, in: input("a@sender.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("DKIM_PASS", -1)},
			want: policies.ActionAccept, wantScore: -0.75, wantPolicy: "default",
			wantSymbols: []string{"DKIM_PASS", "HEADERS_SEEN"},
		},
		{
			name: "default thresholds tag", stage: filters.StageData, in: input("a@sender.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("BAYES_SPAM", 7)},
			want: policies.ActionTag, wantScore: 7.75,
			wantReasons: []string{"score 7.75 >= tag 5 (policy default)"},
		},
		{
			name: "domain threshold quarantines the same score", stage: filters.StageData, in: input("a@sender.example", "x@example.com", true),
			rcpt: "x@EXAMPLE.com", symbols: []filters.Symbol{sym("BAYES_SPAM", 7)},
			want: policies.ActionQuarantine, wantScore: 7.75, wantPolicy: "domain:example.com",
			wantReasons: []string{"score 7.75 >= quarantine 6 (policy domain:example.com)"},
		},
		{
			name: "default rejects at 20", stage: filters.StageData, in: input("a@sender.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("BAYES_SPAM", 25)},
			want: policies.ActionReject, wantReasons: []string{"score 25.75 >= reject 20 (policy default)"},
		},
		{
			name: "domain with reject off quarantines", stage: filters.StageData, in: input("a@sender.example", "x@example.com", true),
			rcpt: "x@example.com", symbols: []filters.Symbol{sym("BAYES_SPAM", 100)},
			want: policies.ActionQuarantine,
		},
		{
			name: "score rules feed later rules", stage: filters.StageData, in: input("a@sender.example", "x@other.example", false),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("SPF_FAIL", 5)},
			want: policies.ActionQuarantine, wantScore: 5 + 3 + 2.5 + 0.25,
			wantSymbols: []string{"HEADERS_SEEN", "NO_TLS_BAD_SPF", "PILE_UP", "SPF_FAIL"},
			wantReasons: []string{"score 10.75 >= quarantine 10 (policy default)"},
		},
		{
			name: "score rule does not fire under TLS", stage: filters.StageData, in: input("a@sender.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("SPF_FAIL", 5)},
			want: policies.ActionTag, wantScore: 5.25,
			wantSymbols: []string{"HEADERS_SEEN", "SPF_FAIL"},
		},
		{
			name: "symbols map", stage: filters.StageData, in: input("a@sender.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("BAYES_SPAM", 2), sym("BAYES_SPAM", 2)},
			want: policies.ActionAccept, wantScore: 4.75,
			wantSymbols: []string{"BAYES_SPAM", "BAYES_SPAM", "HEADERS_SEEN", "SYMBOL_MAP"},
		},
		{
			name: "forced quarantine with low score", stage: filters.StageData, in: input("a@sender.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("GTUBE", 0)},
			want:        policies.ActionQuarantine,
			wantSymbols: []string{"GTUBE", "GTUBE_QUARANTINE", "HEADERS_SEEN"},
			wantReasons: []string{"rule GTUBE_QUARANTINE forces quarantine: GTUBE test string"},
		},
		{
			name: "allow list waives the score of an authenticated sender", stage: filters.StageData, in: input("news@PARTNER.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("BAYES_SPAM", 30)},
			auth:        []filters.AuthResult{auth("dkim", filters.AuthPass, "header", "d", "mail.partner.example")},
			want:        policies.ActionAccept,
			wantReasons: []string{"sender is on the allow list and authenticated: score 30.75 >= reject 20 (policy default) waived"},
		},
		{
			name: "allow list does not waive a forged sender", stage: filters.StageData, in: input("news@partner.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("BAYES_SPAM", 30)},
			auth: []filters.AuthResult{auth("spf", filters.AuthFail, "smtp", "mailfrom", "news@partner.example"),
				auth("dkim", filters.AuthPass, "header", "d", "evil.example")},
			want: policies.ActionReject,
			wantReasons: []string{"score 30.75 >= reject 20 (policy default); sender is on the allow list but not authenticated " +
				"(no SPF, DKIM or DMARC pass aligned with its domain): not waived"},
		},
		{
			name: "allow list does not waive a virus", stage: filters.StageData, in: input("news@partner.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("CLAM_VIRUS", 0)},
			want:        policies.ActionReject,
			wantReasons: []string{"rule VIRUS_REJECT forces reject: virus found"},
		},
		{
			name: "block list rejects a clean message", stage: filters.StageData, in: input("x@mail.spammer.example", "x@other.example", true),
			rcpt: "x@other.example", want: policies.ActionReject, wantReasons: []string{"sender is on the block list"},
		},
		{
			name: "block list rejects at the mail stage", stage: filters.StageMail, in: input("x@spammer.example", "", true),
			want: policies.ActionReject, wantReasons: []string{"sender is on the block list"},
		},
		{
			name: "null sender is never blocked", stage: filters.StageMail, in: input("", "", true),
			want: policies.ActionAccept,
		},
		{
			name: "filter tempfail", stage: filters.StageData, in: input("a@sender.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("ANTIVIRUS_TEMPFAIL", 0), sym("BAYES_SPAM", 12)},
			tempfail: true, want: policies.ActionTempfail,
			wantReasons: []string{"score 12.75 >= quarantine 10 (policy default)", "a filter with on_error = tempfail failed"},
		},
		{
			name: "reject beats filter tempfail", stage: filters.StageData, in: input("a@sender.example", "x@other.example", true),
			rcpt: "x@other.example", symbols: []filters.Symbol{sym("CLAM_VIRUS", 0)},
			tempfail: true, want: policies.ActionReject,
		},
		{
			name: "early stage: score does not act", stage: filters.StageConnect, in: input("", "", false),
			symbols: []filters.Symbol{sym("DNSBL_HIGH", 50)},
			want:    policies.ActionAccept, wantScore: 50,
		},
		{
			name: "early stage: forced reject acts", stage: filters.StageConnect, in: input("", "", false),
			symbols: []filters.Symbol{sym("DNSBL_LISTED", 1)},
			want:    policies.ActionReject, wantReasons: []string{"rule DNSBL_REFUSE forces reject: listed"},
			wantSymbols: []string{"DNSBL_LISTED", "DNSBL_REFUSE"},
		},
		{
			name: "early stage: forced tempfail acts", stage: filters.StageHelo,
			in:   &filters.Input{Conn: &filters.Connection{Helo: "tempfail.example"}},
			want: policies.ActionTempfail, wantSymbols: []string{"EARLY_TEMPFAIL"},
			wantReasons: []string{"rule EARLY_TEMPFAIL forces tempfail"},
		},
		{
			name: "early stage: score rule", stage: filters.StageHelo,
			in:   &filters.Input{Conn: &filters.Connection{Helo: "localhost"}},
			want: policies.ActionAccept, wantScore: 4, wantSymbols: []string{"HELO_LOCAL"},
		},
		{
			name: "early stage: forced quarantine is carried as a symbol", stage: filters.StageRcpt,
			in: input("a@sender.example", "trap@example.com", true), rcpt: "trap@example.com",
			want: policies.ActionAccept, wantSymbols: []string{"EARLY_QUARANTINE"},
		},
		{
			name: "data stage applies the carried quarantine", stage: filters.StageData,
			in: input("a@sender.example", "trap@example.com", true), rcpt: "trap@example.com",
			symbols:     []filters.Symbol{{Name: "EARLY_QUARANTINE", Reason: "spam trap"}},
			want:        policies.ActionQuarantine,
			wantReasons: []string{"rule EARLY_QUARANTINE forces quarantine: spam trap"},
		},
		{
			name: "mail stage env: auth, from, empty rcpts", stage: filters.StageMail,
			in: &filters.Input{
				Conn: &filters.Connection{AuthUser: "carol"},
				Env:  &filters.Envelope{From: "carol@example.com"},
			},
			want: policies.ActionAccept, wantScore: -10, wantSymbols: []string{"AUTH_USER"},
		},
		{
			name: "nil input", stage: filters.StageData, in: nil,
			symbols: []filters.Symbol{sym("BAYES_SPAM", 11)},
			want:    policies.ActionQuarantine, wantScore: 11.5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := pols.For(tt.rcpt)
			in := slices.Clone(tt.symbols)
			v := p.Decide(tt.stage, tt.in, Result{Result: filters.Result{Symbols: tt.symbols, Auth: tt.auth}, Tempfail: tt.tempfail}, pol)
			if v.Action != tt.want {
				t.Errorf("Action = %v, want %v (%s)", v.Action, tt.want, v)
			}
			if tt.wantScore != 0 && v.Score != tt.wantScore {
				t.Errorf("Score = %v, want %v", v.Score, tt.wantScore)
			}
			if tt.wantSymbols != nil && !slices.Equal(v.SymbolNames(), tt.wantSymbols) {
				t.Errorf("symbols = %v, want %v", v.SymbolNames(), tt.wantSymbols)
			}
			if !slices.IsSortedFunc(v.Symbols, func(a, b filters.Symbol) int { return strings.Compare(a.Name, b.Name) }) {
				t.Errorf("symbols not sorted: %v", v.SymbolNames())
			}
			for _, w := range tt.wantReasons {
				if !slices.Contains(v.Reasons, w) {
					t.Errorf("reasons %q lack %q", v.Reasons, w)
				}
			}
			if tt.want == policies.ActionAccept && len(v.Reasons) > 0 && !strings.Contains(tt.name, "allow") {
				t.Errorf("accept with reasons %q", v.Reasons)
			}
			if tt.wantPolicy != "" && v.Policy != tt.wantPolicy {
				t.Errorf("Policy = %q, want %q", v.Policy, tt.wantPolicy)
			}
			if !slices.Equal(in, tt.symbols) {
				t.Errorf("Decide modified its symbols argument")
			}
		})
	}
}

func TestDecideRuntimeErrorIsNoMatch(t *testing.T) {
	p, err := NewPipeline(Config{Rules: []RuleConfig{
		{Name: "FIRST_RCPT", Expr: `rcpts[0] == "a@example.com"`, Score: 5},
		{Name: "AFTER", Expr: `true`, Score: 1},
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := p.Decide(filters.StageData, &filters.Input{Env: &filters.Envelope{}}, Result{}, nil)
	if got := v.SymbolNames(); !slices.Equal(got, []string{"AFTER"}) {
		t.Errorf("symbols = %v, want [AFTER]", got)
	}
	v = p.Decide(filters.StageData, &filters.Input{Env: &filters.Envelope{Rcpts: []string{"a@example.com"}}}, Result{}, nil)
	if got := v.SymbolNames(); !slices.Equal(got, []string{"AFTER", "FIRST_RCPT"}) || v.Score != 6 || v.Action != policies.ActionTag {
		t.Errorf("verdict = %s", v)
	}
}

func TestDecideIPVariants(t *testing.T) {
	p, err := NewPipeline(Config{Rules: []RuleConfig{
		{Name: "V4", Stage: "connect", Expr: `ip == "192.0.2.7"`, Score: 1},
		{Name: "V6", Stage: "connect", Expr: `ip startsWith "2001:db8:"`, Score: 2},
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want []string
	}{
		{"192.0.2.7", []string{"V4"}},
		{"::ffff:192.0.2.7", []string{"V4"}},
		{"2001:db8::1", []string{"V6"}},
		{"198.51.100.1", []string{}},
	}
	for _, tt := range tests {
		in := &filters.Input{Conn: &filters.Connection{RemoteIP: netip.MustParseAddr(tt.addr)}}
		v := p.Decide(filters.StageConnect, in, Result{}, nil)
		if got := v.SymbolNames(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: symbols = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestVerdictString(t *testing.T) {
	v := Verdict{
		Action:  policies.ActionQuarantine,
		Score:   12.299999999999999,
		Symbols: []filters.Symbol{sym("BAYES_SPAM", 8), sym("GTUBE", 4.3)},
		Reasons: []string{"score 12.3 >= quarantine 10 (policy domain:example.com)"},
		Policy:  "domain:example.com",
	}
	want := `quarantine score=12.3 policy=domain:example.com symbols=[BAYES_SPAM(8) GTUBE(4.3)] reasons=["score 12.3 >= quarantine 10 (policy domain:example.com)"]`
	if got := v.String(); got != want {
		t.Errorf("String() =\n  %s\nwant\n  %s", got, want)
	}
	if got := (Verdict{Policy: "default"}).String(); got != "accept score=0 policy=default symbols=[]" {
		t.Errorf("String() of the zero verdict = %s", got)
	}
}

// TestDecidePolicyVariable: the policy variable names the recipient's
// policy, so that a rule can act differently per policy (a virus held for
// one domain, refused for the rest).
func TestDecidePolicyVariable(t *testing.T) {
	pols := testPolicies(t)
	p, err := NewPipeline(Config{Rules: []RuleConfig{
		{Name: "VIRUS_HELD", Expr: `has("VIRUS") && policy == "domain:example.com"`, Action: "quarantine"},
		{Name: "VIRUS_REFUSED", Expr: `has("VIRUS") && policy != "domain:example.com"`, Action: "reject", Reply: "554 5.7.0"},
		{Name: "RCPT_POLICY", Stage: "rcpt", Expr: `policy == "domain:example.com"`, Score: 1},
		{Name: "MAIL_POLICY", Stage: "mail", Expr: `policy == "default"`, Score: 1},
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	virus := []filters.Symbol{sym("VIRUS", 1000)}
	for _, tc := range []struct {
		stage filters.Stage
		rcpt  string
		syms  []filters.Symbol
		want  policies.Action
		rule  string
	}{
		{filters.StageData, "bob@example.com", virus, policies.ActionQuarantine, "VIRUS_HELD"},
		{filters.StageData, "x@other.example", virus, policies.ActionReject, "VIRUS_REFUSED"},
		{filters.StageRcpt, "bob@example.com", nil, policies.ActionAccept, "RCPT_POLICY"},
		{filters.StageMail, "", nil, policies.ActionAccept, "MAIL_POLICY"},
	} {
		in := &filters.Input{Env: &filters.Envelope{From: "a@sender.example"}, Rcpt: tc.rcpt}
		v := p.Decide(tc.stage, in, found(tc.syms...), pols.For(tc.rcpt))
		if v.Action != tc.want || !slices.Contains(v.SymbolNames(), tc.rule) || len(v.Symbols) != len(tc.syms)+1 {
			t.Errorf("%v %q: %s, want %v by %s alone", tc.stage, tc.rcpt, v, tc.want, tc.rule)
		}
	}
}
