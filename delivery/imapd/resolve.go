package imapd

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/moatmail/moat/delivery/mailstore"
)

// Every mailbox name a client gives is resolved here, once per command, to
// whose mailbox it is in the store, its name there, and what the session
// may do with it. Commands check rights, never names.
//
// A session's own mailboxes carry every right. An admin account
// (mailstore.User.Admin) also has a shared namespace (RFC 2342), "Shared/",
// in which every other user who has a Quarantine folder appears:
//
//	Shared                        \Noselect level
//	Shared/<address>              \Noselect level, one per other user
//	Shared/<address>/Quarantine   that user's Quarantine: SELECT, EXAMINE,
//	                              STATUS, FETCH, SEARCH, STORE, EXPUNGE,
//	                              and COPY or MOVE to the release target
//	Shared/<address>/INBOX        that user's INBOX as a release target:
//	                              the destination of COPY and MOVE only
//
// <address> is the user's address with '/', '*', '%' and '~' written as
// ~2F, ~2A, ~25 and ~7E (so that it is one level and holds no LIST
// wildcard); ordinary addresses read as they are. Names must be spelled as
// listed (the address in lower case), except that the INBOX level is
// case-insensitive.
//
// Mail never crosses accounts: COPY and MOVE need the source and the
// destination to belong to one user (the store refuses anything else too),
// so Shared/<address>/INBOX can only be reached from
// Shared/<address>/Quarantine, and nothing leaves a shared folder for the
// admin's own. A release goes through the Reviewer with the owner as the
// user, as if the owner had moved the message.
//
// For a non-admin, "Shared/..." are ordinary personal names. An admin's
// own mailboxes named Shared or Shared/... are hidden behind the namespace
// (rename them before making the account an admin).

// right is one thing a session may do with a mailbox.
type right uint8

const (
	rightRead   right = 1 << iota // SELECT, EXAMINE, STATUS, FETCH, SEARCH
	rightWrite                    // SELECT read-write: STORE, EXPUNGE, MOVE out
	rightInsert                   // APPEND
	rightCopyIn                   // the destination of COPY and MOVE
	rightManage                   // CREATE, DELETE, RENAME, (UN)SUBSCRIBE

	rightsOwn       = rightRead | rightWrite | rightInsert | rightCopyIn | rightManage
	rightsReview    = rightRead | rightWrite // another user's Quarantine
	rightsReleaseTo = rightCopyIn            // another user's INBOX
)

// sharedRoot is the top level of the shared namespace.
const sharedRoot = "Shared"

// mailboxRef is a mailbox name resolved for a session.
type mailboxRef struct {
	name   string         // as the client sees it, canonical
	owner  mailstore.User // whose mailbox it is in the store
	store  string         // its name among the owner's; "" when the name is no mailbox
	rights right
}

func (r mailboxRef) can(need right) bool { return r.rights&need == need }

// foreign reports whether the mailbox belongs to another user than u.
func (r mailboxRef) foreign(u mailstore.User) bool { return r.owner.ID != u.ID }

var errNoPerm = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeNoPerm, // RFC 5530 §3
	Text: "Not permitted on this mailbox",
}

var errReleaseTargetOnly = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeNoPerm,
	Text: "Release target only: move messages here from the user's Quarantine",
}

var errCrossAccount = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeCannot,
	Text: "Mail cannot be copied from one account to another",
}

var errTryCreate = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeTryCreate,
	Text: "No such mailbox",
}

// inShared reports whether a canonical name belongs to the session's shared
// namespace (admins only).
func (sess *session) inShared(name string) bool {
	return sess.user.Admin && (name == sharedRoot || strings.HasPrefix(name, sharedRoot+delim))
}

// resolve maps a client's mailbox name to a mailboxRef. A name that is no
// mailbox of the session's gets an empty store name and no rights; the
// error is for store failures only.
func (sess *session) resolve(ctx context.Context, name string) (mailboxRef, error) {
	name = mailstore.CanonicalMailboxName(name)
	if !sess.inShared(name) {
		return mailboxRef{name: name, owner: sess.user, store: name, rights: rightsOwn}, nil
	}
	none := mailboxRef{name: name}
	level, leaf, ok := strings.Cut(strings.TrimPrefix(name, sharedRoot+delim), delim)
	if !ok || strings.Contains(leaf, delim) {
		return none, nil // a \Noselect level, or deeper than any shared mailbox
	}
	owner, err := sess.sharedOwner(ctx, level)
	if err != nil || owner.ID == 0 {
		return none, err
	}
	if strings.EqualFold(leaf, "INBOX") {
		name = sharedRoot + delim + level + delim + "INBOX"
	}
	for _, ref := range sharedRefs(owner) {
		if ref.name == name {
			return ref, nil
		}
	}
	return none, nil
}

// sharedRefs lists the mailboxes of owner in the shared namespace.
func sharedRefs(owner mailstore.User) []mailboxRef {
	level := sharedRoot + delim + escapeAddress(owner.Address) + delim
	return []mailboxRef{
		{name: level + mailstore.QuarantineMailbox, owner: owner, store: mailstore.QuarantineMailbox, rights: rightsReview},
		{name: level + "INBOX", owner: owner, store: "INBOX", rights: rightsReleaseTo},
	}
}

// sharedOwner finds the user an address level of the shared namespace
// names; the zero User when there is none. The session's own account is
// not in its shared namespace.
func (sess *session) sharedOwner(ctx context.Context, level string) (mailstore.User, error) {
	addr, ok := unescapeAddress(level)
	if !ok {
		return mailstore.User{}, nil
	}
	u, err := sess.srv.store.LookupUser(ctx, addr)
	if errors.Is(err, mailstore.ErrNoUser) {
		return mailstore.User{}, nil
	}
	if err != nil {
		return mailstore.User{}, err
	}
	if escapeAddress(u.Address) != level || u.ID == sess.user.ID {
		return mailstore.User{}, nil
	}
	return u, nil
}

// addressEscapes are the characters of an address that cannot stand as
// they are in one mailbox level: the delimiter, the LIST wildcards
// (RFC 9051 §6.3.9), and the escape character itself.
const addressEscapes = "/*%~"

// escapeAddress turns an address into a mailbox level: each character of
// addressEscapes becomes ~ and two upper-case hex digits.
func escapeAddress(addr string) string {
	if !strings.ContainsAny(addr, addressEscapes) {
		return addr
	}
	var b strings.Builder
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if strings.IndexByte(addressEscapes, c) < 0 {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('~')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// unescapeAddress undoes escapeAddress; false for a malformed escape.
// Callers compare the result's escaped form with the level, so that each
// address has one spelling.
func unescapeAddress(level string) (string, bool) {
	if !strings.Contains(level, "~") {
		return level, true
	}
	var b strings.Builder
	for i := 0; i < len(level); i++ {
		if level[i] != '~' {
			b.WriteByte(level[i])
			continue
		}
		if i+2 >= len(level) {
			return "", false
		}
		v, err := strconv.ParseUint(level[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

// check says why ref cannot serve an operation that needs need, or nil.
func (ref mailboxRef) check(need right) error {
	switch {
	case ref.store == "":
		return errNoMailbox
	case ref.can(need):
		return nil
	case ref.rights == rightsReleaseTo:
		return errReleaseTargetOnly
	}
	return errNoPerm
}

// open looks up the store mailbox behind ref for an operation that needs
// need. A missing APPEND, COPY or MOVE destination that the user could
// create answers TRYCREATE (RFC 9051 §6.3.12, §6.4.7).
func (sess *session) open(ctx context.Context, ref mailboxRef, need right, op string) (mailstore.Mailbox, error) {
	if err := ref.check(need); err != nil {
		return mailstore.Mailbox{}, err
	}
	mb, err := sess.srv.store.Mailbox(ctx, ref.owner.ID, ref.store)
	switch {
	case errors.Is(err, mailstore.ErrNoMailbox) && need&(rightInsert|rightCopyIn) != 0 && ref.can(rightManage):
		return mailstore.Mailbox{}, errTryCreate
	case err != nil:
		return mailstore.Mailbox{}, sess.mailboxError(op, err)
	}
	return mb, nil
}

// openName resolves a name and opens its mailbox.
func (sess *session) openName(ctx context.Context, name string, need right, op string) (mailboxRef, mailstore.Mailbox, error) {
	ref, err := sess.resolve(ctx, name)
	if err != nil {
		return ref, mailstore.Mailbox{}, sess.internalError(op, err)
	}
	mb, err := sess.open(ctx, ref, need, op)
	return ref, mb, err
}

// mayListShared reports whether a LIST reference and patterns can match a
// name of the shared namespace, so that a LIST of personal names does not
// read every user. It follows imapserver.MatchList: a pattern that starts
// with the delimiter drops the reference.
func mayListShared(ref string, patterns []string) bool {
	for _, p := range patterns {
		full := p
		switch {
		case strings.HasPrefix(p, delim):
			full = p[1:]
		case ref != "":
			full = strings.TrimSuffix(ref, delim) + delim + p
		}
		if i := strings.IndexAny(full, "*%"); i >= 0 {
			full = full[:i]
		}
		if strings.HasPrefix(full, sharedRoot) || strings.HasPrefix(sharedRoot, full) {
			return true
		}
	}
	return false
}

// sharedEntries lists the shared namespace of an admin session: the
// mailboxes of every other user who has a Quarantine folder.
func (sess *session) sharedEntries(ctx context.Context) ([]listEntry, error) {
	users, err := sess.srv.store.Users(ctx)
	if err != nil {
		return nil, err
	}
	var out []listEntry
	for _, u := range users {
		if u.ID == sess.user.ID {
			continue
		}
		// One query per user; a store call listing every user's mailbox
		// of one name would make it one.
		if _, err := sess.srv.store.Mailbox(ctx, u.ID, mailstore.QuarantineMailbox); errors.Is(err, mailstore.ErrNoMailbox) {
			continue
		} else if err != nil {
			return nil, err
		}
		for _, ref := range sharedRefs(u) {
			// Shared folders are always subscribed: the subscription
			// state in the store is the owner's.
			out = append(out, listEntry{ref: ref, subscribed: true})
		}
	}
	return out, nil
}
