package ratelimit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatmail/moat/filters/state"
	"github.com/moatmail/moat/filters/state/redistest"
)

// eachStore runs test against every Store implementation: the same
// behaviour is the contract. Each call of open gives an empty store.
func eachStore(t *testing.T, test func(t *testing.T, open func() Store)) {
	t.Run("memory", func(t *testing.T) {
		test(t, func() Store { return NewMemoryStore(DefaultMaxKeys) })
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		cfg := state.DefaultConfig()
		cfg.Backend, cfg.Address = state.BackendRedis, srv.Addr()
		rdb, err := state.NewClient(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		n := 0
		test(t, func() Store {
			n++
			return NewRedisStore(rdb, fmt.Sprintf("test%d:", n))
		})
	})
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// take asks one bucket for one token at t0+at.
func take(t *testing.T, s Store, key string, r Rate, at time.Duration) (bool, float64) {
	t.Helper()
	reqs := []Request{{Key: key, Rate: r, Cost: 1}}
	denied, err := s.Take(context.Background(), t0.Add(at), reqs)
	if err != nil {
		t.Fatal(err)
	}
	return denied < 0, reqs[0].Left
}

func TestBucketRefill(t *testing.T) {
	r := Rate{Limit: 3, Per: time.Minute} // a token every 20s
	type attempt struct {
		at   time.Duration
		ok   bool
		left float64
	}
	tests := []struct {
		name     string
		attempts []attempt
	}{
		{"a new bucket is full", []attempt{
			{0, true, 2}, {0, true, 1}, {0, true, 0}, {0, false, 0},
		}},
		{"a token every 20s", []attempt{
			{0, true, 2}, {0, true, 1}, {0, true, 0},
			{10 * time.Second, false, 0.5},
			{20 * time.Second, true, 0},
			{39 * time.Second, false, 0.95},
			{40 * time.Second, true, 0},
		}},
		{"refill stops at the limit", []attempt{
			{0, true, 2}, {0, true, 1}, {0, true, 0},
			{time.Hour, true, 2}, {time.Hour, true, 1}, {time.Hour, true, 0}, {time.Hour, false, 0},
		}},
		{"refused attempts take nothing", []attempt{
			{0, true, 2}, {0, true, 1}, {0, true, 0},
			{0, false, 0}, {0, false, 0}, {0, false, 0},
			{20 * time.Second, true, 0},
		}},
		{"a clock going back adds nothing", []attempt{
			{time.Minute, true, 2}, {time.Minute, true, 1}, {time.Minute, true, 0},
			{0, false, 0},
			{time.Minute + 20*time.Second, true, 0},
		}},
	}
	eachStore(t, func(t *testing.T, open func() Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open()
				for i, a := range tt.attempts {
					ok, left := take(t, s, "k", r, a.at)
					if ok != a.ok || math.Abs(left-a.left) > 1e-9 {
						t.Errorf("attempt %d at +%v: ok %v left %v, want %v %v", i, a.at, ok, left, a.ok, a.left)
					}
				}
			})
		}
	})
}

func TestTakeAllOrNothing(t *testing.T) { eachStore(t, testTakeAllOrNothing) }

func testTakeAllOrNothing(t *testing.T, open func() Store) {
	ctx := context.Background()
	s := open()
	small, large := Rate{Limit: 1, Per: time.Hour}, Rate{Limit: 10, Per: time.Hour}
	reqs := func() []Request {
		return []Request{{Key: "large", Rate: large, Cost: 1}, {Key: "small", Rate: small, Cost: 1}}
	}
	r := reqs()
	if denied, _ := s.Take(ctx, t0, r); denied != -1 || r[0].Left != 9 || r[1].Left != 0 {
		t.Fatalf("first Take: denied %d, left %v %v", denied, r[0].Left, r[1].Left)
	}
	r = reqs()
	if denied, _ := s.Take(ctx, t0, r); denied != 1 || r[0].Left != 9 || r[1].Left != 0 {
		t.Errorf("second Take: denied %d, left %v %v; want 1, and nothing taken from the large bucket", denied, r[0].Left, r[1].Left)
	}
	// A peek takes nothing, and fails like a take.
	r = []Request{{Key: "large", Rate: large, Cost: 1, Peek: true}}
	if denied, _ := s.Take(ctx, t0, r); denied != -1 || r[0].Left != 9 {
		t.Errorf("peek: denied %d left %v, want -1 9", denied, r[0].Left)
	}
	r = []Request{{Key: "small", Rate: small, Cost: 1, Peek: true}, {Key: "large", Rate: large, Cost: 1}}
	if denied, _ := s.Take(ctx, t0, r); denied != 0 || r[1].Left != 9 {
		t.Errorf("peek at an empty bucket: denied %d, large left %v; want 0, 9", denied, r[1].Left)
	}
	// The same key twice in one Take is one bucket (and one lock).
	r = []Request{{Key: "large", Rate: large, Cost: 1}, {Key: "large", Rate: large, Cost: 1}}
	if denied, _ := s.Take(ctx, t0, r); denied != -1 || r[1].Left != 7 {
		t.Errorf("same key twice: denied %d left %v, want -1 7", denied, r[1].Left)
	}
	if denied, err := s.Take(ctx, t0, nil); denied != -1 || err != nil {
		t.Errorf("empty Take = %d, %v", denied, err)
	}
}

func TestLoweredLimit(t *testing.T) { eachStore(t, testLoweredLimit) }

func testLoweredLimit(t *testing.T, open func() Store) {
	s := open()
	take(t, s, "k", Rate{Limit: 100, Per: time.Hour}, 0)
	ok, left := take(t, s, "k", Rate{Limit: 2, Per: time.Hour}, 0)
	if !ok || left != 1 {
		t.Errorf("after the limit dropped to 2: ok %v left %v, want true 1", ok, left)
	}
}

func TestConcurrentTakesOnOneKey(t *testing.T) { eachStore(t, testConcurrentTakesOnOneKey) }

func testConcurrentTakesOnOneKey(t *testing.T, open func() Store) {
	const limit = 250
	r := Rate{Limit: limit, Per: time.Hour}
	s := open()
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 40 {
				reqs := []Request{{Key: "one", Rate: r, Cost: 1}, {Key: "other", Rate: Rate{Limit: 1 << 20, Per: time.Hour}, Cost: 1}}
				if denied, _ := s.Take(context.Background(), t0, reqs); denied < 0 {
					passed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := passed.Load(); got != limit {
		t.Errorf("%d of 2000 concurrent takes passed, want exactly %d", got, limit)
	}
}

func TestEviction(t *testing.T) {
	const maxKeys = numShards * 16
	r := Rate{Limit: 2, Per: time.Hour}
	s := NewMemoryStore(maxKeys)
	// An abuser empties its bucket and keeps trying.
	take(t, s, "abuser", r, 0)
	take(t, s, "abuser", r, 0)
	// Ten times as many other keys pass through, once each.
	for i := range 10 * maxKeys {
		take(t, s, fmt.Sprintf("k%d", i), r, time.Duration(i)*time.Millisecond)
		if i%100 == 0 {
			if ok, _ := take(t, s, "abuser", r, time.Duration(i)*time.Millisecond); ok {
				t.Fatalf("the abuser passed after %d other keys: its bucket was evicted", i)
			}
		}
	}
	if n := s.Len(); n > maxKeys {
		t.Errorf("%d buckets held, want at most %d", n, maxKeys)
	}
	if err := s.Close(); err != nil || s.Len() != 0 {
		t.Errorf("Close: %v, %d buckets left", err, s.Len())
	}
}

func TestEvictChoice(t *testing.T) {
	now := t0.UnixNano()
	tests := []struct {
		name    string
		buckets map[string]bucket
		taken   []string
		gone    []string // one of these is evicted
	}{
		{"a full bucket before an older one that is not",
			map[string]bucket{"old-empty": {at: now - 100, full: now + 1}, "full": {at: now - 1, full: now}, "busy": {at: now, full: now + 5}},
			nil, []string{"full"}},
		{"otherwise the one used longest ago",
			map[string]bucket{"a": {at: now - 3, full: now + 1}, "b": {at: now - 9, full: now + 1}, "c": {at: now - 1, full: now + 1}},
			nil, []string{"b"}},
		{"never a bucket of the same Take",
			map[string]bucket{"a": {at: now - 3, full: now + 1}, "b": {at: now - 9, full: now + 1}, "c": {at: now - 1, full: now}},
			[]string{"b", "c"}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh := memShard{buckets: map[string]*bucket{}}
			for k, b := range tt.buckets {
				sh.buckets[k] = &b
			}
			var taken []Request
			for _, k := range tt.taken {
				taken = append(taken, Request{Key: k})
			}
			sh.evict(taken, now)
			if len(sh.buckets) != len(tt.buckets)-1 {
				t.Fatalf("%d buckets left, want %d", len(sh.buckets), len(tt.buckets)-1)
			}
			for k := range tt.buckets {
				_, kept := sh.buckets[k]
				if want := !slices.Contains(tt.gone, k); kept != want {
					t.Errorf("bucket %s kept %v, want %v", k, kept, want)
				}
			}
		})
	}
}
