package resolver

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Config configures the stub resolver. Start from DefaultConfig and
// override what the configuration file sets: a zero field is a value, not a
// request for the default.
//
// Durations are time.Duration; the TOML decoder (BurntSushi/toml) reads
// them from strings such as "2s" or "1h".
type Config struct {
	// Upstream is the recursive resolver queried, as "host:port"
	// (TOML upstream, default "127.0.0.1:53"). moat does no recursion of
	// its own: it expects a validating, caching recursive resolver close
	// by (unbound, knot-resolver, systemd-resolved).
	Upstream string `toml:"upstream"`
	// Timeout bounds one exchange with the upstream: dial, write and read
	// (TOML timeout, default "2s"). A query that times out is sent once
	// more, and a truncated UDP answer is asked again over TCP; one query
	// never takes more than four times Timeout in all. The caller's
	// context deadline bounds its own wait too.
	Timeout time.Duration `toml:"timeout"`
	// CacheSize is the number of (name, type) answers kept in the LRU
	// cache, positive and negative alike (TOML cache_size, default
	// 10000). 0 disables the cache.
	CacheSize int `toml:"cache_size"`
	// MinTTL is the shortest time a positive answer stays cached (TOML
	// min_ttl, default "0s"). The TTL of an answer is the smallest TTL of
	// the records it was built from, CNAMEs included (RFC 2181 §5.2: the
	// records of an RRset share one TTL). RFC 1035 §3.2.1: a TTL of 0
	// means "do not cache"; a positive MinTTL overrides that.
	MinTTL time.Duration `toml:"min_ttl"`
	// MaxTTL is the longest time a positive answer stays cached (TOML
	// max_ttl, default "1h"), so that a change of DNS data is seen within
	// the hour whatever TTL its owner set.
	MaxTTL time.Duration `toml:"max_ttl"`
	// NegativeTTL caps the time an NXDOMAIN or NODATA answer stays cached
	// (TOML negative_ttl, default "5m"). RFC 2308 §5: the negative TTL
	// is the smaller of the SOA record's TTL and its MINIMUM field, and an
	// answer without an SOA is not cached. 0 disables negative caching.
	NegativeTTL time.Duration `toml:"negative_ttl"`
}

// Defaults of Config, documented on its fields.
const (
	DefaultUpstream    = "127.0.0.1:53"
	DefaultTimeout     = 2 * time.Second
	DefaultCacheSize   = 10000
	DefaultMinTTL      = 0
	DefaultMaxTTL      = time.Hour
	DefaultNegativeTTL = 5 * time.Minute
)

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{
		Upstream:    DefaultUpstream,
		Timeout:     DefaultTimeout,
		CacheSize:   DefaultCacheSize,
		MinTTL:      DefaultMinTTL,
		MaxTTL:      DefaultMaxTTL,
		NegativeTTL: DefaultNegativeTTL,
	}
}

// Validate reports the first invalid field, named by its TOML key.
func (c Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Upstream)
	if err != nil {
		return fmt.Errorf("upstream: %q is not host:port: %w", c.Upstream, err)
	}
	if host == "" {
		return fmt.Errorf("upstream: %q has no host", c.Upstream)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("upstream: %q has no valid port number", c.Upstream)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("timeout: %v must be positive", c.Timeout)
	}
	if c.CacheSize < 0 {
		return fmt.Errorf("cache_size: %d is negative", c.CacheSize)
	}
	if c.MinTTL < 0 || c.MaxTTL < 0 || c.NegativeTTL < 0 {
		return errors.New("min_ttl, max_ttl, negative_ttl: must not be negative")
	}
	if c.MinTTL > c.MaxTTL {
		return fmt.Errorf("min_ttl: %v is above max_ttl %v", c.MinTTL, c.MaxTTL)
	}
	return nil
}
