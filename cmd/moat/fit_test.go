package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/filters/bayes"
)

// TestRulesFit fits scores on a small labelled corpus where a header
// symbol marks the spam, writes the table, and loads it back through
// [rules] scores_file: the fitted score is in the configuration, and an
// inline [rules.scores] wins over the file.
func TestRulesFit(t *testing.T) {
	dir := t.TempDir()
	spamDir, hamDir := writeFitCorpus(t, dir, func(i int) (spam, ham string) {
		// spam: an invalid Date (INVALID_DATE) and a missing Message-ID
		spam = fmt.Sprintf("From: <s%d@spam.example>\r\nTo: <u@example.com>\r\nSubject: offer %d\r\nDate: someday\r\n\r\nbuy now %d\r\n", i, i, i)
		ham = fmt.Sprintf("From: <h%d@ham.example>\r\nTo: <u@example.com>\r\nSubject: notes %d\r\nDate: Mon, 2 Dec 2002 10:00:00 +0000\r\nMessage-ID: <%d@ham.example>\r\n\r\nmeeting notes %d\r\n", i, i, i, i)
		return spam, ham
	})
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

// TestDateFolds orders by Date, falls back on the topmost Received, and
// counts a message with neither as the oldest.
func TestDateFolds(t *testing.T) {
	msg := func(head string) bayes.Sample { return bayes.Sample{Raw: []byte(head + "\r\n\r\nbody\r\n")} }
	set := []bayes.Sample{
		msg("Date: Wed, 4 Sep 2002 10:00:00 +0000"),                                   // newest
		msg("Received: from a by b; Tue, 3 Sep 2002 10:00:00 +0000"),                  // by Received
		msg("Subject: no date"),                                                       // oldest
		msg("Date: Mon,  2 Sep 2002 10:00:00 +0000 (GMT)"),                            // runs of blanks, comment
		msg("Date: garbage\r\nReceived: from a by b; Sun, 1 Sep 2002 10:00:00 +0000"), // bad Date
	}
	got := dateFolds(set, 5)
	want := []int{4, 3, 0, 2, 1}
	if !slices.Equal(got, want) {
		t.Errorf("dateFolds = %v, want %v", got, want)
	}
	if got := dateFolds(set, 2); !slices.Equal(got, []int{1, 1, 0, 0, 0}) {
		t.Errorf("dateFolds(2) = %v, want [1 1 0 0 0]", got)
	}
}

// TestRulesFitByDate fits with date-ordered folds: the oldest fold is
// left out, the dump lists the rest, and no Bayes band below 0.99 scores
// enough to tag alone.
func TestRulesFitByDate(t *testing.T) {
	dir := t.TempDir()
	spamDir, hamDir := writeFitCorpus(t, dir, func(i int) (spam, ham string) {
		date := time.Date(2002, 9, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour).Format(time.RFC1123Z)
		spam = fmt.Sprintf("From: <s%d@spam.example>\r\nTo: <u@example.com>\r\nSubject: offer %d\r\nDate: %s\r\nMessage-ID: <%d@spam.example>\r\n\r\nbuy cheap pills now %d\r\n", i, i, date, i, i)
		ham = fmt.Sprintf("From: <h%d@ham.example>\r\nTo: <u@example.com>\r\nSubject: notes %d\r\nDate: %s\r\nMessage-ID: <%d@ham.example>\r\n\r\nmeeting notes agenda %d\r\n", i, i, date, i, i)
		return spam, ham
	})
	cfgPath := filepath.Join(dir, "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(testConfig(filepath.Join(dir, "data"), "")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, dump := filepath.Join(dir, "scores.toml"), filepath.Join(dir, "dump.tsv")
	var stdout bytes.Buffer
	if err := cmdRules([]string{"fit", "-config", cfgPath, "--spam", spamDir, "--ham", hamDir, "--by-date", "--dump", dump, "--out", out}, &stdout); err != nil {
		t.Fatalf("rules fit: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "5 folds in date order") {
		t.Errorf("no date-order folds:\n%s", stdout.String())
	}
	d, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(d), "\n"), "\n")
	if len(lines) != 64 {
		t.Errorf("dump has %d lines, want 64 (the oldest 8 of each class left out)", len(lines))
	}
	for _, l := range lines {
		if f := strings.Split(l, "\t"); len(f) != 4 || strings.HasSuffix(f[1], "/0") || strings.HasSuffix(f[1], "/7") {
			t.Errorf("dump line %q: want 4 fields and none of the oldest fold (0-7)", l)
		}
	}
	cfg, err := parseConfig(testConfig(filepath.Join(dir, "data"), "[rules]\nscores_file = \"scores.toml\"\n"), cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range cfg.Filters.Bayes.SpamBands {
		if b.Probability < 0.99 && b.Score > 4 {
			t.Errorf("band %v scores %v: a band below 0.99 must not tag alone (at most 4)", b.Probability, b.Score)
		}
	}
}

// writeFitCorpus writes 40 spam and 40 ham messages, message i of each
// from msg(i), under dir/spam and dir/ham.
func writeFitCorpus(t *testing.T, dir string, msg func(i int) (spam, ham string)) (spamDir, hamDir string) {
	t.Helper()
	spamDir, hamDir = filepath.Join(dir, "spam"), filepath.Join(dir, "ham")
	for _, d := range []string{spamDir, hamDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		spam, ham := msg(i)
		if err := os.WriteFile(filepath.Join(spamDir, fmt.Sprint(i)), []byte(spam), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hamDir, fmt.Sprint(i)), []byte(ham), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return spamDir, hamDir
}
