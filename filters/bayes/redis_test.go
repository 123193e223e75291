package bayes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moatmail/moat/filters/state"
	"github.com/moatmail/moat/filters/state/redistest"
)

func redisClient(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	cfg := state.DefaultConfig()
	cfg.Backend, cfg.Address = state.BackendRedis, srv.Addr()
	rdb, err := state.NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

func newRedisStore(t *testing.T, rdb *redis.Client, prefix string) *RedisStore {
	t.Helper()
	s, err := NewRedisStore(context.Background(), rdb, prefix, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRedisMatchesSQLite: the same trainings (learning, moving a message
// to the other class, forgetting, logistic steps, per-user models) give
// the same counts and totals in both stores, from the mirror and from a
// fresh reader.
func TestRedisMatchesSQLite(t *testing.T) {
	ctx := context.Background()
	_, rdb := redisClient(t)
	sq, err := OpenSQLite(filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	rs := newRedisStore(t, rdb, "a:")
	r := rand.New(rand.NewPCG(1, 2))
	users := []string{"", "bob@example.com"}
	const feats = 300
	for round := range 30 {
		var evs []Event
		for range 1 + r.IntN(5) {
			ev := Event{User: users[r.IntN(2)], Digest: Digest{byte(r.IntN(12))}, Class: Class(r.IntN(3)),
				Time: time.Unix(1_700_000_000+int64(round), 0)}
			for range 1 + r.IntN(40) {
				ev.Features = append(ev.Features, uint64(r.IntN(feats))<<40|uint64(r.IntN(3)))
			}
			if r.IntN(3) == 0 {
				ev.Step = r.Float64() - 0.5
			}
			evs = append(evs, ev)
		}
		n1, err1 := sq.Train(ctx, evs)
		n2, err2 := rs.Train(ctx, evs)
		if err1 != nil || err2 != nil || n1 != n2 {
			t.Fatalf("round %d: sqlite %d %v, redis %d %v", round, n1, err1, n2, err2)
		}
	}
	all := make([]uint64, 0, feats*3)
	for i := range feats {
		for j := range 3 {
			all = append(all, uint64(i)<<40|uint64(j))
		}
	}
	fresh := newRedisStore(t, rdb, "a:")
	for _, u := range users {
		want := make([]Counts, len(all))
		if err := sq.Lookup(ctx, u, all, want); err != nil {
			t.Fatal(err)
		}
		for name, st := range map[string]Store{"writer": rs, "fresh reader": fresh} {
			got := make([]Counts, len(all))
			if err := st.Lookup(ctx, u, all, got); err != nil {
				t.Fatal(err)
			}
			for i := range all {
				if got[i].Spam != want[i].Spam || got[i].Ham != want[i].Ham || abs32(got[i].Weight-want[i].Weight) > 1e-5 {
					t.Fatalf("%s, model %q, feature %x: redis %+v, sqlite %+v", name, u, all[i], got[i], want[i])
				}
			}
			t1, _ := sq.Totals(ctx, u)
			t2, _ := st.Totals(ctx, u)
			if t1 != t2 {
				t.Errorf("%s, model %q: totals redis %+v, sqlite %+v", name, u, t2, t1)
			}
		}
	}
	s1, _ := sq.Stats(ctx)
	s2, err := rs.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s1.Models) != fmt.Sprint(s2.Models) {
		t.Errorf("stats: redis %+v, sqlite %+v", s2.Models, s1.Models)
	}
}

func abs32(f float32) float32 {
	if f < 0 {
		return -f
	}
	return f
}

// TestRedisNodesShareTraining: a node learns another node's training
// from the change log once its mirror checks (at most a second later),
// without reloading the model; a node that missed more than the log holds
// reloads.
func TestRedisNodesShareTraining(t *testing.T) {
	ctx := context.Background()
	_, rdb := redisClient(t)
	a, b := newRedisStore(t, rdb, "n:"), newRedisStore(t, rdb, "n:")
	out := make([]Counts, 1)
	if err := b.Lookup(ctx, "", []uint64{42}, out); err != nil || out[0] != (Counts{}) {
		t.Fatalf("before: %+v %v", out[0], err)
	}
	b.mir.mu.RLock()
	loaded := b.mir.models[0]
	b.mir.mu.RUnlock()
	if _, err := a.Train(ctx, []Event{{Digest: Digest{1}, Features: []uint64{42}, Class: Spam, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	due := func(s *RedisStore) {
		s.mir.mu.Lock()
		s.mir.checked = time.Time{}
		s.mir.mu.Unlock()
	}
	due(b)
	if err := b.Lookup(ctx, "", []uint64{42}, out); err != nil || out[0].Spam != 1 {
		t.Errorf("after A trained: %+v %v, want 1 spam", out[0], err)
	}
	b.mir.mu.RLock()
	same := b.mir.models[0] == loaded
	b.mir.mu.RUnlock()
	if !same {
		t.Error("B reloaded the model instead of applying the log")
	}
	// A user's model made on A is found on B.
	if _, err := a.Train(ctx, []Event{{User: "u@example.com", Digest: Digest{2}, Features: []uint64{7}, Class: Ham, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	due(b)
	if err := b.Lookup(ctx, "u@example.com", []uint64{7}, out); err != nil || out[0].Ham != 1 {
		t.Errorf("user model from A: %+v %v", out[0], err)
	}
	// More trainings than the log keeps: B reloads and is right.
	for i := range logLength + 50 {
		if _, err := a.Train(ctx, []Event{{Digest: Digest{3, byte(i), byte(i >> 8)}, Features: []uint64{42}, Class: Spam, Time: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	rdb.XTrimMaxLen(ctx, "n:bayes:log", 10)
	due(b)
	if err := b.Lookup(ctx, "", []uint64{42}, out); err != nil || out[0].Spam != logLength+51 {
		t.Errorf("after many trainings: %+v %v, want %d spam", out[0], err, logLength+51)
	}
	// A learning the same message as B at once counts it once.
	ev := Event{Digest: Digest{9}, Features: []uint64{5}, Class: Spam, Time: time.Now()}
	errs := make(chan error, 2)
	for _, s := range []*RedisStore{a, b} {
		go func() { _, err := s.Train(ctx, []Event{ev}); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	due(a)
	if err := a.Lookup(ctx, "", []uint64{5}, out); err != nil || out[0].Spam != 1 {
		t.Errorf("one message learned on two nodes at once: %+v %v, want 1 spam", out[0], err)
	}
}

// TestRedisPrune: the rows stay within max_tokens (Redis memory bounded)
// and the other node's mirror drops what was pruned.
func TestRedisPrune(t *testing.T) {
	ctx := context.Background()
	_, rdb := redisClient(t)
	a, b := newRedisStore(t, rdb, "p:"), newRedisStore(t, rdb, "p:")
	old := time.Now().Add(-60 * 24 * time.Hour)
	events := []Event{
		{Digest: Digest{1}, Features: []uint64{1, 2, 3, 6}, Class: Spam, Time: old},
		{Digest: Digest{2}, Features: []uint64{4, 5}, Class: Ham, Time: time.Now()},
		{Digest: Digest{3}, Features: []uint64{6}, Class: Ham, Time: old},
	}
	if _, err := a.Train(ctx, events); err != nil {
		t.Fatal(err)
	}
	out := make([]Counts, 6)
	b.Lookup(ctx, "", []uint64{1, 2, 3, 4, 5, 6}, out)
	for _, tc := range []struct {
		max, removed int
		left         string
	}{{10, 0, "[1 2 3 4 5 6]"}, {5, 3, "[4 5 6]"}, {2, 2, "[6]"}} {
		n, err := a.Prune(ctx, tc.max, time.Now().Add(-30*24*time.Hour))
		if err != nil || n != tc.removed {
			t.Fatalf("prune to %d: %d %v, want %d", tc.max, n, err, tc.removed)
		}
		for _, s := range []*RedisStore{a, b} {
			s.mir.mu.Lock()
			s.mir.checked = time.Time{}
			s.mir.mu.Unlock()
			s.Lookup(ctx, "", []uint64{1, 2, 3, 4, 5, 6}, out)
			var left []int
			for i, c := range out {
				if c != (Counts{}) {
					left = append(left, i+1)
				}
			}
			if fmt.Sprint(left) != tc.left {
				t.Errorf("prune to %d: left %v, want %s", tc.max, left, tc.left)
			}
		}
		if rows, _ := rdb.Get(ctx, "p:bayes:rows").Int(); rows > tc.max {
			t.Errorf("prune to %d: %d rows counted", tc.max, rows)
		}
	}
}

// TestRedisDown: with Redis gone, a node that holds the model classifies
// from its mirror; one that must load fails (the check's on_error
// decides); training fails. Back, it all works again.
func TestRedisDown(t *testing.T) {
	ctx := context.Background()
	srv, rdb := redisClient(t)
	a := newRedisStore(t, rdb, "d:")
	if _, err := a.Train(ctx, []Event{{Digest: Digest{1}, Features: []uint64{42}, Class: Spam, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	out := make([]Counts, 1)
	a.Lookup(ctx, "", []uint64{42}, out)
	srv.Kill()
	a.mir.mu.Lock()
	a.mir.checked = time.Time{}
	a.mir.mu.Unlock()
	if err := a.Lookup(ctx, "", []uint64{42}, out); err != nil || out[0].Spam != 1 {
		t.Errorf("mirrored model with Redis down: %+v %v", out[0], err)
	}
	if err := a.Lookup(ctx, "new@example.com", []uint64{42}, out); err == nil {
		t.Error("a model never looked up, with Redis down: no error")
	}
	if _, err := a.Train(ctx, []Event{{Digest: Digest{2}, Features: []uint64{42}, Class: Spam, Time: time.Now()}}); err == nil {
		t.Error("training with Redis down succeeded")
	}
	srv.Restart() // empty: no persistence
	var err error
	for range 100 {
		if _, err = a.Train(ctx, []Event{{Digest: Digest{3}, Features: []uint64{43}, Class: Ham, Time: time.Now()}}); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("training after Redis came back: %v", err)
	}
	a.mir.mu.Lock()
	a.mir.checked = time.Time{}
	a.mir.mu.Unlock()
	if err := a.Lookup(ctx, "", []uint64{43}, out); err != nil || out[0].Ham != 1 {
		t.Errorf("after the restart: %+v %v", out[0], err)
	}
}
