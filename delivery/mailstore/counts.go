package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// A mailbox's message counts (STATUS MESSAGES, UNSEEN, SIZE, and the
// deleted count) are kept in its row, maintained by triggers on messages
// in the same transaction as every insert, removal and flag change, so
// that nothing has to scan a mailbox to count it (Dovecot keeps the same
// counts in its index header). The index on (mailbox_id, modseq) lets a
// reader fetch only what changed since the modification sequence it last
// saw (ChangesSince).

// countsAndSearchIndex is version 3 of the store's schema: the counts,
// their triggers, the modseq index and the header search index
// (searchindex.go). The counts of existing mailboxes are filled by one
// scan at upgrade; the search index of existing messages is filled lazily
// (Store.IndexHeaders, called by SEARCH for the messages it finds
// without).
var countsAndSearchIndex = []string{
	`ALTER TABLE mailboxes ADD COLUMN msg_count INTEGER NOT NULL DEFAULT 0`,
	`ALTER TABLE mailboxes ADD COLUMN unseen_count INTEGER NOT NULL DEFAULT 0`,
	`ALTER TABLE mailboxes ADD COLUMN deleted_count INTEGER NOT NULL DEFAULT 0`,
	`ALTER TABLE mailboxes ADD COLUMN total_size INTEGER NOT NULL DEFAULT 0`,
	`UPDATE mailboxes SET
		msg_count = (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id),
		unseen_count = (SELECT coalesce(sum(` + isUnseen("flags") + `), 0) FROM messages WHERE mailbox_id = mailboxes.id),
		deleted_count = (SELECT coalesce(sum(` + isDeleted("flags") + `), 0) FROM messages WHERE mailbox_id = mailboxes.id),
		total_size = (SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id = mailboxes.id)`,
	`CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
		UPDATE mailboxes SET msg_count = msg_count + 1,
			unseen_count = unseen_count + ` + isUnseen("NEW.flags") + `,
			deleted_count = deleted_count + ` + isDeleted("NEW.flags") + `,
			total_size = total_size + NEW.size
		WHERE id = NEW.mailbox_id;
	END`,
	`CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
		UPDATE mailboxes SET msg_count = msg_count - 1,
			unseen_count = unseen_count - ` + isUnseen("OLD.flags") + `,
			deleted_count = deleted_count - ` + isDeleted("OLD.flags") + `,
			total_size = total_size - OLD.size
		WHERE id = OLD.mailbox_id;
	END`,
	`CREATE TRIGGER messages_count_update AFTER UPDATE ON messages BEGIN
		UPDATE mailboxes SET msg_count = msg_count - 1,
			unseen_count = unseen_count - ` + isUnseen("OLD.flags") + `,
			deleted_count = deleted_count - ` + isDeleted("OLD.flags") + `,
			total_size = total_size - OLD.size
		WHERE id = OLD.mailbox_id;
		UPDATE mailboxes SET msg_count = msg_count + 1,
			unseen_count = unseen_count + ` + isUnseen("NEW.flags") + `,
			deleted_count = deleted_count + ` + isDeleted("NEW.flags") + `,
			total_size = total_size + NEW.size
		WHERE id = NEW.mailbox_id;
	END`,
	`CREATE INDEX messages_modseq ON messages (mailbox_id, modseq)`,
	searchHeadersTable,
	`CREATE TRIGGER blobs_search_headers AFTER DELETE ON blobs BEGIN
		DELETE FROM search_headers WHERE blob_id = OLD.id;
	END`,
}

// isUnseen and isDeleted test a stored flag list (joinFlags keeps system
// flags in their canonical spelling, so the test is exact).
func isUnseen(col string) string  { return `(instr(' '||` + col + `||' ', ' \Seen ') = 0)` }
func isDeleted(col string) string { return `(instr(' '||` + col + `||' ', ' \Deleted ') > 0)` }

// firstUnseenIndex is version 4 of the store's schema: a partial index of
// the messages without \Seen, so that SELECT finds the first unseen
// message (RFC 3501 §7.1, OK [UNSEEN n]) without a scan, as Dovecot keeps
// "first unseen UID lowwater" in its index header.
var firstUnseenIndex = []string{
	`CREATE INDEX messages_unseen ON messages (mailbox_id, uid) WHERE ` + isUnseen("flags"),
}

// Changes is what changed in a mailbox since a modification sequence
// (ChangesSince).
type Changes struct {
	// ModSeq and UIDNext are the mailbox's now; Count is its number of
	// messages now.
	ModSeq  uint64
	UIDNext uint32
	Count   uint32
	// FirstUnseen is the lowest UID of a message without \Seen now, 0
	// when every message has it.
	FirstUnseen uint32
	// Entries are the messages changed or added since, in UID order.
	Entries []Entry
	// FlagSets are the distinct flag lists of Entries, in their stored
	// form (joinFlags: sorted, space-separated); a mailbox has few.
	FlagSets []string
	// UIDs is every UID of the mailbox now, in order, given only when
	// messages were removed since (the caller cannot tell which
	// otherwise): nil when none were.
	UIDs []uint32
}

// Entry is a message as a mailbox listing needs it, without pointers but
// the rare BlobKey.
type Entry struct {
	UID     uint32
	FlagSet uint32 // index into Changes.FlagSets
	BlobID  int64
	// BlobKey is the file of a message larger than the store's
	// InlineMax. It is empty for the others, including the few kept in
	// files under an earlier, lower InlineMax: ReadMessage and
	// OpenMessage find those from BlobID. Reading every key would join
	// each message to its blob's row, which for inline blobs is a page
	// of its own: at 100,000 messages, seconds of reads.
	BlobKey      string
	Size         int64
	InternalDate int64 // Unix seconds
}

const mailboxHeadQuery = "SELECT modseq, uidnext, msg_count, unseen_count FROM mailboxes WHERE id = ?"

// The query of a listing. A first read walks the table in key order; a
// later one names the modseq index, which the planner (without ANALYZE
// figures) would otherwise pass over for the primary key that gives
// the UID order, scanning the whole mailbox for a few changed rows.
const (
	entryCols = `uid, blob_id, flags, internal_date, size,
		CASE WHEN size > ? THEN (SELECT key FROM blobs WHERE id = messages.blob_id) END`
	entriesAll   = "SELECT " + entryCols + " FROM messages WHERE mailbox_id = ? ORDER BY uid"
	entriesSince = "SELECT " + entryCols + ` FROM messages INDEXED BY messages_modseq
		WHERE mailbox_id = ? AND modseq > ? ORDER BY uid`
)

// firstUnseenQuery repeats the partial index's condition, so that the
// index applies (SQLite matches it by expression).
var firstUnseenQuery = `SELECT coalesce(min(uid), 0) FROM messages INDEXED BY messages_unseen
	WHERE mailbox_id = ? AND ` + isUnseen("flags")

// ChangesSince reads, in one read transaction, what changed in a mailbox
// after modification sequence since, for a caller that holds a listing of
// known messages all below knownNext as of since. since 0 reads the whole
// mailbox. The messages removed since are found by count: the known ones
// plus the new ones are more than the mailbox holds only when some went.
func (s *Store) ChangesSince(ctx context.Context, mailboxID int64, since uint64, known int, knownNext uint32) (Changes, error) {
	var ch Changes
	var unseen uint32
	if since != 0 {
		// Most calls find nothing changed: one statement, no
		// transaction.
		err := s.mailboxHead.QueryRowContext(ctx, mailboxID).Scan(&ch.ModSeq, &ch.UIDNext, &ch.Count, &unseen)
		if err == nil && ch.ModSeq == since {
			return ch, nil
		}
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return ch, fmt.Errorf("mailbox changes: %w", err)
	}
	defer tx.Rollback()
	err = tx.StmtContext(ctx, s.mailboxHead).QueryRowContext(ctx, mailboxID).
		Scan(&ch.ModSeq, &ch.UIDNext, &ch.Count, &unseen)
	if errors.Is(err, sql.ErrNoRows) {
		return ch, fmt.Errorf("mailbox changes: %w", ErrNoMailbox)
	}
	if err != nil {
		return ch, fmt.Errorf("mailbox changes: %w", err)
	}
	if since != 0 && ch.ModSeq == since {
		return ch, nil
	}
	if unseen > 0 {
		if err := tx.QueryRowContext(ctx, firstUnseenQuery, mailboxID).Scan(&ch.FirstUnseen); err != nil {
			return ch, fmt.Errorf("mailbox changes: %w", err)
		}
	}
	inlineMax := int64(s.cfg.InlineMax)
	var rows *sql.Rows
	if since == 0 {
		ch.Entries = make([]Entry, 0, ch.Count)
		rows, err = tx.QueryContext(ctx, entriesAll, inlineMax, mailboxID)
	} else {
		rows, err = tx.QueryContext(ctx, entriesSince, inlineMax, mailboxID, since)
	}
	if err != nil {
		return ch, fmt.Errorf("mailbox changes: %w", err)
	}
	added, err := ch.scanEntries(rows, knownNext)
	if err != nil {
		return ch, fmt.Errorf("mailbox changes: %w", err)
	}
	if known+added == int(ch.Count) {
		return ch, nil
	}
	rows, err = tx.QueryContext(ctx, "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", mailboxID)
	if err != nil {
		return ch, fmt.Errorf("mailbox changes: %w", err)
	}
	defer rows.Close()
	ch.UIDs = make([]uint32, 0, ch.Count)
	for rows.Next() {
		var uid uint32
		if err := rows.Scan(&uid); err != nil {
			return ch, fmt.Errorf("mailbox changes: %w", err)
		}
		ch.UIDs = append(ch.UIDs, uid)
	}
	return ch, rows.Err()
}

// scanEntries appends the rows of an entries query to ch, interning their
// flag lists, and counts those at or above knownNext (new to the caller).
func (ch *Changes) scanEntries(rows *sql.Rows, knownNext uint32) (added int, err error) {
	defer rows.Close()
	sets := make(map[string]uint32)
	var flags sql.RawBytes // no string per row: the map lookup does not keep it
	var key sql.NullString
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.UID, &e.BlobID, &flags, &e.InternalDate, &e.Size, &key); err != nil {
			return 0, err
		}
		i, ok := sets[string(flags)]
		if !ok {
			i = uint32(len(ch.FlagSets))
			ch.FlagSets = append(ch.FlagSets, string(flags))
			sets[ch.FlagSets[i]] = i
		}
		e.FlagSet, e.BlobKey = i, key.String
		if e.UID >= knownNext {
			added++
		}
		ch.Entries = append(ch.Entries, e)
	}
	return added, rows.Err()
}
