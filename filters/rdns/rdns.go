// Package rdns is a connect-stage filter that checks the client's reverse
// DNS: the address has a PTR record, and one of the PTR names resolves
// back to the address (forward-confirmed reverse DNS, FCrDNS; RFC 8601
// §2.7.3 "iprev", RFC 1912 §2.1).
//
// Mail servers are expected to have matching forward and reverse DNS;
// hosts of botnets mostly have none, or a generic one that does not
// confirm. Neither is proof, so the default scores are small.
package rdns

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver"
)

// The symbol names the filter returns.
const (
	// SymNone: the client address has no PTR record.
	SymNone = "RDNS_NONE"
	// SymMismatch: no PTR name of the address resolves back to it.
	SymMismatch = "RDNS_MISMATCH"
)

// Config configures the filter. Start from DefaultConfig.
type Config struct {
	// NoneScore is the score of RDNS_NONE (TOML none_score, default 1.0).
	NoneScore float64 `toml:"none_score"`
	// MismatchScore is the score of RDNS_MISMATCH (TOML mismatch_score,
	// default 0.5).
	MismatchScore float64 `toml:"mismatch_score"`
	// MaxNames bounds how many PTR names are resolved forward (TOML
	// max_names, default 10, as RFC 7208 §5.5 bounds the SPF "ptr"
	// mechanism): a client cannot make moat do unbounded lookups.
	MaxNames int `toml:"max_names"`
}

// Defaults of Config, documented on its fields.
const (
	DefaultNoneScore     = 1.0
	DefaultMismatchScore = 0.5
	DefaultMaxNames      = 10
)

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{NoneScore: DefaultNoneScore, MismatchScore: DefaultMismatchScore, MaxNames: DefaultMaxNames}
}

// Validate reports the first invalid field, named by its TOML key.
func (c Config) Validate() error {
	for _, s := range []struct {
		key string
		v   float64
	}{{"none_score", c.NoneScore}, {"mismatch_score", c.MismatchScore}} {
		if math.IsNaN(s.v) || math.IsInf(s.v, 0) {
			return fmt.Errorf("%s: %v is not a finite number", s.key, s.v)
		}
	}
	if c.MaxNames < 1 {
		return fmt.Errorf("max_names: %d is below 1", c.MaxNames)
	}
	return nil
}

// Filter is the reverse DNS check. It is safe for concurrent use.
type Filter struct {
	cfg Config
	dns resolver.Resolver
}

var _ filters.Filter = (*Filter)(nil)

// New returns the filter, asking r.
func New(cfg Config, r resolver.Resolver) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rdns config: %w", err)
	}
	if r == nil {
		return nil, errors.New("rdns: no resolver")
	}
	return &Filter{cfg: cfg, dns: r}, nil
}

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return []string{SymNone, SymMismatch} }

// Name implements filters.Filter.
func (f *Filter) Name() string { return "rdns" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageConnect }

// Check implements filters.Filter. A DNS fault that leaves the answer open
// is an error, never a symbol: the pipeline makes it RDNS_TEMPFAIL.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Conn == nil || !in.Conn.RemoteIP.IsValid() {
		return filters.Result{}, errors.New("rdns: no client address")
	}
	ip := in.Conn.RemoteIP.Unmap().WithZone("")
	if skipped(ip) {
		return filters.Result{}, nil
	}

	names, err := f.dns.LookupAddr(ctx, ip)
	switch {
	case resolver.IsNotFound(err), err == nil && len(names) == 0:
		// RFC 8601 §2.7.3: no PTR data published is permerror.
		return filters.Result{
			Symbols: []filters.Symbol{{Name: SymNone, Score: f.cfg.NoneScore, Reason: "no PTR record for " + ip.String()}},
			Auth:    []filters.AuthResult{iprev(filters.AuthPermError, ip)},
		}, nil
	case err != nil:
		return filters.Result{}, fmt.Errorf("rdns: PTR of %s: %w", ip, err)
	}

	if len(names) > f.cfg.MaxNames {
		names = names[:f.cfg.MaxNames]
	}
	var open error // first lookup that failed temporarily
	for _, name := range names {
		addrs, err := f.dns.LookupIP(ctx, name)
		if err != nil {
			if !resolver.IsNotFound(err) && open == nil {
				open = fmt.Errorf("rdns: forward lookup of %s: %w", name, err)
			}
			continue
		}
		for _, a := range addrs {
			if a.Unmap() == ip {
				// Confirmed: the name the SMTP front shows in
				// Received (RFC 5321 §4.4) and later checks read.
				return filters.Result{
					Auth:  []filters.AuthResult{iprev(filters.AuthPass, ip)},
					Facts: []filters.Fact{{Name: filters.FactReverseName, Value: strings.TrimSuffix(strings.ToLower(name), ".")}},
				}, nil
			}
		}
	}
	if open != nil {
		// A name we could not resolve might have confirmed.
		return filters.Result{}, open
	}
	return filters.Result{
		Symbols: []filters.Symbol{{Name: SymMismatch, Score: f.cfg.MismatchScore, Reason: mismatchReason(ip, names)}},
		Auth:    []filters.AuthResult{iprev(filters.AuthFail, ip)},
	}, nil
}

// iprev is the authentication result of RFC 8601 §2.7.3 for ip.
func iprev(v filters.AuthValue, ip netip.Addr) filters.AuthResult {
	return filters.AuthResult{Method: "iprev", Value: v,
		Props: []filters.AuthProp{{Type: "policy", Name: "iprev", Value: ip.String()}}}
}

// skipped reports whether ip is one whose reverse DNS says nothing about
// the sender: loopback, private (RFC 1918, RFC 4193), shared (RFC 6598),
// link-local or unspecified. Such clients are the operator's own.
func skipped(ip netip.Addr) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsUnspecified() || cgnat.Contains(ip)
}

// cgnat is the shared address space of RFC 6598.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// mismatchReason says which names failed, cut short: the names come from
// whoever controls the reverse zone.
func mismatchReason(ip netip.Addr, names []string) string {
	const maxLen = 160
	r := fmt.Sprintf("PTR %s does not resolve back to %s", strings.Join(names, ", "), ip)
	if len(r) > maxLen {
		r = r[:maxLen-3] + "..."
	}
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c > 0x7e {
			return '?'
		}
		return c
	}, r)
}
