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
	"context"
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
	// The statements that run most are prepared once (parsing one
	// costs about as much as running it). readInline: ReadMessage runs
	// it for each inline message read on its own (IMAP SEARCH, the
	// quarantine), and for a file whose key the caller does not hold
	// (it gives the key); FETCH and RETR read inline messages in
	// batches (ReadBatch). mailboxByName and mailboxHead: every IMAP
	// SELECT, and every poll of a changed mailbox (ChangesSince).
	readInline, mailboxByName, mailboxHead *sql.Stmt
	wdb                                    *sql.DB // the single writer connection
	jobs                                   chan *job
	done                                   chan struct{}
	wg                                     sync.WaitGroup
	watch                                  watchers
	closed                                 sync.Once
	now                                    func() time.Time

	// ranges are the connections of ReadBatch (rangeread.go).
	ranges *rangeReaders
	// refs are the columns that hold blob ids; only the committer's
	// goroutine uses them (blobs.go).
	refs blobRefs
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
	if err := migrate(wdb, storeSchema); err != nil {
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
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.readInline, "SELECT key, data FROM blobs WHERE id = ?"},
		{&s.mailboxByName, "SELECT " + mailboxCols + " FROM mailboxes WHERE user_id = ? AND name = ?"},
		{&s.mailboxHead, mailboxHeadQuery},
	} {
		if *p.stmt, err = rdb.Prepare(p.query); err != nil {
			s.closeStatements()
			rdb.Close()
			wdb.Close()
			return nil, fmt.Errorf("open index: %w", err)
		}
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
		err = errors.Join(s.closeStatements(), s.rdb.Close(), s.wdb.Close())
	})
	return err
}

func (s *Store) closeStatements() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.readInline, s.mailboxByName, s.mailboxHead} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// DB returns the read-only handle on the index, for a package that keeps
// tables of its own in it (quarantine, through Migrate). Such a package
// reads only its own tables with it: the store's (users, mailboxes,
// messages, blobs, allowed_senders, state) are read through the store's
// methods, so that their layout can change with the store's migrations.
func (s *Store) DB() *sql.DB { return s.rdb }

// Ping reports whether the index answers a read, for a readiness check.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM schema_versions").Scan(&n); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}
