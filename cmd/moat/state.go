package main

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moatmail/moat/filters/bayes"
	"github.com/moatmail/moat/filters/greylist"
	"github.com/moatmail/moat/filters/ratelimit"
	"github.com/moatmail/moat/filters/state"
	"github.com/moatmail/moat/rules"
)

// stateFilters are the filters whose state [state] places, which
// state.on_error applies to.
var stateFilters = []string{"greylist", "ratelimit-connect", "ratelimit-mail", "ratelimit-rcpt", "bayes"}

// sharedState opens the stores of greylisting, rate limits and the
// classifier where [state] says: SQLite files in data_dir and buckets in
// memory, or one Redis server shared by several nodes.
type sharedState struct {
	cfg state.Config
	rdb *redis.Client // nil for the sqlite backend
	// bayesRdb is the classifier's client: its commands wait up to a
	// minute, since training a corpus is one script that takes seconds;
	// a classification's reads are bounded by the filter's deadline.
	bayesRdb *redis.Client
	obs      state.Observer
}

// openState makes the Redis client when the state is on Redis (it
// connects at the first command: a Redis that is down at start does not
// keep moat from starting, the checks that need it fail until it is
// back). obs times Redis commands; may be nil.
func openState(cfg state.Config, obs state.Observer) (*sharedState, error) {
	s := &sharedState{cfg: cfg, obs: obs}
	if cfg.Redis() {
		var err error
		if s.rdb, err = state.NewClient(cfg, obs); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// greylist opens the greylisting store.
func (s *sharedState) greylist(cfg greylist.Config, dataDir string) (greylist.Store, error) {
	if s.rdb != nil {
		return greylist.NewRedisStore(s.rdb, s.cfg.KeyPrefix), nil
	}
	return greylist.Open(cfg, dataDir)
}

// rates returns the rate-limit store.
func (s *sharedState) rates(cfg ratelimit.Config) ratelimit.Store {
	if s.rdb != nil {
		return ratelimit.NewRedisStore(s.rdb, s.cfg.KeyPrefix)
	}
	return ratelimit.NewMemoryStore(cfg.MaxKeys)
}

// classifier opens the classifier over its token store.
func (s *sharedState) classifier(cfg bayes.Config, dataDir string) (*bayes.Classifier, error) {
	if s.rdb == nil {
		return bayes.Open(cfg, dataDir)
	}
	long := s.cfg
	long.ReadTimeout, long.WriteTimeout = time.Minute, time.Minute
	long.PoolSize = max(4, s.cfg.PoolSize/4)
	var err error
	if s.bayesRdb, err = state.NewClient(long, s.obs); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := bayes.NewRedisStore(ctx, s.bayesRdb, s.cfg.KeyPrefix, cfg.MaxTokens)
	if err != nil {
		return nil, err
	}
	return bayes.NewClassifier(cfg, st)
}

// Close closes the Redis client.
func (s *sharedState) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, c := range []*redis.Client{s.rdb, s.bayesRdb} {
		if c == nil {
			continue
		}
		if err := c.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// addStateRules applies state.on_error to the filters that need the
// shared state, unless [rules.filters.NAME] sets on_error itself.
func (c *Config) addStateRules() {
	if !c.State.Redis() {
		return
	}
	mode := rules.OnErrorTempfail
	if c.State.OnError == state.OnErrorSkip {
		mode = rules.OnErrorIgnore
	}
	for _, name := range stateFilters {
		if contains(c.Filters.Disabled, name) {
			continue
		}
		fc, set := c.Rules.Filters[name]
		if set && fc.OnError != "" {
			continue
		}
		if c.Rules.Filters == nil {
			c.Rules.Filters = map[string]rules.FilterConfig{}
		}
		fc.OnError = mode
		c.Rules.Filters[name] = fc
	}
}
