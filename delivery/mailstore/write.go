package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// Tx is a write transaction on the index. Writes run through the group
// committer: many concurrent Update calls share one SQLite transaction and
// one WAL fsync, each inside its own savepoint so that one failing job
// rolls back alone.
type Tx struct {
	tx        *sql.Tx
	refs      *blobRefs // the store's, read and written by the committer only
	touched   map[int64]struct{}
	dropBlobs []string
}

// Exec runs a statement in the transaction. It is for the tables of the
// caller's own Schema (the quarantine's verdict records) and no others:
// the store's tables change only through its typed methods (Mailbox,
// CopyMessages, RemoveMessages, DropBlobIfUnreferenced, SetState, ...),
// which keep UIDs, modification sequences, watchers and blob files right.
func (tx *Tx) Exec(query string, args ...any) (sql.Result, error) {
	return tx.tx.Exec(query, args...)
}

// Query runs a query in the transaction, on the caller's own tables only
// (see Exec).
func (tx *Tx) Query(query string, args ...any) (*sql.Rows, error) {
	return tx.tx.Query(query, args...)
}

// QueryRow runs a query of at most one row in the transaction, on the
// caller's own tables only (see Exec).
func (tx *Tx) QueryRow(query string, args ...any) *sql.Row {
	return tx.tx.QueryRow(query, args...)
}

// Touch records that a mailbox changed, so that its watchers (IMAP IDLE)
// are told once the transaction commits.
func (tx *Tx) Touch(mailboxID int64) {
	if tx.touched == nil {
		tx.touched = make(map[int64]struct{})
	}
	tx.touched[mailboxID] = struct{}{}
}

type job struct {
	ctx  context.Context
	fn   func(*Tx) error
	err  error
	done chan struct{}
	tx   Tx
}

// Update runs fn in a write transaction and returns once it is durably
// committed (or rolled back when fn or the commit fails).
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	j := &job{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case s.jobs <- j:
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the job runs even if ctx ends: a caller must not
	// believe a write failed when it may have committed.
	<-j.done
	return j.err
}

func (s *Store) commitLoop() {
	defer s.wg.Done()
	batch := make([]*job, 0, s.cfg.MaxBatch)
	for {
		var first *job
		select {
		case first = <-s.jobs:
		case <-s.done:
			// Drain what was queued before Close.
			for {
				select {
				case j := <-s.jobs:
					s.commit([]*job{j})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit runs a batch of jobs in one transaction.
func (s *Store) commit(batch []*job) {
	finish := func(err error) {
		for _, j := range batch {
			if j.err == nil {
				j.err = err
			}
			close(j.done)
		}
	}
	sqlTx, err := s.wdb.Begin()
	if err != nil {
		finish(fmt.Errorf("begin: %w", err))
		return
	}
	ok := 0
	for _, j := range batch {
		j.tx = Tx{tx: sqlTx, refs: &s.refs}
		if _, err := sqlTx.Exec("SAVEPOINT job"); err != nil {
			j.err = fmt.Errorf("savepoint: %w", err)
			continue
		}
		if err := j.fn(&j.tx); err != nil {
			j.err = err
			if _, rerr := sqlTx.Exec("ROLLBACK TO job"); rerr != nil {
				sqlTx.Rollback()
				finish(fmt.Errorf("rollback savepoint: %w", rerr))
				return
			}
		} else {
			ok++
		}
		sqlTx.Exec("RELEASE job")
	}
	if ok == 0 {
		sqlTx.Rollback()
		finish(nil)
		return
	}
	if err := sqlTx.Commit(); err != nil {
		finish(fmt.Errorf("commit: %w", err))
		return
	}
	for _, j := range batch {
		if j.err != nil {
			continue
		}
		for id := range j.tx.touched {
			s.watch.notify(id)
		}
		for _, key := range j.tx.dropBlobs {
			os.Remove(s.blobPath(key))
		}
	}
	finish(nil)
}
