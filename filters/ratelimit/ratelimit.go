// Package ratelimit holds back clients that send too much: too many
// connections, messages or recipients from one client network, for one
// envelope sender or from one authenticated user, or too many recipients
// refused as unknown (a dictionary attack on user names).
//
// Each limit is a token bucket (Rate): a client may spend the limit at
// once and then the limit per period. A client over a limit is deferred,
// never refused: its check demands tempfail (451 4.7.1), the client
// retries later, and by then its bucket has refilled. A Limiter owns the
// limits and gives three filters, one per stage (connect, mail, rcpt),
// over one Store, by default in memory (MemoryStore).
//
// A client network is the client address cut to Config.IPv4Prefix or
// Config.IPv6Prefix bits. A sender is what the per-sender limits count:
// a sender address for which SPF passed, as itself; any other address
// together with the client network, since it is only a claim and whoever
// forges a victim's address must not use up the victim's allowance. The
// null sender (bounces, which the whole Internet shares) is counted per
// network only.
//
// An authenticated client (filters.Connection.AuthUser, set on
// submission) is counted as its user only, by Config.MessagesPerUser and
// Config.RecipientsPerUser, whatever MAIL FROM it gives and wherever it
// connects from: the per-network and per-sender limits, and
// ExemptNetworks, are for strangers (many users behind one office NAT
// are not one client), while the user limits are what stops a
// compromised account from sending spam, through webmail on loopback as
// well. Over a user limit, the demand carries a reply text for the user
// (filters.Demand.Text), as Postfix's and rspamd's rate limits say what
// was exceeded.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/clientnet"
	"github.com/moatmail/moat/policies"
)

// The symbol names the filters return, each with score 0 and a tempfail
// demand: a rate says nothing of the mail, only of its pace.
const (
	// SymConn: too many connections from the client network. The SMTP
	// front may rather answer 421 4.7.0 and close (RFC 5321 §3.8): the
	// demand is about the connection, not about a message.
	SymConn = "RATELIMIT_CONN"
	// SymMsgNetwork: too many messages (MAIL FROM) from the network.
	SymMsgNetwork = "RATELIMIT_MSG_NET"
	// SymMsgSender: too many messages from the envelope sender.
	SymMsgSender = "RATELIMIT_MSG_SENDER"
	// SymRcptNetwork: too many recipients from the network.
	SymRcptNetwork = "RATELIMIT_RCPT_NET"
	// SymRcptSender: too many recipients from the envelope sender.
	SymRcptSender = "RATELIMIT_RCPT_SENDER"
	// SymBadRcpt: too many recipients of the network were refused as
	// unknown (see Limiter.RecipientRefused).
	SymBadRcpt = "RATELIMIT_BADRCPT"
	// SymMsgUser: too many messages from the authenticated user.
	SymMsgUser = "RATELIMIT_MSG_USER"
	// SymRcptUser: too many recipients from the authenticated user.
	SymRcptUser = "RATELIMIT_RCPT_USER"
)

// The reply texts of the per-user limits (filters.Demand.Text): the
// authenticated user learns what to wait for.
const (
	TextMsgUser  = "Message rate limit reached for your account, try again later"
	TextRcptUser = "Recipient rate limit reached for your account, try again later"
)

// FactLimit is the fact set with a limit's symbol: the TOML key of the
// limit that was hit ("connections", "bad_recipients", ...).
const FactLimit = "ratelimit.limit"

// The names of the filters, in stage order.
const (
	NameConnect = "ratelimit-connect"
	NameMail    = "ratelimit-mail"
	NameRcpt    = "ratelimit-rcpt"
)

// Observer is told of every limit hit, for metrics. limit is the TOML key
// of the limit ("connections", "messages_per_sender", ...): a small fixed
// set, fit for a metric label. It must be cheap and safe for concurrent
// use.
type Observer interface {
	// Limited counts one check held back by limit.
	Limited(limit string)
}

// Options are the Limiter's collaborators besides its store.
type Options struct {
	// Now is the clock (default time.Now); tests advance their own.
	Now func() time.Time
	// Observer receives counts; nil counts nothing.
	Observer Observer
}

type nopObserver struct{}

func (nopObserver) Limited(string) {}

// Limiter applies the configured limits. It is safe for concurrent use.
type Limiter struct {
	cfg    Config
	st     Store
	now    func() time.Time
	obs    Observer
	exempt clientnet.List
	limits [numLimits]limit
}

// New returns a Limiter over st. The caller keeps ownership of st (and
// closes it): a reloaded configuration makes a new Limiter over the same
// store, and the buckets carry over.
func New(cfg Config, st Store, opt Options) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ratelimit config: %w", err)
	}
	if st == nil {
		return nil, errors.New("ratelimit: no store")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Observer == nil {
		opt.Observer = nopObserver{}
	}
	exempt, _ := clientnet.ParseList("exempt_networks", cfg.ExemptNetworks)
	return &Limiter{cfg: cfg, st: st, now: opt.Now, obs: opt.Observer, exempt: exempt, limits: cfg.limits()}, nil
}

// Filters returns the three filters, in stage order: NameConnect
// (connections), NameMail (messages) and NameRcpt (recipients and
// refused recipients).
func (l *Limiter) Filters() []filters.Filter {
	return []filters.Filter{
		&Filter{l: l, stage: filters.StageConnect},
		&Filter{l: l, stage: filters.StageMail},
		&Filter{l: l, stage: filters.StageRcpt},
	}
}

// RecipientRefused counts a recipient refused as unknown (550 5.1.1) for
// the client ip. The SMTP session calls it, since no filter sees those
// refusals. over reports that the client's network has used up
// bad_recipients: the session should then answer every further RCPT of
// the connection with a temporary failure, before looking the recipient
// up, so that the replies no longer tell which users exist.
func (l *Limiter) RecipientRefused(ctx context.Context, ip netip.Addr) (over bool, err error) {
	req, ok := l.badRecipients(ip)
	if !ok {
		return false, nil
	}
	reqs := []Request{req}
	denied, err := l.st.Take(ctx, l.now(), reqs)
	if err != nil {
		return false, fmt.Errorf("ratelimit: %w", err)
	}
	return denied >= 0 || reqs[0].Left < 1, nil
}

// RefusalsOver reports whether the client ip's network has used up
// bad_recipients, without counting anything. The SMTP session asks it at
// RCPT before looking the recipient up: over the limit, known and unknown
// users alike get a temporary failure, and a dictionary attack learns
// nothing. (The rcpt-stage filter checks the same, but runs only for
// recipients that exist.)
func (l *Limiter) RefusalsOver(ctx context.Context, ip netip.Addr) (bool, error) {
	req, ok := l.badRecipients(ip)
	if !ok {
		return false, nil
	}
	req.Peek = true
	denied, err := l.st.Take(ctx, l.now(), []Request{req})
	if err != nil {
		return false, fmt.Errorf("ratelimit: %w", err)
	}
	if denied >= 0 {
		l.obs.Limited(l.limits[limBadRecipients].name)
	}
	return denied >= 0, nil
}

// badRecipients is the request of ip's bad_recipients bucket; false when
// ip is exempt, invalid, or the limit is off.
func (l *Limiter) badRecipients(ip netip.Addr) (Request, bool) {
	lim := l.limits[limBadRecipients]
	ip = ip.Unmap().WithZone("")
	if lim.rate.Limit == 0 || !ip.IsValid() || l.exempt.Contains(ip) {
		return Request{}, false
	}
	return Request{Key: lim.tag + ":" + l.network(ip).String(), Rate: lim.rate, Cost: 1}, true
}

func (l *Limiter) network(ip netip.Addr) netip.Prefix {
	return clientnet.Mask(ip, l.cfg.IPv4Prefix, l.cfg.IPv6Prefix)
}

// Filter is one stage's rate-limit check. It is safe for concurrent use.
type Filter struct {
	l     *Limiter
	stage filters.Stage
}

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.SymbolDeclarer = (*Filter)(nil)
	_ filters.Sequenced      = (*Filter)(nil)
)

// Name implements filters.Filter.
func (f *Filter) Name() string {
	switch f.stage {
	case filters.StageConnect:
		return NameConnect
	case filters.StageMail:
		return NameMail
	}
	return NameRcpt
}

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return f.stage }

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string {
	switch f.stage {
	case filters.StageConnect:
		return []string{SymConn}
	case filters.StageMail:
		return []string{SymMsgNetwork, SymMsgSender, SymMsgUser}
	}
	return []string{SymBadRcpt, SymRcptNetwork, SymRcptSender, SymRcptUser}
}

// After implements filters.Sequenced: the mail-stage check reads SPF's
// result to key the sender's bucket (see senderID).
func (f *Filter) After() []string {
	if f.stage == filters.StageMail {
		return []string{"spf"}
	}
	return nil
}

// Check implements filters.Filter: it takes one token from each bucket
// of its stage, all or none, and demands tempfail when one is empty.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	l := f.l
	if in == nil || in.Conn == nil || !in.Conn.RemoteIP.IsValid() {
		return filters.Result{}, errors.New("ratelimit: no client address")
	}
	if in.Conn.AuthUser != "" && f.stage != filters.StageConnect {
		return f.checkUser(ctx, senderID{kind: "user", name: strings.ToLower(in.Conn.AuthUser)})
	}
	ip := in.Conn.RemoteIP.Unmap().WithZone("")
	if l.exempt.Contains(ip) {
		return filters.Result{}, nil
	}
	network := l.network(ip)
	netKey := network.String()
	var (
		reqs  [3]Request
		which [3]int
		n     int
	)
	add := func(lim int, subject string, peek bool) {
		if l.limits[lim].rate.Limit == 0 {
			return
		}
		reqs[n] = Request{Key: l.limits[lim].tag + ":" + subject, Rate: l.limits[lim].rate, Cost: 1, Peek: peek}
		which[n] = lim
		n++
	}
	var sender senderID
	hasSender := false
	if f.stage != filters.StageConnect {
		sender, hasSender = senderOf(in, network)
	}
	switch f.stage {
	case filters.StageConnect:
		add(limConnections, netKey, false)
	case filters.StageMail:
		add(limMessagesPerNetwork, netKey, false)
		if hasSender {
			add(limMessagesPerSender, sender.key(), false)
		}
	case filters.StageRcpt:
		add(limBadRecipients, netKey, true)
		add(limRecipientsPerNetwork, netKey, false)
		if hasSender {
			add(limRecipientsPerSender, sender.key(), false)
		}
	}
	if n == 0 {
		return filters.Result{}, nil
	}
	denied, err := l.st.Take(ctx, l.now(), reqs[:n])
	if err != nil {
		return filters.Result{}, fmt.Errorf("ratelimit: %w", err)
	}
	if denied < 0 {
		return filters.Result{}, nil
	}
	whom := "client " + netKey
	if which[denied] == limMessagesPerSender || which[denied] == limRecipientsPerSender {
		whom = sender.String()
	}
	return l.over(which[denied], whom, ""), nil
}

// checkUser is Check for an authenticated user: one token from the
// user's bucket of the stage (messages at MAIL, recipients at RCPT, so
// that the refusal comes before DATA), whatever the client's network.
func (f *Filter) checkUser(ctx context.Context, user senderID) (filters.Result, error) {
	l := f.l
	lim, text := limMessagesPerUser, TextMsgUser
	if f.stage == filters.StageRcpt {
		lim, text = limRecipientsPerUser, TextRcptUser
	}
	if l.limits[lim].rate.Limit == 0 {
		return filters.Result{}, nil
	}
	reqs := []Request{{Key: l.limits[lim].tag + ":" + user.key(), Rate: l.limits[lim].rate, Cost: 1}}
	denied, err := l.st.Take(ctx, l.now(), reqs)
	if err != nil {
		return filters.Result{}, fmt.Errorf("ratelimit: %w", err)
	}
	if denied < 0 {
		return filters.Result{}, nil
	}
	return l.over(lim, user.String(), text), nil
}

// over is the result of a check held back by the limit lim: whom is who
// is over it, for the log; text is the reply text for an authenticated
// client, if any.
func (l *Limiter) over(lim int, whom, text string) filters.Result {
	limit := l.limits[lim]
	l.obs.Limited(limit.name)
	reason := fmt.Sprintf("%s is over %s (%v)", whom, limit.name, limit.rate)
	return filters.Result{
		Symbols: []filters.Symbol{{Name: limit.sym, Reason: reason}},
		Facts:   []filters.Fact{{Name: FactLimit, Value: limit.name}},
		Demands: []filters.Demand{{Action: policies.ActionTempfail, Reason: reason, Text: text}},
	}
}

// senderID is who the per-sender and per-user buckets count:
//
//   - an authenticated client counts as its user (kind "user"), whatever
//     MAIL FROM it gives, in the per-user buckets (Filter.checkUser);
//   - the null sender (bounces) is counted per network only: bounces from
//     the whole Internet share it;
//   - a sender for which SPF passed (RFC 7208 §2.6.3) counts as itself;
//   - any other sender counts per client network: the address is only a
//     claim, and anyone forging a victim's address from elsewhere must
//     not use up the victim's allowance.
type senderID struct {
	kind    string       // "user" or "sender"
	name    string       // lower-cased
	network netip.Prefix // valid for a sender without an SPF pass
}

// senderOf returns the transaction's senderID of a client that is not
// authenticated; false when there is none to count.
func senderOf(in *filters.Input, network netip.Prefix) (senderID, bool) {
	switch {
	case in.Env == nil || in.Env.From == "":
		return senderID{}, false
	case slices.ContainsFunc(in.Prior.AuthOf("spf"), func(a filters.AuthResult) bool { return a.Value == filters.AuthPass }):
		return senderID{kind: "sender", name: strings.ToLower(in.Env.From)}, true
	}
	return senderID{kind: "sender", name: strings.ToLower(in.Env.From), network: network}, true
}

// key is the subject of id's buckets, hashed: bounded in length, and no
// addresses in a shared store.
func (id senderID) key() string {
	h := sha256.New()
	h.Write([]byte(id.kind + " " + id.name))
	if id.network.IsValid() {
		h.Write([]byte(" from " + id.network.String()))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// String describes id for a reason, quoting what the client gave (%q:
// no control characters in the log), cut to 200 characters.
func (id senderID) String() string {
	if id.network.IsValid() {
		return fmt.Sprintf("%s %.200q from %s", id.kind, id.name, id.network)
	}
	return fmt.Sprintf("%s %.200q", id.kind, id.name)
}
