// Package spf is a mail-stage filter that checks the Sender Policy
// Framework (RFC 7208): whether the client address may send mail for the
// domain of the envelope sender (MAIL FROM), or, for the null sender of a
// bounce, for the HELO domain (RFC 7208 §2.4).
//
// The evaluation is blitiri.com.ar/go/spf's, asking moat's resolver under
// the filter's deadline. It enforces RFC 7208 §4.6.4: at most 10 terms
// that query DNS (include, a, mx, ptr, exists, redirect), at most 2 void
// lookups, at most 10 hosts per mx term and 10 names per ptr term; past
// any of them the result is permerror.
//
// Every SPF result is a symbol (SPF_PASS ... SPF_PERMERROR), an "spf"
// authentication result with smtp.mailfrom, and the fact "spf.domain"
// naming the domain checked, which DMARC (RFC 7489 §4.2) aligns with the
// From domain. A DNS fault is the result temperror (SPF_TEMPERROR, score
// 0), not an error of the filter: DMARC must see that SPF could not
// decide, and the pipeline would drop the authentication result that goes
// with an error.
//
// Wiring: New(cfg, r) at the mail stage, after MAIL FROM (the HELO
// argument is in Input.Conn.Helo). Clients that authenticated
// (Input.Conn.AuthUser set) are not checked: their mail is the
// organisation's own.
package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	spflib "blitiri.com.ar/go/spf"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver"
)

// The symbol names the filter returns: one per result of RFC 7208 §2.6.
const (
	SymPass      = "SPF_PASS"
	SymFail      = "SPF_FAIL"
	SymSoftFail  = "SPF_SOFTFAIL"
	SymNeutral   = "SPF_NEUTRAL"
	SymNone      = "SPF_NONE"
	SymTempError = "SPF_TEMPERROR"
	SymPermError = "SPF_PERMERROR"
)

// FactDomain is the fact naming the domain whose SPF record was checked:
// the MAIL FROM domain, or the HELO domain for the null sender, in lower
// case and as an A-label. It is set with every result but none.
const FactDomain = "spf.domain"

// Method is the authentication method name of the results (RFC 8601
// §2.7.2).
const Method = "spf"

// Config configures the filter. Start from DefaultConfig.
//
// The defaults follow rspamd's R_SPF_* weights, with softfail between
// rspamd's 0 and SpamAssassin's 0.67. SPF says who may send for a
// domain, not whether the mail is wanted: spammers pass SPF for domains
// of their own, and forwarding breaks it for legitimate mail (RFC 7208
// §9.3.1), so no SPF result alone should reach a rejection threshold.
type Config struct {
	// PassScore is the score of SPF_PASS (TOML pass_score, default
	// -0.2): a small credit, since anyone can publish a record that
	// passes their own servers.
	PassScore float64 `toml:"pass_score"`
	// FailScore is the score of SPF_FAIL (TOML fail_score, default 1.0):
	// the domain disowns the client (RFC 7208 §8.4), but forwarders
	// fail too.
	FailScore float64 `toml:"fail_score"`
	// SoftFailScore is the score of SPF_SOFTFAIL (TOML softfail_score,
	// default 0.5): "probably not authorized" (RFC 7208 §8.5).
	SoftFailScore float64 `toml:"softfail_score"`
	// NeutralScore is the score of SPF_NEUTRAL (TOML neutral_score,
	// default 0): the domain makes no assertion (RFC 7208 §8.2).
	NeutralScore float64 `toml:"neutral_score"`
	// NoneScore is the score of SPF_NONE (TOML none_score, default 0):
	// no record, or no domain to check (RFC 7208 §8.1).
	NoneScore float64 `toml:"none_score"`
	// TempErrorScore is the score of SPF_TEMPERROR (TOML
	// temperror_score, default 0). It may not be positive: a DNS fault
	// must never push a message towards rejection.
	TempErrorScore float64 `toml:"temperror_score"`
	// PermErrorScore is the score of SPF_PERMERROR (TOML
	// permerror_score, default 0): the domain's record is broken (RFC
	// 7208 §8.7), which says nothing of the client.
	PermErrorScore float64 `toml:"permerror_score"`
}

// Defaults of Config, documented on its fields.
const (
	DefaultPassScore      = -0.2
	DefaultFailScore      = 1.0
	DefaultSoftFailScore  = 0.5
	DefaultNeutralScore   = 0.0
	DefaultNoneScore      = 0.0
	DefaultTempErrorScore = 0.0
	DefaultPermErrorScore = 0.0
)

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{
		PassScore:      DefaultPassScore,
		FailScore:      DefaultFailScore,
		SoftFailScore:  DefaultSoftFailScore,
		NeutralScore:   DefaultNeutralScore,
		NoneScore:      DefaultNoneScore,
		TempErrorScore: DefaultTempErrorScore,
		PermErrorScore: DefaultPermErrorScore,
	}
}

// Validate reports the first invalid field, named by its TOML key.
func (c Config) Validate() error {
	if err := filters.ValidateScores(c); err != nil {
		return err
	}
	if c.TempErrorScore > 0 {
		return fmt.Errorf("temperror_score: %v is positive; a temporary DNS fault must not count against a message", c.TempErrorScore)
	}
	return nil
}

// Filter is the SPF check. It is safe for concurrent use.
type Filter struct {
	cfg    Config
	dns    netResolver
	scores map[spflib.Result]scored
}

// scored is the symbol and score of one SPF result.
type scored struct {
	sym   string
	score float64
}

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.SymbolDeclarer = (*Filter)(nil)
)

// New returns the filter, asking r.
func New(cfg Config, r resolver.Resolver) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("spf config: %w", err)
	}
	if r == nil {
		return nil, errors.New("spf: no resolver")
	}
	return &Filter{cfg: cfg, dns: netResolver{r}, scores: map[spflib.Result]scored{
		spflib.Pass:      {SymPass, cfg.PassScore},
		spflib.Fail:      {SymFail, cfg.FailScore},
		spflib.SoftFail:  {SymSoftFail, cfg.SoftFailScore},
		spflib.Neutral:   {SymNeutral, cfg.NeutralScore},
		spflib.None:      {SymNone, cfg.NoneScore},
		spflib.TempError: {SymTempError, cfg.TempErrorScore},
		spflib.PermError: {SymPermError, cfg.PermErrorScore},
	}}, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return "spf" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageMail }

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string {
	return []string{SymPass, SymFail, SymSoftFail, SymNeutral, SymNone, SymTempError, SymPermError}
}

// Check implements filters.Filter. It returns an error only for an input
// without client address or envelope; every DNS outcome is a result.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Conn == nil || !in.Conn.RemoteIP.IsValid() || in.Env == nil {
		return filters.Result{}, errors.New("spf: no client address or envelope")
	}
	if in.Conn.AuthUser != "" {
		return filters.Result{}, nil
	}
	ip := in.Conn.RemoteIP.Unmap().WithZone("")
	id := identityOf(in.Env.From, in.Conn.Helo)
	if id.domain == "" {
		// RFC 7208 §4.3: a domain that is malformed or not
		// multi-label gives "none" without any lookup; so does a HELO
		// that is an address literal (§2.3).
		return f.result(spflib.None, nil, id, ip.String()), nil
	}
	res, err := spflib.CheckHostWithSender(net.IP(ip.AsSlice()), id.helo, id.sender,
		spflib.WithContext(ctx), spflib.WithResolver(f.dns))
	return f.result(res, err, id, ip.String()), nil
}

// result builds the filter's findings for an SPF result.
func (f *Filter) result(res spflib.Result, err error, id identity, ip string) filters.Result {
	s, ok := f.scores[res]
	if !ok {
		// The library returns one of its seven results; anything else
		// would be a bug there, and an unknown answer is not a verdict.
		res, s = spflib.TempError, f.scores[spflib.TempError]
	}
	reason := explain(res, err, id.domain, ip)
	out := filters.Result{
		Symbols: []filters.Symbol{{Name: s.sym, Score: s.score, Reason: reason}},
		Auth: []filters.AuthResult{{Method: Method, Value: filters.AuthValue(res), Reason: reason,
			Props: []filters.AuthProp{{Type: "smtp", Name: "mailfrom", Value: id.mailfrom}}}},
	}
	if id.domain != "" {
		out.Facts = []filters.Fact{{Name: FactDomain, Value: id.domain}}
	}
	return out
}

// explain says in a short text why res came out. It is built from fixed
// texts, the checked domain (a valid A-label name) and the client
// address only: library errors may quote DNS names from records, which
// are not fit for a header field.
func explain(res spflib.Result, err error, domain, ip string) string {
	if domain == "" {
		return "no valid domain to check (RFC 7208 §4.3)"
	}
	switch res {
	case spflib.Pass:
		return ip + " is permitted to send for " + domain
	case spflib.Fail:
		return ip + " is not permitted to send for " + domain + " (RFC 7208 §8.4)"
	case spflib.SoftFail:
		return ip + " is probably not permitted to send for " + domain + " (RFC 7208 §8.5)"
	case spflib.Neutral:
		return domain + " makes no assertion about " + ip
	case spflib.None:
		return domain + " publishes no SPF record"
	case spflib.TempError:
		return "DNS lookup for " + domain + " failed temporarily"
	}
	why := "the record cannot be interpreted"
	switch {
	case errors.Is(err, spflib.ErrLookupLimitReached):
		why = "more than 10 terms query DNS (RFC 7208 §4.6.4)"
	case errors.Is(err, spflib.ErrVoidLookupLimitReached):
		why = "more than 2 lookups found nothing (RFC 7208 §4.6.4)"
	case errors.Is(err, spflib.ErrTooManyMXRecords):
		why = "an mx term names more than 10 hosts (RFC 7208 §4.6.4)"
	case errors.Is(err, spflib.ErrMultipleRecords):
		why = "it publishes more than one SPF record (RFC 7208 §4.5)"
	case errors.Is(err, spflib.ErrNoResult):
		why = "an include or redirect names a domain without SPF record (RFC 7208 §5.2, §6.1)"
	case errors.Is(err, spflib.ErrUnknownField), errors.Is(err, spflib.ErrInvalidIP),
		errors.Is(err, spflib.ErrInvalidMask), errors.Is(err, spflib.ErrInvalidMacro),
		errors.Is(err, spflib.ErrInvalidDomain):
		why = "its record has a syntax error (RFC 7208 §4.6)"
	}
	return "SPF record of " + domain + ": " + why
}

// identity is what SPF checks for one transaction (RFC 7208 §2.4).
type identity struct {
	// domain is the domain checked, lower case A-label; empty when
	// there is none fit to check.
	domain string
	// sender is the <sender> of check_host(): the MAIL FROM address,
	// or postmaster@<HELO> for the null sender.
	sender string
	// mailfrom is the smtp.mailfrom property: sender, or the raw
	// reverse path when no domain could be taken from it.
	mailfrom string
	// helo is the HELO domain as given, for the %{h} macro.
	helo string
}

// identityOf returns the identity checked for the reverse path from
// (without angle brackets, "" for the null sender) after HELO helo.
func identityOf(from, helo string) identity {
	id := identity{helo: helo}
	local, domain := "", ""
	if from == "" {
		// RFC 7208 §2.4: for the null sender, the MAIL FROM identity
		// is postmaster@<HELO domain>.
		local, domain = "postmaster", helo
	} else if i := strings.LastIndexByte(from, '@'); i >= 0 {
		local, domain = from[:i], from[i+1:]
	}
	if local == "" {
		// RFC 7208 §4.3: a sender without local-part stands for
		// postmaster.
		local = "postmaster"
	}
	id.mailfrom = from
	if from == "" {
		id.mailfrom = "postmaster@" + helo
	}
	if d, ok := checkable(domain); ok {
		id.domain = d
		id.sender = local + "@" + d
		id.mailfrom = id.sender
	}
	return id
}

// checkable returns domain as the A-label name to ask for, and whether
// SPF can check it at all (RFC 7208 §4.3: well formed and multi-label).
func checkable(domain string) (string, bool) {
	a, err := resolver.ASCIIDomain(domain)
	if err != nil || !strings.Contains(a, ".") {
		return "", false
	}
	return a, true
}
