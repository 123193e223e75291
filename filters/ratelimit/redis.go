package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps the token buckets in Redis, shared by every gateway
// node that uses the same server and key prefix: a client's limit is one
// limit across the nodes, as with rspamd's ratelimit module.
//
// Take is one round trip: a Lua script (EVALSHA, EVAL once after a
// restart of Redis) gets every bucket of the check and refills, tests and
// takes atomically, with the same arithmetic as MemoryStore. A bucket is a
// hash (tokens, time) under KeyPrefix+"rl:"+Request.Key that expires when
// it would be full again (a full bucket is what a missing one means), so
// Redis holds only the buckets of clients that used some of their
// allowance lately and needs no max_keys.
//
// Times are those the Limiter gives (each node's clock); a node whose
// clock lags adds nothing to a bucket (a clock going back refills
// nothing), so skew between nodes costs at most the skew's worth of
// refill.
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store over rdb, whose keys begin with
// prefix+"rl:". The caller keeps ownership of rdb.
func NewRedisStore(rdb redis.UniversalClient, prefix string) *RedisStore {
	return &RedisStore{rdb: rdb, prefix: prefix + "rl:"}
}

// Close implements Store; the client stays open (its owner closes it).
func (s *RedisStore) Close() error { return nil }

// takeScript is Take. KEYS are the buckets; ARGV[1] is now in
// microseconds (a double holds them exactly until the year 2255), then
// four values per request: limit, period in microseconds, cost, peek
// (1 or 0). It returns the index of the first request denied (-1: none)
// and each request's tokens left, as strings (a Lua number returned is
// cut to an integer).
var takeScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local n = #KEYS
local b = {}
local denied = -1
for i = 1, n do
  local k = KEYS[i]
  local lim = tonumber(ARGV[4*i - 2])
  local per = tonumber(ARGV[4*i - 1])
  local cost = tonumber(ARGV[4*i])
  local st = b[k]
  if not st then
    local v = redis.call('HMGET', k, 't', 'a')
    if v[1] then
      st = {tonumber(v[1]), tonumber(v[2])}
    else
      st = {lim, now}
    end
    b[k] = st
  end
  if now > st[2] then
    st[1] = st[1] + (now - st[2]) * lim / per
    st[2] = now
  end
  if st[1] > lim then st[1] = lim end
  if denied < 0 and st[1] < cost then denied = i - 1 end
end
local out = {denied}
local fill = {}
for i = 1, n do
  local k = KEYS[i]
  local lim = tonumber(ARGV[4*i - 2])
  local per = tonumber(ARGV[4*i - 1])
  local st = b[k]
  if denied < 0 and ARGV[4*i + 1] == '0' then
    st[1] = st[1] - tonumber(ARGV[4*i])
  end
  out[i + 1] = string.format('%.17g', st[1])
  fill[k] = (lim - st[1]) * per / lim
end
for k, st in pairs(b) do
  local us = fill[k]
  if us <= 0 then
    redis.call('DEL', k)
  else
    redis.call('HSET', k, 't', string.format('%.17g', st[1]), 'a', string.format('%.17g', st[2]))
    redis.call('PEXPIRE', k, math.floor(us / 1000) + 1)
  end
end
return out
`)

// Take implements Store.
func (s *RedisStore) Take(ctx context.Context, now time.Time, reqs []Request) (int, error) {
	if len(reqs) == 0 {
		return -1, nil
	}
	if len(reqs) > maxRequests {
		reqs = reqs[:maxRequests]
	}
	var keys [maxRequests]string
	var args [1 + 4*maxRequests]any
	args[0] = now.UnixMicro()
	for i, r := range reqs {
		keys[i] = s.prefix + r.Key
		peek := 0
		if r.Peek {
			peek = 1
		}
		args[1+4*i] = r.Rate.Limit
		args[2+4*i] = r.Rate.Per.Microseconds()
		args[3+4*i] = strconv.FormatFloat(r.Cost, 'g', -1, 64)
		args[4+4*i] = peek
	}
	res, err := takeScript.Run(ctx, s.rdb, keys[:len(reqs)], args[:1+4*len(reqs)]...).Slice()
	if err != nil {
		return 0, fmt.Errorf("redis: %w", err)
	}
	if len(res) != 1+len(reqs) {
		return 0, fmt.Errorf("redis: take answered %d values for %d requests", len(res), len(reqs))
	}
	denied, ok := res[0].(int64)
	if !ok {
		return 0, fmt.Errorf("redis: take answered %T", res[0])
	}
	for i := range reqs {
		str, _ := res[1+i].(string)
		left, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return 0, fmt.Errorf("redis: take answered tokens %q", str)
		}
		reqs[i].Left = left
	}
	return int(denied), nil
}
