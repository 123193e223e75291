// Package throttle slows down password guessing. It counts failed logins per
// client network and per account, in memory, and says how long the next
// attempt from that client or for that account should wait.
//
// It knows nothing of IMAP, POP3 or SMTP: every server that checks passwords
// (IMAP LOGIN and AUTHENTICATE, SMTP AUTH, POP3 USER/PASS) asks Delay before
// checking, then reports Failure or Success.
//
// The delay grows exponentially once a key has used up its free failures
// (by default: nothing for the first 3, then 1s, 2s, 4s … capped at 30s) and
// the count halves for every quiet period without a failure, so that a user
// who mistyped a password yesterday starts afresh. Both counters are
// bounded: when the table is full the entry touched longest ago is evicted.
//
// It lives under gateway/, moat's network front, as a leaf: it imports
// nothing of moat, so that the mail servers under delivery/ (imapd, pop3d)
// use it as the SMTP front does, and it must never import package gateway.
package throttle

import (
	"container/list"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Config sets the shape of the back-off. Zero fields take their defaults in
// Validate.
type Config struct {
	// FreeFailures is how many failures a key may make before attempts are
	// delayed (default 3, at least 1: a user who mistypes once deserves an
	// immediate retry).
	FreeFailures int `toml:"free_failures"`
	// BaseDelay is the delay once the free failures are used up; it doubles
	// with each further failure (default 1s).
	BaseDelay time.Duration `toml:"base_delay"`
	// MaxDelay caps the delay (default 30s). Keep it at or below the
	// protocol's command timeout (30s for IMAP clients built on go-imap),
	// or clients time out instead of hearing the refusal.
	MaxDelay time.Duration `toml:"max_delay"`
	// DecayAfter is the quiet period after which a key's failure count is
	// halved; it keeps halving for each further quiet period (default 10m).
	DecayAfter time.Duration `toml:"decay_after"`
	// MaxEntries bounds the table of keys (default 65536); the least
	// recently touched entry is evicted when it is full.
	MaxEntries int `toml:"max_entries"`
	// IPv6Prefix is the prefix length under which IPv6 clients are counted
	// together (default 64): one end site usually holds a whole /64 and can
	// change address at will within it.
	IPv6Prefix int `toml:"ipv6_prefix"`
}

// Defaults used by Validate for zero fields.
const (
	DefaultFreeFailures = 3
	DefaultBaseDelay    = time.Second
	DefaultMaxDelay     = 30 * time.Second
	DefaultDecayAfter   = 10 * time.Minute
	DefaultMaxEntries   = 1 << 16
	DefaultIPv6Prefix   = 64
)

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.FreeFailures == 0 {
		c.FreeFailures = DefaultFreeFailures
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = DefaultBaseDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.DecayAfter == 0 {
		c.DecayAfter = DefaultDecayAfter
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = DefaultIPv6Prefix
	}
	var errs []error
	if c.FreeFailures < 1 {
		errs = append(errs, fmt.Errorf("free_failures: %d is below 1", c.FreeFailures))
	}
	if c.BaseDelay < 0 {
		errs = append(errs, fmt.Errorf("base_delay: %v is negative", c.BaseDelay))
	}
	if c.MaxDelay < c.BaseDelay {
		errs = append(errs, fmt.Errorf("max_delay: %v is below base_delay %v", c.MaxDelay, c.BaseDelay))
	}
	if c.DecayAfter < 0 {
		errs = append(errs, fmt.Errorf("decay_after: %v is negative", c.DecayAfter))
	}
	if c.MaxEntries < 2 {
		errs = append(errs, fmt.Errorf("max_entries: %d is below 2", c.MaxEntries))
	}
	if c.IPv6Prefix < 1 || c.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("ipv6_prefix: %d is outside 1..128", c.IPv6Prefix))
	}
	return errors.Join(errs...)
}

// maxKeyLen bounds the memory one entry can hold: a client may send a user
// name of many kilobytes, and no mail address is longer than 254 octets
// (RFC 5321 §4.5.3.1.3), so nothing legitimate is cut.
const maxKeyLen = 256

// Throttle counts failures per client network and per account. It is safe
// for concurrent use.
type Throttle struct {
	cfg Config

	mu      sync.Mutex
	now     func() time.Time
	entries map[string]*list.Element // of *entry
	order   *list.List               // front: most recently touched
}

type entry struct {
	key      string
	failures int
	last     time.Time
}

// New returns a Throttle. It returns the error of cfg.Validate.
func New(cfg Config) (*Throttle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("throttle config: %w", err)
	}
	return newThrottle(cfg), nil
}

// newThrottle returns a throttle over a validated configuration.
func newThrottle(cfg Config) *Throttle {
	return &Throttle{
		cfg:     cfg,
		now:     time.Now,
		entries: make(map[string]*list.Element),
		order:   list.New(),
	}
}

// defaultThrottle returns a throttle of default settings, which are valid.
func defaultThrottle() *Throttle {
	var cfg Config
	cfg.Validate()
	return newThrottle(cfg)
}

// SetClock replaces the clock (tests).
func (t *Throttle) SetClock(now func() time.Time) {
	t.mu.Lock()
	t.now = now
	t.mu.Unlock()
}

// Delay returns how long an attempt from ip for account should wait before
// its password is checked: the longer of the two keys' delays. A zero ip or
// an empty account is not counted.
func (t *Throttle) Delay(ip netip.Addr, account string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var d time.Duration
	for _, k := range t.keys(ip, account) {
		if el, ok := t.entries[k]; ok {
			d = max(d, t.delayFor(t.effective(el.Value.(*entry), now)))
		}
	}
	return d
}

// Failure records a failed attempt from ip for account.
func (t *Throttle) Failure(ip netip.Addr, account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range t.keys(ip, account) {
		el, ok := t.entries[k]
		if !ok {
			if t.order.Len() >= t.cfg.MaxEntries {
				oldest := t.order.Back()
				t.order.Remove(oldest)
				delete(t.entries, oldest.Value.(*entry).key)
			}
			el = t.order.PushFront(&entry{key: k})
			t.entries[k] = el
		}
		e := el.Value.(*entry)
		e.failures = t.effective(e, now) + 1
		e.last = now
		t.order.MoveToFront(el)
	}
}

// Success records a successful login: the account's failures are forgotten.
// The client's are not, on purpose: an attacker who owns one account could
// otherwise wipe their address's record between guesses at other accounts
// by logging in to their own. A legitimate client's few failures decay with
// time.
func (t *Throttle) Success(ip netip.Addr, account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if account = accountKey(account); account == "" {
		return
	}
	if el, ok := t.entries[account]; ok {
		t.order.Remove(el)
		delete(t.entries, account)
	}
}

// Len returns the number of keys tracked.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.order.Len()
}

// keys returns the table keys of a client address and an account. The two
// name spaces cannot collide: one starts with "ip:", the other with "acct:".
func (t *Throttle) keys(ip netip.Addr, account string) []string {
	keys := make([]string, 0, 2)
	if ip.IsValid() {
		ip = ip.Unmap()
		if ip.Is6() {
			if p, err := ip.Prefix(t.cfg.IPv6Prefix); err == nil {
				keys = append(keys, "ip:"+p.String())
			}
		} else {
			keys = append(keys, "ip:"+ip.String())
		}
	}
	if a := accountKey(account); a != "" {
		keys = append(keys, a)
	}
	return keys
}

func accountKey(account string) string {
	account = strings.ToLower(strings.TrimSpace(account))
	if account == "" {
		return ""
	}
	if len(account) > maxKeyLen {
		account = account[:maxKeyLen]
	}
	return "acct:" + account
}

// effective is the failure count after decay: halved once per quiet period
// since the last failure.
func (t *Throttle) effective(e *entry, now time.Time) int {
	if t.cfg.DecayAfter <= 0 {
		return e.failures
	}
	quiet := now.Sub(e.last)
	if quiet < 0 {
		return e.failures
	}
	halvings := quiet / t.cfg.DecayAfter
	if halvings >= 31 {
		return 0
	}
	return e.failures >> uint(halvings)
}

// delayFor maps a failure count to a delay: zero within the free failures,
// then BaseDelay doubling per further failure, capped at MaxDelay.
func (t *Throttle) delayFor(failures int) time.Duration {
	over := failures - t.cfg.FreeFailures
	if over < 0 {
		return 0
	}
	d := t.cfg.BaseDelay
	for i := 0; i < over; i++ {
		d *= 2
		if d >= t.cfg.MaxDelay {
			return t.cfg.MaxDelay
		}
	}
	return min(d, t.cfg.MaxDelay)
}
