package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A consistent online copy of the store (moat backup) and a check of a
// store's files against its index (moat verify). Both work on a data
// folder from outside the Store, through SQLite, so that they run beside a
// moat serve holding the store open (WAL lets readers and the writer of
// several processes work at once).

// indexFile and blobsDir are the store's layout in its data folder.
const (
	indexFile = "index.db"
	blobsDir  = "blobs"
)

// SnapshotResult says what Snapshot copied.
type SnapshotResult struct {
	// Files are the message files copied; Inline the messages inside the
	// index copy.
	Files, Inline int
	// Dropped are the message files removed from the live store between
	// the index snapshot and their copy (expunged meanwhile): their rows
	// are dropped from the copy, which stays consistent.
	Dropped int
}

// Snapshot copies the store of dataDir into destDir (index.db and blobs/)
// while the store may be in use. Ordering makes it consistent: first the
// index, in one read transaction (VACUUM INTO), so that every delivery
// committed before Snapshot began is in it; then the files that copy
// references, which never change once written (a blob is written once,
// O_EXCL, and only ever removed after its last reference is gone). A file
// removed meanwhile belongs to a message expunged after the snapshot; a
// file missing while the live index still references it is damage and
// fails the snapshot.
func Snapshot(ctx context.Context, dataDir, destDir string) (SnapshotResult, error) {
	var res SnapshotResult
	src := filepath.Join(dataDir, indexFile)
	if _, err := os.Stat(src); err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(destDir, blobsDir), 0o700); err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	dst := filepath.Join(destDir, indexFile)
	if err := VacuumInto(ctx, src, dst); err != nil {
		return res, fmt.Errorf("snapshot index: %w", err)
	}
	return copyReferenced(ctx, dataDir, destDir)
}

// copyReferenced copies the message files the index copy in destDir
// references from dataDir's blobs/, and drops from the copy the messages
// whose files the live store removed since (expunged after the copy was
// taken).
func copyReferenced(ctx context.Context, dataDir, destDir string) (SnapshotResult, error) {
	var res SnapshotResult
	src, dst := filepath.Join(dataDir, indexFile), filepath.Join(destDir, indexFile)
	live, err := openReadOnly(src)
	if err != nil {
		return res, err
	}
	defer live.Close()
	cp, err := sql.Open("sqlite", "file:"+dst+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(0)")
	if err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	defer cp.Close()
	cp.SetMaxOpenConns(1)
	blobs, err := listBlobs(ctx, cp)
	if err != nil {
		return res, err
	}
	var gone []blobRow
	for _, b := range blobs {
		if b.key == "" {
			res.Inline++
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		from := filepath.Join(dataDir, blobsDir, b.key[:2], b.key)
		to := filepath.Join(destDir, blobsDir, b.key[:2], b.key)
		err := CopyFile(from, to)
		if errors.Is(err, fs.ErrNotExist) {
			var one int
			qerr := live.QueryRowContext(ctx, "SELECT 1 FROM blobs WHERE key = ?", b.key).Scan(&one)
			if errors.Is(qerr, sql.ErrNoRows) {
				gone = append(gone, b)
				continue
			}
			return res, fmt.Errorf("snapshot: message file %s is missing from the live store: %w", b.key, err)
		}
		if err != nil {
			return res, fmt.Errorf("snapshot: %w", err)
		}
		res.Files++
	}
	if len(gone) > 0 {
		if err := dropBlobRows(ctx, cp, gone); err != nil {
			return res, err
		}
		res.Dropped = len(gone)
	}
	return res, nil
}

// VacuumInto writes a consistent copy of the SQLite database src to dst
// (which must not exist) with VACUUM INTO, in one read transaction beside
// any writer, and makes it durable.
func VacuumInto(ctx context.Context, src, dst string) error {
	db, err := openReadOnly(src)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("vacuum %s into %s: %w", src, dst, err)
	}
	return SyncPath(dst)
}

// openReadOnly opens an SQLite database for reading beside its writer.
func openReadOnly(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(2)
	return db, nil
}

type blobRow struct {
	id      int64
	key     string // "" for an inline message
	size    int64
	dataLen sql.NullInt64
}

func listBlobs(ctx context.Context, db *sql.DB) ([]blobRow, error) {
	rows, err := db.QueryContext(ctx, "SELECT id, coalesce(key, ''), size, length(data) FROM blobs ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	var out []blobRow
	for rows.Next() {
		var b blobRow
		if err := rows.Scan(&b.id, &b.key, &b.size, &b.dataLen); err != nil {
			return nil, fmt.Errorf("list messages: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// dropBlobRows removes blobs and every row that references them (found
// through the index's foreign keys, as blobRefs does) from a copy.
func dropBlobRows(ctx context.Context, db *sql.DB, blobs []blobRow) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT m.name, f."from" FROM sqlite_master m, pragma_foreign_key_list(m.name) f
		WHERE m.type = 'table' AND lower(f."table") = 'blobs'`)
	if err != nil {
		return fmt.Errorf("find blob references: %w", err)
	}
	var refs [][2]string
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			rows.Close()
			return err
		}
		refs = append(refs, [2]string{t, c})
	}
	rows.Close()
	for _, b := range blobs {
		for _, r := range refs {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s = ?", quoteIdent(r[0]), quoteIdent(r[1])), b.id); err != nil {
				return fmt.Errorf("drop expunged message: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM blobs WHERE id = ?", b.id); err != nil {
			return fmt.Errorf("drop expunged message: %w", err)
		}
	}
	return tx.Commit()
}

// CopyFile copies a regular file to a new file (its folder created) and
// makes it durable.
func CopyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// SyncPath makes a file, or a folder's entries, durable.
func SyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Problem is something wrong Check found.
type Problem struct {
	What string // "index", "missing", "size", "orphan", "references"
	Text string
}

func (p Problem) String() string { return p.What + ": " + p.Text }

// CheckOptions tune Check.
type CheckOptions struct {
	// OrphanAge is how old a file no index row references must be to be
	// reported: a delivery writes its file before its index commit, so a
	// younger one may be in flight (0: report every one).
	OrphanAge time.Duration
}

// Check compares the store of dataDir with its index without changing
// anything: the index's own integrity (PRAGMA integrity_check and
// foreign_key_check), every message file the index names present with the
// size it records, every inline message of its recorded size, and no file
// under blobs/ that nothing references. The store keeps sizes, not
// checksums: a backup's manifest adds those. It runs beside moat serve: a
// file missing because its message was expunged meanwhile is not reported.
func Check(ctx context.Context, dataDir string, opts CheckOptions) ([]Problem, error) {
	var problems []Problem
	add := func(what, format string, args ...any) {
		problems = append(problems, Problem{What: what, Text: fmt.Sprintf(format, args...)})
	}
	path := filepath.Join(dataDir, indexFile)
	st, err := os.Stat(path)
	if err != nil {
		add("index", "%v", err)
		return problems, nil
	}
	if st.Size() == 0 {
		add("index", "%s is empty", path)
		return problems, nil
	}
	db, err := openReadOnly(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if msgs, err := pragmaRows(ctx, db, "PRAGMA integrity_check"); err != nil {
		add("index", "%s: %v", path, err)
		return problems, nil
	} else if len(msgs) != 1 || msgs[0] != "ok" {
		for _, m := range msgs {
			add("index", "%s: %s", path, m)
		}
		return problems, nil
	}
	if msgs, err := pragmaRows(ctx, db, "PRAGMA foreign_key_check"); err != nil {
		add("index", "%v", err)
	} else {
		for _, m := range msgs {
			add("references", "a row of table %s references a row that does not exist", m)
		}
	}
	blobs, err := listBlobs(ctx, db)
	if err != nil {
		add("index", "%v", err)
		return problems, nil
	}
	known := make(map[string]bool, len(blobs))
	for _, b := range blobs {
		if b.key == "" {
			if !b.dataLen.Valid || b.dataLen.Int64 != b.size {
				add("size", "inline message %d holds %d bytes, the index records %d", b.id, b.dataLen.Int64, b.size)
			}
			continue
		}
		known[b.key] = true
		if len(b.key) < 3 || strings.ContainsAny(b.key, `/\.`) {
			add("index", "message %d has a malformed file name %q", b.id, b.key)
			continue
		}
		fi, err := os.Stat(filepath.Join(dataDir, blobsDir, b.key[:2], b.key))
		if errors.Is(err, fs.ErrNotExist) {
			var one int
			if qerr := db.QueryRowContext(ctx, "SELECT 1 FROM blobs WHERE key = ?", b.key).Scan(&one); errors.Is(qerr, sql.ErrNoRows) {
				continue // expunged since the list was read
			}
			add("missing", "message file blobs/%s/%s (message %d, %d bytes) does not exist", b.key[:2], b.key, b.id, b.size)
			continue
		}
		if err != nil {
			add("missing", "%v", err)
			continue
		}
		if fi.Size() != b.size {
			add("size", "message file blobs/%s/%s has %d bytes, the index records %d", b.key[:2], b.key, fi.Size(), b.size)
		}
	}
	cutoff := time.Now().Add(-opts.OrphanAge)
	root := filepath.Join(dataDir, blobsDir)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || known[d.Name()] {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		if opts.OrphanAge > 0 && fi.ModTime().After(cutoff) {
			return nil
		}
		rel, _ := filepath.Rel(dataDir, p)
		add("orphan", "%s (%d bytes) is referenced by no message", rel, fi.Size())
		return nil
	})
	if err != nil {
		add("missing", "%v", err)
	}
	return problems, nil
}

// pragmaRows runs a PRAGMA whose rows are reported as text.
func pragmaRows(ctx context.Context, db *sql.DB, pragma string) ([]string, error) {
	rows, err := db.QueryContext(ctx, pragma)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out, rows.Err()
}
