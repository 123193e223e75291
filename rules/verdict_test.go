package rules

import (
	"slices"
	"testing"

	"github.com/moatmail/moat/filters"
)

func TestSymbolDetails(t *testing.T) {
	v := Verdict{Symbols: []filters.Symbol{
		{Name: "BAYES_SPAM", Score: 6.6, Reason: "spam probability 0.9931"},
		{Name: "DKIM_NONE", Score: 0},
		{Name: "SUBJ_MONEY", Score: -1.25, Reason: "cash"},
	}}
	want := []string{"BAYES_SPAM(6.6): spam probability 0.9931", "DKIM_NONE(0)", "SUBJ_MONEY(-1.25): cash"}
	if got := v.SymbolDetails(); !slices.Equal(got, want) {
		t.Errorf("SymbolDetails() = %q, want %q", got, want)
	}
	if got := (Verdict{}).SymbolDetails(); len(got) != 0 {
		t.Errorf("no symbols: %q", got)
	}
}
