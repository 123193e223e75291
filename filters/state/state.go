// Package state configures where the filters keep the state that several
// gateway nodes behind one MX record must share: greylisting triplets,
// rate-limit buckets and the Bayes token store. The embedded default is
// SQLite (greylisting, Bayes) and memory (rate limits), one node's own;
// with Backend "redis" every node reads and writes one Redis server, as
// rspamd's nodes do.
//
// The package holds the [state] configuration and makes the Redis
// client (github.com/redis/go-redis/v9) with a hook that times every
// command for metrics. The stores themselves live with the checks that
// own their contracts (greylist.RedisStore, ratelimit.RedisStore,
// bayes.RedisStore).
package state

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The backends.
const (
	BackendSQLite = "sqlite"
	BackendRedis  = "redis"
)

// The on_error modes: what a check that needs the shared state does
// when it cannot reach it.
const (
	// OnErrorTempfail defers the SMTP command (451 4.7.1): the client
	// retries, and nothing is accepted without the check nor refused for
	// good.
	OnErrorTempfail = "tempfail"
	// OnErrorSkip judges the mail without the check (its
	// <NAME>_TEMPFAIL symbol scores 0).
	OnErrorSkip = "skip"
)

// Config is the [state] section. Start from DefaultConfig.
type Config struct {
	// Backend is "sqlite" (the default: every node keeps its own state)
	// or "redis" (TOML backend).
	Backend string `toml:"backend"`
	// Address is the Redis server, host:port (TOML address, default
	// "127.0.0.1:6379"), or a unix socket path starting with "/".
	Address string `toml:"address"`
	// Username and Password authenticate to Redis (AUTH, Redis 6 ACLs;
	// TOML username, password). PasswordFile names a file holding the
	// password instead, so that the configuration file can be readable
	// (TOML password_file; trailing white space is ignored).
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// Database is the Redis database number (TOML database, default 0).
	Database int `toml:"database"`
	// KeyPrefix begins every key moat writes (TOML key_prefix, default
	// "moat:"), so that one Redis can serve other programs too; nodes
	// that share state must use the same prefix.
	KeyPrefix string `toml:"key_prefix"`
	// TLS connects over TLS (TOML tls, default false); TLSCAFile is a PEM
	// file of the certificates to trust (TOML tls_ca_file, default: the
	// system's) and TLSServerName the name to verify (TOML
	// tls_server_name, default: Address's host).
	TLS           bool   `toml:"tls"`
	TLSCAFile     string `toml:"tls_ca_file"`
	TLSServerName string `toml:"tls_server_name"`
	// DialTimeout bounds a new connection (TOML dial_timeout, default
	// "1s"); ReadTimeout and WriteTimeout bound each command (TOML
	// read_timeout, write_timeout, default "500ms"). A check's own
	// deadline (rules.filter_timeout) bounds it too, whichever comes first.
	DialTimeout  time.Duration `toml:"dial_timeout"`
	ReadTimeout  time.Duration `toml:"read_timeout"`
	WriteTimeout time.Duration `toml:"write_timeout"`
	// PoolSize is the most connections to Redis (TOML pool_size, default
	// 32).
	PoolSize int `toml:"pool_size"`
	// OnError is what a check that needs Redis does when Redis fails or
	// is slow (TOML on_error): "tempfail" (default: the command is
	// deferred with 451 4.7.1) or "skip" (the mail is judged without the
	// check). It applies to greylist, ratelimit-* and bayes unless
	// [rules.filters.NAME] sets on_error itself. Never a 5xx.
	OnError string `toml:"on_error"`
}

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{
		Backend:      BackendSQLite,
		Address:      "127.0.0.1:6379",
		KeyPrefix:    "moat:",
		DialTimeout:  time.Second,
		ReadTimeout:  500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond,
		PoolSize:     32,
		OnError:      OnErrorTempfail,
	}
}

// Redis reports whether the state is on Redis.
func (c Config) Redis() bool { return c.Backend == BackendRedis }

// Validate reports every invalid setting, named by its TOML key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	switch c.Backend {
	case BackendSQLite, BackendRedis:
	default:
		bad("backend", "%q is not %q or %q", c.Backend, BackendSQLite, BackendRedis)
	}
	switch c.OnError {
	case OnErrorTempfail, OnErrorSkip:
	default:
		bad("on_error", "%q is not %q or %q", c.OnError, OnErrorTempfail, OnErrorSkip)
	}
	if !c.Redis() {
		return errors.Join(errs...)
	}
	if !strings.HasPrefix(c.Address, "/") {
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			bad("address", "%q is not host:port nor a socket path", c.Address)
		}
	}
	if c.Password != "" && c.PasswordFile != "" {
		bad("password_file", "set password or password_file, not both")
	}
	if c.PasswordFile != "" {
		if _, err := os.ReadFile(c.PasswordFile); err != nil {
			bad("password_file", "%v", err)
		}
	}
	if c.Database < 0 || c.Database > 15 {
		bad("database", "%d is not 0 to 15", c.Database)
	}
	if c.KeyPrefix == "" {
		bad("key_prefix", "must be set (nodes sharing state use the same one)")
	}
	if c.TLSCAFile != "" {
		if !c.TLS {
			bad("tls_ca_file", "set, but tls is false")
		} else if _, err := c.caPool(); err != nil {
			bad("tls_ca_file", "%v", err)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"dial_timeout", c.DialTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout}} {
		if d.v < time.Millisecond || d.v > time.Minute {
			bad(d.key, "%v is not between 1ms and 1m", d.v)
		}
	}
	if c.PoolSize < 1 {
		bad("pool_size", "%d is below 1", c.PoolSize)
	}
	return errors.Join(errs...)
}

func (c Config) caPool() (*x509.CertPool, error) {
	pem, err := os.ReadFile(c.TLSCAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", c.TLSCAFile)
	}
	return pool, nil
}

// Observer is told of every Redis command, for metrics: its name (lower
// case, "pipeline" for a pipeline; a small fixed set: the commands moat
// uses), how long it took, and its error (nil also for a missing key).
// It must be cheap and safe for concurrent use.
type Observer interface {
	RedisCommand(name string, d time.Duration, err error)
}

// NewClient returns a Redis client for c, which must be valid and use
// the redis backend. It does not connect: the first command does, and a
// client whose server is gone reconnects by itself (go-redis's pool
// dials anew at the next command and, after repeated dial failures,
// fails commands at once while it retries in the background about once
// a second, so that a dead Redis costs the sessions no dial timeouts).
// obs may be nil.
func NewClient(c Config, obs Observer) (*redis.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Redis() {
		return nil, errors.New("state: backend is not redis")
	}
	opt := &redis.Options{
		Addr:         c.Address,
		Username:     c.Username,
		Password:     c.Password,
		DB:           c.Database,
		DialTimeout:  c.DialTimeout,
		ReadTimeout:  c.ReadTimeout,
		WriteTimeout: c.WriteTimeout,
		PoolSize:     c.PoolSize,
		// One retry: a command whose connection broke (a Redis
		// restart) is sent once more on a fresh one; the check's
		// deadline bounds the rest.
		MaxRetries:      1,
		MinRetryBackoff: 8 * time.Millisecond,
		MaxRetryBackoff: 100 * time.Millisecond,
		// One dial per command: a refused connection fails the
		// command at once rather than after go-redis's five.
		DialerRetries: 1,
		// The context's deadline (the check's) cuts a command short.
		ContextTimeoutEnabled: true,
		// No CLIENT SETINFO at connect: older servers answer it with
		// an error in their logs.
		DisableIdentity: true,
		// RESP2: no HELLO at connect, which a Redis before 6 refuses.
		Protocol: 2,
	}
	if strings.HasPrefix(c.Address, "/") {
		opt.Network = "unix"
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("state.password_file: %w", err)
		}
		opt.Password = strings.TrimSpace(string(b))
	}
	if c.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(c.Address)
		}
		if c.TLSCAFile != "" {
			pool, err := c.caPool()
			if err != nil {
				return nil, fmt.Errorf("state.tls_ca_file: %w", err)
			}
			tc.RootCAs = pool
		}
		opt.TLSConfig = tc
	}
	cl := redis.NewClient(opt)
	if obs != nil {
		cl.AddHook(hook{obs})
	}
	return cl, nil
}

// hook times commands for an Observer.
type hook struct{ obs Observer }

func (h hook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		t := time.Now()
		c, err := next(ctx, network, addr)
		h.obs.RedisCommand("dial", time.Since(t), err)
		return c, err
	}
}

func (h hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		t := time.Now()
		err := next(ctx, cmd)
		h.obs.RedisCommand(cmd.Name(), time.Since(t), unlessNil(err))
		return err
	}
}

func (h hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		t := time.Now()
		err := next(ctx, cmds)
		h.obs.RedisCommand("pipeline", time.Since(t), unlessNil(err))
		return err
	}
}

// unlessNil is err unless it is redis.Nil, a missing key: an answer.
func unlessNil(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}
