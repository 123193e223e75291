package state

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatmail/moat/filters/state/redistest"
)

func TestValidate(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" valid
	}{
		{"default", func(*Config) {}, ""},
		{"redis", func(c *Config) { c.Backend = "redis" }, ""},
		{"unknown backend", func(c *Config) { c.Backend = "memcached" }, "backend:"},
		{"on_error", func(c *Config) { c.OnError = "reject" }, "on_error:"},
		{"address", func(c *Config) { c.Backend = "redis"; c.Address = "localhost" }, "address:"},
		{"socket", func(c *Config) { c.Backend = "redis"; c.Address = "/run/redis.sock" }, ""},
		{"both passwords", func(c *Config) { c.Backend = "redis"; c.Password = "x"; c.PasswordFile = pw }, "password_file:"},
		{"missing password file", func(c *Config) { c.Backend = "redis"; c.PasswordFile = pw + ".no" }, "password_file:"},
		{"database", func(c *Config) { c.Backend = "redis"; c.Database = 16 }, "database:"},
		{"prefix", func(c *Config) { c.Backend = "redis"; c.KeyPrefix = "" }, "key_prefix:"},
		{"ca without tls", func(c *Config) { c.Backend = "redis"; c.TLSCAFile = pw }, "tls_ca_file:"},
		{"ca not pem", func(c *Config) { c.Backend = "redis"; c.TLS = true; c.TLSCAFile = pw }, "tls_ca_file:"},
		{"timeout", func(c *Config) { c.Backend = "redis"; c.ReadTimeout = 0 }, "read_timeout:"},
		{"pool", func(c *Config) { c.Backend = "redis"; c.PoolSize = 0 }, "pool_size:"},
		{"sqlite ignores redis keys", func(c *Config) { c.KeyPrefix = "" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

type commands struct {
	mu   sync.Mutex
	seen map[string]int
	errs int
}

func (c *commands) RedisCommand(name string, d time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[name]++
	if err != nil {
		c.errs++
	}
}

func TestClientObservedAndReconnects(t *testing.T) {
	srv := redistest.Start(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	if _, err := srv.Command("CONFIG", "SET", "requirepass", "s3cret"); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Backend, cfg.Address, cfg.PasswordFile, cfg.Database = "redis", srv.Addr(), pw, 3
	obs := &commands{seen: map[string]int{}}
	cl, err := NewClient(cfg, obs)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Get(ctx, "missing").Err(); err == nil {
		t.Error("GET of a missing key: no redis.Nil")
	}
	obs.mu.Lock()
	if obs.seen["set"] != 1 || obs.seen["get"] != 1 || obs.errs != 0 {
		t.Errorf("observed %v with %d errors, want one set, one get and no error (a missing key is no error)", obs.seen, obs.errs)
	}
	obs.mu.Unlock()

	// Redis goes away: commands fail, and are counted as failures.
	srv.Kill()
	if err := cl.Get(ctx, "k").Err(); err == nil {
		t.Fatal("GET with redis down succeeded")
	}
	obs.mu.Lock()
	if obs.errs == 0 {
		t.Error("a failed command was not reported as an error")
	}
	obs.mu.Unlock()
	// It comes back (empty, no persistence) on the same port: the client
	// reconnects by itself.
	srv.Restart()
	srv.Command("CONFIG", "SET", "requirepass", "s3cret")
	var last error
	for range 100 {
		if last = cl.Set(ctx, "k", "again", 0).Err(); last == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("no reconnection after a restart: %v", last)
	}
	if v, _ := cl.Get(ctx, "k").Result(); v != "again" {
		t.Errorf("GET after the restart = %q", v)
	}
}
