package mailstore

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// MessageBatch holds the contents of the inline messages of one mailbox
// whose UIDs fall in a range, read with one query. An IMAP FETCH or a run
// of POP3 RETRs over many small messages then pays one query, one read
// transaction and one buffer per batch instead of per message: a query of
// its own cost about as much as reading a 10 KB message.
//
// The batch is a copy taken at one instant: a message expunged after it
// was read is still in it.
type MessageBatch struct {
	first, last uint32 // the UID range that was read
	uids        []uint32
	ends        []int // message i is data[ends[i-1]:ends[i]]
	data        []byte
}

// Released batches are kept for reuse in two pools, so that a small batch
// (POP3 read-ahead, which a session keeps between commands) does not come
// with the large buffer of an earlier IMAP FETCH. Buffers beyond
// batchPooledMax are left to the collector.
const (
	batchSmallMax  = 64 << 10
	batchPooledMax = 1 << 20
)

var batches = [2]sync.Pool{
	{New: func() any { return new(MessageBatch) }},
	{New: func() any { return new(MessageBatch) }},
}

func batchPool(size int) *sync.Pool {
	if size <= batchSmallMax {
		return &batches[0]
	}
	return &batches[1]
}

const readRangeQuery = `SELECT m.uid, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id
	WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? AND b.data IS NOT NULL ORDER BY m.uid`

// ReadBatch reads the inline messages of a mailbox with UIDs from first to
// last. Messages kept in files are left out (open them with OpenMessage),
// and so are UIDs that no longer exist. sizeHint, the expected total size,
// lets the buffer be allocated once. Release the batch when done with it.
func (s *Store) ReadBatch(ctx context.Context, mailboxID int64, first, last uint32, sizeHint int) (*MessageBatch, error) {
	b := batchPool(sizeHint).Get().(*MessageBatch)
	b.first, b.last = first, last
	b.uids, b.ends, b.data = b.uids[:0], b.ends[:0], b.data[:0]
	if cap(b.data) < sizeHint {
		b.data = make([]byte, 0, sizeHint)
	}
	if err := s.ranges.read(ctx, mailboxID, first, last, b); err != nil {
		b.Release()
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return b, nil
}

// Covers reports whether uid lies in the range the batch was read for.
// A nil batch covers nothing.
func (b *MessageBatch) Covers(uid uint32) bool {
	return b != nil && uid >= b.first && uid <= b.last
}

// Message returns the content of the message with the given UID, which
// stays valid until Release. It returns false when the batch does not hold
// it: outside the range, kept in a file, or gone before the batch was read.
func (b *MessageBatch) Message(uid uint32) ([]byte, bool) {
	if !b.Covers(uid) {
		return nil, false
	}
	i := sort.Search(len(b.uids), func(i int) bool { return b.uids[i] >= uid })
	if i == len(b.uids) || b.uids[i] != uid {
		return nil, false
	}
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.data[start:b.ends[i]:b.ends[i]], true
}

// Release hands the batch's memory back for reuse; neither the batch nor
// any content it returned may be used afterwards. Release of nil does
// nothing.
func (b *MessageBatch) Release() {
	if b == nil {
		return
	}
	b.first, b.last = 1, 0 // covers nothing
	if cap(b.data) > batchPooledMax {
		b.data = nil
	}
	batchPool(cap(b.data)).Put(b)
}
