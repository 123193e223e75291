package bayes

import (
	"context"
	"errors"
	"fmt"

	"github.com/moatmail/moat/filters"
)

// Filter is the Bayes check, a data-stage filter over a Classifier. It is
// safe for concurrent use.
type Filter struct {
	c *Classifier
}

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.SymbolDeclarer = (*Filter)(nil)
)

// NewFilter returns the filter over c. The caller keeps ownership of c
// (and closes it).
func NewFilter(c *Classifier) *Filter { return &Filter{c: c} }

// Name implements filters.Filter.
func (f *Filter) Name() string { return "bayes" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageData }

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return Symbols }

var errNoMessage = errors.New("bayes: no message (not at the data stage)")

// Check implements filters.Filter. With Config.PerUser and a single
// recipient, that recipient's model is used once it is trained.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Msg == nil {
		return filters.Result{}, errNoMessage
	}
	user := ""
	if f.c.cfg.PerUser && in.Env != nil && len(in.Env.Rcpts) == 1 {
		user = in.Env.Rcpts[0]
	}
	r, err := f.c.Classify(ctx, user, in.Msg)
	if err != nil {
		return filters.Result{}, err
	}
	return filters.Result{Symbols: f.c.Symbols(r)}, nil
}

// Symbols maps a classification to the filter's symbols: none for a
// probability between the bands.
func (c *Classifier) Symbols(r Result) []filters.Symbol {
	if !r.Trained {
		return []filters.Symbol{{Name: SymUntrained, Score: c.cfg.UntrainedScore, Reason: "too few messages learned"}}
	}
	var syms []filters.Symbol
	model := "global"
	if r.User != "" {
		model = "user"
	}
	if name, score, ok := c.cfg.band(r.Probability); ok {
		syms = append(syms, filters.Symbol{Name: name, Score: score,
			Reason: fmt.Sprintf("spam probability %.4f (counts %.4f, weights %.4f; %s model, %d of %d features combined)",
				r.Probability, r.Fisher, r.Logistic, model, r.Significant, r.Features)})
	}
	// Judged once the model has counted the language of as much ham as
	// it needs to judge at all: a model learned before languages were
	// counted knows none, and every language would look new to it.
	if r.Language != "" && r.HamWithLanguage >= c.cfg.MinHam &&
		float64(r.LanguageHam) < c.cfg.FamiliarLanguageShare*float64(r.HamWithLanguage) {
		syms = append(syms, filters.Symbol{Name: SymLangUnfamiliar, Score: c.cfg.UnfamiliarLanguageScore,
			Reason: fmt.Sprintf("text in %s: %d of the %s model's %d ham of a known language were", r.Language, r.LanguageHam, model, r.HamWithLanguage)})
	}
	return syms
}
