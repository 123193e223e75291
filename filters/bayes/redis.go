package bayes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps the models in Redis, shared by every gateway node that
// uses the same server and key prefix: a message learned through one
// node's IMAP review is known to every node within a second.
//
// The in-memory mirror (mirror.go) stays the fast path: classification
// reads only the mirror. Every training and prune bumps a generation
// counter and appends its changes to a capped log (a Redis stream, the
// last logLength entries); each node compares the counter at most once a
// second and patches its mirror from the log, or reloads a model when
// the log no longer holds what it missed.
//
// Keys, under the prefix P ("moat:bayes:" by default):
//
//	P buckets                 how many buckets a model's features are spread over
//	P models                  user → model id (the global model "" is 0)
//	P model-seq               the last model id given
//	P m:<id>                  a model's totals (spam, ham, logistic) and its feature rows
//	P t:<id>:<bucket>         a hash of feature → packed counts (20 bytes)
//	P learned, P learned-at   the learned messages' classes, and when they were learned
//	P gen, P log, P rows      the generation, the change log, all feature rows
//
// Memory: features are grouped into buckets of about 64 (by the low bits
// of their hash), so that each bucket is a small hash that Redis keeps as
// a listpack (hash-max-listpack-entries 128, the default): some 30 bytes
// a feature, where one key per feature costs over 100. Prune bounds the
// rows to max_tokens, so Redis's memory is bounded by it.
type RedisStore struct {
	rdb     redis.UniversalClient
	prefix  string
	buckets uint64 // a power of two
	mir     mirror
}

var _ Store = (*RedisStore)(nil)

// logLength is how many trainings the change log keeps: a node that
// missed more reloads its models.
const logLength = 256

// maxLogged bounds the changes of one log entry: a larger training (`moat
// bayes train` of a corpus) logs only that it happened, and the other
// nodes reload.
const maxLogged = 1 << 20

// NewRedisStore returns a store over rdb with keys under
// prefix+"bayes:". maxTokens (Config.MaxTokens) sizes the buckets when
// the store is new; the first node decides for all (a node that starts
// while Redis is down uses its own count, the same for the same
// max_tokens). The caller keeps ownership of rdb.
func NewRedisStore(ctx context.Context, rdb redis.UniversalClient, prefix string, maxTokens int) (*RedisStore, error) {
	s := &RedisStore{rdb: rdb, prefix: prefix + "bayes:", mir: newMirror()}
	want := uint64(1) << bits.Len64(uint64(max(64, maxTokens/64))-1)
	s.buckets = want
	if err := rdb.SetNX(ctx, s.prefix+"buckets", want, 0).Err(); err != nil {
		// Redis is down: nodes with the same max_tokens agree anyway.
		return s, nil
	}
	n, err := rdb.Get(ctx, s.prefix+"buckets").Uint64()
	if err != nil {
		return s, nil
	}
	if n == 0 || n&(n-1) != 0 {
		return nil, fmt.Errorf("bayes: redis: stored bucket count %d is not a power of two", n)
	}
	s.buckets = n
	return s, nil
}

// Close implements Store; the client stays open (its owner closes it).
func (s *RedisStore) Close() error { return nil }

func (s *RedisStore) bucketOf(h uint64) uint32 { return uint32(h & (s.buckets - 1)) }

func (s *RedisStore) bucketKey(model int64, b uint32) string {
	return s.prefix + "t:" + strconv.FormatInt(model, 10) + ":" + strconv.FormatUint(uint64(b), 10)
}

// generation implements source.
func (s *RedisStore) generation(ctx context.Context) (int64, error) {
	g, err := s.rdb.Get(ctx, s.prefix+"gen").Int64()
	if errors.Is(err, redis.Nil) {
		// A new (or emptied) store: the counter starts now, as the
		// scripts start it.
		if err = s.rdb.SetNX(ctx, s.prefix+"gen", time.Now().UnixMilli(), 0).Err(); err == nil {
			g, err = s.rdb.Get(ctx, s.prefix+"gen").Int64()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("bayes generation: redis: %w", err)
	}
	return g, nil
}

// modelID implements source.
func (s *RedisStore) modelID(ctx context.Context, user string) (int64, error) {
	if user == "" {
		return 0, nil
	}
	id, err := s.rdb.HGet(ctx, s.prefix+"models", user).Int64()
	if errors.Is(err, redis.Nil) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bayes model of %q: redis: %w", user, err)
	}
	return id, nil
}

// ensureScript returns a user's model id, making one.
var ensureScript = redis.NewScript(`
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then return tonumber(id) end
id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], id)
return id
`)

func (s *RedisStore) ensureModel(ctx context.Context, user string) (int64, error) {
	if user == "" {
		return 0, nil
	}
	id, err := ensureScript.Run(ctx, s.rdb, []string{s.prefix + "models", s.prefix + "model-seq"}, user).Int64()
	if err != nil {
		return 0, fmt.Errorf("bayes model of %q: redis: %w", user, err)
	}
	return id, nil
}

// Counts are packed as spam, ham (uint32), weight (float64), last seen
// (uint32, Unix seconds), little-endian: struct '<I4I4dI4' in Lua.
func unpackCounts(v string) Counts {
	if len(v) != 20 {
		return Counts{}
	}
	b := []byte(v)
	return Counts{Spam: binary.LittleEndian.Uint32(b), Ham: binary.LittleEndian.Uint32(b[4:]),
		Weight: float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8:])))}
}

// load implements source: every bucket of the model, pipelined, with the
// generation read before and after (again when a training came between,
// at most three times; then the model may lack part of that training
// until its next reload).
func (s *RedisStore) load(ctx context.Context, id int64) (*memModel, int64, error) {
	var m *memModel
	var gen int64
	for range 3 {
		g0, err := s.generation(ctx)
		if err != nil {
			return nil, 0, err
		}
		if m, err = s.loadOnce(ctx, id); err != nil {
			return nil, 0, err
		}
		g1, err := s.generation(ctx)
		if err != nil {
			return nil, 0, err
		}
		gen = g1
		if g0 == g1 {
			break
		}
	}
	return m, gen, nil
}

func (s *RedisStore) loadOnce(ctx context.Context, id int64) (*memModel, error) {
	m := &memModel{counts: make(map[uint64]Counts)}
	tot, err := s.rdb.HMGet(ctx, s.prefix+"m:"+strconv.FormatInt(id, 10), "spam", "ham", "logistic").Result()
	if err != nil {
		return nil, fmt.Errorf("bayes load: redis: %w", err)
	}
	m.totals = Totals{Spam: asInt(tot[0]), Ham: asInt(tot[1]), Logistic: asInt(tot[2])}
	const chunk = 1024
	for b := uint64(0); b < s.buckets; b += chunk {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, 0, chunk)
		for i := b; i < min(b+chunk, s.buckets); i++ {
			cmds = append(cmds, pipe.HGetAll(ctx, s.bucketKey(id, uint32(i))))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("bayes load: redis: %w", err)
		}
		for _, c := range cmds {
			for f, v := range c.Val() {
				if len(f) == 8 {
					m.counts[binary.LittleEndian.Uint64([]byte(f))] = unpackCounts(v)
				}
			}
		}
	}
	return m, nil
}

func asInt(v any) int64 {
	str, _ := v.(string)
	n, _ := strconv.ParseInt(str, 10, 64)
	return n
}

// Totals implements Store.
func (s *RedisStore) Totals(ctx context.Context, user string) (Totals, error) {
	return s.mir.totals(ctx, s, user)
}

// Lookup implements Store, from the mirror.
func (s *RedisStore) Lookup(ctx context.Context, user string, features []uint64, out []Counts) error {
	return s.mir.lookup(ctx, s, user, features, out)
}

// learnedField names a learned message in P learned: the model id, ':'
// and the digest's bytes.
func learnedField(k learnedKey) string {
	return strconv.FormatInt(k.model, 10) + ":" + string(k.digest[:])
}

// trainScript applies a training plan if the learned records it read are
// unchanged. ARGV: the prefix; the records read (model u32, digest c32,
// class u8 each); the records to write (same); the deltas (model u32,
// bucket u32, feature c8, spam i32, ham i32, weight double, seen u32);
// the totals (model u32, spam i32, ham i32, logistic i32); now (Unix
// seconds); whether to log the deltas (1) or only that they happened
// (0); the log's length; now in milliseconds (a new counter's start). It returns the
// new generation, or -1 when a record changed (the caller plans again).
var trainScript = redis.NewScript(`
local P = ARGV[1]
local pos = 1
local rd = ARGV[2]
while pos <= #rd do
  local model, digest, class
  model, digest, class, pos = struct.unpack('<I4c32B', rd, pos)
  local cur = redis.call('HGET', P .. 'learned', model .. ':' .. digest)
  if (tonumber(cur) or 0) ~= class then return -1 end
end
local wr = ARGV[3]
pos = 1
while pos <= #wr do
  local model, digest, class
  model, digest, class, pos = struct.unpack('<I4c32B', wr, pos)
  local f = model .. ':' .. digest
  if class == 0 then
    redis.call('HDEL', P .. 'learned', f)
    redis.call('ZREM', P .. 'learned-at', f)
  else
    redis.call('HSET', P .. 'learned', f, class)
    redis.call('ZADD', P .. 'learned-at', ARGV[6], f)
  end
end
local d = ARGV[4]
pos = 1
local rows = 0
while pos <= #d do
  local model, bucket, h, ds, dh, dw, seen
  model, bucket, h, ds, dh, dw, seen, pos = struct.unpack('<I4I4c8i4i4dI4', d, pos)
  local key = P .. 't:' .. model .. ':' .. bucket
  local cur = redis.call('HGET', key, h)
  local s, hm, w, sn = 0, 0, 0, 0
  if cur then s, hm, w, sn = struct.unpack('<I4I4dI4', cur) end
  s = math.max(0, s + ds)
  hm = math.max(0, hm + dh)
  w = w + dw
  if seen > sn then sn = seen end
  if s == 0 and hm == 0 and (ds < 0 or dh < 0) then
    if cur then
      redis.call('HDEL', key, h)
      redis.call('HINCRBY', P .. 'm:' .. model, 'rows', -1)
      rows = rows - 1
    end
  else
    redis.call('HSET', key, h, struct.pack('<I4I4dI4', s, hm, w, sn))
    if not cur then
      redis.call('HINCRBY', P .. 'm:' .. model, 'rows', 1)
      rows = rows + 1
    end
  end
end
redis.call('INCRBY', P .. 'rows', rows)
local t = ARGV[5]
pos = 1
while pos <= #t do
  local model, ts, th, tl
  model, ts, th, tl, pos = struct.unpack('<I4i4i4i4', t, pos)
  local mk = P .. 'm:' .. model
  for _, x in ipairs({{'spam', ts}, {'ham', th}, {'logistic', tl}}) do
    if redis.call('HINCRBY', mk, x[1], x[2]) < 0 then redis.call('HSET', mk, x[1], 0) end
  end
end
if redis.call('EXISTS', P .. 'gen') == 0 then
  redis.call('SET', P .. 'gen', ARGV[9])
end
local gen = redis.call('INCR', P .. 'gen')
if ARGV[7] == '1' then
  redis.call('XADD', P .. 'log', 'MAXLEN', '~', ARGV[8], gen .. '-1', 'd', d, 't', t)
else
  redis.call('XADD', P .. 'log', 'MAXLEN', '~', ARGV[8], gen .. '-1', 'x', '1')
end
return gen
`)

func packLearned(m map[learnedKey]Class) []byte {
	out := make([]byte, 0, len(m)*37)
	for k, c := range m {
		out = binary.LittleEndian.AppendUint32(out, uint32(k.model))
		out = append(out, k.digest[:]...)
		out = append(out, byte(c))
	}
	return out
}

func (s *RedisStore) packDeltas(deltas map[tokenKey]tokenDelta) []byte {
	out := make([]byte, 0, len(deltas)*36)
	for k, d := range deltas {
		if d.spam == 0 && d.ham == 0 && d.weight == 0 {
			continue
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(k.model))
		out = binary.LittleEndian.AppendUint32(out, s.bucketOf(k.hash))
		out = binary.LittleEndian.AppendUint64(out, k.hash)
		out = binary.LittleEndian.AppendUint32(out, uint32(d.spam))
		out = binary.LittleEndian.AppendUint32(out, uint32(d.ham))
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(d.weight))
		out = binary.LittleEndian.AppendUint32(out, uint32(max(0, d.seen)))
	}
	return out
}

func unpackDeltas(b []byte) map[tokenKey]tokenDelta {
	out := make(map[tokenKey]tokenDelta, len(b)/36)
	for ; len(b) >= 36; b = b[36:] {
		k := tokenKey{int64(binary.LittleEndian.Uint32(b)), binary.LittleEndian.Uint64(b[8:])}
		out[k] = tokenDelta{spam: int32(binary.LittleEndian.Uint32(b[16:])), ham: int32(binary.LittleEndian.Uint32(b[20:])),
			weight: math.Float64frombits(binary.LittleEndian.Uint64(b[24:]))}
	}
	return out
}

func packTotals(t map[int64]Totals) []byte {
	out := make([]byte, 0, len(t)*16)
	for id, x := range t {
		out = binary.LittleEndian.AppendUint32(out, uint32(id))
		out = binary.LittleEndian.AppendUint32(out, uint32(int32(x.Spam)))
		out = binary.LittleEndian.AppendUint32(out, uint32(int32(x.Ham)))
		out = binary.LittleEndian.AppendUint32(out, uint32(int32(x.Logistic)))
	}
	return out
}

func unpackTotals(b []byte) map[int64]Totals {
	out := make(map[int64]Totals)
	for ; len(b) >= 16; b = b[16:] {
		out[int64(binary.LittleEndian.Uint32(b))] = Totals{Spam: int64(int32(binary.LittleEndian.Uint32(b[4:]))),
			Ham: int64(int32(binary.LittleEndian.Uint32(b[8:]))), Logistic: int64(int32(binary.LittleEndian.Uint32(b[12:])))}
	}
	return out
}

// Train implements Store: the learned records are read, the plan worked
// out, and the trainScript applies it atomically unless another node
// changed one of those records meanwhile (then it is planned again).
func (s *RedisStore) Train(ctx context.Context, events []Event) (int, error) {
	for range maxConflicts {
		// The learned records of the batch, read in one round trip.
		ids := map[string]int64{}
		for _, ev := range events {
			if _, ok := ids[ev.User]; ok && (ev.Class == Forget || ids[ev.User] >= 0) {
				continue
			}
			var id int64
			var err error
			if ev.Class == Forget {
				id, err = s.modelID(ctx, ev.User)
			} else {
				id, err = s.ensureModel(ctx, ev.User)
			}
			if err != nil {
				return 0, err
			}
			ids[ev.User] = id
		}
		var keys []learnedKey
		var fields []string
		for _, ev := range events {
			if id := ids[ev.User]; id >= 0 {
				k := learnedKey{id, ev.Digest}
				keys = append(keys, k)
				fields = append(fields, learnedField(k))
			}
		}
		read := map[learnedKey]Class{}
		if len(fields) > 0 {
			vals, err := s.rdb.HMGet(ctx, s.prefix+"learned", fields...).Result()
			if err != nil {
				return 0, fmt.Errorf("bayes train: redis: %w", err)
			}
			for i, v := range vals {
				read[keys[i]] = Class(asInt(v))
			}
		}
		p, err := planTrain(events, func(user string, create bool) (int64, error) { return ids[user], nil },
			func(k learnedKey) (Class, error) { return read[k], nil })
		if err != nil || p.changed == 0 && !p.stepped {
			return 0, err
		}
		deltas := s.packDeltas(p.deltas)
		logged := "1"
		if len(deltas) > maxLogged*36 {
			logged = "0"
		}
		gen, err := trainScript.Run(ctx, s.rdb, nil, s.prefix, packLearned(p.before), packLearned(p.state),
			deltas, packTotals(p.totals), time.Now().Unix(), logged, logLength, time.Now().UnixMilli()).Int64()
		if err != nil {
			return 0, fmt.Errorf("bayes train: redis: %w", err)
		}
		if gen < 0 {
			continue // another node learned one of these messages meanwhile
		}
		s.mir.known(p.ids)
		s.mir.apply(gen, p.deltas, p.totals)
		return p.changed, nil
	}
	return 0, errors.New("bayes train: redis: the learned records kept changing")
}

// maxConflicts bounds the rounds of a training that other nodes' trainings
// of the same messages interrupt.
const maxConflicts = 8

// changes implements source: the change log after gen.
func (s *RedisStore) changes(ctx context.Context, gen int64) ([]change, bool, error) {
	entries, err := s.rdb.XRangeN(ctx, s.prefix+"log", strconv.FormatInt(gen+1, 10)+"-0", "+", logLength).Result()
	if err != nil {
		return nil, false, fmt.Errorf("bayes log: redis: %w", err)
	}
	out := make([]change, 0, len(entries))
	for _, e := range entries {
		g, err := strconv.ParseInt(strings.SplitN(e.ID, "-", 2)[0], 10, 64)
		if err != nil {
			return nil, false, nil
		}
		if g != gen+1+int64(len(out)) {
			return nil, false, nil // a gap: trimmed, or a Redis that restarted
		}
		if _, big := e.Values["x"]; big {
			return nil, false, nil
		}
		c := change{gen: g}
		if d, ok := e.Values["d"].(string); ok {
			c.deltas = unpackDeltas([]byte(d))
		}
		if t, ok := e.Values["t"].(string); ok {
			c.totals = unpackTotals([]byte(t))
		}
		if r, ok := e.Values["r"].(string); ok {
			for b := []byte(r); len(b) >= 12; b = b[12:] {
				c.gone = append(c.gone, tokenKey{int64(binary.LittleEndian.Uint32(b)), binary.LittleEndian.Uint64(b[4:])})
			}
		}
		out = append(out, c)
	}
	return out, len(out) > 0, nil
}

// pruneScript removes feature rows. ARGV: the prefix; the rows (model
// u32, bucket u32, feature c8 each); the log's length; now (Unix
// milliseconds, a new generation counter's start). It logs the rows
// removed and returns {generation, rows removed}.
var pruneScript = redis.NewScript(`
local P = ARGV[1]
local r = ARGV[2]
local pos = 1
local n = 0
local gone = {}
while pos <= #r do
  local model, bucket, h
  model, bucket, h, pos = struct.unpack('<I4I4c8', r, pos)
  if redis.call('HDEL', P .. 't:' .. model .. ':' .. bucket, h) == 1 then
    redis.call('HINCRBY', P .. 'm:' .. model, 'rows', -1)
    n = n + 1
    gone[#gone + 1] = struct.pack('<I4c8', model, h)
  end
end
redis.call('INCRBY', P .. 'rows', -n)
if redis.call('EXISTS', P .. 'gen') == 0 then
  redis.call('SET', P .. 'gen', ARGV[4])
end
local gen = redis.call('INCR', P .. 'gen')
redis.call('XADD', P .. 'log', 'MAXLEN', '~', ARGV[3], gen .. '-1', 'r', table.concat(gone))
return {gen, n}
`)

// pruneChunk bounds the rows one pruneScript removes, so that no script
// holds Redis long.
const pruneChunk = 20000

// Prune implements Store, with the SQLite store's order: rows seen in at
// most one message and not since olderThan, then the rarest and oldest
// down to 90 % of maxRows. It reads every bucket of every model to
// choose (only when the row count is over maxRows); the rows go in
// chunks, each logged for the other nodes' mirrors.
func (s *RedisStore) Prune(ctx context.Context, maxRows int, olderThan time.Time) (int, error) {
	// The learned records, newest maxRows/4 kept.
	keep := int64(max(1, maxRows/4))
	n, err := s.rdb.ZCard(ctx, s.prefix+"learned-at").Result()
	if err != nil {
		return 0, fmt.Errorf("bayes prune learned: redis: %w", err)
	}
	for n > keep {
		old, err := s.rdb.ZRange(ctx, s.prefix+"learned-at", 0, min(n-keep, 10000)-1).Result()
		if err != nil || len(old) == 0 {
			return 0, fmt.Errorf("bayes prune learned: redis: %v", err)
		}
		pipe := s.rdb.TxPipeline()
		pipe.HDel(ctx, s.prefix+"learned", old...)
		members := make([]any, len(old))
		for i, o := range old {
			members[i] = o
		}
		pipe.ZRem(ctx, s.prefix+"learned-at", members...)
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, fmt.Errorf("bayes prune learned: redis: %w", err)
		}
		n -= int64(len(old))
	}
	rows, err := s.rdb.Get(ctx, s.prefix+"rows").Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("bayes prune: redis: %w", err)
	}
	if rows <= maxRows {
		return 0, nil
	}
	type row struct {
		k     tokenKey
		count uint32
		seen  uint32
	}
	var all []row
	ids, err := s.modelIDs(ctx)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		const chunk = 1024
		for b := uint64(0); b < s.buckets; b += chunk {
			pipe := s.rdb.Pipeline()
			cmds := make([]*redis.MapStringStringCmd, 0, chunk)
			for i := b; i < min(b+chunk, s.buckets); i++ {
				cmds = append(cmds, pipe.HGetAll(ctx, s.bucketKey(id, uint32(i))))
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return 0, fmt.Errorf("bayes prune: redis: %w", err)
			}
			for _, c := range cmds {
				for f, v := range c.Val() {
					if len(f) != 8 || len(v) != 20 {
						continue
					}
					vb := []byte(v)
					all = append(all, row{k: tokenKey{id, binary.LittleEndian.Uint64([]byte(f))},
						count: binary.LittleEndian.Uint32(vb) + binary.LittleEndian.Uint32(vb[4:]),
						seen:  binary.LittleEndian.Uint32(vb[16:])})
				}
			}
		}
	}
	cut := uint32(max(0, olderThan.Unix()))
	var victims, rest []row
	for _, r := range all {
		if r.count <= 1 && r.seen < cut {
			victims = append(victims, r)
		} else {
			rest = append(rest, r)
		}
	}
	if left := len(rest); left > maxRows {
		slices.SortFunc(rest, func(a, b row) int {
			if a.count != b.count {
				return int(a.count) - int(b.count)
			}
			return int(a.seen) - int(b.seen)
		})
		victims = append(victims, rest[:left-maxRows*9/10]...)
	}
	removed := 0
	for len(victims) > 0 {
		part := victims[:min(len(victims), pruneChunk)]
		victims = victims[len(part):]
		buf := make([]byte, 0, len(part)*16)
		gone := make([]tokenKey, 0, len(part))
		for _, r := range part {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(r.k.model))
			buf = binary.LittleEndian.AppendUint32(buf, s.bucketOf(r.k.hash))
			buf = binary.LittleEndian.AppendUint64(buf, r.k.hash)
			gone = append(gone, r.k)
		}
		res, err := pruneScript.Run(ctx, s.rdb, nil, s.prefix, buf, logLength, time.Now().UnixMilli()).Int64Slice()
		if err != nil || len(res) != 2 {
			return removed, fmt.Errorf("bayes prune: redis: %v", err)
		}
		removed += int(res[1])
		s.mir.remove(res[0], gone)
	}
	return removed, nil
}

// modelIDs lists the model ids, the global one first.
func (s *RedisStore) modelIDs(ctx context.Context) ([]int64, error) {
	m, err := s.rdb.HGetAll(ctx, s.prefix+"models").Result()
	if err != nil {
		return nil, fmt.Errorf("bayes models: redis: %w", err)
	}
	ids := []int64{0}
	for _, v := range m {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil && id > 0 {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Stats implements Store. Bytes is Redis's used_memory (INFO memory):
// the whole server's, moat's keys and any others.
func (s *RedisStore) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	users, err := s.rdb.HGetAll(ctx, s.prefix+"models").Result()
	if err != nil {
		return st, fmt.Errorf("bayes stats: redis: %w", err)
	}
	users[""] = "0"
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	for _, u := range names {
		v, err := s.rdb.HMGet(ctx, s.prefix+"m:"+users[u], "spam", "ham", "logistic", "rows").Result()
		if err != nil {
			return st, fmt.Errorf("bayes stats: redis: %w", err)
		}
		st.Models = append(st.Models, ModelStats{User: u, Totals: Totals{Spam: asInt(v[0]), Ham: asInt(v[1]), Logistic: asInt(v[2])},
			Features: asInt(v[3])})
	}
	info, err := s.rdb.Info(ctx, "memory").Result()
	if err == nil {
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				st.Bytes, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return st, nil
}
