package bayes

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/moatmail/moat/filters"
)

func TestLogisticCombines(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinSpam, cfg.MinHam = 10, 10
	c := trainedClassifier(t, cfg, 30, 30)
	ctx := context.Background()
	spam, ham := synthCorpus(99, 5, 5, 1500)
	for _, s := range append(spam, ham...) {
		isSpam := s.Name[:4] == "spam"
		r, err := c.Classify(ctx, "", filters.ParseMessage(s.Raw))
		if err != nil {
			t.Fatal(err)
		}
		if isSpam != (r.Logistic > 0.9) || isSpam != (r.Fisher > 0.9) || isSpam != (r.Probability > 0.9) {
			t.Errorf("%s: %+v, want both models to call it %v", s.Name, r, isSpam)
		}
		// The probability is the mean of the two log-odds.
		logit := func(p float64) float64 {
			return math.Max(-fisherLogitBound, math.Min(fisherLogitBound, math.Log(p/(1-p))))
		}
		want := sigmoid((logit(r.Fisher) + math.Log(r.Logistic/(1-r.Logistic))) / 2)
		if math.Abs(r.Probability-want) > 1e-9 {
			t.Errorf("%s: probability %v, want %v from %v and %v", s.Name, r.Probability, want, r.Fisher, r.Logistic)
		}
	}
	// logistic = false: the counts alone decide; the weights still tell.
	cfg.Logistic = false
	only, err := c.WithConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := only.Classify(ctx, "", filters.ParseMessage(spam[0].Raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.Probability != r.Fisher || r.Logistic < 0.9 {
		t.Errorf("logistic off: %+v, want the Fisher probability alone", r)
	}
}

// A message moves the weights until they score it within the margin of
// its class, and no further: learning it again changes nothing.
func TestLogisticLearnsOnErrorOnly(t *testing.T) {
	cfg := DefaultConfig()
	c := newTestClassifier(t, cfg)
	ctx := context.Background()
	msg := filters.ParseMessage(synthMessage(rand.New(rand.NewPCG(3, 4)), true, 1, 600))
	if _, err := c.LearnMessage(ctx, "", msg, Spam); err != nil {
		t.Fatal(err)
	}
	feats := Features(msg, msg.Content())
	weights := func() []float32 {
		out := make([]Counts, len(feats))
		if err := c.store.Lookup(ctx, "", feats, out); err != nil {
			t.Fatal(err)
		}
		w := make([]float32, len(out))
		var z float64
		for i, k := range out {
			w[i] = k.Weight
			z += float64(k.Weight)
		}
		if sigmoid(z) < 1-cfg.LogisticMargin {
			t.Errorf("after learning spam the weights give %v, want at least %v", sigmoid(z), 1-cfg.LogisticMargin)
		}
		return w
	}
	before := weights()
	if before[0] <= 0 {
		t.Fatalf("weight %v after learning spam, want > 0", before[0])
	}
	// Already scored right: learning it again (as another user's copy
	// of the message would be) moves no weight.
	if _, err := c.LearnMessage(ctx, "", msg, Spam); err != nil {
		t.Fatal(err)
	}
	if after := weights(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("weights moved on a message already scored right")
	}
	// The database holds what the mirror says.
	c.store.(*SQLiteStore).mir.drop()
	if reloaded := weights(); fmt.Sprint(reloaded) != fmt.Sprint(before) {
		t.Errorf("reloaded weights differ from the mirror's")
	}
}

// A database written before the logistic model (schema version 1) opens,
// keeps its counts, and is judged by them alone until it has learned
// enough messages with weights.
func TestSQLiteMigratesV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bayes.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range append(sqliteMigrations[0],
		`INSERT INTO tokens (model, hash, spam, ham, seen) VALUES (0, 42, 7, 1, 0)`,
		`UPDATE models SET spam = 300, ham = 300 WHERE id = 0`,
		`PRAGMA user_version = 1`) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	st, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	tot, err := st.Totals(ctx, "")
	if err != nil || tot != (Totals{Spam: 300, Ham: 300}) {
		t.Fatalf("totals %+v, %v; want 300/300 and no logistic messages", tot, err)
	}
	out := make([]Counts, 1)
	if err := st.Lookup(ctx, "", []uint64{42}, out); err != nil || out[0] != (Counts{Spam: 7, Ham: 1}) {
		t.Fatalf("counts %+v, %v", out[0], err)
	}
	var v int
	if err := st.wdb.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != len(sqliteMigrations) {
		t.Errorf("schema version %d, %v; want %d", v, err, len(sqliteMigrations))
	}
	c, err := NewClassifier(DefaultConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.ClassifyFeatures(ctx, "", []uint64{42})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Trained || r.Probability != r.Fisher || r.Logistic != 0.5 || r.Fisher <= 0.5 {
		t.Errorf("old model: %+v, want the counts' probability alone", r)
	}
}
