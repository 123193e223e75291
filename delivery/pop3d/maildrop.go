package pop3d

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/moatmail/moat/delivery/mailstore"
)

// maildrop is a session's snapshot of the user's INBOX, taken at login.
// Message number n is msgs[n-1] for the whole session (RFC 1939 §4),
// whatever IMAP or delivery does meanwhile.
type maildrop struct {
	mailboxID   int64
	uidValidity uint32
	msgs        []dropMsg
	marked      int // messages marked by DELE
	ahead       readAhead
}

// dropMsg is one message of the snapshot: what RETR needs to open it and
// what UIDL names it by.
type dropMsg struct {
	uid     uint32
	deleted bool // marked by DELE
	size    int64
	blobID  int64
	blobKey string
}

// openMaildrop snapshots the user's INBOX.
func openMaildrop(ctx context.Context, store *mailstore.Store, userID int64) (*maildrop, error) {
	mb, err := store.Mailbox(ctx, userID, "INBOX")
	if err != nil {
		return nil, fmt.Errorf("open maildrop: %w", err)
	}
	// Watch before listing: a change in between drops a read-ahead
	// batch for nothing, but none goes unseen.
	changes, stop := store.Watch(mb.ID)
	list, err := store.Messages(ctx, mb.ID)
	if err != nil {
		stop()
		return nil, fmt.Errorf("open maildrop: %w", err)
	}
	d := &maildrop{mailboxID: mb.ID, uidValidity: mb.UIDValidity, msgs: make([]dropMsg, len(list)),
		ahead: readAhead{changes: changes, stop: stop}}
	for i, m := range list {
		d.msgs[i] = dropMsg{uid: m.UID, size: m.Size, blobID: m.BlobID, blobKey: m.BlobKey}
	}
	return d, nil
}

// close releases what the snapshot holds besides its list.
func (d *maildrop) close() { d.ahead.close() }

// stat counts the messages not marked deleted and their size.
func (d *maildrop) stat() (count int, size int64) {
	for i := range d.msgs {
		if !d.msgs[i].deleted {
			count++
			size += d.msgs[i].size
		}
	}
	return count, size
}

// transactionCommand runs a command of the TRANSACTION state (RFC 1939 §5).
func (sess *session) transactionCommand(cmd command) {
	switch cmd.name {
	case cmdSTAT:
		if cmd.arg != "" {
			sess.fail("Syntax: STAT")
			return
		}
		count, size := sess.drop.stat()
		w := sess.out()
		w.WriteString("+OK ")
		sess.writeNumber(int64(count))
		w.WriteByte(' ')
		sess.writeNumber(size)
		w.WriteString("\r\n")
	case cmdLIST:
		sess.cmdList(cmd.arg, false)
	case cmdUIDL:
		sess.cmdList(cmd.arg, true)
	case cmdRETR:
		sess.cmdRetr(cmd.arg, false)
	case cmdTOP:
		sess.cmdRetr(cmd.arg, true)
	case cmdDELE:
		m, n := sess.message(cmd.arg)
		if m == nil {
			return
		}
		m.deleted = true
		sess.drop.marked++
		sess.reply("+OK Message " + strconv.Itoa(n) + " deleted")
	case cmdNOOP:
		sess.reply("+OK")
	case cmdRSET:
		// RFC 1939 §5 RSET: unmark every message.
		for i := range sess.drop.msgs {
			sess.drop.msgs[i].deleted = false
		}
		sess.drop.marked = 0
		count, size := sess.drop.stat()
		w := sess.out()
		w.WriteString("+OK Maildrop has ")
		sess.writeNumber(int64(count))
		w.WriteString(" messages (")
		sess.writeNumber(size)
		w.WriteString(" octets)\r\n")
	case cmdUSER, cmdPASS, cmdAUTH, cmdSTLS, cmdAPOP:
		sess.fail("Already logged in")
	default:
		sess.fail("Unknown command")
	}
}

// message resolves a message-number argument to a message not marked
// deleted; it answers -ERR itself and returns nil when there is none.
func (sess *session) message(arg string) (*dropMsg, int) {
	word, rest := nextArg(arg)
	n, ok := parseNumber(word)
	if !ok || rest != "" {
		sess.fail("Syntax: message number expected")
		return nil, 0
	}
	if n < 1 || n > len(sess.drop.msgs) {
		sess.reply("-ERR No such message")
		return nil, 0
	}
	m := &sess.drop.msgs[n-1]
	if m.deleted {
		// RFC 1939 §5: a deleted message may not be referred to.
		sess.reply("-ERR Message " + strconv.Itoa(n) + " already deleted")
		return nil, 0
	}
	return m, n
}

// cmdList answers LIST (sizes) or UIDL (unique ids), for one message or
// for every message not marked deleted.
func (sess *session) cmdList(arg string, uidl bool) {
	if arg != "" {
		m, n := sess.message(arg)
		if m == nil {
			return
		}
		w := sess.out()
		w.WriteString("+OK ")
		sess.listLine(n, m, uidl)
		return
	}
	w := sess.out()
	if uidl {
		w.WriteString("+OK Unique-ID listing follows\r\n")
	} else {
		count, size := sess.drop.stat()
		w.WriteString("+OK ")
		sess.writeNumber(int64(count))
		w.WriteString(" messages (")
		sess.writeNumber(size)
		w.WriteString(" octets)\r\n")
	}
	for i := range sess.drop.msgs {
		if m := &sess.drop.msgs[i]; !m.deleted {
			sess.listLine(i+1, m, uidl)
		}
	}
	w.WriteString(".\r\n")
}

// listLine writes "n size" or "n unique-id". The unique-id is
// "UIDVALIDITY.UID" of the INBOX message: at most 21 characters, all in
// 0x21..0x7E, and never given to another message of this maildrop
// (RFC 1939 §7 UIDL; RFC 3501 §2.3.1.1 makes the pair unique for the
// mailbox's life).
func (sess *session) listLine(n int, m *dropMsg, uidl bool) {
	w := sess.out()
	sess.writeNumber(int64(n))
	w.WriteByte(' ')
	if uidl {
		sess.writeNumber(int64(sess.drop.uidValidity))
		w.WriteByte('.')
		sess.writeNumber(int64(m.uid))
	} else {
		sess.writeNumber(m.size)
	}
	w.WriteString("\r\n")
}

// cmdRetr answers RETR msg, or TOP msg n.
func (sess *session) cmdRetr(arg string, top bool) {
	lines := -1
	if top {
		word, rest := nextArg(arg)
		count, _ := nextArg(rest)
		var ok bool
		if lines, ok = parseCount(count); !ok {
			sess.fail("Syntax: TOP message lines")
			return
		}
		arg = word
	}
	m, n := sess.message(arg)
	if m == nil {
		return
	}
	// Read (inline) or open (file) before answering +OK: a message
	// expunged meanwhile (by IMAP) gets a clean -ERR.
	var inline []byte
	var r mailstore.MessageReader
	var err error
	if m.blobKey == "" {
		inline, err = sess.inline(n)
	} else if r, err = sess.srv.store.OpenMessage(mailstore.Message{BlobID: m.blobID, BlobKey: m.blobKey}); err == nil {
		defer r.Close()
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			sess.reply("-ERR Message " + strconv.Itoa(n) + " was removed by another session")
			return
		}
		sess.log.Error("pop3 open message failed", "uid", m.uid, "err", err)
		sess.reply("-ERR [SYS/TEMP] Cannot read message, try again later")
		return
	}
	w := sess.out()
	var d dotWriter
	if top {
		w.WriteString("+OK Top of message follows\r\n")
		d = newTopWriter(w, lines)
	} else {
		w.WriteString("+OK ")
		sess.writeNumber(m.size)
		w.WriteString(" octets\r\n")
		d = newDotWriter(w)
		sess.retrieved++
	}
	var readErr, writeErr error
	if r == nil {
		d.write(inline)
		writeErr = d.err
	} else {
		readErr, writeErr = copyMessage(&d, r)
	}
	if readErr != nil {
		// The +OK is gone: the response cannot turn into an -ERR. Cut
		// the connection, so that the client sees no terminator and
		// does not take a truncated message for a whole one.
		sess.log.Error("pop3 read message failed", "uid", m.uid, "err", readErr)
		sess.raw.Close()
		return
	}
	if writeErr == nil {
		d.finish()
	}
}

// update is the UPDATE state (RFC 1939 §6), entered by QUIT from the
// TRANSACTION state: the messages marked by DELE, and only those, are
// removed in one store transaction, so that either all go or none. It
// writes the QUIT response.
func (sess *session) update() {
	d := sess.drop
	var uids []uint32
	if d.marked > 0 {
		uids = make([]uint32, 0, d.marked)
		for i := range d.msgs {
			if d.msgs[i].deleted {
				uids = append(uids, d.msgs[i].uid)
			}
		}
	}
	if len(uids) > 0 {
		ctx, cancel := opContext()
		err := sess.srv.store.Update(ctx, func(tx *mailstore.Tx) error {
			return tx.RemoveMessages(d.mailboxID, uids)
		})
		cancel()
		if err != nil {
			sess.log.Error("pop3 update failed", "deleted", 0, "err", err)
			// RFC 1939 §6 QUIT: "-ERR some deleted messages not removed".
			sess.reply("-ERR [SYS/TEMP] Some deleted messages not removed")
			return
		}
	}
	left := len(d.msgs) - len(uids)
	sess.log.Info("pop3 logout", "retrieved", sess.retrieved, "deleted", len(uids), "left", left)
	w := sess.out()
	w.WriteString("+OK moat POP3 server signing off (")
	sess.writeNumber(int64(left))
	w.WriteString(" messages left)\r\n")
}
