package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/moatmail/moat/filters/state"
	"github.com/moatmail/moat/filters/state/redistest"
)

// TestRedisBucketsExpire: a bucket in Redis lives until it would be full
// again, and a full one is not kept: Redis holds only the buckets of
// clients that used their allowance lately.
func TestRedisBucketsExpire(t *testing.T) {
	srv := redistest.Start(t)
	cfg := state.DefaultConfig()
	cfg.Backend, cfg.Address = state.BackendRedis, srv.Addr()
	rdb, err := state.NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	s := NewRedisStore(rdb, "p:")
	r := Rate{Limit: 10, Per: time.Hour} // a token every 6 minutes
	take(t, s, "used", r, 0)
	take(t, s, "used", r, 0)
	ttl, err := rdb.PTTL(ctx, "p:rl:used").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 11*time.Minute || ttl > 13*time.Minute {
		t.Errorf("a bucket two tokens short expires in %v, want about 12m", ttl)
	}
	// A peek at a new bucket leaves it full: nothing is stored.
	reqs := []Request{{Key: "peeked", Rate: r, Cost: 1, Peek: true}}
	if _, err := s.Take(ctx, t0, reqs); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, "p:rl:peeked").Result(); n != 0 {
		t.Error("a full bucket was stored")
	}

	// Redis gone: Take fails (the check fails, and on_error decides),
	// it never answers as if the bucket were full.
	srv.Kill()
	if _, err := s.Take(ctx, t0, []Request{{Key: "used", Rate: r, Cost: 1}}); err == nil {
		t.Error("Take with Redis down succeeded")
	}
	srv.Restart()
	var last error
	for range 100 {
		if _, last = s.Take(ctx, t0, []Request{{Key: "used", Rate: r, Cost: 1}}); last == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if last != nil {
		t.Errorf("Take after Redis came back: %v", last)
	}
}
