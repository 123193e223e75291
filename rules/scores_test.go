package rules

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

// TestScoresOverride: [rules.scores] replaces a filter's score for its
// symbol by name, leaves other symbols alone, and never writes into the
// slice the filter handed out.
func TestScoresOverride(t *testing.T) {
	shared := []filters.Symbol{{Name: "A", Score: 1}, {Name: "B", Score: 2}}
	f := &fakeFilter{name: "f", stage: filters.StageData,
		check: func(context.Context, *filters.Input) ([]filters.Symbol, error) { return shared, nil }}
	p, err := NewPipeline(Config{Scores: map[string]float64{"B": 0.5, "C": 9}}, []filters.Filter{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := p.Run(context.Background(), filters.StageData, &filters.Input{}, nil)
	if len(r.Symbols) != 2 || r.Symbols[0].Score != 1 || r.Symbols[1].Score != 0.5 {
		t.Fatalf("symbols %+v, want A 1 and B 0.5", r.Symbols)
	}
	if shared[1].Score != 2 {
		t.Errorf("the filter's own slice was changed: %+v", shared)
	}
	if err := (Config{Scores: map[string]float64{"X": math.NaN()}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "rules.scores.X") {
		t.Errorf("a NaN score: %v, want an error naming rules.scores.X", err)
	}
}
