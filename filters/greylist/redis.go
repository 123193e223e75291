package greylist

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps the greylisting state in Redis, shared by every
// gateway node that uses the same server and key prefix: a triplet
// greylisted through one node passes when retried through another, as
// with rspamd's greylist module.
//
// Keys, under the prefix P:
//
//	P gl:t:<member>   a triplet's entry (a string of its times and count)
//	P gl:t-idx        every triplet's member, in a sorted set ordered by
//	                  member (network, sender, recipient): listing a
//	                  network range is one ZRANGEBYLEX
//	P gl:t-exp        every triplet's member scored by its expiry: Expire
//	                  takes the expired ones from its head
//	P gl:c:<member>, P gl:c-idx, P gl:c-exp   the same for client networks
//
// A member is the network as 32 hex digits of its 16-byte form (IPv4
// mapped) and 2 of its prefix length, then, for a triplet, NUL, the
// sender, NUL, the recipient: its byte order is the SQLite store's key
// order. Expired records are removed by Expire (RunExpiry, hourly), as in
// the SQLite store, not by Redis's key expiry: the check judges expiry by
// the node's clock, and the indexes must lose a member with its record.
//
// An update reads the record (one round trip) and, when the check asks
// for a write, stores it with a compare-and-set script (a second one)
// that refuses when another node changed the record meanwhile; the
// update function then runs again on what that node stored.
//
// The scripts name keys they compute (the records of an index), so the
// store needs one Redis server (or a primary with replicas), not Redis
// Cluster.
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store over rdb, whose keys begin with
// prefix+"gl:". The caller keeps ownership of rdb.
func NewRedisStore(rdb redis.UniversalClient, prefix string) *RedisStore {
	return &RedisStore{rdb: rdb, prefix: prefix + "gl:"}
}

// Close implements Store; the client stays open (its owner closes it).
func (s *RedisStore) Close() error { return nil }

// kinds of record: triplets and clients.
type recordKind struct{ rec, idx, exp string }

func (s *RedisStore) triplets() recordKind {
	return recordKind{s.prefix + "t:", s.prefix + "t-idx", s.prefix + "t-exp"}
}

func (s *RedisStore) clients() recordKind {
	return recordKind{s.prefix + "c:", s.prefix + "c-idx", s.prefix + "c-exp"}
}

// netMember is a network's part of a member.
func netMember(p netip.Prefix) string {
	a, bits := netKey(p)
	return hex.EncodeToString(a) + fmt.Sprintf("%02x", bits)
}

func tripletMember(t Triplet) string {
	return netMember(t.Network) + "\x00" + t.Sender + "\x00" + t.Rcpt
}

// parseMember returns the network of a member and what follows it.
func parseMember(m string) (netip.Prefix, string, error) {
	if len(m) < 34 {
		return netip.Prefix{}, "", fmt.Errorf("stored member %q", m)
	}
	a, err := hex.DecodeString(m[:32])
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("stored member %q", m)
	}
	bits, err := strconv.ParseUint(m[32:34], 16, 8)
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("stored member %q", m)
	}
	p, err := netFrom(a, int(bits))
	return p, m[34:], err
}

// memberRange is the ZRANGEBYLEX bounds of the members within p.
func memberRange(p netip.Prefix) (lo, hi string) {
	l, h := netRange(p)
	// After the address come hex digits and NUL, all below '~'.
	return "[" + hex.EncodeToString(l), "(" + hex.EncodeToString(h) + "~"
}

// Records are strings of decimal fields separated by spaces.
func encodeEntry(e Entry) string {
	return fmt.Sprintf("%d %d %d %d %d", unixSeconds(e.FirstSeen), unixSeconds(e.LastSeen), e.Attempts,
		unixSeconds(e.PassedAt), unixSeconds(e.Expires))
}

func decodeEntry(v string, e *Entry) error {
	f, err := fields(v, 5)
	if err != nil {
		return err
	}
	e.FirstSeen, e.LastSeen, e.Attempts, e.PassedAt, e.Expires = unixTime(f[0]), unixTime(f[1]), int(f[2]), unixTime(f[3]), unixTime(f[4])
	return nil
}

func encodeClient(c Client) string {
	allowed := 0
	if c.Allowed {
		allowed = 1
	}
	return fmt.Sprintf("%d %d %d %d %d", c.Passes, unixSeconds(c.CountedAt), unixSeconds(c.LastSeen), allowed, unixSeconds(c.Expires))
}

func decodeClient(v string, c *Client) error {
	f, err := fields(v, 5)
	if err != nil {
		return err
	}
	c.Passes, c.CountedAt, c.LastSeen, c.Allowed, c.Expires = int(f[0]), unixTime(f[1]), unixTime(f[2]), f[3] != 0, unixTime(f[4])
	return nil
}

func fields(v string, n int) ([]int64, error) {
	parts := strings.Fields(v)
	if len(parts) != n {
		return nil, fmt.Errorf("stored record %q", v)
	}
	out := make([]int64, n)
	for i, p := range parts {
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("stored record %q", v)
		}
		out[i] = x
	}
	return out, nil
}

// casScript stores a record if it is still what the caller read. KEYS:
// the record, the index, the expiry set; ARGV: the value read ("" for
// none), the new value, the member, the expiry in Unix seconds (0:
// never). It returns {1} when stored, {0, current value} when not.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return {0, cur} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
if ARGV[4] == '0' then
  redis.call('ZREM', KEYS[3], ARGV[3])
else
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
end
return {1}
`)

// maxConflicts bounds the compare-and-set rounds of one update: each
// lost round means another node wrote the same record meanwhile. After a
// lost round the writer waits a random moment, growing with the round, so
// that writers racing on one record spread out instead of colliding
// again (a fixed bound without that starved one of 40 writers under
// -race).
const maxConflicts = 32

// redisUpdate is UpdateTriplet and UpdateClient: read, fn, compare-and-set.
func redisUpdate[T any](ctx context.Context, s *RedisStore, k recordKind, member string, zero T,
	decode func(string, *T) error, encode func(T) string, expires func(T) time.Time,
	fn func(T, bool) (T, bool)) (T, error) {
	cur, err := s.rdb.Get(ctx, k.rec+member).Result()
	if errors.Is(err, redis.Nil) {
		cur, err = "", nil
	}
	if err != nil {
		return zero, err
	}
	for round := range maxConflicts {
		v := zero
		found := cur != ""
		if found {
			if err := decode(cur, &v); err != nil {
				return zero, err
			}
		}
		v, write := fn(v, found)
		if !write {
			return v, nil
		}
		res, err := casScript.Run(ctx, s.rdb, []string{k.rec + member, k.idx, k.exp},
			cur, encode(v), member, unixSeconds(expires(v))).Slice()
		if err != nil {
			return zero, err
		}
		if ok, _ := res[0].(int64); ok == 1 {
			return v, nil
		}
		if len(res) < 2 {
			return zero, errors.New("compare-and-set answered no value")
		}
		cur, _ = res[1].(string)
		select {
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-time.After(time.Duration(rand.Int64N(int64(round+1) * int64(200*time.Microsecond)))):
		}
	}
	return zero, errors.New("record changed by others too often")
}

// UpdateTriplet implements Store.
func (s *RedisStore) UpdateTriplet(ctx context.Context, t Triplet, fn func(Entry, bool) (Entry, bool)) (Entry, error) {
	e, err := redisUpdate(ctx, s, s.triplets(), tripletMember(t), Entry{Triplet: t}, decodeEntry, encodeEntry,
		func(e Entry) time.Time { return e.Expires }, fn)
	if err != nil {
		return e, fmt.Errorf("greylist triplet: redis: %w", err)
	}
	return e, nil
}

// UpdateClient implements Store.
func (s *RedisStore) UpdateClient(ctx context.Context, network netip.Prefix, fn func(Client, bool) (Client, bool)) (Client, error) {
	c, err := redisUpdate(ctx, s, s.clients(), netMember(network), Client{Network: network}, decodeClient, encodeClient,
		func(c Client) time.Time { return c.Expires }, fn)
	if err != nil {
		return c, fmt.Errorf("greylist client: redis: %w", err)
	}
	return c, nil
}

// listBatch is how many records one MGET of a listing reads.
const listBatch = 500

// redisList reads the records of the members within, in member order.
func redisList[T any](ctx context.Context, s *RedisStore, k recordKind, within netip.Prefix, limit int,
	parse func(member, value string) (T, error)) ([]T, error) {
	lo, hi := memberRange(within)
	count := int64(-1)
	if limit > 0 {
		count = int64(limit)
	}
	members, err := s.rdb.ZRangeByLex(ctx, k.idx, &redis.ZRangeBy{Min: lo, Max: hi, Count: count}).Result()
	if err != nil {
		return nil, fmt.Errorf("greylist list: redis: %w", err)
	}
	var out []T
	for len(members) > 0 {
		batch := members[:min(len(members), listBatch)]
		members = members[len(batch):]
		keys := make([]string, len(batch))
		for i, m := range batch {
			keys[i] = k.rec + m
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("greylist list: redis: %w", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // removed since the index was read
			}
			r, err := parse(batch[i], str)
			if err != nil {
				return nil, fmt.Errorf("greylist list: %w", err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// Triplets implements Store.
func (s *RedisStore) Triplets(ctx context.Context, within netip.Prefix, limit int) ([]Entry, error) {
	return redisList(ctx, s, s.triplets(), within, limit, func(m, v string) (Entry, error) {
		var e Entry
		p, rest, err := parseMember(m)
		if err != nil {
			return e, err
		}
		parts := strings.SplitN(rest, "\x00", 3)
		if len(parts) != 3 {
			return e, fmt.Errorf("stored member %q", m)
		}
		e.Triplet = Triplet{Network: p, Sender: parts[1], Rcpt: parts[2]}
		return e, decodeEntry(v, &e)
	})
}

// Clients implements Store.
func (s *RedisStore) Clients(ctx context.Context, within netip.Prefix, limit int) ([]Client, error) {
	return redisList(ctx, s, s.clients(), within, limit, func(m, v string) (Client, error) {
		var c Client
		p, _, err := parseMember(m)
		if err != nil {
			return c, err
		}
		c.Network = p
		return c, decodeClient(v, &c)
	})
}

// removeScript removes records by their members. KEYS: the index and
// the expiry set; ARGV[1]: the records' key prefix, then the members. It
// returns how many records were there.
var removeScript = redis.NewScript(`
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('DEL', ARGV[1] .. ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
end
return n
`)

// expireScript removes up to ARGV[2] records that expired at or before
// ARGV[1]. KEYS: the expiry set, the index; ARGV[3]: the records' key
// prefix. It returns how many it removed.
var expireScript = redis.NewScript(`
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, x in ipairs(m) do
  redis.call('DEL', ARGV[3] .. x)
  redis.call('ZREM', KEYS[1], x)
  redis.call('ZREM', KEYS[2], x)
end
return #m
`)

// remove deletes the records of members.
func (s *RedisStore) remove(ctx context.Context, k recordKind, members []string) (int, error) {
	args := make([]any, 0, 1+len(members))
	args = append(args, k.rec)
	for _, m := range members {
		args = append(args, m)
	}
	return removeScript.Run(ctx, s.rdb, []string{k.idx, k.exp}, args...).Int()
}

// Delete implements Store, in batches of expireBatch records.
func (s *RedisStore) Delete(ctx context.Context, within netip.Prefix) (int, error) {
	lo, hi := memberRange(within)
	total := 0
	for _, k := range []recordKind{s.triplets(), s.clients()} {
		for {
			members, err := s.rdb.ZRangeByLex(ctx, k.idx, &redis.ZRangeBy{Min: lo, Max: hi, Count: expireBatch}).Result()
			if err != nil {
				return total, fmt.Errorf("greylist delete: redis: %w", err)
			}
			if len(members) == 0 {
				break
			}
			n, err := s.remove(ctx, k, members)
			if err != nil {
				return total, fmt.Errorf("greylist delete: redis: %w", err)
			}
			total += n
		}
	}
	return total, nil
}

// DeleteTriplet implements Store.
func (s *RedisStore) DeleteTriplet(ctx context.Context, t Triplet) (bool, error) {
	n, err := s.remove(ctx, s.triplets(), []string{tripletMember(t)})
	if err != nil {
		return false, fmt.Errorf("greylist delete: redis: %w", err)
	}
	return n > 0, nil
}

// Expire implements Store, in scripts of at most expireBatch records, so
// that no script holds Redis long.
func (s *RedisStore) Expire(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for _, k := range []recordKind{s.triplets(), s.clients()} {
		for {
			n, err := expireScript.Run(ctx, s.rdb, []string{k.exp, k.idx}, now.Unix(), expireBatch, k.rec).Int()
			if err != nil {
				return total, fmt.Errorf("greylist expire: redis: %w", err)
			}
			total += n
			if n < expireBatch {
				break
			}
		}
	}
	return total, nil
}
