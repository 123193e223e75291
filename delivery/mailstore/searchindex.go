package mailstore

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // RFC 2047 words in every charset, as SEARCH decodes them
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// The header fields that IMAP SEARCH asks for most (SUBJECT, FROM, TO, CC,
// BCC: RFC 9051 §6.4.4) are kept in the index, as Dovecot's cache keeps
// them: decoded (RFC 2047) and lower-cased, written with the blob when a
// message is delivered or appended, so that a search reads one small row
// per message instead of the message. The row belongs to the blob (copies
// share it) and goes with it (a trigger); it is not a reference that keeps
// the blob, hence no REFERENCES clause (see Schema.Migrations). A blob
// stored by a moat of before has no row: SEARCH reads its header instead,
// and asks IndexHeaders to add the row, so that the index fills itself
// lazily as mailboxes are searched.

// SearchFields are the header fields kept in the index, in the order of
// the columns of search_headers.
var SearchFields = []string{"Subject", "From", "To", "Cc", "Bcc"}

var searchColumns = []string{"subject", "from_", "to_", "cc", "bcc"}

const searchHeadersTable = `CREATE TABLE search_headers (
	blob_id INTEGER PRIMARY KEY,
	subject TEXT,
	from_ TEXT,
	to_ TEXT,
	cc TEXT,
	bcc TEXT
)`

// searchHeaders are the values of SearchFields; a field the message lacks
// is NULL.
type searchHeaders [5]sql.NullString

// SearchFieldIndex returns the position of a header field in SearchFields
// (case-insensitively, as header names compare), or -1.
func SearchFieldIndex(key string) int {
	for i, f := range SearchFields {
		if strings.EqualFold(f, key) {
			return i
		}
	}
	return -1
}

// HeaderText returns what SEARCH matches a header field against: the text
// of every field named key, unfolded and decoded (RFC 2047; a word that
// does not decode is kept as it is), lower-cased, one line per field. ok
// is false when the message has no such field.
func HeaderText(h textproto.Header, key string) (text string, ok bool) {
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	fields := mh.FieldsByKey(key)
	var b strings.Builder
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if ok {
			b.WriteByte('\n')
		}
		ok = true
		b.WriteString(strings.ToLower(v))
	}
	return b.String(), ok
}

// extractSearchHeaders reads the header of a message and returns the
// values of SearchFields.
func extractSearchHeaders(r io.Reader) searchHeaders {
	h, _ := textproto.ReadHeader(bufio.NewReader(r))
	var out searchHeaders
	for i, f := range SearchFields {
		v, ok := HeaderText(h, f)
		out[i] = sql.NullString{String: v, Valid: ok}
	}
	return out
}

func partsReader(parts [][]byte) io.Reader {
	rs := make([]io.Reader, len(parts))
	for i, p := range parts {
		rs[i] = bytes.NewReader(p)
	}
	return io.MultiReader(rs...)
}

func insertSearchHeaders(tx *Tx, blobID int64, h searchHeaders) error {
	_, err := tx.Exec(`INSERT OR REPLACE INTO search_headers (blob_id, subject, from_, to_, cc, bcc)
		VALUES (?, ?, ?, ?, ?, ?)`, blobID, h[0], h[1], h[2], h[3], h[4])
	if err != nil {
		return fmt.Errorf("index headers: %w", err)
	}
	return nil
}

// HeaderMatches is the answer of SearchHeader.
type HeaderMatches struct {
	// UIDs are the messages whose field matches, ascending.
	UIDs []uint32
	// Unindexed are the messages without a row in the index (stored by
	// an earlier moat), ascending, with their blobs: the caller matches
	// them itself, and may hand the blobs to IndexHeaders.
	Unindexed []uint32
	Blobs     []int64
}

// SearchHeader finds the messages of a mailbox whose header field
// SearchFields[field] contains value, case-insensitively (value is
// lower-cased here, as HeaderText lower-cases the stored text); an empty
// value matches every message that has the field (RFC 9051 §6.4.4). A
// value holding a line break cannot match one field and matches nothing.
func (s *Store) SearchHeader(ctx context.Context, mailboxID int64, field int, value string) (HeaderMatches, error) {
	var res HeaderMatches
	if field < 0 || field >= len(searchColumns) {
		return res, fmt.Errorf("search header: no indexed field %d", field)
	}
	col := "h." + searchColumns[field]
	cond := "instr(" + col + ", ?2) > 0"
	if value == "" {
		cond = col + " IS NOT NULL"
	} else if strings.ContainsAny(value, "\r\n") {
		cond = "0"
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT m.uid, m.blob_id, h.blob_id IS NULL
		FROM messages m LEFT JOIN search_headers h ON h.blob_id = m.blob_id
		WHERE m.mailbox_id = ?1 AND (h.blob_id IS NULL OR `+cond+`) ORDER BY m.uid`,
		mailboxID, strings.ToLower(value))
	if err != nil {
		return res, fmt.Errorf("search header: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid uint32
		var blob int64
		var missing bool
		if err := rows.Scan(&uid, &blob, &missing); err != nil {
			return res, fmt.Errorf("search header: %w", err)
		}
		if missing {
			res.Unindexed = append(res.Unindexed, uid)
			res.Blobs = append(res.Blobs, blob)
		} else {
			res.UIDs = append(res.UIDs, uid)
		}
	}
	return res, rows.Err()
}

// indexBatch is how many blobs one IndexHeaders transaction covers.
const indexBatch = 500

// IndexHeaders adds the search index rows of blobs stored without (by a
// moat of before this index). Blobs gone meanwhile are skipped.
func (s *Store) IndexHeaders(ctx context.Context, blobIDs []int64) error {
	for len(blobIDs) > 0 {
		n := min(len(blobIDs), indexBatch)
		batch := blobIDs[:n]
		blobIDs = blobIDs[n:]
		hdrs := make([]searchHeaders, 0, n)
		ids := make([]int64, 0, n)
		for _, id := range batch {
			var key sql.NullString
			err := s.rdb.QueryRowContext(ctx, "SELECT key FROM blobs WHERE id = ?", id).Scan(&key)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("index headers: %w", err)
			}
			r, err := s.OpenMessage(Message{BlobID: id, BlobKey: key.String})
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("index headers: %w", err)
			}
			hdrs = append(hdrs, extractSearchHeaders(r))
			ids = append(ids, id)
			r.Close()
		}
		err := s.Update(ctx, func(tx *Tx) error {
			for i, id := range ids {
				// Only while the blob is there: the trigger that drops
				// rows runs on the blob's deletion, not before it.
				var one int
				if err := tx.QueryRow("SELECT 1 FROM blobs WHERE id = ?", id).Scan(&one); err != nil {
					continue
				}
				if err := insertSearchHeaders(tx, id, hdrs[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
