package rules

import (
	"github.com/moatmail/moat/filters"
	"strings"
	"testing"
)

// declaring is a fake filter that declares its symbols.
type declaring struct {
	*fakeFilter
	syms []string
}

func (d declaring) Symbols() []string { return d.syms }

func TestRuleNameMustNotShadowFilterSymbols(t *testing.T) {
	f := declaring{returns("rdns"), []string{"RDNS_NONE"}}
	for _, tc := range []struct {
		rule string
		ok   bool
	}{
		{"RDNS_NONE", false},     // declared by the filter
		{"RDNS_TEMPFAIL", false}, // the pipeline's failure symbol for rdns
		{"RDNS_ERROR", false},
		{"MY_RULE", true},
	} {
		cfg := Config{Rules: []RuleConfig{{Name: tc.rule, Stage: "data", Expr: "false", Action: "quarantine"}}}
		_, err := NewPipeline(cfg, []filters.Filter{f}, nil)
		if (err == nil) != tc.ok {
			t.Errorf("rule %s: err = %v, want ok=%v", tc.rule, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "rules.rule[0]") {
			t.Errorf("rule %s: error %q does not name rules.rule[0]", tc.rule, err)
		}
	}
}

func TestParseReply(t *testing.T) {
	for in, ok := range map[string]bool{
		"554 5.7.0": true, "451 4.7.1": true, "550 5.1.1": true,
		"554 4.7.0": false, "250 2.0.0": false, "554": false, "554 5.7": false, " 554 5.7.0": false,
		"554 5.7.0 extra": false, "600 6.0.0": false,
	} {
		if _, err := ParseReply(in); (err == nil) != ok {
			t.Errorf("ParseReply(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestRuleReply(t *testing.T) {
	cases := []struct {
		rule RuleConfig
		ok   bool
	}{
		{RuleConfig{Name: "V", Expr: "true", Action: "reject", Reply: "554 5.7.0"}, true},
		{RuleConfig{Name: "V", Expr: "true", Action: "tempfail", Reply: "451 4.7.1"}, true},
		{RuleConfig{Name: "V", Expr: "true", Action: "reject", Reply: "451 4.7.1"}, false},
		{RuleConfig{Name: "V", Expr: "true", Action: "quarantine", Reply: "554 5.7.0"}, false},
	}
	for _, tc := range cases {
		p, err := NewPipeline(Config{Rules: []RuleConfig{tc.rule}}, nil, nil)
		if (err == nil) != tc.ok {
			t.Errorf("%+v: err = %v, want ok=%v", tc.rule, err, tc.ok)
			continue
		}
		if err != nil {
			continue
		}
		v := p.Decide(filters.StageData, &filters.Input{}, Result{}, nil)
		want, _ := ParseReply(tc.rule.Reply)
		if v.Reply != want {
			t.Errorf("%+v: verdict reply %+v, want %+v", tc.rule, v.Reply, want)
		}
	}
}
