package mailstore

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

func (s *Store) blobPath(key string) string {
	return filepath.Join(s.blobs, key[:2], key)
}

// writeBlob writes the parts of a message to a new file and makes the file
// and its directory entry durable before returning. It returns the blob key
// and the size written.
func (s *Store) writeBlob(parts ...[]byte) (string, int64, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", 0, fmt.Errorf("blob key: %w", err)
	}
	key := hex.EncodeToString(raw[:])
	dir := filepath.Join(s.blobs, key[:2])
	f, err := os.OpenFile(filepath.Join(dir, key), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if os.IsNotExist(err) {
		if err = os.MkdirAll(dir, 0o700); err != nil {
			return "", 0, fmt.Errorf("blob folder: %w", err)
		}
		f, err = os.OpenFile(filepath.Join(dir, key), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return "", 0, fmt.Errorf("create blob: %w", err)
	}
	var size int64
	for _, p := range parts {
		n, err := f.Write(p)
		size += int64(n)
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return "", 0, fmt.Errorf("write blob: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("sync blob: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("close blob: %w", err)
	}
	// The new directory entry must be durable too, or a crash could leave
	// the index pointing at a name that was never written to disk.
	if err := syncDir(dir); err != nil {
		os.Remove(f.Name())
		return "", 0, err
	}
	return key, size, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder: %w", err)
	}
	return nil
}

// content is a message on its way into the store: inline (data set, key
// empty) or already in a durable file (key set).
type content struct {
	key  string
	data []byte
	size int64
	// headers are the fields the search index keeps (searchindex.go).
	headers searchHeaders
}

// putContent makes a message ready for the index: small messages stay in
// memory and go into the index transaction; larger ones are written to a
// durable file first.
func (s *Store) putContent(parts ...[]byte) (content, error) {
	var size int
	for _, p := range parts {
		size += len(p)
	}
	headers := extractSearchHeaders(partsReader(parts))
	if size <= s.cfg.InlineMax {
		data := make([]byte, 0, size)
		for _, p := range parts {
			data = append(data, p...)
		}
		return content{data: data, size: int64(size), headers: headers}, nil
	}
	key, n, err := s.writeBlob(parts...)
	return content{key: key, size: n, headers: headers}, err
}

// discard removes the file of a content that never made it into the index.
func (s *Store) discard(c content) {
	if c.key != "" {
		os.Remove(s.blobPath(c.key))
	}
}

// ReadMessage returns the whole stored message. m.BlobKey may be empty for
// a blob kept in a file (a listing reads keys only of messages above
// InlineMax, ChangesSince): the row then gives the key.
func (s *Store) ReadMessage(m Message) ([]byte, error) {
	key := m.BlobKey
	if key == "" {
		data, k, err := s.readBlobRow(m.BlobID)
		if err != nil || k == "" {
			return data, err
		}
		key = k
	}
	b, err := os.ReadFile(s.blobPath(key))
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	return b, nil
}

// readBlobRow reads a blob's row: its content when inline, else its file
// key.
func (s *Store) readBlobRow(blobID int64) (data []byte, key string, err error) {
	var k sql.NullString
	err = s.readInline.QueryRow(blobID).Scan(&k, &data)
	if errors.Is(err, sql.ErrNoRows) {
		// Expunged meanwhile: the same answer as a removed file.
		return nil, "", fmt.Errorf("read message %d: %w", blobID, fs.ErrNotExist)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read message: %w", err)
	}
	if k.String != "" { // inline blobs have no key
		return nil, k.String, nil
	}
	return data, "", nil
}

// MessageReader is an open stored message.
type MessageReader interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

type inlineReader struct{ *bytes.Reader }

func (inlineReader) Close() error { return nil }

// OpenMessage opens the stored message for streaming or ranged reads.
// m.BlobKey may be empty for a blob kept in a file, as for ReadMessage.
func (s *Store) OpenMessage(m Message) (MessageReader, error) {
	key := m.BlobKey
	if key == "" {
		data, k, err := s.readBlobRow(m.BlobID)
		if err != nil {
			return nil, err
		}
		if k == "" {
			return inlineReader{bytes.NewReader(data)}, nil
		}
		key = k
	}
	f, err := openRaw(s.blobPath(key))
	if err != nil {
		return nil, fmt.Errorf("open message: %w", err)
	}
	return f, nil
}

func blobsOf(tx *Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// dropUnreferenced deletes the index rows of blobs that no row of any
// table holds any more (no message, no quarantine record); their files are
// removed after commit.
func dropUnreferenced(tx *Tx, blobIDs []int64) error {
	if len(blobIDs) == 0 {
		return nil
	}
	check, err := tx.refs.check(tx)
	if err != nil {
		return fmt.Errorf("check blob references: %w", err)
	}
	for _, id := range blobIDs {
		var key sql.NullString
		err := tx.QueryRow(check, id).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			continue // still referenced, or already gone
		}
		if err != nil {
			return fmt.Errorf("check blob references: %w", err)
		}
		if _, err := tx.Exec("DELETE FROM blobs WHERE id = ?", id); err != nil {
			return fmt.Errorf("drop blob: %w", err)
		}
		if key.Valid {
			tx.dropBlobs = append(tx.dropBlobs, key.String)
		}
	}
	return nil
}

// blobRefs knows the columns that hold blob ids: messages.blob_id, and any
// column of another package's table declared REFERENCES blobs(id) (the
// quarantine's verdict records). The store learns them from the index's
// own foreign keys rather than from a list of other packages' tables, and
// learns them again whenever the schema changes (SQLite's schema cookie,
// PRAGMA schema_version), a migration by another process included.
type blobRefs struct {
	cookie int64
	query  string // the key of blob ?1, no row when something holds it
}

// check returns the query that finds blob ?1 when no column holds it.
func (r *blobRefs) check(tx *Tx) (string, error) {
	var cookie int64
	if err := tx.QueryRow("PRAGMA schema_version").Scan(&cookie); err != nil {
		return "", err
	}
	if r.query != "" && cookie == r.cookie {
		return r.query, nil
	}
	rows, err := tx.Query(`SELECT m.name, f."from" FROM sqlite_master m, pragma_foreign_key_list(m.name) f
		WHERE m.type = 'table' AND lower(f."table") = 'blobs' ORDER BY m.name, f."from"`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	b.WriteString("SELECT key FROM blobs WHERE id = ?1")
	for rows.Next() {
		var table, column string
		if err := rows.Scan(&table, &column); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, " AND NOT EXISTS (SELECT 1 FROM %s WHERE %s = ?1)", quoteIdent(table), quoteIdent(column))
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	r.cookie, r.query = cookie, b.String()
	return r.query, nil
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// DropBlobIfUnreferenced deletes a blob that no row holds any more, for a
// package that keeps its own references to blobs (quarantine) and has just
// deleted one.
func (tx *Tx) DropBlobIfUnreferenced(blobID int64) error {
	return dropUnreferenced(tx, []int64{blobID})
}
