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

// Changes is what changed in a mailbox since a modification sequence
// (ChangesSince).
type Changes struct {
	// ModSeq and UIDNext are the mailbox's now; Count is its number of
	// messages now.
	ModSeq  uint64
	UIDNext uint32
	Count   uint32
	// Messages are those changed or added since, in UID order.
	Messages []Message
	// UIDs is every UID of the mailbox now, in order, given only when
	// messages were removed since (the caller cannot tell which
	// otherwise): nil when none were.
	UIDs []uint32
}

// ChangesSince reads, in one read transaction, what changed in a mailbox
// after modification sequence since, for a caller that holds a listing of
// known messages all below knownNext as of since. since 0 reads the whole
// mailbox. The messages removed since are found by count: the known ones
// plus the new ones are more than the mailbox holds only when some went.
func (s *Store) ChangesSince(ctx context.Context, mailboxID int64, since uint64, known int, knownNext uint32) (Changes, error) {
	var ch Changes
	const head = "SELECT modseq, uidnext, msg_count FROM mailboxes WHERE id = ?"
	if since != 0 {
		// Most calls find nothing changed: one statement, no
		// transaction.
		err := s.rdb.QueryRowContext(ctx, head, mailboxID).Scan(&ch.ModSeq, &ch.UIDNext, &ch.Count)
		if err == nil && ch.ModSeq == since {
			return ch, nil
		}
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return ch, fmt.Errorf("mailbox changes: %w", err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, head, mailboxID).
		Scan(&ch.ModSeq, &ch.UIDNext, &ch.Count)
	if errors.Is(err, sql.ErrNoRows) {
		return ch, fmt.Errorf("mailbox changes: %w", ErrNoMailbox)
	}
	if err != nil {
		return ch, fmt.Errorf("mailbox changes: %w", err)
	}
	if since != 0 && ch.ModSeq == since {
		return ch, nil
	}
	// A first read walks the table in key order; later ones use the
	// modseq index for the few rows that changed.
	query := "SELECT " + messageCols + " FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ?"
	args := []any{mailboxID}
	if since != 0 {
		query += " AND m.modseq > ?"
		args = append(args, since)
	}
	rows, err := tx.QueryContext(ctx, query+" ORDER BY m.uid", args...)
	if err != nil {
		return ch, fmt.Errorf("mailbox changes: %w", err)
	}
	added := 0
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			rows.Close()
			return ch, fmt.Errorf("mailbox changes: %w", err)
		}
		if m.UID >= knownNext {
			added++
		}
		ch.Messages = append(ch.Messages, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
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
