// Package dkim is a data-stage filter that verifies the DKIM signatures of
// a message (RFC 6376): rsa-sha256 and ed25519-sha256 (RFC 8463); rsa-sha1
// and RSA keys under 1024 bits are refused (RFC 8301).
//
// Verification is github.com/emersion/go-msgauth/dkim's, its key lookups
// made through moat's resolver under the filter's deadline. That library
// refuses every signature with a body length tag (l=) as failed; RFC 6376
// §3.5 asks a verifier to honour it, so a signature carrying l= is
// verified by this package (length.go) over the first l octets of the
// canonicalized body. Content past them is unsigned: anyone could have
// appended it (RFC 6376 §8.2). Such a signature passes, as the RFC says,
// and the message also gets DKIM_UNSIGNED_BODY, unless another valid
// signature covers the whole body. An expired signature (x= in the past,
// RFC 6376 §3.5) is a permerror; the library checks that itself.
//
// At most max_signatures signatures, the topmost, are verified (each
// costs a DNS lookup and a public-key operation); the rest are ignored, as
// rspamd does.
//
// Findings:
//   - one symbol: DKIM_VALID (a signature verified), DKIM_TEMPFAIL (none
//     verified, and a key lookup failed temporarily), DKIM_INVALID (every
//     signature failed for good) or DKIM_NONE (no signature); and
//     DKIM_UNSIGNED_BODY beside DKIM_VALID as said above;
//   - one "dkim" authentication result per signature verified (RFC 8601
//     §2.7.1): pass, fail (the signature or body hash does not verify),
//     temperror (the key could not be fetched now), permerror (a malformed
//     signature or key record, no key, a revoked or too short key, an
//     expired signature), neutral (the library failed in a way it does not
//     classify), with header.d, header.s, header.i (if the signature has
//     i=) and header.a;
//   - the fact "dkim.domain" once for each domain (d=, lower case) with a
//     valid signature: the signing domains DMARC aligns with the From
//     domain (RFC 7489 §3.1.1) and rules can name.
//
// A key lookup fault is a result, not an error of the filter: DMARC must
// tell "no valid signature" from "could not check".
//
// Wiring: New(cfg, r) at the data stage. DMARC (filters/dmarc) runs after
// it. Clients that authenticated (Input.Conn.AuthUser set) are not
// checked: their mail is the organisation's own, signed (if at all) on
// the way out.
package dkim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver"
)

// The symbol names the filter returns.
const (
	// SymValid: at least one signature verified.
	SymValid = "DKIM_VALID"
	// SymInvalid: every signature failed permanently.
	SymInvalid = "DKIM_INVALID"
	// SymTempFail: no signature verified and a key lookup failed
	// temporarily. The pipeline gives the same name to an error of the
	// filter; both mean "could not check".
	SymTempFail = "DKIM_TEMPFAIL"
	// SymNone: the message has no DKIM-Signature field.
	SymNone = "DKIM_NONE"
	// SymUnsignedBody: every valid signature has l= and leaves part of
	// the body unsigned.
	SymUnsignedBody = "DKIM_UNSIGNED_BODY"
)

// FactDomain is the fact naming a domain with a valid signature (the d=
// tag, lower case), once per domain.
const FactDomain = "dkim.domain"

// Method is the authentication method name of the results (RFC 8601
// §2.7.1).
const Method = "dkim"

// Config configures the filter. Start from DefaultConfig.
//
// The defaults follow rspamd's R_DKIM_* weights. A valid signature says
// which domain takes responsibility for a message, not that it is wanted:
// bulk senders sign too. A broken one is often a mailing list that
// rewrote the message.
type Config struct {
	// ValidScore is the score of DKIM_VALID (TOML valid_score, default
	// -0.2).
	ValidScore float64 `toml:"valid_score"`
	// InvalidScore is the score of DKIM_INVALID (TOML invalid_score,
	// default 1.0).
	InvalidScore float64 `toml:"invalid_score"`
	// TempFailScore is the score of DKIM_TEMPFAIL (TOML tempfail_score,
	// default 0). It may not be positive: a DNS fault must never push a
	// message towards rejection.
	TempFailScore float64 `toml:"tempfail_score"`
	// NoneScore is the score of DKIM_NONE (TOML none_score, default 0).
	NoneScore float64 `toml:"none_score"`
	// UnsignedBodyScore is the score of DKIM_UNSIGNED_BODY (TOML
	// unsigned_body_score, default 1.0): content appended to a signed
	// message rides on the signer's reputation and passes DMARC.
	UnsignedBodyScore float64 `toml:"unsigned_body_score"`
	// MaxSignatures bounds the signatures verified per message, the
	// topmost first (TOML max_signatures, default 10, at most 100).
	MaxSignatures int `toml:"max_signatures"`
}

// Defaults of Config, documented on its fields.
const (
	DefaultValidScore        = -0.2
	DefaultInvalidScore      = 1.0
	DefaultTempFailScore     = 0.0
	DefaultNoneScore         = 0.0
	DefaultUnsignedBodyScore = 1.0
	DefaultMaxSignatures     = 10
)

// maxMaxSignatures is the highest max_signatures accepted.
const maxMaxSignatures = 100

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{
		ValidScore:        DefaultValidScore,
		InvalidScore:      DefaultInvalidScore,
		TempFailScore:     DefaultTempFailScore,
		NoneScore:         DefaultNoneScore,
		UnsignedBodyScore: DefaultUnsignedBodyScore,
		MaxSignatures:     DefaultMaxSignatures,
	}
}

// Validate reports the first invalid field, named by its TOML key.
func (c Config) Validate() error {
	if err := filters.ValidateScores(c); err != nil {
		return err
	}
	if c.TempFailScore > 0 {
		return fmt.Errorf("tempfail_score: %v is positive; a temporary DNS fault must not count against a message", c.TempFailScore)
	}
	if c.MaxSignatures < 1 || c.MaxSignatures > maxMaxSignatures {
		return fmt.Errorf("max_signatures: %d is not between 1 and %d", c.MaxSignatures, maxMaxSignatures)
	}
	return nil
}

// Filter is the DKIM check. It is safe for concurrent use.
type Filter struct {
	cfg Config
	dns resolver.Resolver
}

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.SymbolDeclarer = (*Filter)(nil)
)

// New returns the filter, fetching keys through r.
func New(cfg Config, r resolver.Resolver) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dkim config: %w", err)
	}
	if r == nil {
		return nil, errors.New("dkim: no resolver")
	}
	return &Filter{cfg: cfg, dns: r}, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return "dkim" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageData }

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string {
	return []string{SymValid, SymInvalid, SymTempFail, SymNone, SymUnsignedBody}
}

// verdict is the outcome of one signature.
type verdict struct {
	value  filters.AuthValue
	reason string
	// unsigned is the number of canonical body octets past l=, for a
	// valid signature with l=.
	unsigned int64
}

// Check implements filters.Filter. It returns an error only for an input
// without message; every outcome of verification is a result.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Msg == nil {
		return filters.Result{}, errors.New("dkim: no message")
	}
	if in.Conn != nil && in.Conn.AuthUser != "" {
		return filters.Result{}, nil
	}
	m := splitMessage(in.Msg.Raw)
	sigs := m.signatures()
	if len(sigs) == 0 {
		return filters.Result{Symbols: []filters.Symbol{{Name: SymNone, Score: f.cfg.NoneScore, Reason: "no DKIM-Signature field"}}}, nil
	}
	if len(sigs) > f.cfg.MaxSignatures {
		sigs = sigs[:f.cfg.MaxSignatures]
	}
	lookup := func(name string) ([]string, error) {
		txts, err := f.dns.LookupTXT(ctx, name)
		// The library takes any error that is not a temporary
		// net.Error, by type assertion, for "no key".
		return txts, resolver.NetError(name, err)
	}

	verifs, err := msgauth.VerifyWithOptions(bytes.NewReader(m.raw), &msgauth.VerifyOptions{
		LookupTXT:        lookup,
		MaxVerifications: f.cfg.MaxSignatures,
	})
	if err != nil && !errors.Is(err, msgauth.ErrTooManySignatures) || len(verifs) != len(sigs) {
		// An error the library does not classify: it then clears
		// the Err of the signature that failed, so none of its
		// verdicts can be trusted.
		verifs = nil
	}

	out := make([]outcome, len(sigs))
	for i, idx := range sigs {
		tags, tagErr := parseTags(fieldValue(m.fields[idx]))
		o := &out[i]
		o.tags = tags
		switch {
		case tagErr == nil && tags["l"] != "":
			o.verdict = verifyLength(m, idx, tags, lookup, time.Now())
		case verifs == nil:
			o.verdict = verdict{value: filters.AuthNeutral, reason: "signature could not be processed"}
		default:
			o.verdict = classify(verifs[i].Err)
		}
		o.domain = strings.ToLower(stripWhitespace(tags["d"]))
		if verifs != nil && verifs[i].Domain != "" {
			o.domain = strings.ToLower(verifs[i].Domain)
		}
	}
	return f.summarise(out), nil
}

// outcome is what was found for one signature.
type outcome struct {
	verdict
	domain string
	tags   map[string]string
}

// classify turns the library's verdict on one signature into a result.
func classify(err error) verdict {
	switch {
	case err == nil:
		return verdict{value: filters.AuthPass}
	case msgauth.IsTempFail(err):
		return verdict{value: filters.AuthTempError, reason: printable(strings.TrimPrefix(err.Error(), "dkim: "))}
	case msgauth.IsPermFail(err):
		return verdict{value: filters.AuthPermError, reason: printable(strings.TrimPrefix(err.Error(), "dkim: "))}
	}
	return verdict{value: filters.AuthFail, reason: printable(strings.TrimPrefix(err.Error(), "dkim: "))}
}

// authResult is the "dkim" authentication result of one signature.
func (o outcome) authResult() filters.AuthResult {
	a := filters.AuthResult{Method: Method, Value: o.value, Reason: o.reason}
	prop := func(name, value string) {
		a.Props = append(a.Props, filters.AuthProp{Type: "header", Name: name, Value: printable(value)})
	}
	prop("d", o.domain)
	prop("s", stripWhitespace(o.tags["s"]))
	if i := stripWhitespace(o.tags["i"]); i != "" {
		prop("i", i)
	}
	prop("a", stripWhitespace(o.tags["a"]))
	return a
}

// summarise returns the findings for the outcomes of the signatures.
func (f *Filter) summarise(outs []outcome) filters.Result {
	var (
		r           filters.Result
		valid, temp []string
		covered     bool // a valid signature covers the whole body
	)
	for _, o := range outs {
		r.Auth = append(r.Auth, o.authResult())
		switch o.value {
		case filters.AuthPass:
			covered = covered || o.unsigned == 0
			if !slices.Contains(valid, o.domain) {
				r.Facts = append(r.Facts, filters.Fact{Name: FactDomain, Value: o.domain})
				valid = append(valid, o.domain)
			}
		case filters.AuthTempError:
			temp = append(temp, o.domain)
		}
	}
	switch {
	case len(valid) > 0:
		r.Symbols = append(r.Symbols, filters.Symbol{Name: SymValid, Score: f.cfg.ValidScore,
			Reason: printable("valid signature by " + strings.Join(valid, ", "))})
		if !covered {
			r.Symbols = append(r.Symbols, filters.Symbol{Name: SymUnsignedBody, Score: f.cfg.UnsignedBodyScore,
				Reason: printable("the signature of " + strings.Join(valid, ", ") + " leaves part of the body unsigned (l=)")})
		}
	case len(temp) > 0:
		r.Symbols = append(r.Symbols, filters.Symbol{Name: SymTempFail, Score: f.cfg.TempFailScore,
			Reason: printable("key lookup failed temporarily for " + strings.Join(temp, ", "))})
	default:
		r.Symbols = append(r.Symbols, filters.Symbol{Name: SymInvalid, Score: f.cfg.InvalidScore,
			Reason: fmt.Sprintf("no valid signature among %d", len(outs))})
	}
	return r
}

// printable returns s cut to 200 bytes with every byte outside printable
// ASCII replaced by '?': signature tags and library errors (which quote
// DNS names taken from the signature) come from the sender and end up in
// logs and the Authentication-Results field.
func printable(s string) string {
	const maxLen = 200
	if len(s) > maxLen {
		s = s[:maxLen-3] + "..."
	}
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c > 0x7e {
			return '?'
		}
		return c
	}, s)
}
