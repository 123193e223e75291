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
