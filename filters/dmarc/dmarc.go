// Package dmarc is a data-stage filter that evaluates DMARC (RFC 7489):
// whether the domain of the RFC5322.From field is authenticated by an
// aligned SPF or DKIM pass, and, when it is not, what its owner asks
// receivers to do with the message.
//
// It reads SPF's and DKIM's findings from Input.Prior: the "spf" result
// with smtp.mailfrom (filters/spf, mail stage) and the "dkim" results with
// header.d (filters/dkim, this stage; the filter runs after it, see
// After). The policy record is _dmarc.<From domain>, or that of the
// organizational domain (the public suffix list's registrable domain)
// when the From domain has none (RFC 7489 §6.6.3), fetched through moat's
// resolver; ParseRecord reads it.
//
// Findings:
//   - a symbol: DMARC_PASS, DMARC_FAIL, DMARC_NONE (no policy record),
//     DMARC_TEMPERROR (a DNS fault, or SPF or DKIM could not decide and
//     nothing else aligned), DMARC_PERMERROR (a broken record, or several)
//     or DMARC_BAD_FROM (no single author domain: the From field is
//     missing, repeated, unparsable or holds several addresses, RFC 7489
//     §6.6.1; DMARC is then not evaluated);
//   - beside DMARC_FAIL, DMARC_POLICY_REJECT or DMARC_POLICY_QUARANTINE
//     when the policy that applies after sampling (p=, or sp= for a
//     subdomain, pct=) is reject or quarantine;
//   - a "dmarc" authentication result with header.from (RFC 7489 §11.2);
//   - the facts "dmarc.result" (pass, fail, none, temperror, permerror),
//     "from.domain" (the From domain, lower-case A-labels) and, on fail,
//     "dmarc.policy" (reject, quarantine or none, after sampling).
//
// The filter decides no SMTP action: it exposes the disposition. To follow
// the domain owner's wish, a rule or policy maps DMARC_POLICY_REJECT to a
// rejection (550 5.7.1, RFC 7489 §10.3) and DMARC_POLICY_QUARANTINE to
// quarantine; otherwise the symbols only score. A temporary fault never
// yields DMARC_FAIL nor a policy symbol.
//
// pct= sampling (RFC 7489 §6.6.4) hashes the From domain and the
// Message-ID (the header when there is none) with a key chosen at random
// when the filter is made: a message retried after a temporary failure
// is judged the same way, and a sender cannot compute which Message-IDs
// escape the policy. A message left out of the sample gets the next
// milder policy: reject becomes quarantine, quarantine becomes none.
//
// Wiring: New(cfg, r) at the data stage, in the pipeline with the spf
// and dkim filters. Clients that authenticated (Input.Conn.AuthUser set)
// are not checked: their mail is the organisation's own, and would fail
// its own domain's policy before being signed on the way out.
package dmarc

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-message/textproto"
	"golang.org/x/net/publicsuffix"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/policies"
)

// The symbol names the filter returns.
const (
	SymPass      = "DMARC_PASS"
	SymFail      = "DMARC_FAIL"
	SymNone      = "DMARC_NONE"
	SymTempError = "DMARC_TEMPERROR"
	SymPermError = "DMARC_PERMERROR"
	SymBadFrom   = "DMARC_BAD_FROM"
	// SymPolicyReject comes beside DMARC_FAIL when the domain asks that
	// failing mail be rejected, and the message is in the pct= sample.
	SymPolicyReject = "DMARC_POLICY_REJECT"
	// SymPolicyQuarantine comes beside DMARC_FAIL when the domain asks
	// that failing mail be quarantined (or rejected, for a message left
	// out of the sample).
	SymPolicyQuarantine = "DMARC_POLICY_QUARANTINE"
)

// The facts the filter sets.
const (
	// FactResult is the DMARC result: pass, fail, none, temperror or
	// permerror (DMARC_BAD_FROM is permerror).
	FactResult = "dmarc.result"
	// FactPolicy is, on fail, the policy that applies after sampling:
	// reject, quarantine or none.
	FactPolicy = "dmarc.policy"
	// FactFromDomain is the RFC5322.From domain, lower-case A-labels.
	FactFromDomain = "from.domain"
)

// Method is the authentication method name of the result (RFC 7489
// §11.2).
const Method = "dmarc"

// The names under which the pipeline reports that the spf or dkim filter
// failed (rules.Pipeline: <NAME>_TEMPFAIL): their outcome is unknown.
const (
	spfFilterFailed  = "SPF_TEMPFAIL"
	dkimFilterFailed = "DKIM_TEMPFAIL"
)

// Config configures the filter. Start from DefaultConfig.
//
// The defaults follow rspamd's DMARC_POLICY_* weights: the policy symbols
// carry the weight, since they say what the domain's owner wants; a fail
// under p=none scores little, as the owner asks for nothing.
type Config struct {
	// PassScore is the score of DMARC_PASS (TOML pass_score, default
	// -0.5).
	PassScore float64 `toml:"pass_score"`
	// FailScore is the score of DMARC_FAIL (TOML fail_score, default
	// 0.1).
	FailScore float64 `toml:"fail_score"`
	// RejectScore is the score of DMARC_POLICY_REJECT (TOML
	// reject_score, default 2.0).
	RejectScore float64 `toml:"reject_score"`
	// QuarantineScore is the score of DMARC_POLICY_QUARANTINE (TOML
	// quarantine_score, default 1.5).
	QuarantineScore float64 `toml:"quarantine_score"`
	// NoneScore is the score of DMARC_NONE (TOML none_score, default 0).
	NoneScore float64 `toml:"none_score"`
	// TempErrorScore is the score of DMARC_TEMPERROR (TOML
	// temperror_score, default 0). It may not be positive.
	TempErrorScore float64 `toml:"temperror_score"`
	// PermErrorScore is the score of DMARC_PERMERROR (TOML
	// permerror_score, default 0): the domain's record is broken.
	PermErrorScore float64 `toml:"permerror_score"`
	// BadFromScore is the score of DMARC_BAD_FROM (TOML bad_from_score,
	// default 1.0): a message without one author domain evades DMARC,
	// and several From fields are a known spoofing trick (RFC 7489
	// §6.6.1).
	BadFromScore float64 `toml:"bad_from_score"`
	// Enforce follows the domain owner's policy (TOML enforce, default
	// true): a failing message is demanded the disposition the domain
	// asks for after pct (p=reject: reject, 550 5.7.1 in the dialogue;
	// p=quarantine: moat's quarantine), as RFC 7489 §6.6.4 lets a
	// receiver do. false scores only. A policy can also waive the demand
	// for its recipients (policies ignore_demands = ["dmarc"]).
	Enforce bool `toml:"enforce"`
	// DeferTempError asks for tempfail (451 4.7.1) when SPF or DKIM could
	// not be checked for an aligned domain whose policy is reject (TOML
	// defer_temperror, default true): the message might fail and must not
	// be taken as clean, nor refused for good for a fault that may pass.
	DeferTempError bool `toml:"defer_temperror"`
}

// Defaults of Config, documented on its fields.
const (
	DefaultPassScore       = -0.5
	DefaultFailScore       = 0.1
	DefaultRejectScore     = 2.0
	DefaultQuarantineScore = 1.5
	DefaultNoneScore       = 0.0
	DefaultTempErrorScore  = 0.0
	DefaultPermErrorScore  = 0.0
	DefaultBadFromScore    = 1.0
)

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{
		PassScore:       DefaultPassScore,
		FailScore:       DefaultFailScore,
		RejectScore:     DefaultRejectScore,
		QuarantineScore: DefaultQuarantineScore,
		NoneScore:       DefaultNoneScore,
		TempErrorScore:  DefaultTempErrorScore,
		PermErrorScore:  DefaultPermErrorScore,
		BadFromScore:    DefaultBadFromScore,
		Enforce:         true,
		DeferTempError:  true,
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

// Filter is the DMARC check. It is safe for concurrent use.
type Filter struct {
	cfg  Config
	dns  resolver.Resolver
	seed maphash.Seed // the key of pct= sampling
}

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.SymbolDeclarer = (*Filter)(nil)
	_ filters.Sequenced      = (*Filter)(nil)
)

// New returns the filter, fetching policy records through r.
func New(cfg Config, r resolver.Resolver) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dmarc config: %w", err)
	}
	if r == nil {
		return nil, errors.New("dmarc: no resolver")
	}
	return &Filter{cfg: cfg, dns: r, seed: maphash.MakeSeed()}, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return "dmarc" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageData }

// After implements filters.Sequenced: DMARC reads DKIM's results. SPF's
// come from the mail stage.
func (f *Filter) After() []string { return []string{"dkim"} }

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string {
	return []string{SymPass, SymFail, SymNone, SymTempError, SymPermError, SymBadFrom, SymPolicyReject, SymPolicyQuarantine}
}

// Check implements filters.Filter. It returns an error only for an input
// without message; every DNS outcome is a result.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Msg == nil {
		return filters.Result{}, errors.New("dmarc: no message")
	}
	if in.Conn != nil && in.Conn.AuthUser != "" {
		return filters.Result{}, nil
	}
	from, bad := fromDomain(in.Msg.Header)
	if bad != "" {
		return filters.Result{
			Symbols: []filters.Symbol{{Name: SymBadFrom, Score: f.cfg.BadFromScore, Reason: bad}},
			Auth:    []filters.AuthResult{{Method: Method, Value: filters.AuthPermError, Reason: bad}},
			Facts:   []filters.Fact{{Name: FactResult, Value: string(filters.AuthPermError)}},
		}, nil
	}
	org := orgDomain(from)
	d := f.discover(ctx, from, org)
	if d.rec == nil {
		return f.result(from, d.value, d.reason, nil), nil
	}

	// RFC 7489 §4.2: pass when SPF or DKIM passes for an aligned
	// identifier.
	var e evidence
	e.read(in.Prior, d.rec, from)
	if e.pass != "" {
		return f.result(from, filters.AuthPass, e.pass, nil), nil
	}
	// RFC 7489 §6.6.3: sp= is for a From domain below the
	// organizational domain whose record was found there.
	asked := d.rec.Policy
	if d.at != from && d.rec.SubdomainPolicy != "" {
		asked = d.rec.SubdomainPolicy
	}
	if e.unknown != "" {
		// An authentication that could not be made might have
		// aligned: not a failure, which could be a rejection.
		r := f.result(from, filters.AuthTempError, e.unknown, nil)
		if asked == PolicyReject && f.cfg.DeferTempError {
			r.Demands = append(r.Demands, filters.Demand{Action: policies.ActionTempfail,
				Reason: from + " asks to reject failing mail and " + e.unknown})
		}
		return r, nil
	}
	applied := asked
	if !f.sampled(d.rec.Percent, in.Msg, from) {
		// RFC 7489 §6.6.4: out of the sample, the next milder policy.
		switch asked {
		case PolicyReject:
			applied = PolicyQuarantine
		case PolicyQuarantine:
			applied = PolicyNone
		}
	}
	reason := fmt.Sprintf("neither SPF nor DKIM aligned with %s (p=%s", from, d.rec.Policy)
	if d.rec.SubdomainPolicy != "" {
		reason += " sp=" + string(d.rec.SubdomainPolicy)
	}
	reason += fmt.Sprintf(" pct=%d dis=%s)", d.rec.Percent, applied)
	return f.result(from, filters.AuthFail, reason, &applied), nil
}

// result builds the findings for a DMARC result; applied is the policy
// that applies to a failing message.
func (f *Filter) result(from string, v filters.AuthValue, reason string, applied *Policy) filters.Result {
	var (
		sym   string
		score float64
	)
	switch v {
	case filters.AuthPass:
		sym, score = SymPass, f.cfg.PassScore
	case filters.AuthFail:
		sym, score = SymFail, f.cfg.FailScore
	case filters.AuthNone:
		sym, score = SymNone, f.cfg.NoneScore
	case filters.AuthTempError:
		sym, score = SymTempError, f.cfg.TempErrorScore
	default:
		sym, score = SymPermError, f.cfg.PermErrorScore
	}
	r := filters.Result{
		Symbols: []filters.Symbol{{Name: sym, Score: score, Reason: reason}},
		Auth: []filters.AuthResult{{Method: Method, Value: v, Reason: reason,
			Props: []filters.AuthProp{{Type: "header", Name: "from", Value: from}}}},
		Facts: []filters.Fact{{Name: FactResult, Value: string(v)}, {Name: FactFromDomain, Value: from}},
	}
	if applied != nil {
		r.Facts = append(r.Facts, filters.Fact{Name: FactPolicy, Value: string(*applied)})
		var demand policies.Action
		switch *applied {
		case PolicyReject:
			r.Symbols = append(r.Symbols, filters.Symbol{Name: SymPolicyReject, Score: f.cfg.RejectScore, Reason: from + " asks to reject failing mail"})
			demand = policies.ActionReject
		case PolicyQuarantine:
			r.Symbols = append(r.Symbols, filters.Symbol{Name: SymPolicyQuarantine, Score: f.cfg.QuarantineScore, Reason: from + " asks to quarantine failing mail"})
			demand = policies.ActionQuarantine
		}
		if demand != policies.ActionAccept && f.cfg.Enforce {
			r.Demands = append(r.Demands, filters.Demand{Action: demand, Reason: reason})
		}
	}
	return r
}

// discovery is the outcome of policy discovery: a record and the domain
// it was found at, or a result (none, temperror, permerror) and why.
type discovery struct {
	rec    *Record
	at     string
	value  filters.AuthValue
	reason string
}

// discover finds the policy for the From domain from (RFC 7489 §6.6.3):
// its own record, else its organizational domain org's.
func (f *Filter) discover(ctx context.Context, from, org string) discovery {
	d := f.fetch(ctx, from)
	if d.value == filters.AuthNone && org != from {
		d = f.fetch(ctx, org)
	}
	if d.value == filters.AuthNone {
		d.reason = "no DMARC record for " + from
	}
	return d
}

// fetch reads the DMARC record of domain.
func (f *Filter) fetch(ctx context.Context, domain string) discovery {
	name := "_dmarc." + domain
	txts, err := f.dns.LookupTXT(ctx, name)
	switch {
	case resolver.IsNotFound(err):
		return discovery{value: filters.AuthNone}
	case err != nil:
		// Not a definitive answer: it may hold a policy. No fallback
		// to the organizational domain, which might be milder.
		return discovery{value: filters.AuthTempError, reason: "DNS lookup of " + name + " failed temporarily"}
	}
	var (
		recs int
		rec  *Record
		bad  error
	)
	for _, t := range txts {
		r, err := ParseRecord(t)
		if errors.Is(err, errNotDMARC) {
			continue
		}
		recs++
		rec, bad = r, err
	}
	switch {
	case recs == 0:
		return discovery{value: filters.AuthNone}
	case recs > 1:
		// RFC 7489 §6.6.3 step 5: several records, no policy.
		return discovery{value: filters.AuthPermError, reason: name + " has several DMARC records"}
	case bad != nil:
		return discovery{value: filters.AuthPermError, reason: "DMARC record of " + domain + ": " + bad.Error()}
	}
	return discovery{rec: rec, at: domain}
}

// evidence is what SPF and DKIM found, as DMARC reads it.
type evidence struct {
	// pass says which aligned identifier passed, or is "".
	pass string
	// unknown says which check could not decide, or is "".
	unknown string
}

// read reads the SPF and DKIM results of prior for the From domain from
// under rec's alignment modes (RFC 7489 §3.1).
func (e *evidence) read(prior *filters.Result, rec *Record, from string) {
	for _, id := range []struct {
		name, method, ptype, prop string
		mode                      Alignment
	}{
		// RFC 7489 §3.1.2: SPF's domain is that of the reverse path
		// (postmaster@HELO for the null sender).
		{"SPF", "spf", "smtp", "mailfrom", rec.SPF},
		// §3.1.1: DKIM's is the signing domain.
		{"DKIM", "dkim", "header", "d", rec.DKIM},
	} {
		for _, a := range prior.AuthOf(id.method) {
			d := a.Prop(id.ptype, id.prop)
			d = d[strings.LastIndexByte(d, '@')+1:]
			if !aligned(id.mode, d, from) {
				continue
			}
			switch a.Value {
			case filters.AuthPass:
				e.pass = id.name + " passed for the aligned domain " + d
				return
			case filters.AuthTempError:
				e.unknown = id.name + " could not be checked for the aligned domain " + d
			}
		}
	}
	switch {
	case prior.HasSymbol(spfFilterFailed):
		e.unknown = "the SPF check failed"
	case prior.HasSymbol(dkimFilterFailed) && len(prior.AuthOf("dkim")) == 0:
		e.unknown = "the DKIM check failed"
	}
}

// aligned reports whether the authenticated domain id is aligned with the
// From domain from in mode (RFC 7489 §3.1.1, §3.1.2): the same name
// (strict) or the same organizational domain (relaxed).
func aligned(mode Alignment, id, from string) bool {
	id, err := resolver.ASCIIDomain(id)
	if err != nil {
		return false
	}
	if mode == AlignStrict {
		return id == from
	}
	return orgDomain(id) == orgDomain(from)
}

// orgDomain returns the organizational domain of domain (RFC 7489 §3.2):
// the public suffix plus one label, or domain itself when it is a public
// suffix or unknown to the list.
func orgDomain(domain string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// sampled reports whether the message falls in a pct= sample of pct
// percent (see the package comment).
func (f *Filter) sampled(pct int, msg *filters.Message, from string) bool {
	if pct >= 100 {
		return true
	}
	if pct <= 0 {
		return false
	}
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(from)
	h.WriteByte(0)
	if id := msg.Header.Get("Message-Id"); id != "" {
		h.WriteString(id)
	} else {
		h.Write(msg.Raw[:msg.BodyOffset])
	}
	return h.Sum64()%100 < uint64(pct)
}

// fromDomain returns the domain of the single author address of the From
// field, lower-case A-labels, or why there is none (RFC 7489 §6.6.1).
func fromDomain(h textproto.Header) (domain, bad string) {
	vals := h.Values("From")
	switch {
	case len(vals) == 0:
		return "", "no From field"
	case len(vals) > 1:
		return "", fmt.Sprintf("%d From fields", len(vals))
	}
	v := strings.NewReplacer("\r\n", "", "\n", "").Replace(vals[0])
	// Display names do not matter: any charset is read as is, so that
	// an unknown one does not make the field unparsable.
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	addrs, err := p.ParseList(v)
	switch {
	case err != nil:
		return "", "the From field cannot be parsed"
	case len(addrs) != 1:
		return "", fmt.Sprintf("the From field holds %d addresses", len(addrs))
	}
	a := addrs[0].Address
	d, err := resolver.ASCIIDomain(a[strings.LastIndexByte(a, '@')+1:])
	if err != nil || !strings.Contains(d, ".") {
		return "", "the From address has no valid domain"
	}
	return d, ""
}
