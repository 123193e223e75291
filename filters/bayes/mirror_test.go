package bayes

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A user without a model (every user of an install not yet trained)
// costs no query per message: the absence is remembered until the
// store's generation moves, and a model made by another writer is found
// then.
func TestMirrorRemembersAbsentModels(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bayes.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := make([]Counts, 1)
	if err := s.Lookup(ctx, "nobody@example.com", []uint64{7}, out); err != nil {
		t.Fatal(err)
	}
	// Within the second, a lookup asks the database nothing: with its
	// read pool closed, it still answers.
	s.rdb.Close()
	if err := s.Lookup(ctx, "nobody@example.com", []uint64{7}, out); err != nil {
		t.Errorf("second lookup of a user without a model queried the database: %v", err)
	}
	s.Close()

	// Another writer makes the model: the reader finds it once its
	// mirror checks the generation.
	r, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := r.Lookup(ctx, "nobody@example.com", []uint64{7}, out); err != nil || out[0] != (Counts{}) {
		t.Fatalf("before: %+v %v", out[0], err)
	}
	if _, err := w.Train(ctx, []Event{{User: "nobody@example.com", Digest: Digest{1}, Features: []uint64{7}, Class: Spam, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	r.mir.mu.Lock()
	r.mir.checked = time.Time{} // the second has passed
	r.mir.mu.Unlock()
	if err := r.Lookup(ctx, "nobody@example.com", []uint64{7}, out); err != nil || out[0] != (Counts{Spam: 1}) {
		t.Errorf("after another writer made the model: %+v %v, want 1 spam", out[0], err)
	}
}
