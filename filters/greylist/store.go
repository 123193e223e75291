package greylist

import (
	"context"
	"net/netip"
	"time"
)

// Triplet identifies a delivery attempt as greylisting sees it: the
// client's network, the envelope sender and one recipient.
type Triplet struct {
	// Network is the client address masked to Config.IPv4Prefix or
	// Config.IPv6Prefix bits (see Config.Network).
	Network netip.Prefix
	// Sender is the envelope sender as NormalizeSender gives it; the null
	// sender is NullSender.
	Sender string
	// Rcpt is the recipient, lower-cased.
	Rcpt string
}

// Entry is what a store keeps of a triplet.
type Entry struct {
	Triplet
	// FirstSeen is the first attempt of the current round: the delay
	// runs from it.
	FirstSeen time.Time
	// LastSeen is the latest attempt; once the triplet has passed it is
	// refreshed at most once per refreshEvery.
	LastSeen time.Time
	// Attempts counts the attempts refused in the current round.
	Attempts int
	// PassedAt is when a retry came after the delay; zero while the
	// triplet has not passed.
	PassedAt time.Time
	// Expires is when the entry is forgotten: the end of the retry
	// window for a triplet that has not passed, LastSeen plus the pass
	// lifetime for one that has.
	Expires time.Time
}

// Passed reports whether the triplet has passed greylisting.
func (e Entry) Passed() bool { return !e.PassedAt.IsZero() }

// Client is what a store keeps of a client network for the automatic
// allow list (postgrey's --auto-whitelist-clients) and for the
// operator's allow list (Allow).
type Client struct {
	// Network is the client network, masked as a Triplet's.
	Network netip.Prefix
	// Passes counts the triplets of the network that passed greylisting,
	// at most one per countEvery (as postgrey counts: a sender that
	// retries a whole batch of recipients at once is one delivery).
	Passes int
	// CountedAt is when a pass was last counted.
	CountedAt time.Time
	// LastSeen is the latest attempt from the network once it is allowed,
	// refreshed at most once per refreshEvery.
	LastSeen time.Time
	// Allowed is set by the operator (Allow): the network is never
	// greylisted, whatever its count, until Expires.
	Allowed bool
	// Expires is when the record is forgotten; zero is never (an
	// operator's allow without an end).
	Expires time.Time
}

// Store keeps the greylisting state: triplets and client networks. The
// embedded default is SQLiteStore; a shared backend (Redis, issue 18)
// implements the same interface for several gateway nodes behind one MX.
// Implementations are safe for concurrent use.
//
// The update functions make each change atomic without the store knowing
// the greylisting rules: fn gets the stored record (found false when
// there is none; an expired record is still given, the caller judges
// expiry) and returns the record to store and whether to store it. fn
// must be a pure function of its arguments and of what it captured
// before the call: a store may call it more than once (SQLiteStore reads
// without a lock first and calls it again inside the write transaction
// when it asks for a write; a Redis backend retries a WATCH that failed).
type Store interface {
	// UpdateTriplet applies fn to t's entry atomically and returns the
	// entry as stored (or as fn left it when it asked for no write).
	UpdateTriplet(ctx context.Context, t Triplet, fn func(e Entry, found bool) (Entry, bool)) (Entry, error)
	// UpdateClient applies fn to network's record atomically, as
	// UpdateTriplet does.
	UpdateClient(ctx context.Context, network netip.Prefix, fn func(c Client, found bool) (Client, bool)) (Client, error)
	// Triplets lists the entries whose network lies within (every entry
	// for the zero Prefix), ordered by network, sender and recipient, at
	// most limit of them (0: no limit). Expired entries not yet removed
	// are listed too.
	Triplets(ctx context.Context, within netip.Prefix, limit int) ([]Entry, error)
	// Clients lists the client records whose network lies within, in
	// network order, at most limit of them (0: no limit).
	Clients(ctx context.Context, within netip.Prefix, limit int) ([]Client, error)
	// Delete removes the triplets and client records whose network lies
	// within (everything for the zero Prefix) and returns how many.
	Delete(ctx context.Context, within netip.Prefix) (int, error)
	// DeleteTriplet removes one triplet and reports whether it was there.
	DeleteTriplet(ctx context.Context, t Triplet) (bool, error)
	// Expire removes the records that expired at or before now and
	// returns how many.
	Expire(ctx context.Context, now time.Time) (int, error)
	// Close releases the store.
	Close() error
}

// Allow puts network on the operator's allow list until until (the zero
// time: until deleted), keeping its pass count. It is what
// `moat greylist allow` does.
func Allow(ctx context.Context, st Store, network netip.Prefix, until time.Time) error {
	network = network.Masked()
	_, err := st.UpdateClient(ctx, network, func(c Client, found bool) (Client, bool) {
		c.Network = network
		c.Allowed = true
		c.Expires = until
		return c, true
	})
	return err
}

// Pass marks t as passed at now, as if its sender had retried after the
// delay, so that it is accepted until now+lifetime.
func Pass(ctx context.Context, st Store, t Triplet, now time.Time, lifetime time.Duration) error {
	now = now.Truncate(time.Second)
	_, err := st.UpdateTriplet(ctx, t, func(e Entry, found bool) (Entry, bool) {
		if !found || !e.Expires.After(now) {
			e = Entry{Triplet: t, FirstSeen: now}
		}
		e.PassedAt, e.LastSeen, e.Expires = now, now, now.Add(lifetime)
		return e, true
	})
	return err
}
