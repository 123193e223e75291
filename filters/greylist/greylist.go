// Package greylist is a rcpt-stage filter that defers mail from senders
// it has not seen before (greylisting, as Evan Harris described it in
// 2003 and postgrey implements it for Postfix).
//
// A delivery attempt is a triplet: the client's network, the envelope
// sender and the recipient. The first attempt of a triplet is refused
// with a temporary failure (the filter demands tempfail; the SMTP session
// answers 451 4.7.1 to that RCPT, never at DATA). A mail server retries
// (RFC 5321 §4.5.4.1); a retry after Config.Delay and within
// Config.RetryWindow passes, and the triplet stays passed for
// Config.PassLifetime after its latest use. Much spam software never
// retries, and what does retry has often been listed by then.
//
// A network whose triplets passed Config.AutoAllowAfter times is no
// longer greylisted. Clients that the operator or earlier checks vouch
// for are not greylisted either: authenticated clients, allowed
// networks, allowed recipients, DNS allow lists and SPF passes (Config).
//
// The state is kept in a Store, by default a SQLite database of its own
// (SQLiteStore). A store that fails makes the check fail: run the filter
// with on_error = "tempfail", so that the attempt is deferred, neither
// accepted untested nor refused for good.
package greylist

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/clientnet"
	"github.com/moatmail/moat/policies"
)

// The symbol names the filter returns, each with score 0: greylisting
// does not judge the mail, it delays it.
const (
	// SymNew: the triplet's first attempt; it comes with a tempfail
	// demand.
	SymNew = "GREYLIST_NEW"
	// SymEarly: a retry before the delay ran out; it comes with a
	// tempfail demand.
	SymEarly = "GREYLIST_EARLY"
	// SymPassed: a retry after the delay; the reason says how long the
	// mail was delayed. Later attempts of the triplet give no symbol.
	SymPassed = "GREYLIST_PASSED"
)

// DNSWLSymbol is the symbol of the DNS list check that says the client is
// on an allow list (a list of negative weight); Config.SkipDNSWL reads it.
const DNSWLSymbol = "DNSWL_LISTED"

// Outcomes of a check, reported to Observer.Checked: a small fixed set,
// fit for a metric label.
const (
	OutcomeNew     = "new"     // first attempt, deferred
	OutcomeEarly   = "early"   // retry too early, deferred
	OutcomePassed  = "passed"  // retry after the delay, accepted
	OutcomeKnown   = "known"   // a triplet that passed before, accepted
	OutcomeAllowed = "allowed" // a network on the automatic or the operator's allow list
	// The skipped outcomes: the check did not look at the store.
	OutcomeSkipAuth      = "skip_auth"      // an authenticated client
	OutcomeSkipNetwork   = "skip_network"   // allow_networks
	OutcomeSkipRecipient = "skip_recipient" // allow_recipients
	OutcomeSkipDNSWL     = "skip_dnswl"     // on a DNS allow list
	OutcomeSkipSPF       = "skip_spf"       // SPF pass
)

// Observer is told what the filter does, for metrics. Methods must be
// cheap and safe for concurrent use.
type Observer interface {
	// Checked counts one check by its outcome, one of the Outcome
	// constants. A check that fails (a store error) is not counted here:
	// the pipeline counts it.
	Checked(outcome string)
	// Expired reports one expiry run of RunExpiry: how many records it
	// removed, or why it failed.
	Expired(removed int, err error)
}

// Options are the filter's collaborators besides its store.
type Options struct {
	// Now is the clock (default time.Now); tests advance their own.
	Now func() time.Time
	// Observer receives counts; nil counts nothing.
	Observer Observer
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return o
}

type nopObserver struct{}

func (nopObserver) Checked(string)     {}
func (nopObserver) Expired(int, error) {}

// Filter is the greylisting check. It is safe for concurrent use.
type Filter struct {
	cfg        Config
	st         Store
	now        func() time.Time
	obs        Observer
	allowNets  clientnet.List
	allowRcpts []recipientPattern
}

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.SymbolDeclarer = (*Filter)(nil)
)

// New returns the filter over st. The caller keeps ownership of st (and
// closes it): a reloaded configuration makes a new Filter over the same
// store.
func New(cfg Config, st Store, opt Options) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("greylist config: %w", err)
	}
	if st == nil {
		return nil, errors.New("greylist: no store")
	}
	nets, _ := clientnet.ParseList("allow_networks", cfg.AllowNetworks)
	rcpts, _ := parseRecipients(cfg.AllowRecipients)
	opt = opt.withDefaults()
	return &Filter{cfg: cfg, st: st, now: opt.Now, obs: opt.Observer, allowNets: nets, allowRcpts: rcpts}, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return "greylist" }

// Stage implements filters.Filter: greylisting answers RCPT, so that
// each recipient of a transaction gets its own answer and a deferral
// never comes after DATA, when the client has sent the whole message.
func (f *Filter) Stage() filters.Stage { return filters.StageRcpt }

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return []string{SymNew, SymEarly, SymPassed} }

// Check implements filters.Filter. It fails, rather than deciding, when
// the store fails or when the input has no client address or recipient.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Conn == nil || !in.Conn.RemoteIP.IsValid() {
		return filters.Result{}, errors.New("greylist: no client address")
	}
	if in.Rcpt == "" {
		return filters.Result{}, errors.New("greylist: no recipient (not at the rcpt stage)")
	}
	ip := in.Conn.RemoteIP.Unmap().WithZone("")
	var from string
	if in.Env != nil {
		from = in.Env.From
	}
	t := f.cfg.Triplet(ip, from, in.Rcpt)
	if o := f.skip(in, ip, t.Rcpt); o != "" {
		f.obs.Checked(o)
		return filters.Result{}, nil
	}

	now := f.now().Truncate(time.Second)
	allowed, err := f.allowed(ctx, t.Network, now)
	if err != nil {
		return filters.Result{}, err
	}
	if allowed {
		f.obs.Checked(OutcomeAllowed)
		return filters.Result{}, nil
	}

	var out string
	e, err := f.st.UpdateTriplet(ctx, t, func(e Entry, found bool) (Entry, bool) {
		var write bool
		e, write, out = f.decide(e, found, t, now)
		return e, write
	})
	if err != nil {
		return filters.Result{}, err
	}
	f.obs.Checked(out)
	switch out {
	case OutcomeNew:
		return deferred(SymNew, fmt.Sprintf("first attempt of %s; retry after %v", describe(t), f.cfg.Delay)), nil
	case OutcomeEarly:
		left := f.cfg.Delay - now.Sub(e.FirstSeen)
		return deferred(SymEarly, fmt.Sprintf("retry of %s %v too early (attempt %d)", describe(t), left, e.Attempts)), nil
	case OutcomePassed:
		if err := f.countPass(ctx, t.Network, now); err != nil {
			// The pass is stored: with on_error = "tempfail" this
			// attempt is deferred once more and the next one is
			// known. The store failing is worth that noise.
			return filters.Result{}, err
		}
		return filters.Result{Symbols: []filters.Symbol{{Name: SymPassed,
			Reason: fmt.Sprintf("delayed %v (%d attempts deferred)", e.PassedAt.Sub(e.FirstSeen), e.Attempts)}}}, nil
	}
	return filters.Result{}, nil
}

// deferred is the result of a refused attempt.
func deferred(sym, reason string) filters.Result {
	return filters.Result{
		Symbols: []filters.Symbol{{Name: sym, Reason: reason}},
		Demands: []filters.Demand{{Action: policies.ActionTempfail, Reason: "greylisted: " + reason}},
	}
}

// describe names a triplet for a reason text.
func describe(t Triplet) string {
	return fmt.Sprintf("%s <%s> -> <%s>", t.Network, t.Sender, t.Rcpt)
}

// skip returns the skipped outcome when the attempt is not greylisted, or
// "".
func (f *Filter) skip(in *filters.Input, ip netip.Addr, rcpt string) string {
	switch {
	case in.Conn.AuthUser != "":
		// Submission: the user is known; greylisting is for strangers.
		return OutcomeSkipAuth
	case f.allowNets.Contains(ip):
		return OutcomeSkipNetwork
	case f.allowedRcpt(rcpt):
		return OutcomeSkipRecipient
	case f.cfg.SkipDNSWL && in.Prior.HasSymbol(DNSWLSymbol):
		return OutcomeSkipDNSWL
	case f.cfg.SkipSPFPass && spfPass(in.Prior):
		return OutcomeSkipSPF
	}
	return ""
}

func (f *Filter) allowedRcpt(rcpt string) bool {
	for _, p := range f.allowRcpts {
		if p.match(rcpt) {
			return true
		}
	}
	return false
}

// spfPass reports whether SPF passed for the transaction's sender (RFC
// 7208 §2.6.3: the domain authorises the client to use it).
func spfPass(prior *filters.Result) bool {
	for _, a := range prior.AuthOf("spf") {
		if a.Value == filters.AuthPass {
			return true
		}
	}
	return false
}

// decide is greylisting: what becomes of a triplet's entry (found false
// when there is none) at an attempt at now, whether to write it, and the
// outcome. An expired entry counts as none. It is pure: the store may
// call it twice.
func (f *Filter) decide(e Entry, found bool, t Triplet, now time.Time) (Entry, bool, string) {
	if !found || !now.Before(e.Expires) {
		// postgrey too starts a new round for a retry past the window.
		return Entry{Triplet: t, FirstSeen: now, LastSeen: now, Attempts: 1, Expires: now.Add(f.cfg.RetryWindow)},
			true, OutcomeNew
	}
	if e.Passed() {
		if now.Sub(e.LastSeen) < refreshEvery {
			return e, false, OutcomeKnown
		}
		e.LastSeen, e.Expires = now, now.Add(f.cfg.PassLifetime)
		return e, true, OutcomeKnown
	}
	if now.Sub(e.FirstSeen) < f.cfg.Delay {
		e.LastSeen = now
		e.Attempts++
		return e, true, OutcomeEarly
	}
	e.PassedAt, e.LastSeen, e.Expires = now, now, now.Add(f.cfg.PassLifetime)
	return e, true, OutcomePassed
}

// allowed reports whether network is on the operator's allow list or,
// with AutoAllowAfter passes, on the automatic one; the last use of an
// automatically allowed network extends its lifetime.
func (f *Filter) allowed(ctx context.Context, network netip.Prefix, now time.Time) (bool, error) {
	var allowed bool
	_, err := f.st.UpdateClient(ctx, network, func(c Client, found bool) (Client, bool) {
		allowed = false
		if !found || !c.Expires.IsZero() && !now.Before(c.Expires) {
			return c, false
		}
		auto := f.cfg.AutoAllowAfter > 0 && c.Passes >= f.cfg.AutoAllowAfter
		allowed = c.Allowed || auto
		if !allowed || now.Sub(c.LastSeen) < refreshEvery {
			return c, false
		}
		c.LastSeen = now
		if !c.Allowed {
			c.Expires = now.Add(f.cfg.AutoAllowLifetime)
		}
		return c, true
	})
	return allowed, err
}

// countPass counts a triplet of network that passed, at most one per
// countEvery.
func (f *Filter) countPass(ctx context.Context, network netip.Prefix, now time.Time) error {
	if f.cfg.AutoAllowAfter == 0 {
		return nil
	}
	_, err := f.st.UpdateClient(ctx, network, func(c Client, found bool) (Client, bool) {
		if !found || !c.Expires.IsZero() && !now.Before(c.Expires) {
			c = Client{Network: network}
		}
		if !c.CountedAt.IsZero() && now.Sub(c.CountedAt) < countEvery {
			return c, false
		}
		c.Passes++
		c.CountedAt, c.LastSeen = now, now
		if !c.Allowed {
			c.Expires = now.Add(f.cfg.AutoAllowLifetime)
		}
		return c, true
	})
	return err
}
