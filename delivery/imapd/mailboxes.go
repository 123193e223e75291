package imapd

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/moatmail/moat/delivery/mailstore"
)

const delim = string(mailstore.Delimiter)

// List implements imapserver.Session: LIST (with the RFC 5258 selection and
// return options and RFC 5819 LIST-STATUS) and LSUB.
func (sess *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		// RFC 9051 §6.3.9: an empty pattern asks for the hierarchy
		// delimiter and the root of the reference.
		return w.WriteList(&imap.ListData{
			Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect},
			Delim: mailstore.Delimiter,
		})
	}
	ctx, cancel := sess.ctx()
	defer cancel()
	entries, err := sess.listEntries(ctx, ref, patterns)
	if err != nil {
		return sess.internalError("LIST", err)
	}
	byName := make(map[string]*listEntry, len(entries))
	hasChild := make(map[string]bool)
	subscribedChild := make(map[string]bool)
	for i := range entries {
		e := &entries[i]
		byName[e.ref.name] = e
		for p := parentOf(e.ref.name); p != ""; p = parentOf(p) {
			hasChild[p] = true
			if e.subscribed {
				subscribedChild[p] = true
			}
		}
	}
	// Levels that have children but no mailbox of their own (a parent
	// deleted after its children were made, or the levels of the shared
	// namespace) are listed as \Noselect (RFC 3501 §6.3.8).
	names := make([]string, 0, len(byName)+len(hasChild))
	for name := range byName {
		names = append(names, name)
	}
	for name := range hasChild {
		if byName[name] == nil {
			names = append(names, name)
		}
	}
	sort.Slice(names, func(i, j int) bool { return lessMailbox(names[i], names[j]) })

	for _, name := range names {
		if !matchAny(name, ref, patterns) {
			continue
		}
		e := byName[name]
		data := &imap.ListData{Delim: mailstore.Delimiter, Mailbox: name}
		// RFC 5258 §3.5: with RECURSIVEMATCH, a parent that is not itself
		// selected by the criteria is returned with CHILDINFO.
		childInfo := options.SelectRecursiveMatch && subscribedChild[name]
		switch {
		case e == nil:
			if options.SelectSpecialUse || (options.SelectSubscribed && !childInfo) {
				continue
			}
			data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
		case options.SelectSpecialUse && e.specialUse == "":
			continue
		case options.SelectSubscribed && !e.subscribed && !childInfo:
			continue
		}
		if childInfo {
			data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		// RFC 3348 / RFC 9051 §7.3.1: children attributes are always given.
		if hasChild[name] {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if e != nil {
			// RFC 6154 §2: special-use attributes are returned by plain
			// LIST as well as when asked for.
			if e.specialUse != "" {
				data.Attrs = append(data.Attrs, imap.MailboxAttr(e.specialUse))
			}
			if e.subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
				data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
			}
			// A release target cannot be read: like a STATUS that fails,
			// its STATUS is left out (RFC 5819 §2).
			if options.ReturnStatus != nil && e.ref.can(rightRead) {
				st, err := sess.srv.store.Status(ctx, e.ref.owner.ID, e.ref.store)
				if err != nil {
					return sess.internalError("LIST", err)
				}
				if data.Status, err = sess.statusData(name, st, options.ReturnStatus); err != nil {
					return err
				}
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// listEntry is a mailbox LIST may show.
type listEntry struct {
	ref        mailboxRef
	specialUse string
	subscribed bool
}

// listEntries returns the session's own mailboxes and, for an admin whose
// patterns can reach it, the shared namespace.
func (sess *session) listEntries(ctx context.Context, ref string, patterns []string) ([]listEntry, error) {
	mbs, err := sess.srv.store.Mailboxes(ctx, sess.user.ID)
	if err != nil {
		return nil, err
	}
	out := make([]listEntry, 0, len(mbs))
	for _, mb := range mbs {
		if sess.inShared(mb.Name) {
			continue // hidden behind the shared namespace
		}
		out = append(out, listEntry{
			ref:        mailboxRef{name: mb.Name, owner: sess.user, store: mb.Name, rights: rightsOwn},
			specialUse: mb.SpecialUse,
			subscribed: mb.Subscribed,
		})
	}
	if sess.user.Admin && mayListShared(ref, patterns) {
		shared, err := sess.sharedEntries(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, shared...)
	}
	return out, nil
}

// lessMailbox orders INBOX first, then by name.
func lessMailbox(a, b string) bool {
	if (a == "INBOX") != (b == "INBOX") {
		return a == "INBOX"
	}
	return a < b
}

func parentOf(name string) string {
	if i := strings.LastIndexByte(name, mailstore.Delimiter); i > 0 {
		return name[:i]
	}
	return ""
}

// matchAny applies the LIST patterns; INBOX matches case-insensitively
// (RFC 9051 §5.1).
func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, mailstore.Delimiter, ref, p) {
			return true
		}
		if strings.HasPrefix(name, "INBOX") &&
			imapserver.MatchList(name, mailstore.Delimiter, canonInbox(ref), canonInbox(p)) {
			return true
		}
	}
	return false
}

// canonInbox upper-cases a leading "inbox" level of a reference or pattern.
func canonInbox(s string) string {
	if len(s) >= 5 && strings.EqualFold(s[:5], "INBOX") && (len(s) == 5 || s[5] == mailstore.Delimiter) {
		return "INBOX" + s[5:]
	}
	return s
}

// Status implements imapserver.Session.
func (sess *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	ctx, cancel := sess.ctx()
	defer cancel()
	ref, err := sess.resolve(ctx, name)
	if err != nil {
		return nil, sess.internalError("STATUS", err)
	}
	if err := ref.check(rightRead); err != nil {
		return nil, err
	}
	st, err := sess.srv.store.Status(ctx, ref.owner.ID, ref.store)
	if err != nil {
		return nil, sess.mailboxError("STATUS", err)
	}
	return sess.statusData(ref.name, st, options)
}

// statusData answers STATUS of a mailbox the client calls name.
func (sess *session) statusData(name string, st mailstore.MailboxStatus, options *imap.StatusOptions) (*imap.StatusData, error) {
	if options.DeletedStorage {
		// QUOTA=RES-STORAGE is not offered; go-imap would dereference a
		// nil count if we let the item through.
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown STATUS data item"}
	}
	data := &imap.StatusData{
		Mailbox:     name,
		UIDNext:     imap.UID(st.UIDNext),
		UIDValidity: st.UIDValidity,
	}
	if options.NumMessages {
		data.NumMessages = &st.Messages
	}
	if options.NumUnseen {
		data.NumUnseen = &st.Unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &st.Deleted
	}
	if options.Size {
		data.Size = &st.Size
	}
	if options.NumRecent {
		// \Recent is not kept (it is obsolete in RFC 9051).
		data.NumRecent = new(uint32)
	}
	if options.AppendLimit {
		limit := sess.AppendLimit()
		data.AppendLimit = &limit
	}
	return data, nil
}

// specialUses are the RFC 6154 attributes a client may give to CREATE.
var specialUses = map[imap.MailboxAttr]bool{
	imap.MailboxAttrAll: true, imap.MailboxAttrArchive: true, imap.MailboxAttrDrafts: true,
	imap.MailboxAttrFlagged: true, imap.MailboxAttrJunk: true, imap.MailboxAttrSent: true,
	imap.MailboxAttrTrash: true,
}

// Create implements imapserver.Session, with CREATE-SPECIAL-USE (RFC 6154
// §3): one attribute at most, since the store keeps one per mailbox.
func (sess *session) Create(name string, options *imap.CreateOptions) error {
	name = mailstore.CanonicalMailboxName(name)
	if err := checkMailboxName(name); err != nil {
		return err
	}
	var use string
	if options != nil && len(options.SpecialUse) > 0 {
		if len(options.SpecialUse) > 1 || !specialUses[options.SpecialUse[0]] {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR",
				Text: "Only one of \\All \\Archive \\Drafts \\Flagged \\Junk \\Sent \\Trash"}
		}
		use = string(options.SpecialUse[0])
	}
	ctx, cancel := sess.ctx()
	defer cancel()
	ref, err := sess.manageable(ctx, name, "CREATE")
	if err != nil {
		return err
	}
	if _, err := sess.srv.store.CreateMailbox(ctx, ref.owner.ID, ref.store, use); err != nil {
		return sess.mailboxError("CREATE", err)
	}
	return nil
}

// manageable resolves a name for CREATE, DELETE or RENAME, which work on
// the session's own mailboxes only: anywhere in the shared namespace
// they answer NOPERM.
func (sess *session) manageable(ctx context.Context, name, op string) (mailboxRef, error) {
	ref, err := sess.resolve(ctx, name)
	if err != nil {
		return ref, sess.internalError(op, err)
	}
	if !ref.can(rightManage) {
		return ref, errNoPerm
	}
	return ref, nil
}

// checkMailboxName refuses names the store would refuse, with a response
// the client understands (the store's validation is not exported).
func checkMailboxName(name string) error {
	cannot := func(text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: text}
	}
	if name == "" || len(name) > 512 {
		return cannot("Invalid mailbox name length")
	}
	for _, level := range strings.Split(name, delim) {
		if level == "" {
			return cannot("Mailbox name has an empty level")
		}
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f || r == '*' || r == '%' {
			return cannot("Mailbox name contains a forbidden character")
		}
	}
	return nil
}

// Delete implements imapserver.Session. RFC 9051 §6.3.5: INBOX cannot be
// deleted; children of a deleted mailbox stay.
func (sess *session) Delete(name string) error {
	name = mailstore.CanonicalMailboxName(name)
	if name == "INBOX" {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "INBOX cannot be deleted"}
	}
	ctx, cancel := sess.ctx()
	defer cancel()
	ref, err := sess.manageable(ctx, name, "DELETE")
	if err != nil {
		return err
	}
	if err := sess.srv.store.DeleteMailbox(ctx, ref.owner.ID, ref.store); err != nil {
		return sess.mailboxError("DELETE", err)
	}
	return nil
}

// Rename implements imapserver.Session; children move along (RFC 9051
// §6.3.6). Renaming INBOX (which would move its messages) is not offered.
func (sess *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	oldName, newName = mailstore.CanonicalMailboxName(oldName), mailstore.CanonicalMailboxName(newName)
	cannot := func(text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: text}
	}
	if oldName == "INBOX" {
		return cannot("Renaming INBOX is not supported")
	}
	if err := checkMailboxName(newName); err != nil {
		return err
	}
	if newName == oldName || strings.HasPrefix(newName, oldName+delim) {
		return cannot("Cannot rename a mailbox into itself")
	}
	ctx, cancel := sess.ctx()
	defer cancel()
	for _, name := range []string{oldName, newName} {
		if _, err := sess.manageable(ctx, name, "RENAME"); err != nil {
			return err
		}
	}
	// The store renames children in one UPDATE; a child landing on an
	// existing name would fail on the unique index, so check first.
	mbs, err := sess.srv.store.Mailboxes(ctx, sess.user.ID)
	if err != nil {
		return sess.internalError("RENAME", err)
	}
	exists := make(map[string]bool, len(mbs))
	for _, mb := range mbs {
		exists[mb.Name] = true
	}
	if !exists[oldName] {
		return errNoMailbox
	}
	for _, mb := range mbs {
		if rest, ok := strings.CutPrefix(mb.Name, oldName); ok && (rest == "" || rest[0] == mailstore.Delimiter) && exists[newName+rest] {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists,
				Text: "Target mailbox already exists"}
		}
	}
	if err := sess.srv.store.RenameMailbox(ctx, sess.user.ID, oldName, newName); err != nil {
		return sess.mailboxError("RENAME", err)
	}
	return nil
}

// Subscribe implements imapserver.Session. Shared folders are always
// subscribed (their subscription state in the store is the owner's), so
// subscribing to one succeeds and changes nothing.
func (sess *session) Subscribe(name string) error {
	ctx, cancel := sess.ctx()
	defer cancel()
	ref, err := sess.resolve(ctx, name)
	if err != nil {
		return sess.internalError("SUBSCRIBE", err)
	}
	if !ref.can(rightManage) {
		if ref.store == "" {
			return errNoMailbox
		}
		return nil
	}
	if err := sess.srv.store.SetSubscribed(ctx, ref.owner.ID, ref.store, true); err != nil {
		return sess.mailboxError("SUBSCRIBE", err)
	}
	return nil
}

// Unsubscribe implements imapserver.Session. Unsubscribing from a name
// that no longer exists succeeds: the subscription went with the mailbox.
// A shared folder cannot be unsubscribed.
func (sess *session) Unsubscribe(name string) error {
	ctx, cancel := sess.ctx()
	defer cancel()
	ref, err := sess.resolve(ctx, name)
	if err != nil {
		return sess.internalError("UNSUBSCRIBE", err)
	}
	if !ref.can(rightManage) {
		if ref.store == "" {
			return nil
		}
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "Shared folders are always subscribed"}
	}
	err = sess.srv.store.SetSubscribed(ctx, ref.owner.ID, ref.store, false)
	if err != nil && !errors.Is(err, mailstore.ErrNoMailbox) {
		return sess.internalError("UNSUBSCRIBE", err)
	}
	return nil
}

// Append implements imapserver.Session. go-imap has already refused a
// literal above AppendLimit with [TOOBIG] (RFC 7889) before reading it.
func (sess *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	ctx, cancel := sess.ctx()
	defer cancel()
	_, mb, err := sess.openName(ctx, name, rightInsert, "APPEND")
	if err != nil {
		return nil, err
	}
	size := r.Size()
	if size > sess.srv.cfg.AppendLimit {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message too big"}
	}
	if size == 0 {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Empty message"}
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err // the connection is broken; go-imap drops it
	}
	flags, err := storeFlags(options.Flags)
	if err != nil {
		return nil, err
	}
	m, err := sess.srv.store.Append(ctx, mb.ID, data, flags, options.Time)
	if err != nil {
		return nil, sess.internalError("APPEND", err)
	}
	return &imap.AppendData{UIDValidity: mb.UIDValidity, UID: imap.UID(m.UID)}, nil
}
