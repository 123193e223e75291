package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesFit fits scores on a small labelled corpus where a header
// symbol marks the spam, writes the table, and loads it back through
// [rules] scores_file: the fitted score is in the configuration, and an
// inline [rules.scores] wins over the file.
func TestRulesFit(t *testing.T) {
	dir := t.TempDir()
	spamDir, hamDir := filepath.Join(dir, "spam"), filepath.Join(dir, "ham")
	for _, d := range []string{spamDir, hamDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		// spam: an invalid Date (INVALID_DATE) and a missing Message-ID
		spam := fmt.Sprintf("From: <s%d@spam.example>\r\nTo: <u@example.com>\r\nSubject: offer %d\r\nDate: someday\r\n\r\nbuy now %d\r\n", i, i, i)
		ham := fmt.Sprintf("From: <h%d@ham.example>\r\nTo: <u@example.com>\r\nSubject: notes %d\r\nDate: Mon, 2 Dec 2002 10:00:00 +0000\r\nMessage-ID: <%d@ham.example>\r\n\r\nmeeting notes %d\r\n", i, i, i, i)
		os.WriteFile(filepath.Join(spamDir, fmt.Sprint(i)), []byte(spam), 0o644)
		os.WriteFile(filepath.Join(hamDir, fmt.Sprint(i)), []byte(ham), 0o644)
	}
	cfgPath := filepath.Join(dir, "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(testConfig(filepath.Join(dir, "data"), "")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "scores.toml")
	var stdout bytes.Buffer
	if err := cmdRules([]string{"fit", "-config", cfgPath, "--spam", spamDir, "--ham", hamDir, "--out", out}, &stdout); err != nil {
		t.Fatalf("rules fit: %v\n%s", err, stdout.String())
	}
	table, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "spam recall 100.00 %, ham flagged 0.00 %") {
		t.Errorf("the fit does not separate a separable corpus:\n%s", stdout.String())
	}
	cfg, err := parseConfig(testConfig(filepath.Join(dir, "data"), "[rules]\nscores_file = \"scores.toml\"\n[rules.scores]\nMISSING_MESSAGE_ID = 0.25\n"), cfgPath)
	if err != nil {
		t.Fatalf("loading the fitted table: %v\n%s", err, table)
	}
	if sc := cfg.Rules.Scores["INVALID_DATE"]; sc < 2.5 {
		t.Errorf("INVALID_DATE fitted to %v, want it raised towards the tag score (5):\n%s", sc, table)
	}
	if sc := cfg.Rules.Scores["MISSING_MESSAGE_ID"]; sc != 0.25 {
		t.Errorf("MISSING_MESSAGE_ID = %v, want the inline 0.25 to win over the file", sc)
	}
	if len(cfg.Filters.Bayes.SpamBands) != len(fitSpamEdges) {
		t.Errorf("the file's Bayes bands were not applied: %+v", cfg.Filters.Bayes.SpamBands)
	}
}
