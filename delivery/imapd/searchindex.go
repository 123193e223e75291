package imapd

import (
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/moatmail/moat/delivery/mailstore"
)

// headerIndex is what the index's search fields answered for the header
// criteria of one SEARCH: per criterion, which positions of the snapshot
// match, as bitsets; and which positions the index could not answer for
// (messages stored before it kept search fields), matched from their
// header instead.
type headerIndex struct {
	hits      map[headerKey][]uint64
	unindexed []uint64
	blobs     []int64 // of the unindexed messages, for IndexHeaders
}

type headerKey struct {
	field int
	value string // lower-cased
}

func bitSet(b []uint64, i int)      { b[i>>6] |= 1 << (i & 63) }
func bitHas(b []uint64, i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }

// headerIndexKeys collects the header criteria on indexed fields, NOT and
// OR included.
func headerIndexKeys(c *imap.SearchCriteria, out map[headerKey]bool) {
	for _, hf := range c.Header {
		if f := mailstore.SearchFieldIndex(hf.Key); f >= 0 {
			out[headerKey{f, strings.ToLower(hf.Value)}] = true
		}
	}
	for i := range c.Not {
		headerIndexKeys(&c.Not[i], out)
	}
	for i := range c.Or {
		headerIndexKeys(&c.Or[i][0], out)
		headerIndexKeys(&c.Or[i][1], out)
	}
}

// headerIndex asks the index about the header criteria on indexed fields;
// nil when there are none.
func (sess *session) headerIndex(c *imap.SearchCriteria) (*headerIndex, error) {
	keys := make(map[headerKey]bool)
	headerIndexKeys(c, keys)
	if len(keys) == 0 {
		return nil, nil
	}
	sel := sess.sel
	words := len(sel.uids)/64 + 1
	idx := &headerIndex{hits: make(map[headerKey][]uint64, len(keys)), unindexed: make([]uint64, words)}
	ctx, cancel := sess.ctx()
	defer cancel()
	first := true
	for k := range keys {
		res, err := sess.srv.store.SearchHeader(ctx, sel.mb.ID, k.field, k.value)
		if err != nil {
			return nil, sess.internalError("SEARCH", err)
		}
		hits := make([]uint64, words)
		for _, uid := range res.UIDs {
			if i := sel.indexOf(uid); i >= 0 {
				bitSet(hits, i)
			}
		}
		idx.hits[k] = hits
		if first {
			// Every query sees the same unindexed messages, but for
			// those stored meanwhile: one query's list is enough, and a
			// message indexed meanwhile is only answered from its header.
			for n, uid := range res.Unindexed {
				if i := sel.indexOf(uid); i >= 0 {
					bitSet(idx.unindexed, i)
					idx.blobs = append(idx.blobs, res.Blobs[n])
				}
			}
			first = false
		}
	}
	return idx, nil
}

// match answers a header criterion for the message at position i from the
// index; known is false when the index cannot.
func (idx *headerIndex) match(hf imap.SearchCriteriaHeaderField, i int) (ok, known bool) {
	if idx == nil || bitHas(idx.unindexed, i) {
		return false, false
	}
	f := mailstore.SearchFieldIndex(hf.Key)
	if f < 0 {
		return false, false
	}
	hits, found := idx.hits[headerKey{f, strings.ToLower(hf.Value)}]
	if !found {
		return false, false
	}
	return bitHas(hits, i), true
}
