package greylist

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/moatmail/moat/filters/clientnet"
)

// Config configures the filter and names its database. Start from
// DefaultConfig and override what the configuration file sets: a zero
// field is a value, not a request for the default.
//
// Durations are time.Duration; the TOML decoder (BurntSushi/toml) reads
// them from strings such as "5m" or "840h".
type Config struct {
	// Path is the database (TOML path, default "": <data_dir>/greylist.db;
	// a relative path is under data_dir). It needs a restart to change.
	Path string `toml:"path"`
	// Delay is how long after its first attempt a triplet is refused
	// (TOML delay, default "5m", as postgrey's --delay=300 and rspamd's
	// greylist timeout). RFC 5321 §4.5.4.1 asks senders to wait at least
	// 30 minutes between retries, but common MTAs retry sooner (Postfix
	// after minimal_backoff_time, 300s), and the first retry is the one
	// greylisting should let through.
	Delay time.Duration `toml:"delay"`
	// RetryWindow is how long after its first attempt a triplet that has
	// not passed is remembered (TOML retry_window, default "24h", as
	// rspamd's greylist expire). A retry after it starts a new round (one
	// more delay) rather than being refused for good. Every common MTA
	// retries within a day (Postfix at most every maximal_backoff_time,
	// 4000s; Exim's default schedule every 15 minutes for 2 hours, then at
	// intervals growing to 16 hours), while every spam run that never
	// retries leaves a row for this long: postgrey's 2 days double the
	// rows for no gain.
	RetryWindow time.Duration `toml:"retry_window"`
	// PassLifetime is how long a passed triplet is accepted without delay
	// after its latest use (TOML pass_lifetime, default "840h" = 35 days,
	// postgrey's --max-age): a correspondent who writes every month is
	// greylisted once.
	PassLifetime time.Duration `toml:"pass_lifetime"`
	// AutoAllowAfter is how many triplets of a client network must pass
	// greylisting before the whole network is no longer greylisted (TOML
	// auto_allow_after, default 5 as postgrey's --auto-whitelist-clients;
	// 0 turns the automatic allow list off). Passes are counted at most
	// once an hour per network, as postgrey does, so that one retried
	// batch of recipients counts once: a network needs deliveries spread
	// over at least AutoAllowAfter-1 hours.
	AutoAllowAfter int `toml:"auto_allow_after"`
	// AutoAllowLifetime is how long a network stays on the automatic allow
	// list after its latest use, and how long a network's passes are
	// remembered before it gets there (TOML auto_allow_lifetime, default
	// "840h" = 35 days, postgrey's --max-age for its client list).
	AutoAllowLifetime time.Duration `toml:"auto_allow_lifetime"`
	// IPv4Prefix and IPv6Prefix are the prefix lengths of the client
	// network of a triplet (TOML ipv4_prefix, default 24, as postgrey's
	// --lookup-by-subnet; ipv6_prefix, default 64, as rspamd's
	// ipv6_mask): a provider that retries from another address of its
	// pool is the same client.
	IPv4Prefix int `toml:"ipv4_prefix"`
	IPv6Prefix int `toml:"ipv6_prefix"`
	// AllowNetworks are client networks never greylisted (TOML
	// allow_networks, default clientnet.Local: loopback, private, shared
	// and link-local; greylisting them would defer the operator's own
	// tools and relays). An empty list greylists every client.
	AllowNetworks []string `toml:"allow_networks"`
	// AllowRecipients are recipients never greylisted (TOML
	// allow_recipients, default ["postmaster@", "abuse@"], as postgrey's
	// postgrey_whitelist_recipients: RFC 5321 §4.5.1 and RFC 2142 want
	// reports to reach these at once). A pattern is "user@domain",
	// "user@" (any domain) or "@domain"; a "+extension" of the
	// recipient's user is ignored.
	AllowRecipients []string `toml:"allow_recipients"`
	// SkipDNSWL skips clients that an earlier check found on a DNS allow
	// list, as the symbol DNSWLSymbol says (TOML skip_dnswl, default
	// true).
	SkipDNSWL bool `toml:"skip_dnswl"`
	// SkipSPFPass skips a transaction whose envelope sender's domain
	// authorises the client (an SPF pass, RFC 7208 §2.6.3) (TOML
	// skip_spf_pass, default true). Greylisting defeats senders that do
	// not retry; a sender whose domain vouches for its address runs a
	// mail server that retries, so the delay would cost its mail time and
	// stop nothing, and large providers that retry from another address
	// pool would be delayed most.
	SkipSPFPass bool `toml:"skip_spf_pass"`
	// ExpireInterval is how often RunExpiry removes expired records
	// (TOML expire_interval, default "1h", as postgrey's maintenance).
	// Expired records are ignored by the check whether removed or not.
	ExpireInterval time.Duration `toml:"expire_interval"`
}

// Defaults of Config, documented on its fields.
const (
	DefaultDelay             = 5 * time.Minute
	DefaultRetryWindow       = 24 * time.Hour
	DefaultPassLifetime      = 35 * 24 * time.Hour
	DefaultAutoAllowAfter    = 5
	DefaultAutoAllowLifetime = 35 * 24 * time.Hour
	DefaultIPv4Prefix        = 24
	DefaultIPv6Prefix        = 64
	DefaultExpireInterval    = time.Hour
)

// DefaultAllowRecipients is the default of Config.AllowRecipients.
var DefaultAllowRecipients = []string{"postmaster@", "abuse@"}

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{
		Delay:             DefaultDelay,
		RetryWindow:       DefaultRetryWindow,
		PassLifetime:      DefaultPassLifetime,
		AutoAllowAfter:    DefaultAutoAllowAfter,
		AutoAllowLifetime: DefaultAutoAllowLifetime,
		IPv4Prefix:        DefaultIPv4Prefix,
		IPv6Prefix:        DefaultIPv6Prefix,
		AllowNetworks:     append([]string(nil), clientnet.Local...),
		AllowRecipients:   append([]string(nil), DefaultAllowRecipients...),
		SkipDNSWL:         true,
		SkipSPFPass:       true,
		ExpireInterval:    DefaultExpireInterval,
	}
}

// refreshEvery bounds how often a passed triplet's or an allowed
// network's last use is written: a known correspondent costs a read, not
// a write, per recipient. An hour is nothing against lifetimes of weeks.
const refreshEvery = time.Hour

// countEvery is the least time between two passes counted for a network
// (postgrey counts one per hour).
const countEvery = time.Hour

// Validate reports every invalid setting, named by its TOML key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if c.Delay < 0 {
		bad("delay", "%v is negative", c.Delay)
	}
	if c.RetryWindow <= c.Delay {
		bad("retry_window", "%v is not longer than delay %v: no retry could pass", c.RetryWindow, c.Delay)
	}
	if c.PassLifetime < refreshEvery {
		bad("pass_lifetime", "%v is below %v", c.PassLifetime, refreshEvery)
	}
	if c.AutoAllowAfter < 0 {
		bad("auto_allow_after", "%d is negative", c.AutoAllowAfter)
	}
	if c.AutoAllowAfter > 0 && c.AutoAllowLifetime < refreshEvery {
		bad("auto_allow_lifetime", "%v is below %v", c.AutoAllowLifetime, refreshEvery)
	}
	if err := clientnet.CheckPrefixLengths("ipv4_prefix", c.IPv4Prefix, "ipv6_prefix", c.IPv6Prefix); err != nil {
		errs = append(errs, err)
	}
	if _, err := clientnet.ParseList("allow_networks", c.AllowNetworks); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseRecipients(c.AllowRecipients); err != nil {
		errs = append(errs, err)
	}
	if c.ExpireInterval < time.Minute {
		bad("expire_interval", "%v is below 1m", c.ExpireInterval)
	}
	return errors.Join(errs...)
}

// Network returns the client network of ip under c: what a triplet
// holds, and what `moat greylist allow IP` allows.
func (c Config) Network(ip netip.Addr) netip.Prefix {
	return clientnet.Mask(ip, c.IPv4Prefix, c.IPv6Prefix)
}

// Triplet returns the triplet of a delivery attempt from ip, with the
// envelope sender from (empty for the null sender) and the recipient
// rcpt.
func (c Config) Triplet(ip netip.Addr, from, rcpt string) Triplet {
	return Triplet{Network: c.Network(ip), Sender: NormalizeSender(from), Rcpt: normalizeRcpt(rcpt)}
}

// recipientPattern is one allow_recipients entry, split at its '@'.
type recipientPattern struct{ user, domain string }

func parseRecipients(ss []string) ([]recipientPattern, error) {
	out := make([]recipientPattern, 0, len(ss))
	for i, s := range ss {
		at := strings.LastIndexByte(s, '@')
		if at < 0 || s == "@" {
			return nil, fmt.Errorf("allow_recipients[%d]: %q is not user@domain, user@ or @domain", i, s)
		}
		s = strings.ToLower(s)
		out = append(out, recipientPattern{user: s[:at], domain: s[at+1:]})
	}
	return out, nil
}

// match reports whether the lower-cased recipient rcpt matches.
func (p recipientPattern) match(rcpt string) bool {
	at := strings.LastIndexByte(rcpt, '@')
	if at < 0 {
		return false
	}
	user, domain := rcpt[:at], rcpt[at+1:]
	if i := strings.IndexByte(user, '+'); i > 0 {
		user = user[:i]
	}
	return (p.user == "" || p.user == user) && (p.domain == "" || p.domain == domain)
}
