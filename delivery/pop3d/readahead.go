package pop3d

import (
	"fmt"
	"io/fs"

	"github.com/moatmail/moat/delivery/mailstore"
)

// Read-ahead for RETR and TOP of inline messages (those kept in the index,
// the default below 128 KiB). Clients retrieve a maildrop in order, one
// command at a time; a query per message costs as much as reading the
// message itself. So the session reads the messages that follow in one
// batch, in a window that doubles with every miss while the client goes
// in order (1, 2, 4, ... messages) and falls back to one message when it
// jumps. Once a client goes in order, the next batch is read as soon as
// a response has been sent, while the client is still reading it.
//
// A batch is a copy: any change to the INBOX (a message expunged over IMAP
// in particular) drops it, so that RETR answers exactly as it would have
// from the store.
const (
	// aheadMessages and aheadBytes bound a batch (at least one message
	// is read). The batch stays with the session between commands. A
	// batch of 32 KiB is read in about the time a client takes to
	// handle one response, so that reading ahead rarely delays the
	// next command.
	aheadMessages = 64
	aheadBytes    = 32 << 10
)

// readAhead is the read-ahead state of a maildrop.
type readAhead struct {
	changes <-chan struct{} // Store.Watch of the INBOX
	stop    func()
	batch   *mailstore.MessageBatch
	next    int // the message number a client going in order asks for next
	window  int // messages the next batch may hold
}

// close releases the batch and the watch.
func (ra *readAhead) close() {
	ra.batch.Release()
	ra.batch = nil
	if ra.stop != nil {
		ra.stop()
	}
}

// dropIfChanged drops the batch when the INBOX changed since it was read.
func (ra *readAhead) dropIfChanged() {
	select {
	case <-ra.changes:
		ra.batch.Release()
		ra.batch = nil
	default:
	}
}

// inline returns the content of message n (1-based), an inline message,
// reading it with those that follow when it is not read already. The
// content belongs to the batch: use it before the next call. A message
// expunged by another session gives an error that wraps fs.ErrNotExist.
func (sess *session) inline(n int) ([]byte, error) {
	d := sess.drop
	ra := &d.ahead
	m := &d.msgs[n-1]
	ra.dropIfChanged()
	if !ra.batch.Covers(m.uid) {
		if n == ra.next {
			ra.window = min(2*ra.window, aheadMessages)
		} else {
			ra.window = 1
		}
		if err := sess.readBatch(n); err != nil {
			return nil, err
		}
	}
	ra.next = n + 1
	data, ok := ra.batch.Message(m.uid)
	if !ok {
		return nil, fmt.Errorf("message %d: %w", n, fs.ErrNotExist)
	}
	return data, nil
}

// readAhead reads the next batch before the session waits for a command,
// when the client goes in order and the batch does not hold the message
// it will ask for. A failure is left for that RETR to meet and report.
func (sess *session) readAhead() {
	d := sess.drop
	if d == nil {
		return
	}
	ra := &d.ahead
	n := ra.next
	if ra.window < 2 || n < 1 || n > len(d.msgs) {
		return
	}
	if m := &d.msgs[n-1]; m.deleted || m.blobKey != "" {
		return
	}
	ra.dropIfChanged()
	if ra.batch.Covers(d.msgs[n-1].uid) {
		return
	}
	ra.window = min(2*ra.window, aheadMessages)
	sess.readBatch(n)
}

// readBatch replaces the batch with one that starts at message n and holds
// up to window messages of up to aheadBytes (at least message n).
func (sess *session) readBatch(n int) error {
	d := sess.drop
	ra := &d.ahead
	ra.batch.Release()
	ra.batch = nil
	end, size := n, int64(0)
	for end <= len(d.msgs) && end-n < max(ra.window, 1) {
		if m := &d.msgs[end-1]; m.blobKey == "" {
			if end > n && size+m.size > aheadBytes {
				break
			}
			size += m.size
		}
		end++
	}
	ctx, cancel := opContext()
	defer cancel()
	b, err := sess.srv.store.ReadBatch(ctx, d.mailboxID, d.msgs[n-1].uid, d.msgs[end-2].uid, int(size))
	if err != nil {
		return err
	}
	ra.batch = b
	return nil
}
