package bayes

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" for none
	}{
		{"default", func(*Config) {}, ""},
		{"negative min_spam", func(c *Config) { c.MinSpam = -1 }, "min_spam"},
		{"negative min_ham", func(c *Config) { c.MinHam = -1 }, "min_ham"},
		{"tiny max_tokens", func(c *Config) { c.MaxTokens = 10 }, "max_tokens"},
		{"negative prune_age", func(c *Config) { c.PruneAge = -1 }, "prune_age"},
		{"NaN untrained score", func(c *Config) { c.UntrainedScore = math.NaN() }, "untrained_score"},
		{"NaN language score", func(c *Config) { c.UnfamiliarLanguageScore = math.NaN() }, "unfamiliar_language_score"},
		{"language share over 1", func(c *Config) { c.FamiliarLanguageShare = 2 }, "familiar_language_share"},
		{"language check off", func(c *Config) { c.FamiliarLanguageShare = 0 }, ""},
		{"spam band below 0.5", func(c *Config) { c.SpamBands[0].Probability = 0.3 }, "spam_bands[0].probability"},
		{"ham band above 0.5", func(c *Config) { c.HamBands[1].Probability = 0.7 }, "ham_bands[1].probability"},
		{"infinite band score", func(c *Config) { c.HamBands[0].Score = math.Inf(-1) }, "ham_bands[0].score"},
		{"autolearn thresholds crossed", func(c *Config) {
			c.Autolearn = true
			c.AutolearnHamScore = 20
		}, "autolearn_ham_score"},
		{"crossed but off", func(c *Config) { c.AutolearnHamScore = 20 }, ""},
		{"max_significant 0", func(c *Config) { c.MaxSignificant = 0 }, "max_significant"},
		{"min_strength 0.5", func(c *Config) { c.MinStrength = 0.5 }, "min_strength"},
		{"robinson_s 0", func(c *Config) { c.RobinsonS = 0 }, "robinson_s"},
		{"logistic_rate 0", func(c *Config) { c.LogisticRate = 0 }, "logistic_rate"},
		{"logistic_epochs 0", func(c *Config) { c.LogisticEpochs = 0 }, "logistic_epochs"},
		{"logistic_margin 0.5", func(c *Config) { c.LogisticMargin = 0.5 }, "logistic_margin"},
		{"logistic off", func(c *Config) { c.Logistic = false }, ""},
	} {
		c := DefaultConfig()
		tc.edit(&c)
		before := c
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.want)
		}
		if c.Path != before.Path || c.MinSpam != before.MinSpam {
			t.Errorf("%s: Validate changed the config", tc.name)
		}
	}
}

func TestBands(t *testing.T) {
	c := DefaultConfig()
	// Bands in any order: the strongest matching one wins.
	c.SpamBands[0], c.SpamBands[2] = c.SpamBands[2], c.SpamBands[0]
	for _, tc := range []struct {
		p     float64
		name  string
		score float64
	}{
		{1, SymSpam, 8}, {0.999, SymSpam, 8}, {0.995, SymSpam, 7.1}, {0.99, SymSpam, 7.1}, {0.97, SymSpam, 4},
		{0.8, SymSpam, 4}, {0.79, SymSpam, 3.6}, {0.55, SymSpam, 3.6}, {0.54, "", 0}, {0.5, "", 0}, {0.06, "", 0},
		{0.05, SymHam, 0}, {0.02, SymHam, 0}, {0.01, SymHam, -0.6}, {0.005, SymHam, -0.6},
		{0.001, SymHam, -3}, {0, SymHam, -3},
	} {
		name, score, ok := c.band(tc.p)
		if name != tc.name || score != tc.score || ok != (tc.name != "") {
			t.Errorf("band(%v) = %q %v %v, want %q %v", tc.p, name, score, ok, tc.name, tc.score)
		}
	}
}

func TestSpamThreshold(t *testing.T) {
	c := DefaultConfig()
	if got := c.SpamThreshold(); got != 0.55 {
		t.Errorf("default: %v, want 0.55", got)
	}
	c.SpamBands = nil
	if got := c.SpamThreshold(); got != 1 {
		t.Errorf("no bands: %v, want 1", got)
	}
}

func TestProbabilityForScore(t *testing.T) {
	c := DefaultConfig() // 0.999 → 8, 0.99 → 7.1, 0.95 → 4, 0.80 → 4, 0.55 → 3.6
	for score, want := range map[float64]float64{5: 0.99, 7.1: 0.99, 7.5: 0.999, 4: 0.80, 3.7: 0.80, 3.6: 0.55, 1: 0.55} {
		if got, ok := c.ProbabilityForScore(score); !ok || got != want {
			t.Errorf("ProbabilityForScore(%v) = %v, %v; want %v", score, got, ok, want)
		}
	}
	if got, ok := c.ProbabilityForScore(8.5); ok || got != 1 {
		t.Errorf("ProbabilityForScore(8.5) = %v, %v; want 1, false (no band scores 8.5)", got, ok)
	}
}

func TestDatabasePath(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"", "/var/lib/moat/bayes.db"},
		{"tokens.db", "/var/lib/moat/tokens.db"},
		{"/srv/bayes.db", "/srv/bayes.db"},
	} {
		c := DefaultConfig()
		c.Path = tc.path
		if got := DatabasePath(c, "/var/lib/moat"); got != filepath.FromSlash(tc.want) {
			t.Errorf("DatabasePath(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
