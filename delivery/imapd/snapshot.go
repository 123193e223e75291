package imapd

import (
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/moatmail/moat/delivery/mailstore"
)

// Why a diff and not imapserver.MailboxTracker: the tracker expects every
// writer to queue its changes in process, but here changes come from other
// processes' writers too (SMTP delivery, quarantine release, later a second
// node), and the store only says "this mailbox changed" (Store.Watch). So a
// session re-reads the mailbox when told it changed and compares the
// listing with what it last showed its client.
//
// Memory: the UIDs, flag sets and per-message details (blob, size, date:
// what FETCH and SEARCH need without a query per message) are those of the
// mailbox's shared listing (listing.go), so a selected mailbox costs a
// session next to nothing while its client is up to date; a session that
// must show its client an older state holds a private copy until its next
// poll.

// selected is the state of the selected mailbox, as the client knows it:
// message i has sequence number i+1.
type selected struct {
	ref      mailboxRef // the name as resolved: owner and rights
	mb       mailstore.Mailbox
	readOnly bool
	// uids, flags, table and info are those of base while base is set
	// (read only); own makes them private.
	base  *sharedListing
	entry *listingEntry
	uids  []uint32
	flags []uint32 // index into table.sets
	table *flagTable
	// info is parallel to uids; an entry with blobID 0 is a message gone
	// from the store.
	info []msgInfo
	// ghosts are messages expunged from the store that the client has not
	// been told of yet: EXPUNGE may not be sent during FETCH, STORE or
	// SEARCH (RFC 9051 §7.5.1), so they keep their sequence numbers.
	ghosts    map[uint32]bool
	uidNext   uint32
	searchRes imap.UIDSet // RFC 5182 SEARCHRES, always as UIDs
	// stale: a change notice was taken but the reload failed.
	stale bool

	changes <-chan struct{}
	stop    func()
}

type msgInfo struct {
	blobID int64 // 0: not loaded
	// key is the blob's file, when the listing knows it (see
	// mailstore.Entry.BlobKey); a message without one may be in a file
	// still: the store finds it from blobID.
	key  string
	size int64
	date int64 // Unix seconds
}

func infoOf(e *mailstore.Entry) msgInfo {
	return msgInfo{blobID: e.BlobID, key: e.BlobKey, size: e.Size, date: e.InternalDate}
}

// flagSet is one distinct set of flags, as stored (sorted, deduplicated).
type flagSet struct {
	key     string // the stored form: flags joined by spaces
	flags   []imap.Flag
	seen    bool
	deleted bool
}

// has reports whether the set holds flag; IMAP flags compare
// case-insensitively (RFC 9051 §2.3.2).
func (fs *flagSet) has(flag imap.Flag) bool {
	for _, f := range fs.flags {
		if strings.EqualFold(string(f), string(flag)) {
			return true
		}
	}
	return false
}

// flagTable interns flag sets: a mailbox has few distinct ones.
type flagTable struct {
	index map[string]uint32
	sets  []flagSet
}

func newFlagTable() *flagTable {
	t := &flagTable{index: make(map[string]uint32)}
	t.intern(nil)
	return t
}

func (t *flagTable) intern(flags []string) uint32 {
	var key string
	switch len(flags) {
	case 0:
	case 1:
		key = flags[0]
	default:
		key = strings.Join(flags, " ")
	}
	if i, ok := t.index[key]; ok {
		return i
	}
	fs := flagSet{key: key, flags: make([]imap.Flag, len(flags))}
	for i, f := range flags {
		fs.flags[i] = imap.Flag(f)
	}
	fs.seen = fs.has(imap.FlagSeen)
	fs.deleted = fs.has(imap.FlagDeleted)
	i := uint32(len(t.sets))
	t.sets = append(t.sets, fs)
	t.index[key] = i
	return i
}

// internKey interns a flag set in its stored form (flags joined by
// spaces).
func (t *flagTable) internKey(key string) uint32 {
	if i, ok := t.index[key]; ok {
		return i
	}
	return t.intern(strings.Fields(key))
}

// clone copies the table, for a change to one that others read.
func (t *flagTable) clone() *flagTable {
	c := &flagTable{index: make(map[string]uint32, len(t.index)), sets: append([]flagSet(nil), t.sets...)}
	for k, v := range t.index {
		c.index[k] = v
	}
	return c
}

func (t *flagTable) internSet(fs *flagSet) uint32 {
	if i, ok := t.index[fs.key]; ok {
		return i
	}
	i := uint32(len(t.sets))
	t.sets = append(t.sets, *fs)
	t.index[fs.key] = i
	return i
}

func newSelected(ref mailboxRef, mb mailstore.Mailbox, readOnly bool, l *sharedListing) *selected {
	sel := &selected{ref: ref, mb: mb, readOnly: readOnly}
	sel.share(l)
	return sel
}

// share makes the session's view that of the listing l.
func (sel *selected) share(l *sharedListing) {
	sel.base = l
	sel.uids, sel.flags, sel.table, sel.info = l.uids, l.flags, l.table, l.info
	sel.uidNext = max(sel.uidNext, l.uidNext)
}

// own makes the view private before the session changes it.
func (sel *selected) own() {
	if sel.base == nil {
		return
	}
	sel.base = nil
	sel.uids = append([]uint32(nil), sel.uids...)
	sel.flags = append([]uint32(nil), sel.flags...)
	sel.info = append([]msgInfo(nil), sel.info...)
	sel.table = sel.table.clone()
}

func (sel *selected) set(i int) *flagSet { return &sel.table.sets[sel.flags[i]] }

func (sel *selected) isGhost(i int) bool { return len(sel.ghosts) > 0 && sel.ghosts[sel.uids[i]] }

// indexOf returns the position of uid, or -1.
func (sel *selected) indexOf(uid uint32) int {
	i := sort.Search(len(sel.uids), func(i int) bool { return sel.uids[i] >= uid })
	if i < len(sel.uids) && sel.uids[i] == uid {
		return i
	}
	return -1
}

// apply brings the snapshot up to date with a fresh listing of the mailbox
// and tells the client what changed: EXPUNGE in descending sequence order
// (each number stays valid as the ones above it go), FETCH FLAGS, then
// EXISTS for new messages. Without allowExpunge, vanished messages stay as
// ghosts, in a private view; otherwise the session shares fresh.
func (sel *selected) apply(w *imapserver.UpdateWriter, fresh *sharedListing, allowExpunge bool) error {
	if sel.base == fresh {
		return nil
	}
	var expunged, changed []int
	var ghosts []int // positions in sel of messages kept as ghosts
	known := 0       // messages of the new view that the client knew
	j := 0
	for i, uid := range sel.uids {
		// A UID below one already shown cannot be given a sequence
		// number; UIDs are allocated ascending, so this only skips what
		// cannot happen.
		for j < len(fresh.uids) && fresh.uids[j] < uid {
			j++
		}
		if j < len(fresh.uids) && fresh.uids[j] == uid {
			if (fresh.table != sel.table || fresh.flags[j] != sel.flags[i]) &&
				fresh.table.sets[fresh.flags[j]].key != sel.set(i).key {
				changed = append(changed, known)
			}
			known++
			j++
			continue
		}
		if allowExpunge {
			expunged = append(expunged, i)
			continue
		}
		ghosts = append(ghosts, i)
		known++
	}
	var last uint32
	if len(sel.uids) > 0 {
		last = sel.uids[len(sel.uids)-1]
	}
	if len(ghosts) == 0 {
		sel.share(fresh)
		sel.ghosts = nil
		return sel.tell(w, expunged, changed, known, len(fresh.uids))
	}
	// Ghosts: a private view of the known messages, the ghosts kept, and
	// the new ones.
	table := newFlagTable()
	n := len(fresh.uids) + len(ghosts)
	uids := make([]uint32, 0, n)
	flags := make([]uint32, 0, n)
	info := make([]msgInfo, 0, n)
	ghostSet := make(map[uint32]bool, len(ghosts))
	j = 0
	for i, uid := range sel.uids {
		for j < len(fresh.uids) && fresh.uids[j] < uid {
			j++
		}
		if j < len(fresh.uids) && fresh.uids[j] == uid {
			uids = append(uids, uid)
			flags = append(flags, table.internSet(&fresh.table.sets[fresh.flags[j]]))
			info = append(info, fresh.info[j])
			j++
			continue
		}
		if !allowExpunge {
			ghostSet[uid] = true
			uids = append(uids, uid)
			flags = append(flags, table.internSet(sel.set(i)))
			info = append(info, msgInfo{})
		}
	}
	for ; j < len(fresh.uids); j++ {
		if fresh.uids[j] <= last {
			continue
		}
		uids = append(uids, fresh.uids[j])
		flags = append(flags, table.internSet(&fresh.table.sets[fresh.flags[j]]))
		info = append(info, fresh.info[j])
	}
	sel.base = nil
	sel.uids, sel.flags, sel.table, sel.info, sel.ghosts = uids, flags, table, info, ghostSet
	sel.uidNext = max(sel.uidNext, fresh.uidNext)
	return sel.tell(w, expunged, changed, known, len(uids))
}

// tell writes the updates apply found: expunged are positions in the old
// view, changed positions in the new one.
func (sel *selected) tell(w *imapserver.UpdateWriter, expunged, changed []int, known, total int) error {
	for k := len(expunged) - 1; k >= 0; k-- {
		if err := w.WriteExpunge(uint32(expunged[k] + 1)); err != nil {
			return err
		}
	}
	for _, i := range changed {
		if err := w.WriteMessageFlags(uint32(i+1), imap.UID(sel.uids[i]), sel.set(i).flags); err != nil {
			return err
		}
	}
	if total > known {
		return w.WriteNumMessages(uint32(total))
	}
	return nil
}

// remove drops the messages at the given ascending positions.
func (sel *selected) remove(positions []int) {
	if len(positions) == 0 {
		return
	}
	sel.own()
	drop := make(map[int]bool, len(positions))
	for _, p := range positions {
		drop[p] = true
		delete(sel.ghosts, sel.uids[p])
	}
	k := 0
	for i := range sel.uids {
		if drop[i] {
			continue
		}
		sel.uids[k], sel.flags[k], sel.info[k] = sel.uids[i], sel.flags[i], sel.info[i]
		k++
	}
	sel.uids, sel.flags, sel.info = sel.uids[:k], sel.flags[:k], sel.info[:k]
}

// resolve turns a sequence or UID set into ascending snapshot positions.
// RFC 9051 §9 (seq-number): a sequence number above the message count,
// "*" in an empty mailbox included, is an error; UIDs that do not exist are
// ignored, and "*" is the highest UID in use.
func (sel *selected) resolve(numSet imap.NumSet) ([]int, error) {
	if imap.IsSearchRes(numSet) {
		numSet = sel.searchRes
	}
	var out []int
	ranges := 0
	switch set := numSet.(type) {
	case imap.SeqSet:
		n := uint32(len(sel.uids))
		for _, r := range set {
			start, stop := dynamic(r.Start, n), dynamic(r.Stop, n)
			if start > stop {
				start, stop = stop, start
			}
			if start == 0 || stop > n {
				return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Invalid message sequence number"}
			}
			for s := start; s <= stop; s++ {
				out = append(out, int(s-1))
			}
			ranges++
		}
	case imap.UIDSet:
		if len(sel.uids) == 0 {
			return nil, nil
		}
		top := sel.uids[len(sel.uids)-1]
		for _, r := range set {
			start, stop := dynamic(uint32(r.Start), top), dynamic(uint32(r.Stop), top)
			if start > stop {
				start, stop = stop, start
			}
			lo := sort.Search(len(sel.uids), func(i int) bool { return sel.uids[i] >= start })
			for i := lo; i < len(sel.uids) && sel.uids[i] <= stop; i++ {
				out = append(out, i)
			}
			ranges++
		}
	}
	if ranges > 1 {
		sort.Ints(out)
		k := 0
		for i, p := range out {
			if i == 0 || p != out[k-1] {
				out[k] = p
				k++
			}
		}
		out = out[:k]
	}
	return out, nil
}

// dynamic replaces "*" (0 in go-imap's sets) with top.
func dynamic(n, top uint32) uint32 {
	if n == 0 {
		return top
	}
	return n
}

// Select implements imapserver.Session (SELECT and EXAMINE). A mailbox
// without the write right is selected read-only.
func (sess *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	ctx, cancel := sess.ctx()
	defer cancel()
	ref, mb, err := sess.openName(ctx, name, rightRead, "SELECT")
	if err != nil {
		return nil, err
	}
	// The eight or so lines of the reply leave in one write, at the
	// next read (corkConn.Read).
	sess.cork.cork()
	// Watch before listing, so that no change falls between the two.
	changes, stopWatch := sess.srv.store.Watch(mb.ID)
	entry := sess.srv.listings.acquire(mb.ID)
	stop := func() {
		stopWatch()
		sess.srv.listings.release(mb.ID, entry)
	}
	l, err := entry.get(ctx, sess.srv.store, mb.ID)
	if err != nil {
		stop()
		return nil, sess.internalError("SELECT", err)
	}
	sel := newSelected(ref, mb, options.ReadOnly || !ref.can(rightWrite), l)
	sel.entry, sel.changes, sel.stop = entry, changes, stop
	sess.mu.Lock()
	sess.unselect()
	sess.sel = sel
	sess.mu.Unlock()
	if ref.foreign(sess.user) {
		sess.log.Info("imap SELECT of another user's mailbox", "owner", ref.owner.Address,
			"mailbox", mb.Name, "read_only", sel.readOnly)
	}

	data := &imap.SelectData{
		Flags:       mailboxFlags(sel.table),
		NumMessages: uint32(len(sel.uids)),
		UIDNext:     imap.UID(sel.uidNext),
		UIDValidity: mb.UIDValidity,
	}
	// RFC 9051 §7.1: PERMANENTFLAGS () on a read-only mailbox.
	if !sel.readOnly {
		data.PermanentFlags = append(append([]imap.Flag(nil), data.Flags...), imap.FlagWildcard)
	}
	if l.firstUnseen >= 0 {
		data.FirstUnseenSeqNum = uint32(l.firstUnseen + 1)
	}
	return data, nil
}

var systemFlags = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

// mailboxFlags lists the system flags and the keywords in use.
func mailboxFlags(t *flagTable) []imap.Flag {
	out := append([]imap.Flag(nil), systemFlags...)
	seen := make(map[string]bool)
	for _, fs := range t.sets {
		for _, f := range fs.flags {
			k := strings.ToLower(string(f))
			if !strings.HasPrefix(k, `\`) && !seen[k] {
				seen[k] = true
				out = append(out, f)
			}
		}
	}
	sort.Slice(out[len(systemFlags):], func(i, j int) bool {
		return out[len(systemFlags)+i] < out[len(systemFlags)+j]
	})
	return out
}

// Unselect implements imapserver.Session (UNSELECT and CLOSE).
func (sess *session) Unselect() error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.unselect()
	return nil
}

func (sess *session) unselect() {
	if sess.sel != nil {
		sess.sel.stop()
		sess.sel = nil
	}
}

// Poll implements imapserver.Session; go-imap calls it after every command.
// It costs nothing unless the store said the mailbox changed.
func (sess *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	if sel == nil {
		return nil
	}
	select {
	case <-sel.changes:
	default:
		if !sel.stale && (!allowExpunge || len(sel.ghosts) == 0) {
			return nil
		}
	}
	return sess.refresh(w, allowExpunge)
}

func (sess *session) refresh(w *imapserver.UpdateWriter, allowExpunge bool) error {
	sel := sess.sel
	ctx, cancel := sess.ctx()
	defer cancel()
	l, err := sel.entry.get(ctx, sess.srv.store, sel.mb.ID)
	if err != nil {
		sel.stale = true
		return sess.internalError("poll", err)
	}
	sel.stale = false
	return sel.apply(w, l, allowExpunge)
}

// Idle implements imapserver.Session (RFC 2177): changes to the selected
// mailbox are pushed as they commit.
func (sess *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	timer := time.NewTimer(sess.srv.cfg.IdleTimeout)
	defer timer.Stop()
	var changes <-chan struct{}
	var err error
	sess.mu.Lock()
	if sel := sess.sel; sel != nil {
		changes = sel.changes
		if len(sel.ghosts) > 0 || sel.stale {
			err = sess.refresh(w, true)
		}
	}
	sess.mu.Unlock()
	if err != nil {
		return err
	}
	for {
		select {
		case <-stop:
			return nil
		case <-sess.srv.accept.Done():
			return nil
		case <-timer.C:
			// RFC 9051 §5.4 autologout: the client should have renewed
			// its IDLE well before (RFC 2177 suggests every 29 minutes).
			return sess.conn.Bye("IDLE timed out")
		case <-changes:
			sess.mu.Lock()
			if sess.sel != nil {
				err = sess.refresh(w, true)
			}
			sess.mu.Unlock()
			if err != nil {
				return err
			}
		}
	}
}
