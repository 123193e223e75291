package imapd

import (
	"context"
	"sync"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
)

// A sharedListing is one version of a mailbox as the index holds it: UIDs, flag
// sets and per-message details (blob, size, date) in packed slices. Once
// published it never changes, so every session that selects the mailbox
// at that version uses the same one instead of a copy of its own (Dovecot
// shares its mmapped index between processes the same way). The server
// keeps the latest listing of each selected mailbox (listings) and moves
// it forward with what changed since its modification sequence
// (mailstore.ChangesSince): new messages and flag changes read only the
// changed rows, an expunge also reads the UIDs. A session whose client
// has not been told of some change (an EXPUNGE that must wait, RFC 9051
// §7.5.1) or that changed flags itself keeps a private copy until its
// next poll brings it back to the shared listing.
type sharedListing struct {
	modseq  uint64
	uidNext uint32
	uids    []uint32
	flags   []uint32   // index into table.sets
	table   *flagTable // never changed once published; a successor that needs a new set clones it
	info    []msgInfo
	// firstUnseen is the position of the first message without \Seen,
	// or -1.
	firstUnseen int
}

// next returns the listing moved forward by ch: l itself when nothing
// changed. l may be nil (the first load, since 0). Successors may append to
// l's slices beyond their length: readers of l never look there, and each
// listing has at most one successor (listingEntry.load).
func (l *sharedListing) next(ch mailstore.Changes) *sharedListing {
	if l != nil && ch.ModSeq == l.modseq {
		return l
	}
	n := &sharedListing{modseq: ch.ModSeq, uidNext: ch.UIDNext}
	if l == nil || ch.UIDs != nil {
		n.rebuild(l, ch)
	} else {
		n.extend(l, ch)
	}
	// RFC 3501 §7.1 OK [UNSEEN]: the store finds the first unseen UID
	// in an index (mailstore.Changes.FirstUnseen), not by a scan.
	n.firstUnseen = -1
	if ch.FirstUnseen != 0 {
		n.firstUnseen = n.indexOf(ch.FirstUnseen)
	}
	if k := len(n.uids); k > 0 && n.uids[k-1] >= n.uidNext {
		n.uidNext = n.uids[k-1] + 1
	}
	return n
}

// rebuild makes a listing of the UIDs in ch.UIDs (or of ch.Entries when
// ch.UIDs is nil: a first load), taking what ch does not say from l, with
// a table of the flag sets in use.
func (n *sharedListing) rebuild(l *sharedListing, ch mailstore.Changes) {
	n.table = newFlagTable()
	sets := make([]uint32, len(ch.FlagSets))
	for k, key := range ch.FlagSets {
		sets[k] = n.table.internKey(key)
	}
	if ch.UIDs == nil {
		n.uids = make([]uint32, len(ch.Entries))
		n.flags = make([]uint32, len(ch.Entries))
		n.info = make([]msgInfo, len(ch.Entries))
		for i := range ch.Entries {
			e := &ch.Entries[i]
			n.uids[i] = e.UID
			n.flags[i] = sets[e.FlagSet]
			n.info[i] = infoOf(e)
		}
		return
	}
	n.uids = ch.UIDs
	n.flags = make([]uint32, len(ch.UIDs))
	n.info = make([]msgInfo, len(ch.UIDs))
	i, j := 0, 0 // in l, in ch.Entries
	for k, uid := range ch.UIDs {
		for j < len(ch.Entries) && ch.Entries[j].UID < uid {
			j++
		}
		if j < len(ch.Entries) && ch.Entries[j].UID == uid {
			n.flags[k] = sets[ch.Entries[j].FlagSet]
			n.info[k] = infoOf(&ch.Entries[j])
			continue
		}
		for l != nil && i < len(l.uids) && l.uids[i] < uid {
			i++
		}
		if l != nil && i < len(l.uids) && l.uids[i] == uid {
			n.flags[k] = n.table.internSet(&l.table.sets[l.flags[i]])
			n.info[k] = l.info[i]
		}
		// Otherwise the message came and changed within the window of
		// the two reads of ChangesSince: it shows no flags until the
		// next change, which its arrival already announced.
	}
}

// extend applies flag changes and new messages to l's slices: the UIDs and
// details are shared (new messages appended), the flags copied when some
// changed.
func (n *sharedListing) extend(l *sharedListing, ch mailstore.Changes) {
	n.uids, n.flags, n.info, n.table = l.uids, l.flags, l.info, l.table
	sets := make([]uint32, len(ch.FlagSets))
	cloned := false
	for k, key := range ch.FlagSets {
		if i, ok := n.table.index[key]; ok {
			sets[k] = i
			continue
		}
		if !cloned {
			n.table, cloned = n.table.clone(), true
		}
		sets[k] = n.table.internKey(key)
	}
	copied := false
	known := len(l.uids)
	for k := range ch.Entries {
		e := &ch.Entries[k]
		if e.UID >= l.uidNext || (known > 0 && e.UID > l.uids[known-1]) {
			n.uids = append(n.uids, e.UID)
			n.flags = append(n.flags, sets[e.FlagSet])
			n.info = append(n.info, infoOf(e))
			continue
		}
		i := l.indexOf(e.UID)
		if i < 0 {
			continue
		}
		f := sets[e.FlagSet]
		if f == n.flags[i] {
			continue
		}
		if !copied {
			n.flags = append(make([]uint32, 0, len(n.flags)+len(ch.Entries)), n.flags...)
			copied = true
		}
		n.flags[i] = f
	}
}

func (l *sharedListing) indexOf(uid uint32) int {
	lo, hi := 0, len(l.uids)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if l.uids[mid] < uid {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(l.uids) && l.uids[lo] == uid {
		return lo
	}
	return -1
}

// listingLinger is how long the listing of a mailbox that no session has
// selected any more stays in memory, for the client that reconnects.
const listingLinger = 5 * time.Minute

// listings holds the latest listing of every mailbox some session has
// selected (and, for listingLinger, of those none has any more).
type listings struct {
	store *mailstore.Store
	mu    sync.Mutex
	byID  map[int64]*listingEntry
}

type listingEntry struct {
	load sync.Mutex     // one reader of the store at a time
	cur  *sharedListing // under load
	// under listings.mu:
	users int
	idle  *time.Timer
}

func newListings(store *mailstore.Store) *listings {
	return &listings{store: store, byID: make(map[int64]*listingEntry)}
}

// acquire returns the entry of a mailbox, counting one more user.
func (c *listings) acquire(mailboxID int64) *listingEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byID[mailboxID]
	if e == nil {
		e = &listingEntry{}
		c.byID[mailboxID] = e
	}
	e.users++
	if e.idle != nil {
		e.idle.Stop()
		e.idle = nil
	}
	return e
}

// release counts one user less; the entry goes after listingLinger
// without one.
func (c *listings) release(mailboxID int64, e *listingEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.users--
	if e.users > 0 {
		return
	}
	e.idle = time.AfterFunc(listingLinger, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if e.users == 0 && c.byID[mailboxID] == e {
			delete(c.byID, mailboxID)
		}
	})
}

// get returns the mailbox's listing as the index holds it now.
func (e *listingEntry) get(ctx context.Context, store *mailstore.Store, mailboxID int64) (*sharedListing, error) {
	e.load.Lock()
	defer e.load.Unlock()
	var since uint64
	var known int
	var knownNext uint32
	if e.cur != nil {
		since, known, knownNext = e.cur.modseq, len(e.cur.uids), e.cur.uidNext
	}
	ch, err := store.ChangesSince(ctx, mailboxID, since, known, knownNext)
	if err != nil {
		return nil, err
	}
	e.cur = e.cur.next(ch)
	return e.cur, nil
}
