package greylist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)
)

// SQLiteStore is the embedded Store: one SQLite database file of its own
// (<data_dir>/greylist.db by default), not the mail index, so that
// greylisting never waits on deliveries nor they on it.
//
// Durability: WAL with synchronous=NORMAL. A commit returns once its
// pages are written to the WAL, so a crash of moat (kill -9 included)
// loses no committed update, and the WAL's checksums keep a torn write
// from corrupting the database. Only a crash of the operating system or a
// power cut may lose the updates since the last WAL sync; what is lost is
// then a first sighting or a pass, and the sender is greylisted once
// more (451, it retries) — a delay, never a lost message. synchronous=FULL
// would add an fsync to every first attempt, the path a flood of spam
// takes, to protect nothing a 250 to RCPT promised: unlike the 250 after
// DATA, it promises nothing about the disk.
//
// Tables: triplets (network, sender, recipient; times and count) and
// clients (network; pass count, operator's allow), both WITHOUT ROWID and
// keyed by the network as a 16-byte address (IPv4 in its IPv4-mapped form)
// and its prefix length, so that an entry is one B-tree probe and the
// entries of a network range are one range scan.
type SQLiteStore struct {
	wdb, rdb *sql.DB
	path     string

	getTriplet, getClient *sql.Stmt // on rdb
}

var _ Store = (*SQLiteStore)(nil)

// schema is the database at schemaVersion.
var schema = []string{
	`CREATE TABLE triplets (
		net        BLOB    NOT NULL,
		bits       INTEGER NOT NULL,
		sender     TEXT    NOT NULL,
		rcpt       TEXT    NOT NULL,
		first_seen INTEGER NOT NULL,
		last_seen  INTEGER NOT NULL,
		attempts   INTEGER NOT NULL,
		passed_at  INTEGER NOT NULL,
		expires    INTEGER NOT NULL,
		PRIMARY KEY (net, bits, sender, rcpt)
	) WITHOUT ROWID`,
	`CREATE INDEX triplets_expires ON triplets (expires)`,
	`CREATE TABLE clients (
		net        BLOB    NOT NULL,
		bits       INTEGER NOT NULL,
		passes     INTEGER NOT NULL,
		counted_at INTEGER NOT NULL,
		last_seen  INTEGER NOT NULL,
		allowed    INTEGER NOT NULL,
		expires    INTEGER NOT NULL,
		PRIMARY KEY (net, bits)
	) WITHOUT ROWID`,
	`CREATE INDEX clients_expires ON clients (expires) WHERE expires > 0`,
}

// schemaVersion is the PRAGMA user_version of a database holding schema.
const schemaVersion = 1

const (
	tripletColumns = `first_seen, last_seen, attempts, passed_at, expires`
	clientColumns  = `passes, counted_at, last_seen, allowed, expires`
	selectTriplet  = `SELECT ` + tripletColumns + ` FROM triplets WHERE net = ? AND bits = ? AND sender = ? AND rcpt = ?`
	selectClient   = `SELECT ` + clientColumns + ` FROM clients WHERE net = ? AND bits = ?`
)

// Open opens the store at DatabasePath(cfg, dataDir), creating its folder
// and the database as needed.
func Open(cfg Config, dataDir string) (*SQLiteStore, error) {
	path := DatabasePath(cfg, dataDir)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("greylist: %w", err)
	}
	return OpenSQLite(path)
}

// DatabasePath is the database Open uses: Config.Path, relative to
// dataDir unless absolute, or <dataDir>/greylist.db when it is empty.
func DatabasePath(cfg Config, dataDir string) string {
	switch {
	case cfg.Path == "":
		return filepath.Join(dataDir, "greylist.db")
	case filepath.IsAbs(cfg.Path):
		return cfg.Path
	}
	return filepath.Join(dataDir, cfg.Path)
}

// OpenSQLite opens (creating if needed) the greylisting database at path.
// The file is private to moat's user: it holds who writes to whom.
// Several processes may open it at once (moat serve and the
// `moat greylist` commands).
func OpenSQLite(path string) (*SQLiteStore, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open greylist database: %w", err)
	}
	f.Close()
	// One writer connection, transactions taking the write lock at
	// BEGIN (no upgrade deadlock between a reader and a writer).
	wdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"+
		"&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open greylist database: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetConnMaxIdleTime(0)
	if err := migrate(wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open greylist database %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open greylist database: %w", err)
	}
	rdb.SetMaxOpenConns(8)
	rdb.SetMaxIdleConns(8)
	rdb.SetConnMaxIdleTime(0)
	s := &SQLiteStore{wdb: wdb, rdb: rdb, path: path}
	if s.getTriplet, err = rdb.Prepare(selectTriplet); err == nil {
		s.getClient, err = rdb.Prepare(selectClient)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open greylist database %s: %w", path, err)
	}
	return s, nil
}

// migrate creates the schema in a new database and refuses one made by a
// newer moat.
func migrate(db *sql.DB) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("schema version %d is newer than this moat (%d)", v, schemaVersion)
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer tx.Rollback()
	for _, stmt := range append(schema, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)) {
		if _, err := tx.Exec(stmt); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	return tx.Commit()
}

// Close closes the database. Calls after Close return errors.
func (s *SQLiteStore) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.getTriplet, s.getClient} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(append(errs, s.rdb.Close(), s.wdb.Close())...)
}

// Path returns the database file.
func (s *SQLiteStore) Path() string { return s.path }

// netKey is a network as stored: the 16-byte form of its address and
// its prefix length.
func netKey(p netip.Prefix) ([]byte, int) {
	a := p.Masked().Addr().As16()
	return a[:], p.Bits()
}

// netRange is the range of stored addresses within p: every network for
// the zero Prefix.
func netRange(p netip.Prefix) (lo, hi []byte) {
	if !p.IsValid() {
		var top [16]byte
		for i := range top {
			top[i] = 0xff
		}
		return make([]byte, 16), top[:]
	}
	p = p.Masked()
	a := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	lo, hi = a[:], make([]byte, 16)
	copy(hi, lo)
	for i := bits; i < 128; i++ {
		hi[i/8] |= 0x80 >> (i % 8)
	}
	return lo, hi
}

// netFrom is the Prefix of a stored network.
func netFrom(b []byte, bits int) (netip.Prefix, error) {
	if len(b) != 16 {
		return netip.Prefix{}, fmt.Errorf("stored network of %d bytes", len(b))
	}
	return netip.AddrFrom16([16]byte(b)).Unmap().Prefix(bits)
}

func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// update is the read-then-write of UpdateTriplet and UpdateClient: a read
// without the write lock first, since most checks change nothing (a known
// triplet), then, when fn asks for a write, the read, fn and the write
// again inside one write transaction.
//
// read reads with the prepared statement on the read pool when tx is nil.
func update[T any](ctx context.Context, s *SQLiteStore, read func(tx *sql.Tx) (T, bool, error),
	write func(tx *sql.Tx, v T) error, fn func(T, bool) (T, bool)) (T, error) {
	cur, found, err := read(nil)
	if err != nil {
		return cur, err
	}
	if v, ok := fn(cur, found); !ok {
		return v, nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return cur, err
	}
	defer tx.Rollback()
	if cur, found, err = read(tx); err != nil {
		return cur, err
	}
	v, ok := fn(cur, found)
	if !ok {
		return v, nil
	}
	if err := write(tx, v); err != nil {
		return v, err
	}
	return v, tx.Commit()
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanEntry reads a row of key, then tripletColumns, into e.
func scanEntry(sc scanner, e *Entry, key ...any) error {
	var first, last, passed, expires int64
	if err := sc.Scan(append(key, &first, &last, &e.Attempts, &passed, &expires)...); err != nil {
		return err
	}
	e.FirstSeen, e.LastSeen, e.PassedAt, e.Expires = unixTime(first), unixTime(last), unixTime(passed), unixTime(expires)
	return nil
}

// scanClient reads a row of key, then clientColumns, into c.
func scanClient(sc scanner, c *Client, key ...any) error {
	var counted, last, expires int64
	if err := sc.Scan(append(key, &c.Passes, &counted, &last, &c.Allowed, &expires)...); err != nil {
		return err
	}
	c.CountedAt, c.LastSeen, c.Expires = unixTime(counted), unixTime(last), unixTime(expires)
	return nil
}

// found turns the error of reading one row into whether it was there.
func found(err error) (bool, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// UpdateTriplet implements Store.
func (s *SQLiteStore) UpdateTriplet(ctx context.Context, t Triplet, fn func(Entry, bool) (Entry, bool)) (Entry, error) {
	net, bits := netKey(t.Network)
	read := func(tx *sql.Tx) (Entry, bool, error) {
		var row *sql.Row
		if tx == nil {
			row = s.getTriplet.QueryRowContext(ctx, net, bits, t.Sender, t.Rcpt)
		} else {
			row = tx.QueryRowContext(ctx, selectTriplet, net, bits, t.Sender, t.Rcpt)
		}
		e := Entry{Triplet: t}
		ok, err := found(scanEntry(row, &e))
		return e, ok, err
	}
	write := func(tx *sql.Tx, e Entry) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO triplets (net, bits, sender, rcpt, `+tripletColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, net, bits, t.Sender, t.Rcpt,
			unixSeconds(e.FirstSeen), unixSeconds(e.LastSeen), e.Attempts, unixSeconds(e.PassedAt), unixSeconds(e.Expires))
		return err
	}
	e, err := update(ctx, s, read, write, fn)
	if err != nil {
		return e, fmt.Errorf("greylist triplet: %w", err)
	}
	return e, nil
}

// UpdateClient implements Store.
func (s *SQLiteStore) UpdateClient(ctx context.Context, network netip.Prefix, fn func(Client, bool) (Client, bool)) (Client, error) {
	net, bits := netKey(network)
	read := func(tx *sql.Tx) (Client, bool, error) {
		var row *sql.Row
		if tx == nil {
			row = s.getClient.QueryRowContext(ctx, net, bits)
		} else {
			row = tx.QueryRowContext(ctx, selectClient, net, bits)
		}
		c := Client{Network: network}
		ok, err := found(scanClient(row, &c))
		return c, ok, err
	}
	write := func(tx *sql.Tx, c Client) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO clients (net, bits, `+clientColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, net, bits,
			c.Passes, unixSeconds(c.CountedAt), unixSeconds(c.LastSeen), c.Allowed, unixSeconds(c.Expires))
		return err
	}
	c, err := update(ctx, s, read, write, fn)
	if err != nil {
		return c, fmt.Errorf("greylist client: %w", err)
	}
	return c, nil
}

// list runs a listing query on the read pool: the rows of the networks
// within, at most limit of them (0: no limit), each read by scan from its
// network and the table's columns.
func list[T any](ctx context.Context, s *SQLiteStore, query string, within netip.Prefix, limit int,
	scan func(rows *sql.Rows, net *[]byte, bits *int) (T, error)) ([]T, error) {
	lo, hi := netRange(within)
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.rdb.QueryContext(ctx, query, lo, hi, limit)
	if err != nil {
		return nil, fmt.Errorf("greylist list: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var net []byte
		var bits int
		v, err := scan(rows, &net, &bits)
		if err != nil {
			return nil, fmt.Errorf("greylist list: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("greylist list: %w", err)
	}
	return out, nil
}

// Triplets implements Store.
func (s *SQLiteStore) Triplets(ctx context.Context, within netip.Prefix, limit int) ([]Entry, error) {
	return list(ctx, s, `SELECT net, bits, sender, rcpt, `+tripletColumns+` FROM triplets
		WHERE net BETWEEN ? AND ? ORDER BY net, bits, sender, rcpt LIMIT ?`, within, limit,
		func(rows *sql.Rows, net *[]byte, bits *int) (e Entry, err error) {
			if err = scanEntry(rows, &e, net, bits, &e.Sender, &e.Rcpt); err == nil {
				e.Network, err = netFrom(*net, *bits)
			}
			return e, err
		})
}

// Clients implements Store.
func (s *SQLiteStore) Clients(ctx context.Context, within netip.Prefix, limit int) ([]Client, error) {
	return list(ctx, s, `SELECT net, bits, `+clientColumns+` FROM clients
		WHERE net BETWEEN ? AND ? ORDER BY net, bits LIMIT ?`, within, limit,
		func(rows *sql.Rows, net *[]byte, bits *int) (c Client, err error) {
			if err = scanClient(rows, &c, net, bits); err == nil {
				c.Network, err = netFrom(*net, *bits)
			}
			return c, err
		})
}

// Delete implements Store.
func (s *SQLiteStore) Delete(ctx context.Context, within netip.Prefix) (int, error) {
	lo, hi := netRange(within)
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("greylist delete: %w", err)
	}
	defer tx.Rollback()
	n := 0
	for _, table := range []string{"triplets", "clients"} {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE net BETWEEN ? AND ?`, lo, hi)
		if err != nil {
			return 0, fmt.Errorf("greylist delete: %w", err)
		}
		k, _ := res.RowsAffected()
		n += int(k)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("greylist delete: %w", err)
	}
	return n, nil
}

// DeleteTriplet implements Store.
func (s *SQLiteStore) DeleteTriplet(ctx context.Context, t Triplet) (bool, error) {
	net, bits := netKey(t.Network)
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM triplets WHERE net = ? AND bits = ? AND sender = ? AND rcpt = ?`,
		net, bits, t.Sender, t.Rcpt)
	if err != nil {
		return false, fmt.Errorf("greylist delete: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// expireBatch bounds the rows one expiry transaction deletes, so that a
// large expiry never holds the write lock long enough for a check to
// miss its deadline.
const expireBatch = 1000

// Expire implements Store, in transactions of at most expireBatch rows.
func (s *SQLiteStore) Expire(ctx context.Context, now time.Time) (int, error) {
	cut := now.Unix()
	total := 0
	for _, q := range []string{
		`DELETE FROM triplets WHERE (net, bits, sender, rcpt) IN
			(SELECT net, bits, sender, rcpt FROM triplets WHERE expires <= ?1 LIMIT ?2)`,
		`DELETE FROM clients WHERE (net, bits) IN
			(SELECT net, bits FROM clients WHERE expires > 0 AND expires <= ?1 LIMIT ?2)`,
	} {
		for {
			res, err := s.wdb.ExecContext(ctx, q, cut, expireBatch)
			if err != nil {
				return total, fmt.Errorf("greylist expire: %w", err)
			}
			n, _ := res.RowsAffected()
			total += int(n)
			if n < expireBatch {
				break
			}
		}
	}
	return total, nil
}
