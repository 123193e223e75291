package imapd

import (
	"context"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/moatmail/moat/delivery/mailstore"
)

var errReadOnly = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: "READ-ONLY", // RFC 9051 §7.1
	Text: "Mailbox is selected read-only",
}

// storeFlags checks and canonicalises flags from a client: system flags in
// their canonical case (the store compares them case-sensitively in SQL),
// \Recent dropped (RFC 9051 §2.3.2: not settable by clients, and obsolete),
// unknown system flags refused.
func storeFlags(flags []imap.Flag) ([]string, error) {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		s := string(f)
		if !strings.HasPrefix(s, `\`) {
			out = append(out, s)
			continue
		}
		canon := ""
		for _, sf := range systemFlags {
			if strings.EqualFold(s, string(sf)) {
				canon = string(sf)
			}
		}
		switch {
		case canon != "":
			out = append(out, canon)
		case strings.EqualFold(s, `\Recent`):
		default:
			return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown system flag " + clip(s)}
		}
	}
	return out, nil
}

// targets returns the UIDs of the live messages at positions, and whether
// some were ghosts (expunged meanwhile).
func (sel *selected) targets(positions []int) (uids []uint32, gone bool) {
	uids = make([]uint32, 0, len(positions))
	for _, i := range positions {
		if sel.isGhost(i) {
			gone = true
			continue
		}
		uids = append(uids, sel.uids[i])
	}
	return uids, gone
}

// Store implements imapserver.Session (STORE and UID STORE, RFC 9051
// §6.4.6).
func (sess *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, _ *imap.StoreOptions) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	if sel.readOnly {
		return errReadOnly
	}
	positions, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	list, err := storeFlags(flags.Flags)
	if err != nil {
		return err
	}
	var op mailstore.FlagOp
	switch flags.Op {
	case imap.StoreFlagsSet:
		op = mailstore.FlagsSet
	case imap.StoreFlagsAdd:
		op = mailstore.FlagsAdd
	case imap.StoreFlagsDel:
		op = mailstore.FlagsRemove
	}
	uids, gone := sel.targets(positions)
	if len(uids) > 0 {
		sess.cork.cork()
		defer sess.cork.uncork()
		ctx, cancel := sess.ctx()
		msgs, err := sess.srv.store.StoreFlags(ctx, sel.mb.ID, uids, op, list)
		cancel()
		if err != nil {
			return sess.internalError("STORE", err)
		}
		// The store returns the messages still present, in the order
		// asked, which is ascending.
		_, isUID := numSet.(imap.UIDSet)
		sel.own()
		for _, m := range msgs {
			i := sel.indexOf(m.UID)
			if i < 0 {
				continue
			}
			sel.flags[i] = sel.table.intern(m.Flags)
			if flags.Silent {
				continue
			}
			rw := w.CreateMessage(uint32(i + 1))
			if isUID {
				// RFC 9051 §6.4.9: UID STORE responses carry the UID.
				rw.WriteUID(imap.UID(m.UID))
			}
			rw.WriteFlags(sel.set(i).flags)
			if err := rw.Close(); err != nil {
				return err
			}
		}
		gone = gone || len(msgs) < len(uids)
	}
	if gone {
		return errExpungeIssued
	}
	return nil
}

// destination finds the target mailbox of COPY or MOVE. It must belong
// to the owner of the selected mailbox: mail never crosses accounts, so an
// admin in another user's Quarantine can only release to that user's
// INBOX, and cannot copy into anyone else's or their own folders. RFC 9051
// §6.4.7: TRYCREATE when the user's own mailbox does not exist.
func (sess *session) destination(name, op string) (mailstore.Mailbox, error) {
	ctx, cancel := sess.ctx()
	defer cancel()
	ref, err := sess.resolve(ctx, name)
	if err != nil {
		return mailstore.Mailbox{}, sess.internalError(op, err)
	}
	if ref.store != "" && ref.owner.ID != sess.sel.ref.owner.ID {
		return mailstore.Mailbox{}, errCrossAccount
	}
	return sess.open(ctx, ref, rightCopyIn, op)
}

func copyData(res mailstore.CopyResult) *imap.CopyData {
	if len(res.SourceUIDs) == 0 {
		return nil // RFC 4315 §3: no COPYUID when nothing was copied
	}
	var src, dst rangeBuilder
	for i := range res.SourceUIDs {
		src.add(res.SourceUIDs[i])
		dst.add(res.DestUIDs[i])
	}
	return &imap.CopyData{UIDValidity: res.UIDValidity, SourceUIDs: src.uidSet(), DestUIDs: dst.uidSet()}
}

// Copy implements imapserver.Session (COPY and UID COPY, with COPYUID of
// RFC 4315). The copies share the stored file.
func (sess *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	positions, err := sel.resolve(numSet)
	if err != nil {
		return nil, err
	}
	dst, err := sess.destination(dest, "COPY")
	if err != nil {
		return nil, err
	}
	uids, gone := sel.targets(positions)
	if gone {
		// RFC 9051 §6.4.7: a COPY that cannot copy everything copies
		// nothing.
		return nil, errExpungeIssued
	}
	if len(uids) == 0 {
		return nil, nil
	}
	ctx, cancel := sess.ctx()
	defer cancel()
	var before []mailstore.Message
	if sess.srv.Reviewer != nil {
		before = sess.messagesOf(ctx, sel.mb.ID, uids)
	}
	res, err := sess.srv.store.Copy(ctx, sel.mb.ID, uids, dst.ID)
	if err != nil {
		return nil, sess.internalError("COPY", err)
	}
	sess.audit("COPY", dst, len(res.SourceUIDs))
	sess.review(before, res, dst, false)
	return copyData(res), nil
}

// messagesOf returns the messages of a mailbox with the given UIDs, for
// the Reviewer; an error leaves the review out, not the command.
func (sess *session) messagesOf(ctx context.Context, mailboxID int64, uids []uint32) []mailstore.Message {
	all, err := sess.srv.store.Messages(ctx, mailboxID)
	if err != nil {
		sess.log.Warn("review: listing messages failed", "err", err)
		return nil
	}
	want := make(map[uint32]bool, len(uids))
	for _, u := range uids {
		want[u] = true
	}
	out := make([]mailstore.Message, 0, len(uids))
	for _, m := range all {
		if want[m.UID] {
			out = append(out, m)
		}
	}
	return out
}

// review tells the Reviewer which of before were copied or moved, in the
// name of the mailboxes' owner: an admin's release from a shared
// Quarantine counts as the owner's own.
func (sess *session) review(before []mailstore.Message, res mailstore.CopyResult, dst mailstore.Mailbox, move bool) {
	if sess.srv.Reviewer == nil || len(res.SourceUIDs) == 0 {
		return
	}
	done := make(map[uint32]bool, len(res.SourceUIDs))
	for _, u := range res.SourceUIDs {
		done[u] = true
	}
	msgs := before[:0:0]
	for _, m := range before {
		if done[m.UID] {
			msgs = append(msgs, m)
		}
	}
	sess.srv.Reviewer.Moved(sess.sel.ref.owner, sess.sel.mb, dst, msgs, move)
}

// audit logs a change an admin made to another user's mailbox: one line
// per command, naming the owner (the session's log names the admin).
func (sess *session) audit(op string, to mailstore.Mailbox, n int) {
	sel := sess.sel
	if n == 0 || !sel.ref.foreign(sess.user) {
		return
	}
	args := []any{"owner", sel.ref.owner.Address, "mailbox", sel.mb.Name, "messages", n}
	if to.ID != 0 {
		args = append(args, "to", to.Name)
	}
	sess.log.Info("imap "+op+" in another user's mailbox", args...)
}

// Move implements imapserver.SessionMove (RFC 6851): COPYUID first, then
// EXPUNGE for each moved message, highest sequence number first.
func (sess *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	if sel.readOnly {
		return errReadOnly
	}
	positions, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	dst, err := sess.destination(dest, "MOVE")
	if err != nil {
		return err
	}
	uids, gone := sel.targets(positions)
	if len(uids) == 0 {
		if gone {
			return errExpungeIssued
		}
		return nil
	}
	ctx, cancel := sess.ctx()
	var before []mailstore.Message
	if sess.srv.Reviewer != nil {
		before = sess.messagesOf(ctx, sel.mb.ID, uids)
	}
	res, err := sess.srv.store.Move(ctx, sel.mb.ID, uids, dst.ID)
	cancel()
	if err != nil {
		return sess.internalError("MOVE", err)
	}
	sess.audit("MOVE", dst, len(res.SourceUIDs))
	sess.review(before, res, dst, true)
	if data := copyData(res); data != nil {
		if err := w.WriteCopyData(data); err != nil {
			return err
		}
	}
	moved := make([]int, 0, len(res.SourceUIDs))
	for _, uid := range res.SourceUIDs {
		if i := sel.indexOf(uid); i >= 0 {
			moved = append(moved, i)
		}
	}
	sel.remove(moved)
	for k := len(moved) - 1; k >= 0; k-- {
		if err := w.WriteExpunge(uint32(moved[k] + 1)); err != nil {
			return err
		}
	}
	if gone || len(res.SourceUIDs) < len(uids) {
		return errExpungeIssued
	}
	return nil
}

// Expunge implements imapserver.Session: EXPUNGE, UID EXPUNGE (RFC 4315
// §2.1) and the silent expunge of CLOSE. The client is told of every
// message it knew that is gone, its own and other sessions' alike.
func (sess *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	if sel.readOnly {
		// go-imap passes CLOSE an ExpungeWriter with no connection.
		// RFC 9051 §6.4.1: CLOSE on a read-only mailbox removes nothing
		// and gives no error; EXPUNGE there is refused.
		if *w == (imapserver.ExpungeWriter{}) {
			return nil
		}
		return errReadOnly
	}
	var only []uint32
	if uids != nil {
		only = make([]uint32, 0)
		if len(sel.uids) > 0 {
			ranges := uidRanges(*uids)
			top := sel.uids[len(sel.uids)-1]
			for i, uid := range sel.uids {
				if !sel.isGhost(i) && inSet(ranges, uid, top) {
					only = append(only, uid)
				}
			}
		}
	}
	ctx, cancel := sess.ctx()
	if sess.srv.Reviewer != nil && sel.mb.Name == mailstore.QuarantineMailbox {
		sess.reviewExpunge(ctx, only)
	}
	removed, err := sess.srv.store.Expunge(ctx, sel.mb.ID, only)
	cancel()
	if err != nil {
		return sess.internalError("EXPUNGE", err)
	}
	sess.audit("EXPUNGE", mailstore.Mailbox{}, len(removed))
	gone := make(map[uint32]bool, len(removed)+len(sel.ghosts))
	for _, uid := range removed {
		gone[uid] = true
	}
	for uid := range sel.ghosts {
		gone[uid] = true
	}
	var positions []int
	for i, uid := range sel.uids {
		if gone[uid] {
			positions = append(positions, i)
		}
	}
	sel.remove(positions)
	for k := len(positions) - 1; k >= 0; k-- {
		if err := w.WriteExpunge(uint32(positions[k] + 1)); err != nil {
			return err
		}
	}
	return nil
}

// reviewExpunge tells the Reviewer which messages of the Quarantine folder
// an EXPUNGE is about to remove: those flagged \Deleted (among only, when
// only is not nil).
func (sess *session) reviewExpunge(ctx context.Context, only []uint32) {
	all, err := sess.srv.store.Messages(ctx, sess.sel.mb.ID)
	if err != nil {
		sess.log.Warn("review: listing messages failed", "err", err)
		return
	}
	var want map[uint32]bool
	if only != nil {
		want = make(map[uint32]bool, len(only))
		for _, u := range only {
			want[u] = true
		}
	}
	var msgs []mailstore.Message
	for _, m := range all {
		if m.HasFlag(`\Deleted`) && (want == nil || want[m.UID]) {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) > 0 {
		sess.srv.Reviewer.Expunging(sess.sel.ref.owner, sess.sel.mb, msgs)
	}
}
