package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
)

// A package that keeps its own references to blobs in the index (the
// quarantine's verdict records) asks the store, through what follows,
// where those blobs are and what they hold; it never reads the store's
// tables itself.

// Placement is one mailbox entry that holds a blob: whose mailbox, which
// message.
type Placement struct {
	BlobID int64
	UserID int64
	// Address is the owner's address.
	Address   string
	MailboxID int64
	UID       uint32
}

// placementsQuery finds the entries of the mailboxes named ?1 that hold
// any blob of the JSON array ?2.
const placementsQuery = `SELECT m.blob_id, mb.user_id, u.address, m.mailbox_id, m.uid
	FROM messages m JOIN mailboxes mb ON mb.id = m.mailbox_id JOIN users u ON u.id = mb.user_id
	WHERE mb.name = ?1 AND m.blob_id IN (SELECT value FROM json_each(?2))
	ORDER BY mb.user_id, m.blob_id, m.mailbox_id, m.uid`

// Placements lists the entries of the mailboxes named mailbox, of every
// user, that hold any of blobIDs, ordered by user, blob, mailbox and UID.
func (s *Store) Placements(ctx context.Context, mailbox string, blobIDs []int64) ([]Placement, error) {
	if len(blobIDs) == 0 {
		return nil, nil
	}
	rows, err := s.rdb.QueryContext(ctx, placementsQuery, CanonicalMailboxName(mailbox), idArray(blobIDs))
	if err != nil {
		return nil, fmt.Errorf("placements: %w", err)
	}
	return scanPlacements(rows)
}

// Placements is Store.Placements inside a write transaction.
func (tx *Tx) Placements(mailbox string, blobIDs []int64) ([]Placement, error) {
	if len(blobIDs) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(placementsQuery, CanonicalMailboxName(mailbox), idArray(blobIDs))
	if err != nil {
		return nil, fmt.Errorf("placements: %w", err)
	}
	return scanPlacements(rows)
}

func scanPlacements(rows *sql.Rows) ([]Placement, error) {
	defer rows.Close()
	var out []Placement
	for rows.Next() {
		var p Placement
		if err := rows.Scan(&p.BlobID, &p.UserID, &p.Address, &p.MailboxID, &p.UID); err != nil {
			return nil, fmt.Errorf("placements: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("placements: %w", err)
	}
	return out, nil
}

// idArray writes ids as a JSON array, one query parameter for json_each
// however many ids there are.
func idArray(ids []int64) string {
	b := make([]byte, 0, 2+8*len(ids))
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// Blob is one stored content as a package that references it by id sees
// it. Read it with ReadMessage(Message{BlobID: b.ID, BlobKey: b.Key}).
type Blob struct {
	ID int64
	// Key names the blob's file; "" for a blob inline in the index.
	Key  string
	Size int64
}

// Blobs returns those of ids that exist, by id.
func (s *Store) Blobs(ctx context.Context, ids []int64) (map[int64]Blob, error) {
	out := make(map[int64]Blob, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, coalesce(key, ''), size FROM blobs
		WHERE id IN (SELECT value FROM json_each(?))`, idArray(ids))
	if err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b Blob
		if err := rows.Scan(&b.ID, &b.Key, &b.Size); err != nil {
			return nil, fmt.Errorf("blobs: %w", err)
		}
		out[b.ID] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	return out, nil
}
