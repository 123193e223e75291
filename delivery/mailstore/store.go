// Package mailstore is the mailbox store: an SQLite index of users,
// mailboxes and messages, plus one file per message too large to keep
// inline, and local delivery into it. The servers that read it (IMAP,
// POP3) are delivery/imapd and delivery/pop3d.
//
// Durability contract: Deliver returns only once the message file and its
// directory entry are fsync'd and the index transaction that references it
// is committed with synchronous=FULL. The SMTP front sends 250 after that.
package mailstore

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)
)

// Errors callers test with errors.Is.
var (
	ErrNoUser        = errors.New("no such user")
	ErrUserExists    = errors.New("user already exists")
	ErrNoMailbox     = errors.New("no such mailbox")
	ErrMailboxExists = errors.New("mailbox already exists")
	ErrAuthFailed    = errors.New("authentication failed")
	ErrClosed        = errors.New("store closed")
)

// Config configures the store.
type Config struct {
	// Dir is the data folder: index.db and blobs/ live under it. In the
	// configuration file it is data_dir, not a key of [store].
	Dir string `toml:"dir"`
	// MaxBatch is the largest number of write jobs committed in one
	// transaction by the group committer (default 256).
	MaxBatch int `toml:"max_batch"`
	// InlineMax is the largest message kept inside the index rather than
	// as a file (default 128 KiB; -1 keeps every message in a file).
	// Inline messages become durable with the index commit itself: one
	// WAL sync shared by a whole batch of deliveries, instead of a file
	// sync and a folder sync per message.
	InlineMax int `toml:"inline_max"`
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: must be set")
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 256
	}
	if c.InlineMax == 0 {
		c.InlineMax = 128 << 10
	}
	if c.InlineMax < -1 {
		return fmt.Errorf("inline_max: %d is below -1", c.InlineMax)
	}
	if c.MaxBatch < 1 {
		return fmt.Errorf("max_batch: %d is below 1", c.MaxBatch)
	}
	return nil
}

// Store is the mailbox store: users, mailboxes and messages.
// It is safe for concurrent use.
type Store struct {
	cfg   Config
	blobs string
	rdb   *sql.DB // readers (WAL lets them run beside the writer)
	// readInline is prepared once: ReadMessage runs it for each inline
	// message read on its own (IMAP SEARCH, the quarantine); FETCH and
	// RETR read inline messages in batches (ReadBatch).
	readInline *sql.Stmt
	wdb        *sql.DB // the single writer connection
	jobs       chan *job
	done       chan struct{}
	wg         sync.WaitGroup
	watch      watchers
	closed     sync.Once
	now        func() time.Time

	// ranges are the connections of ReadBatch (rangeread.go).
	ranges *rangeReaders
}

// Open opens (creating if needed) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("store config: %w", err)
	}
	blobs := filepath.Join(cfg.Dir, "blobs")
	if err := os.MkdirAll(blobs, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	path := filepath.Join(cfg.Dir, "index.db")
	// The index holds mail: create it private to moat's user. SQLite gives
	// its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	f.Close()
	// synchronous(FULL) in WAL mode fsyncs the WAL on every commit: a
	// committed delivery survives a power cut, not only a crash.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
	wdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetConnMaxIdleTime(0)
	if err := migrate(wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=foreign_keys(1)")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open index: %w", err)
	}
	rdb.SetMaxOpenConns(8)
	rdb.SetMaxIdleConns(8)
	s := &Store{
		cfg:   cfg,
		blobs: blobs,
		rdb:   rdb,
		wdb:   wdb,
		jobs:  make(chan *job, 4*cfg.MaxBatch),
		done:  make(chan struct{}),
		now:   time.Now,
	}
	s.ranges = newRangeReaders(path)
	if s.readInline, err = rdb.Prepare("SELECT data FROM blobs WHERE id = ? AND data IS NOT NULL"); err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("open index: %w", err)
	}
	s.watch.init()
	s.wg.Add(1)
	go s.commitLoop()
	return s, nil
}

// Close stops the group committer and closes the index. Pending writes are
// finished first.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.done)
		s.wg.Wait()
		s.ranges.close()
		err = errors.Join(s.readInline.Close(), s.rdb.Close(), s.wdb.Close())
	})
	return err
}

// DB returns the read-only handle on the index, for packages that keep
// their own tables in it (quarantine).
func (s *Store) DB() *sql.DB { return s.rdb }

// schemaVersion is the version of the index this moat writes: the
// number of steps in migrations.
var schemaVersion = len(migrations)

// migrations are the steps from an empty index (version 0) to the
// current one: step i takes version i to i+1. A step is only ever added,
// never changed, so that an index of any earlier version is brought up to
// date in one transaction at open.
var migrations = [][]string{
	schema,
	// 2: each user's allow list of envelope senders (allowlist.go).
	{`CREATE TABLE allowed_senders (
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		sender TEXT NOT NULL,
		added INTEGER NOT NULL,
		PRIMARY KEY (user_id, sender)
	) WITHOUT ROWID`},
}

func migrate(db *sql.DB) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("index schema version %d is newer than this moat (%d)", v, schemaVersion)
	}
	if v == schemaVersion {
		return nil
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	for step := v; step < schemaVersion; step++ {
		for _, stmt := range migrations[step] {
			if _, err := tx.Exec(stmt); err != nil {
				return fmt.Errorf("migrate to version %d: %w", step+1, err)
			}
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return tx.Commit()
}

// schema is version 1 of the index. Messages are files under blobs/; a blob
// is shared by every mailbox entry that holds the same delivered copy, and
// removed once nothing references it.
var schema = []string{
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
	// quarantine holds one row per quarantined message (not per recipient):
	// the verdict that put it there. The quarantine package owns the queries.
	`CREATE TABLE quarantine (
		id INTEGER PRIMARY KEY,
		blob_id INTEGER NOT NULL REFERENCES blobs(id),
		queue_id TEXT NOT NULL,
		created INTEGER NOT NULL,
		sender TEXT NOT NULL,
		recipients TEXT NOT NULL,
		subject TEXT NOT NULL,
		score REAL NOT NULL,
		action TEXT NOT NULL,
		symbols TEXT NOT NULL,
		reasons TEXT NOT NULL,
		client_ip TEXT NOT NULL
	)`,
	`CREATE INDEX quarantine_blob ON quarantine (blob_id)`,
	`CREATE INDEX quarantine_created ON quarantine (created)`,
	// state keeps small named values that must survive restarts (the
	// time of the last quarantine digest).
	`CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
}
