package heuristics

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

// TestCorpusHitRates runs the heuristics on every message of the
// SpamAssassin corpus fetched by scripts/corpus/fetch.sh and prints each
// symbol's hit rate on spam, easy ham and hard ham. It runs only when
// MOAT_CORPUS names the corpus folder (the one holding spam/ and ham/):
//
//	scripts/corpus/fetch.sh
//	MOAT_CORPUS=$PWD/.cache/corpus go test -run CorpusHitRates -v ./filters/heuristics
//
// MOAT_CORPUS_SHOW=SYMBOL prints the ham files the symbol hits, with its
// reason. A symbol that hits ham more often than spam fails the test: it
// must not ship.
func TestCorpusHitRates(t *testing.T) {
	dir := os.Getenv("MOAT_CORPUS")
	if dir == "" {
		t.Skip("MOAT_CORPUS not set: see the comment for how to run the corpus hit rates")
	}
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	show := os.Getenv("MOAT_CORPUS_SHOW")
	total := map[string]int{}
	hits := map[string]map[string]int{}
	scored := map[string]int{} // messages whose heuristics alone reach 5
	any := map[string]int{}
	maxSum := map[string]float64{}
	for _, sub := range []string{"spam", "ham"} {
		files, err := filepath.Glob(filepath.Join(dir, sub, "*.txt"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no messages in %s/%s (run scripts/corpus/fetch.sh): %v", dir, sub, err)
		}
		for _, file := range files {
			class := sub
			if sub == "ham" {
				class = "easy-ham"
				if strings.HasPrefix(filepath.Base(file), "hard-ham") {
					class = "hard-ham"
				}
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage(crlf(raw))})
			if err != nil {
				t.Fatal(err)
			}
			total[class]++
			sum := 0.0
			for _, s := range res.Symbols {
				if hits[s.Name] == nil {
					hits[s.Name] = map[string]int{}
				}
				hits[s.Name][class]++
				sum += s.Score
				if show != "" && slices.Contains(strings.Split(show, ","), s.Name) && class != "spam" {
					t.Logf("%s %s %s: %s", s.Name, class, filepath.Base(file), s.Reason)
				}
			}
			if len(res.Symbols) > 0 {
				any[class]++
			}
			maxSum[class] = max(maxSum[class], sum)
			if sum >= 5 {
				scored[class]++
			}
		}
	}
	pct := func(n int, class string) string { return fmt.Sprintf("%.1f %%", 100*float64(n)/float64(total[class])) }
	var b strings.Builder
	fmt.Fprintf(&b, "\n| symbol | score | spam (%d) | easy ham (%d) | hard ham (%d) |\n|---|---|---|---|---|\n",
		total["spam"], total["easy-ham"], total["hard-ham"])
	cfg := DefaultConfig()
	for _, r := range mustRules(t, cfg) {
		h := hits[r.name]
		fmt.Fprintf(&b, "| `%s` | %.1f | %s (%d) | %s (%d) | %s (%d) |\n", r.name, r.score,
			pct(h["spam"], "spam"), h["spam"], pct(h["easy-ham"], "easy-ham"), h["easy-ham"], pct(h["hard-ham"], "hard-ham"), h["hard-ham"])
	}
	fmt.Fprintf(&b, "| any symbol | | %s | %s | %s |\n", pct(any["spam"], "spam"), pct(any["easy-ham"], "easy-ham"), pct(any["hard-ham"], "hard-ham"))
	fmt.Fprintf(&b, "| heuristics alone ≥ 5 | | %s | %s | %s |\n", pct(scored["spam"], "spam"), pct(scored["easy-ham"], "easy-ham"), pct(scored["hard-ham"], "hard-ham"))
	fmt.Fprintf(&b, "| highest heuristics sum | | %.1f | %.1f | %.1f |\n", maxSum["spam"], maxSum["easy-ham"], maxSum["hard-ham"])
	t.Log(b.String())
	for name, h := range hits {
		hamRate := float64(h["easy-ham"]+h["hard-ham"]) / float64(total["easy-ham"]+total["hard-ham"])
		spamRate := float64(h["spam"]) / float64(total["spam"])
		if hamRate > spamRate {
			t.Errorf("%s hits %.2f %% of ham and %.2f %% of spam: it must not ship", name, 100*hamRate, 100*spamRate)
		}
	}
}

// mustRules returns the rules of cfg in their order.
func mustRules(t *testing.T, cfg Config) []rule {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(f.rules)
}

// crlf returns raw with its line ends made CRLF, as the SMTP front stores
// a message.
func crlf(raw []byte) []byte {
	s := strings.ReplaceAll(string(raw), "\r\n", "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}
