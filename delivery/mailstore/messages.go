package mailstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Message is one entry of a mailbox. The content is a blob shared by every
// entry that holds the same delivered copy.
type Message struct {
	MailboxID    int64
	UID          uint32
	BlobID       int64
	BlobKey      string
	Flags        []string
	InternalDate time.Time
	Size         int64
	ModSeq       uint64
}

// HasFlag reports whether the message carries flag (IMAP flags compare
// case-insensitively, RFC 3501 §2.3.2).
func (m Message) HasFlag(flag string) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// FlagOp says how StoreFlags changes the flags.
type FlagOp int

// The three STORE forms of RFC 3501 §6.4.6.
const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

const messageCols = "m.mailbox_id, m.uid, m.blob_id, coalesce(b.key, ''), m.flags, m.internal_date, m.size, m.modseq"

func scanMessage(r scanner) (Message, error) {
	var m Message
	var flags string
	var date int64
	if err := r.Scan(&m.MailboxID, &m.UID, &m.BlobID, &m.BlobKey, &flags, &date, &m.Size, &m.ModSeq); err != nil {
		return Message{}, err
	}
	m.Flags = splitFlags(flags)
	m.InternalDate = time.Unix(date, 0)
	return m, nil
}

func splitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

// systemFlags maps the RFC 9051 §2.3.2 system flags to their canonical
// spelling.
var systemFlags = map[string]string{
	`\seen`: `\Seen`, `\answered`: `\Answered`, `\flagged`: `\Flagged`,
	`\deleted`: `\Deleted`, `\draft`: `\Draft`,
}

// joinFlags normalises a flag list: no duplicates (case-insensitive), no
// \Recent (a session property, RFC 3501 §2.3.2), sorted.
func joinFlags(flags []string) string {
	seen := make(map[string]bool, len(flags))
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		k := strings.ToLower(f)
		if f == "" || seen[k] || k == `\recent` {
			continue
		}
		seen[k] = true
		if canon, ok := systemFlags[k]; ok {
			f = canon // one spelling, so that SQL can match it
		}
		out = append(out, f)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// Messages lists a mailbox's messages in UID order.
func (s *Store) Messages(ctx context.Context, mailboxID int64) ([]Message, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+messageCols+
		" FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? ORDER BY m.uid", mailboxID)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("list messages: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// nextUID allocates a UID and a modification sequence in a mailbox.
func nextUID(tx *Tx, mailboxID int64) (uint32, uint64, error) {
	var uid uint32
	var modseq uint64
	err := tx.QueryRow("UPDATE mailboxes SET uidnext = uidnext + 1, modseq = modseq + 1 WHERE id = ? RETURNING uidnext - 1, modseq",
		mailboxID).Scan(&uid, &modseq)
	if err != nil {
		return 0, 0, fmt.Errorf("allocate uid: %w", err)
	}
	return uid, modseq, nil
}

func bumpModSeq(tx *Tx, mailboxID int64) (uint64, error) {
	var modseq uint64
	err := tx.QueryRow("UPDATE mailboxes SET modseq = modseq + 1 WHERE id = ? RETURNING modseq", mailboxID).Scan(&modseq)
	if err != nil {
		return 0, fmt.Errorf("bump modseq: %w", err)
	}
	return modseq, nil
}

func insertMessage(tx *Tx, mailboxID int64, blobID int64, flags string, date time.Time, size int64) (uint32, error) {
	uid, modseq, err := nextUID(tx, mailboxID)
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec("INSERT INTO messages (mailbox_id, uid, blob_id, flags, internal_date, size, modseq) VALUES (?, ?, ?, ?, ?, ?, ?)",
		mailboxID, uid, blobID, flags, date.Unix(), size, modseq)
	if err != nil {
		return 0, fmt.Errorf("insert message: %w", err)
	}
	tx.Touch(mailboxID)
	return uid, nil
}

// StoreFlags changes the flags of the messages with the given UIDs and
// returns them as they are afterwards.
func (s *Store) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op FlagOp, flags []string) ([]Message, error) {
	var out []Message
	err := s.Update(ctx, func(tx *Tx) error {
		out = out[:0]
		modseq, err := bumpModSeq(tx, mailboxID)
		if err != nil {
			return err
		}
		for _, uid := range uids {
			m, err := scanMessage(tx.QueryRow("SELECT "+messageCols+
				" FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid = ?", mailboxID, uid))
			if err != nil {
				continue // expunged meanwhile
			}
			var next []string
			switch op {
			case FlagsSet:
				next = flags
			case FlagsAdd:
				next = append(append(next, m.Flags...), flags...)
			case FlagsRemove:
				for _, f := range m.Flags {
					drop := false
					for _, r := range flags {
						drop = drop || strings.EqualFold(f, r)
					}
					if !drop {
						next = append(next, f)
					}
				}
			}
			joined := joinFlags(next)
			if joined != joinFlags(m.Flags) {
				if _, err := tx.Exec("UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
					joined, modseq, mailboxID, uid); err != nil {
					return fmt.Errorf("store flags: %w", err)
				}
				m.ModSeq = modseq
				tx.Touch(mailboxID)
			}
			m.Flags = splitFlags(joined)
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// Expunge removes the messages flagged \Deleted; when uids is not nil, only
// those among them (UID EXPUNGE, RFC 4315 §2.1). It returns the removed
// UIDs in ascending order.
func (s *Store) Expunge(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error) {
	var removed []uint32
	err := s.Update(ctx, func(tx *Tx) error {
		removed = removed[:0]
		rows, err := tx.Query(`SELECT uid, blob_id FROM messages WHERE mailbox_id = ?
			AND instr(' '||lower(flags)||' ', ' \deleted ') > 0 ORDER BY uid`, mailboxID)
		if err != nil {
			return fmt.Errorf("expunge: %w", err)
		}
		var wanted map[uint32]bool
		if uids != nil {
			wanted = make(map[uint32]bool, len(uids))
			for _, u := range uids {
				wanted[u] = true
			}
		}
		var blobs []int64
		for rows.Next() {
			var uid uint32
			var blob int64
			if err := rows.Scan(&uid, &blob); err != nil {
				rows.Close()
				return fmt.Errorf("expunge: %w", err)
			}
			if wanted == nil || wanted[uid] {
				removed = append(removed, uid)
				blobs = append(blobs, blob)
			}
		}
		rows.Close()
		if err := removeMessages(tx, mailboxID, removed); err != nil {
			return err
		}
		return dropUnreferenced(tx, blobs)
	})
	return removed, err
}

func removeMessages(tx *Tx, mailboxID int64, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	if _, err := bumpModSeq(tx, mailboxID); err != nil {
		return err
	}
	for _, uid := range uids {
		if _, err := tx.Exec("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", mailboxID, uid); err != nil {
			return fmt.Errorf("remove message: %w", err)
		}
	}
	tx.Touch(mailboxID)
	return nil
}

// CopyResult maps source UIDs to the UIDs of the copies (RFC 4315 COPYUID).
type CopyResult struct {
	UIDValidity uint32
	SourceUIDs  []uint32
	DestUIDs    []uint32
}

// Copy copies messages to another mailbox of the same user. The content is
// not duplicated: the copies share the blob.
func (s *Store) Copy(ctx context.Context, srcID int64, uids []uint32, dstID int64) (CopyResult, error) {
	return s.copyOrMove(ctx, srcID, uids, dstID, (*Tx).CopyMessages)
}

// Move moves messages to another mailbox of the same user, atomically
// (RFC 6851).
func (s *Store) Move(ctx context.Context, srcID int64, uids []uint32, dstID int64) (CopyResult, error) {
	return s.copyOrMove(ctx, srcID, uids, dstID, (*Tx).MoveMessages)
}

func (s *Store) copyOrMove(ctx context.Context, srcID int64, uids []uint32, dstID int64,
	op func(*Tx, int64, []uint32, int64) (CopyResult, error)) (CopyResult, error) {
	var res CopyResult
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		res, err = op(tx, srcID, uids, dstID)
		return err
	})
	return res, err
}

// CopyMessages copies messages between two mailboxes of one user inside a
// transaction. UIDs that no longer exist are skipped.
func (tx *Tx) CopyMessages(srcID int64, uids []uint32, dstID int64) (CopyResult, error) {
	return tx.copyMessages(srcID, uids, dstID, false)
}

// MoveMessages moves messages between two mailboxes of one user inside a
// transaction (RFC 6851: the copies and the removal commit together). UIDs
// that no longer exist are skipped.
func (tx *Tx) MoveMessages(srcID int64, uids []uint32, dstID int64) (CopyResult, error) {
	return tx.copyMessages(srcID, uids, dstID, true)
}

func (tx *Tx) copyMessages(srcID int64, uids []uint32, dstID int64, move bool) (CopyResult, error) {
	var res CopyResult
	var srcUser, dstUser int64
	if err := tx.QueryRow("SELECT user_id FROM mailboxes WHERE id = ?", srcID).Scan(&srcUser); err != nil {
		return res, fmt.Errorf("copy: source: %w", ErrNoMailbox)
	}
	if err := tx.QueryRow("SELECT user_id, uidvalidity FROM mailboxes WHERE id = ?", dstID).Scan(&dstUser, &res.UIDValidity); err != nil {
		return res, fmt.Errorf("copy: destination: %w", ErrNoMailbox)
	}
	if srcUser != dstUser {
		return res, fmt.Errorf("copy: mailboxes belong to different users")
	}
	sorted := append([]uint32(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for _, uid := range sorted {
		m, err := scanMessage(tx.QueryRow("SELECT "+messageCols+
			" FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid = ?", srcID, uid))
		if err != nil {
			continue // expunged meanwhile
		}
		newUID, err := insertMessage(tx, dstID, m.BlobID, joinFlags(m.Flags), m.InternalDate, m.Size)
		if err != nil {
			return res, err
		}
		res.SourceUIDs = append(res.SourceUIDs, uid)
		res.DestUIDs = append(res.DestUIDs, newUID)
	}
	if move {
		return res, removeMessages(tx, srcID, res.SourceUIDs)
	}
	return res, nil
}

// RemoveMessages deletes messages from a mailbox inside a transaction and
// drops their blobs when nothing else references them.
func (tx *Tx) RemoveMessages(mailboxID int64, uids []uint32) error {
	var blobs []int64
	for _, uid := range uids {
		var b int64
		if err := tx.QueryRow("SELECT blob_id FROM messages WHERE mailbox_id = ? AND uid = ?", mailboxID, uid).Scan(&b); err == nil {
			blobs = append(blobs, b)
		}
	}
	if err := removeMessages(tx, mailboxID, uids); err != nil {
		return err
	}
	return dropUnreferenced(tx, blobs)
}

// EnsureMailbox finds a user's mailbox inside a transaction, creating it
// when it does not exist.
func (tx *Tx) EnsureMailbox(userID int64, name string) (Mailbox, error) {
	name = CanonicalMailboxName(name)
	mb, err := mailboxTx(tx, userID, name)
	if errors.Is(err, ErrNoMailbox) {
		return createMailbox(tx, time.Now(), userID, name, "")
	}
	return mb, err
}

// Append stores a message given by a client (IMAP APPEND) in a mailbox.
func (s *Store) Append(ctx context.Context, mailboxID int64, data []byte, flags []string, date time.Time) (Message, error) {
	c, err := s.putContent(data)
	if err != nil {
		return Message{}, fmt.Errorf("append: %w", err)
	}
	if date.IsZero() {
		date = s.now()
	}
	m := Message{MailboxID: mailboxID, BlobKey: c.key, Size: c.size, InternalDate: date.Truncate(time.Second)}
	err = s.Update(ctx, func(tx *Tx) error {
		blobID, err := insertBlob(tx, c, s.now())
		if err != nil {
			return err
		}
		joined := joinFlags(flags)
		m.BlobID = blobID
		m.Flags = splitFlags(joined)
		m.UID, err = insertMessage(tx, mailboxID, blobID, joined, m.InternalDate, c.size)
		return err
	})
	if err != nil {
		s.discard(c)
		return Message{}, fmt.Errorf("append: %w", err)
	}
	return m, nil
}

func insertBlob(tx *Tx, c content, now time.Time) (int64, error) {
	var key any
	if c.key != "" {
		key = c.key
	}
	res, err := tx.Exec("INSERT INTO blobs (key, size, created, data) VALUES (?, ?, ?, ?)", key, c.size, now.Unix(), c.data)
	if err != nil {
		return 0, fmt.Errorf("insert blob: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("insert blob: %w", err)
	}
	return id, insertSearchHeaders(tx, id, c.headers)
}
