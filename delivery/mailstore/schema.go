package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Every package that keeps tables in the index owns them as a Schema: the
// store its users, mailboxes and messages (storeSchema), the quarantine
// its verdict records (quarantine.Schema). Each schema has its own version
// in the table schema_versions, so that a package adds a step without
// knowing the others' and the index of any earlier moat is brought up to
// date, schema by schema, as it is opened.

// Schema is the tables one package keeps in the index, as the steps that
// build them.
type Schema struct {
	// Name identifies the schema in schema_versions: the name of the
	// package that owns it ("mailstore", "quarantine").
	Name string
	// Migrations are the steps from nothing (version 0) to the current
	// version: step i takes the schema from version i to i+1, in one
	// transaction with the version it reaches. A step is only ever
	// added, never changed, so that an index of any earlier version is
	// brought up to date.
	//
	// A table that holds blob ids declares the column REFERENCES
	// blobs(id) and indexes it: the store keeps a blob while any row of
	// any table points at it (blobRefs), and the foreign key would refuse
	// its deletion anyway.
	Migrations [][]string
}

// indexFormat is the PRAGMA user_version of an index that keeps its
// schema versions in schema_versions. Before it (moat up to ca1be25),
// user_version was the version of the index's one schema, 1 or 2: the
// store's steps, whose first also created the quarantine's table. Such an
// index is taken to hold storeSchema at version user_version, and the
// quarantine's table, which its schema's first step then leaves as it is.
// A moat of before refuses an index of this format as newer than itself.
const indexFormat = 3

// schemaVersionsTable records the version of every schema in the index.
const schemaVersionsTable = `CREATE TABLE IF NOT EXISTS schema_versions (
	name TEXT PRIMARY KEY,
	version INTEGER NOT NULL
) WITHOUT ROWID`

// Migrate brings sc up to date in the index, in one write transaction. A
// package that keeps tables in the index calls it when it is set up over
// the store (quarantine.New), so that no caller has to remember it. An
// index whose sc is newer than this moat's is refused. Migrating again,
// or from two processes at once, is harmless: the version is read again
// inside the transaction.
func (s *Store) Migrate(ctx context.Context, sc Schema) error {
	if ok, err := upToDate(ctx, s.rdb, sc); err != nil || ok {
		return err
	}
	err := s.Update(ctx, func(tx *Tx) error { return migrateTx(tx.tx, sc) })
	if err != nil {
		return fmt.Errorf("migrate schema %s: %w", sc.Name, err)
	}
	return nil
}

// migrate brings sc up to date on the writer connection, before the group
// committer starts (Open).
func migrate(db *sql.DB, sc Schema) error {
	if ok, err := upToDate(context.Background(), db, sc); err != nil || ok {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if err := migrateTx(tx, sc); err != nil {
		return err
	}
	return tx.Commit()
}

// upToDate reports, without taking the write lock, whether the index is of
// indexFormat and holds sc at its current version. Anything else, a newer
// version included, is for migrateTx to act on or refuse.
func upToDate(ctx context.Context, db *sql.DB, sc Schema) (bool, error) {
	var format int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&format); err != nil {
		return false, fmt.Errorf("read index format: %w", err)
	}
	if format != indexFormat {
		return false, nil
	}
	var v int
	err := db.QueryRowContext(ctx, "SELECT version FROM schema_versions WHERE name = ?", sc.Name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	return v == len(sc.Migrations), nil
}

// migrateTx runs the steps of sc that the index lacks, first turning an
// index of before indexFormat into one.
func migrateTx(tx *sql.Tx, sc Schema) error {
	var format int
	if err := tx.QueryRow("PRAGMA user_version").Scan(&format); err != nil {
		return fmt.Errorf("read index format: %w", err)
	}
	if format > indexFormat {
		return fmt.Errorf("index format %d is newer than this moat (%d)", format, indexFormat)
	}
	if format < indexFormat {
		stmts := []string{schemaVersionsTable}
		if format > 0 {
			stmts = append(stmts, fmt.Sprintf("INSERT INTO schema_versions (name, version) VALUES ('%s', %d)",
				storeSchema.Name, format))
		}
		stmts = append(stmts, fmt.Sprintf("PRAGMA user_version = %d", indexFormat))
		for _, stmt := range stmts {
			if _, err := tx.Exec(stmt); err != nil {
				return fmt.Errorf("convert index format %d: %w", format, err)
			}
		}
	}
	var v int
	err := tx.QueryRow("SELECT version FROM schema_versions WHERE name = ?", sc.Name).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read schema version: %w", err)
	}
	latest := len(sc.Migrations)
	if v > latest {
		return fmt.Errorf("schema %s version %d is newer than this moat (%d)", sc.Name, v, latest)
	}
	if v == latest {
		return nil
	}
	for step := v; step < latest; step++ {
		for _, stmt := range sc.Migrations[step] {
			if _, err := tx.Exec(stmt); err != nil {
				return fmt.Errorf("migrate schema %s to version %d: %w", sc.Name, step+1, err)
			}
		}
	}
	_, err = tx.Exec(`INSERT INTO schema_versions (name, version) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET version = excluded.version`, sc.Name, latest)
	if err != nil {
		return fmt.Errorf("record schema %s version %d: %w", sc.Name, latest, err)
	}
	return nil
}

// storeSchema is the store's own: users, mailboxes, messages, blobs, allow
// lists and small named values. Its first step was, until indexFormat, the
// first of the whole index and also created the quarantine's table; that
// table is now the quarantine's schema, whose first step leaves an existing
// one as it is.
var storeSchema = Schema{
	Name: "mailstore",
	Migrations: [][]string{
		storeTables,
		// 2: each user's allow list of envelope senders (allowlist.go).
		{`CREATE TABLE allowed_senders (
			user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			sender TEXT NOT NULL,
			added INTEGER NOT NULL,
			PRIMARY KEY (user_id, sender)
		) WITHOUT ROWID`},
		// 3: large mailboxes (counts.go, searchindex.go).
		countsAndSearchIndex,
		// 4: the first unseen message from an index (counts.go).
		firstUnseenIndex,
	},
}

// storeTables is version 1 of the store's schema. Messages are files under
// blobs/ or inline in the index; a blob is shared by every mailbox entry
// that holds the same delivered copy, and removed once nothing references
// it.
var storeTables = []string{
	`CREATE TABLE users (
		id INTEGER PRIMARY KEY,
		address TEXT NOT NULL UNIQUE,
		password_hash TEXT NOT NULL,
		admin INTEGER NOT NULL DEFAULT 0,
		created INTEGER NOT NULL,
		last_uidvalidity INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE mailboxes (
		id INTEGER PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		name TEXT NOT NULL,
		uidvalidity INTEGER NOT NULL,
		uidnext INTEGER NOT NULL DEFAULT 1,
		modseq INTEGER NOT NULL DEFAULT 1,
		special_use TEXT NOT NULL DEFAULT '',
		subscribed INTEGER NOT NULL DEFAULT 1,
		UNIQUE (user_id, name)
	)`,
	// A blob is either inline (data holds the message, key is NULL) or a
	// file under blobs/ named by key (data is NULL).
	`CREATE TABLE blobs (
		id INTEGER PRIMARY KEY,
		key TEXT UNIQUE,
		size INTEGER NOT NULL,
		created INTEGER NOT NULL,
		data BLOB
	)`,
	`CREATE TABLE messages (
		mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
		uid INTEGER NOT NULL,
		blob_id INTEGER NOT NULL REFERENCES blobs(id),
		flags TEXT NOT NULL DEFAULT '',
		internal_date INTEGER NOT NULL,
		size INTEGER NOT NULL,
		modseq INTEGER NOT NULL,
		PRIMARY KEY (mailbox_id, uid)
	) WITHOUT ROWID`,
	`CREATE INDEX messages_blob ON messages (blob_id)`,
	// state keeps small named values that must survive restarts (the
	// time of the last quarantine digest): State and Tx.SetState.
	`CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
}
