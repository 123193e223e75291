package mailstore

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// ReadBatch runs its one query on connections of its own, through SQLite's
// C API (modernc.org/sqlite/lib) rather than database/sql. The driver
// copies every BLOB it returns into a new Go slice and database/sql adds
// its own layers per row: for an IMAP FETCH of 10,000 messages of 10 KB
// that was 100 MB of garbage (the collector ran some 50 times, on the
// CPU the client needed) and about half of the server's CPU time. Here a
// row's content is copied once, from SQLite's memory into the batch.

// rangeReader is one read-only connection with readRangeQuery prepared on
// it. It is not safe for concurrent use: rangeReaders hands each to one
// caller at a time, at most maxRangeReaders at once.
type rangeReader struct {
	tls  *libc.TLS
	db   uintptr // sqlite3*
	stmt uintptr // sqlite3_stmt*
}

// ptrSize is the size of a C pointer.
const ptrSize = int(unsafe.Sizeof(uintptr(0)))

// cMem turns an address in SQLite's memory (never Go's) into a pointer.
func cMem(p uintptr) unsafe.Pointer { return unsafe.Add(nil, p) }

const (
	// maxRangeReaders bounds the connections of range reads, like the
	// eight of the database/sql reader pool.
	maxRangeReaders = 8
	// rangeReaderCache is each connection's page cache: enough for the
	// inner b-tree pages; the content passes through once.
	rangeReaderCache = "PRAGMA cache_size = -512"
)

// rangeReaders is the pool of range readers of one index.
type rangeReaders struct {
	path  string
	slots chan struct{} // one per reader in use

	mu     sync.Mutex
	idle   []*rangeReader
	closed bool
}

func newRangeReaders(path string) *rangeReaders {
	return &rangeReaders{path: path, slots: make(chan struct{}, maxRangeReaders)}
}

// read runs readRangeQuery for a mailbox and UID range and appends the rows
// to b.
func (p *rangeReaders) read(ctx context.Context, mailboxID int64, first, last uint32, b *MessageBatch) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	r, err := p.get()
	if err != nil {
		return err
	}
	err = r.read(ctx, mailboxID, first, last, b)
	p.put(r)
	return err
}

func (p *rangeReaders) get() (*rangeReader, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		r := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return r, nil
	}
	p.mu.Unlock()
	return openRangeReader(p.path)
}

func (p *rangeReaders) put(r *rangeReader) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		r.close()
		return
	}
	p.idle = append(p.idle, r)
}

// close closes the idle readers; readers in use are closed when they come
// back.
func (p *rangeReaders) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, r := range p.idle {
		r.close()
	}
	p.idle = nil
}

func openRangeReader(path string) (*rangeReader, error) {
	r := &rangeReader{tls: libc.NewTLS()}
	if err := r.open(path); err != nil {
		r.close()
		return nil, fmt.Errorf("open index reader: %w", err)
	}
	return r, nil
}

func (r *rangeReader) open(path string) error {
	name, err := libc.CString("file:" + path + "?mode=ro")
	if err != nil {
		return err
	}
	defer libc.Xfree(r.tls, name)
	// The out-parameters of open and prepare, in C memory.
	out := r.tls.Alloc(ptrSize)
	defer r.tls.Free(ptrSize)
	rc := sqlite3.Xsqlite3_open_v2(r.tls, name, out,
		sqlite3.SQLITE_OPEN_READONLY|sqlite3.SQLITE_OPEN_URI|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	// sqlite3_open_v2 may give a handle even when it fails: close takes
	// care of it.
	r.db = *(*uintptr)(cMem(out))
	if rc != sqlite3.SQLITE_OK {
		return r.fail(rc)
	}
	// The same wait as the database/sql connections when the writer
	// holds a lock (in WAL mode, only while it recovers the log).
	sqlite3.Xsqlite3_busy_timeout(r.tls, r.db, 10000)
	for _, q := range []string{rangeReaderCache, readRangeQuery} {
		text, err := libc.CString(q)
		if err != nil {
			return err
		}
		if q == rangeReaderCache {
			rc = sqlite3.Xsqlite3_exec(r.tls, r.db, text, 0, 0, 0)
		} else {
			rc = sqlite3.Xsqlite3_prepare_v2(r.tls, r.db, text, -1, out, 0)
			r.stmt = *(*uintptr)(cMem(out))
		}
		libc.Xfree(r.tls, text)
		if rc != sqlite3.SQLITE_OK {
			return r.fail(rc)
		}
	}
	return nil
}

// fail describes a failed call by its result code and the connection's
// message.
func (r *rangeReader) fail(rc int32) error {
	msg := "no connection"
	if r.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(r.tls, r.db))
	}
	return fmt.Errorf("sqlite: %s (%d)", msg, rc)
}

func (r *rangeReader) close() {
	if r.stmt != 0 {
		sqlite3.Xsqlite3_finalize(r.tls, r.stmt)
		r.stmt = 0
	}
	if r.db != 0 {
		sqlite3.Xsqlite3_close_v2(r.tls, r.db)
		r.db = 0
	}
	r.tls.Close()
}

// read runs readRangeQuery and appends each row to b. A canceled context
// stops it between rows.
func (r *rangeReader) read(ctx context.Context, mailboxID int64, first, last uint32, b *MessageBatch) error {
	defer sqlite3.Xsqlite3_reset(r.tls, r.stmt)
	for i, v := range []int64{mailboxID, int64(first), int64(last)} {
		if rc := sqlite3.Xsqlite3_bind_int64(r.tls, r.stmt, int32(i+1), v); rc != sqlite3.SQLITE_OK {
			return r.fail(rc)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch rc := sqlite3.Xsqlite3_step(r.tls, r.stmt); rc {
		case sqlite3.SQLITE_DONE:
			return nil
		case sqlite3.SQLITE_ROW:
			uid := uint32(sqlite3.Xsqlite3_column_int64(r.tls, r.stmt, 0))
			// The pointer is SQLite's, valid until the next step:
			// copy the content out at once.
			p := sqlite3.Xsqlite3_column_blob(r.tls, r.stmt, 1)
			n := int(sqlite3.Xsqlite3_column_bytes(r.tls, r.stmt, 1))
			if n > 0 {
				b.data = append(b.data, unsafe.Slice((*byte)(cMem(p)), n)...)
			}
			b.uids = append(b.uids, uid)
			b.ends = append(b.ends, len(b.data))
		default:
			return r.fail(rc)
		}
	}
}
