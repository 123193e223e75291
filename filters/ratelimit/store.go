package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"time"
)

// Request asks a token bucket for tokens.
//
// A bucket holds at most Rate.Limit tokens and gains Rate.Limit tokens
// per Rate.Per, continuously; a bucket never used before is full. So a
// client may spend Rate.Limit at once, then Rate.Limit per Rate.Per.
type Request struct {
	// Key names the bucket. The Limiter makes keys of bounded length
	// that are the same on every node (no per-process hash seed), so
	// that a shared store counts a client once.
	Key string
	// Rate is the bucket's size and refill. A bucket's rate is the one of
	// the request that uses it: a changed configuration applies at the
	// next use (tokens above a lowered limit are dropped).
	Rate Rate
	// Cost is how many tokens the request needs.
	Cost float64
	// Peek asks whether the bucket holds Cost tokens without taking them.
	Peek bool
	// Left is set by Take: the tokens in the bucket after the call.
	Left float64
}

// Store keeps token buckets. Implementations are safe for concurrent use.
//
// Take is the whole check in one call, so that a shared backend (Redis,
// issue 18) answers it in one round trip: a Lua script given every key
// and rate, refilling, testing and taking atomically.
type Store interface {
	// Take serves reqs atomically at now: when every bucket holds its
	// request's Cost, each request that is not a Peek takes its Cost and
	// Take returns -1; otherwise no bucket gives anything and Take
	// returns the index of the first request that could not be served.
	// Either way it sets every request's Left.
	Take(ctx context.Context, now time.Time, reqs []Request) (denied int, err error)
	// Close releases the store.
	Close() error
}

// MemoryStore is the embedded Store: buckets in memory, in shards each
// under its own lock, at most a fixed number of them.
//
// Rate-limit state need not survive a restart: a restart costs, at most,
// one more burst per client, while keeping the buckets on disk would cost
// a write per connection, message and recipient (rspamd keeps its own in
// Redis for the same reason: speed over durability). Several nodes behind
// one MX record share their counts through a shared Store instead.
type MemoryStore struct {
	seed     maphash.Seed
	perShard int
	shards   [numShards]memShard
}

// numShards spreads the buckets over independent locks, so that sessions
// of different clients rarely wait for each other.
const numShards = 64

type memShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket is one token bucket. Times are nanoseconds since the Unix epoch.
type bucket struct {
	tokens float64
	at     int64 // when tokens was computed
	full   int64 // when the bucket is full again (a full bucket is as good as none)
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns a store that holds at most maxKeys buckets
// (Config.MaxKeys; at least one per shard). When a shard is full, a new
// bucket takes the place of a full one (a full bucket is what a missing
// one means) or, failing that, of the least recently used of a sample,
// as Redis evicts with maxmemory-policy allkeys-lru: a client that keeps
// hitting its limit keeps its bucket.
func NewMemoryStore(maxKeys int) *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed(), perShard: max(1, maxKeys/numShards)}
	for i := range s.shards {
		s.shards[i].buckets = make(map[string]*bucket)
	}
	return s
}

// Close implements Store. The buckets are dropped.
func (s *MemoryStore) Close() error {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		clear(sh.buckets)
		sh.mu.Unlock()
	}
	return nil
}

// Len returns the number of buckets held.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}

// maxRequests bounds a Take: the Limiter asks at most three buckets at
// once.
const maxRequests = 8

// Take implements Store.
func (s *MemoryStore) Take(ctx context.Context, now time.Time, reqs []Request) (int, error) {
	if len(reqs) == 0 {
		return -1, nil
	}
	if len(reqs) > maxRequests {
		reqs = reqs[:maxRequests]
	}
	// Lock the shards involved in index order (no deadlock between
	// two Takes), each once.
	var idx [maxRequests]int
	var order [maxRequests]int
	for i := range reqs {
		idx[i] = int(maphash.String(s.seed, reqs[i].Key) % numShards)
		order[i] = idx[i]
	}
	locks := order[:len(reqs)]
	slices.Sort(locks)
	locks = slices.Compact(locks)
	for _, i := range locks {
		s.shards[i].mu.Lock()
	}
	defer func() {
		for _, i := range locks {
			s.shards[i].mu.Unlock()
		}
	}()

	t := now.UnixNano()
	var bs [maxRequests]*bucket
	for i := range reqs {
		bs[i] = s.shards[idx[i]].get(reqs[i].Key, reqs[:i], t, s.perShard)
	}
	denied := -1
	for i, r := range reqs {
		b := bs[i]
		b.refill(r.Rate, t)
		if denied < 0 && b.tokens < r.Cost {
			denied = i
		}
	}
	for i, r := range reqs {
		b := bs[i]
		if denied < 0 && !r.Peek {
			b.tokens -= r.Cost
		}
		b.full = t + r.Rate.timeToFill(b.tokens)
		reqs[i].Left = b.tokens
	}
	return denied, nil
}

// get returns the bucket of key, making a full one when there is none;
// the buckets of earlier requests of the same Take (taken) are never
// evicted for it.
func (sh *memShard) get(key string, taken []Request, now int64, limit int) *bucket {
	if b, ok := sh.buckets[key]; ok {
		return b
	}
	if len(sh.buckets) >= limit {
		sh.evict(taken, now)
	}
	b := &bucket{tokens: math.Inf(1), at: now} // refill cuts it to the limit: full
	sh.buckets[key] = b
	return b
}

// evictSample is how many buckets eviction looks at.
const evictSample = 8

// evict removes one bucket: the first full one of a sample, or else the
// one of the sample used longest ago.
func (sh *memShard) evict(taken []Request, now int64) {
	var victim string
	var oldest int64
	n := 0
	for k, b := range sh.buckets { // map order is random: a sample
		if slices.ContainsFunc(taken, func(r Request) bool { return r.Key == k }) {
			continue
		}
		if b.full <= now {
			victim = k
			break
		}
		if victim == "" || b.at < oldest {
			victim, oldest = k, b.at
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(sh.buckets, victim)
}

// refill brings b's tokens up to now under rate, at most to its limit.
// A clock that went back adds nothing.
func (b *bucket) refill(r Rate, now int64) {
	if now > b.at {
		b.tokens += float64(now-b.at) * r.perNano()
		b.at = now
	}
	b.tokens = min(b.tokens, float64(r.Limit))
}
