package queue

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The spool is a folder (<data_dir>/queue) of two files per message:
//
//	ID.msg    written once: a magic line, the envelope as one JSON line,
//	          then the message (Header, then Body). It is written under
//	          tmp/, fsync'd, renamed into place, and the folder fsync'd
//	          before Enqueue returns: a message is queued iff ID.msg exists.
//	ID.state  the recipients' state (JSON), replaced atomically (written
//	          under tmp/, fsync'd, renamed) after each attempt. Absent:
//	          every recipient pending, never tried.
//
// A finished message loses ID.msg first, then ID.state; a state file
// without its message is removed at start. A file that cannot be read
// back (cut short by a full disk, damaged) is moved to corrupt/ with a
// log line and a metric; the rest of the queue carries on.
//
// As Postfix's queue manager, a delivery whose remote 250 arrived just
// before a crash, and whose state was not yet written, is made again:
// SMTP delivery is at least once (RFC 5321 §6.1 accepts duplicates over
// loss).

// magic starts every message file; a format change changes its number.
const magic = "moat-queue 1\n"

// envelope is the first JSON line of a message file.
type envelope struct {
	From    string    `json:"from"`
	Rcpts   []string  `json:"rcpts"`
	Origin  string    `json:"origin"`
	Created time.Time `json:"created"`
	// Size is the byte count of the message after the envelope line: a
	// file cut short is told from a whole one.
	Size int64 `json:"size"`
}

// The states of a recipient.
const (
	statusPending = ""        // to be tried (again)
	statusSent    = "sent"    // the remote accepted it
	statusFailed  = "failed"  // permanently refused or expired, bounced
	statusDropped = "dropped" // deleted by the operator
)

// rcptState is one recipient's state.
type rcptState struct {
	Status   string    `json:"status,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
	Next     time.Time `json:"next,omitzero"`
	// Last is the last reply or fault, for `moat queue show` and DSNs.
	Last string `json:"last,omitempty"`
	// Warned is set once a delay warning went out.
	Warned bool `json:"warned,omitempty"`
}

// spool is the on-disk queue.
type spool struct {
	dir     string
	dirSync groupSync
}

// groupSync fsyncs a folder for many writers at once: a writer waits for
// an fsync that started after its rename, and concurrent writers share
// one (a group commit, as Postfix's queue shares a journal commit).
type groupSync struct {
	mu        sync.Mutex
	cond      *sync.Cond
	started   uint64
	completed uint64
	running   bool
	err       error
}

func (g *groupSync) sync(dir string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	target := g.started + 1
	for g.completed < target {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		gen := g.started
		g.mu.Unlock()
		err := syncDir(dir)
		g.mu.Lock()
		g.running = false
		g.completed, g.err = gen, err
		g.cond.Broadcast()
	}
	return g.err
}

// errCorrupt marks a file that cannot be read back.
var errCorrupt = errors.New("queue: corrupt queue file")

func openSpool(dir string) (*spool, error) {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "corrupt"), filepath.Join(dir, "ctl")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	return &spool{dir: dir}, nil
}

// clearTmp removes what a crash left in tmp/: files never renamed into
// place were never acknowledged.
func (s *spool) clearTmp() {
	ents, _ := os.ReadDir(filepath.Join(s.dir, "tmp"))
	for _, e := range ents {
		os.Remove(filepath.Join(s.dir, "tmp", e.Name()))
	}
}

// newID returns a queue id: the time in microseconds and random bits, in
// hex, so that ids sort by arrival.
func newID(now time.Time) string {
	var r [5]byte
	rand.Read(r[:])
	return fmt.Sprintf("%013x%s", now.UnixMicro(), hex.EncodeToString(r[:]))
}

// validID reports whether id can name a queue file (a CLI argument is
// checked before it becomes a path).
func validID(id string) bool {
	if len(id) != 23 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !strings.ContainsRune("0123456789abcdef", rune(id[i])) {
			return false
		}
	}
	return true
}

func (s *spool) msgPath(id string) string   { return filepath.Join(s.dir, id+".msg") }
func (s *spool) statePath(id string) string { return filepath.Join(s.dir, id+".state") }

// write stores a new message durably: file and folder fsync'd.
func (s *spool) write(id string, env envelope, header, body []byte) (int64, error) {
	env.Size = int64(len(header) + len(body))
	line, err := json.Marshal(env)
	if err != nil {
		return 0, err
	}
	tmp := filepath.Join(s.dir, "tmp", id+".msg")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	w.WriteString(magic)
	w.Write(line)
	w.WriteByte('\n')
	w.Write(header)
	w.Write(body)
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.msgPath(id))
	}
	if err == nil {
		err = s.dirSync.sync(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		os.Remove(s.msgPath(id))
		return 0, fmt.Errorf("queue: writing %s: %w", id, err)
	}
	return int64(len(magic) + len(line) + 1), nil
}

// readEnvelope reads a message file's envelope and returns the offset of
// the message in it.
func (s *spool) readEnvelope(id string) (envelope, int64, error) {
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return envelope{}, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return envelope{}, 0, err
	}
	r := bufio.NewReaderSize(f, 4096)
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != magic {
		return envelope{}, 0, fmt.Errorf("%w: %s: bad magic", errCorrupt, id)
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return envelope{}, 0, fmt.Errorf("%w: %s: envelope cut short", errCorrupt, id)
	}
	var env envelope
	if err := json.Unmarshal(line, &env); err != nil || len(env.Rcpts) == 0 {
		return envelope{}, 0, fmt.Errorf("%w: %s: bad envelope", errCorrupt, id)
	}
	off := int64(len(magic) + len(line))
	if st.Size()-off != env.Size {
		return envelope{}, 0, fmt.Errorf("%w: %s: %d bytes of message, envelope says %d", errCorrupt, id, st.Size()-off, env.Size)
	}
	return env, off, nil
}

// readState returns the recipients' state of a message of n recipients.
func (s *spool) readState(id string, n int) ([]rcptState, error) {
	b, err := os.ReadFile(s.statePath(id))
	if errors.Is(err, os.ErrNotExist) {
		return make([]rcptState, n), nil
	}
	if err != nil {
		return nil, err
	}
	var st []rcptState
	if err := json.Unmarshal(b, &st); err != nil || len(st) != n {
		return nil, fmt.Errorf("%w: %s: bad state file", errCorrupt, id)
	}
	return st, nil
}

// writeState replaces a message's state atomically. With durable (a
// recipient reached a final state) the file is fsync'd first; a state
// that only counts another deferral is not, as losing it to a power cut
// costs an early retry. The folder is not fsync'd: after a power loss the
// state before may come back, and recipients delivered since are
// delivered again (at least once); a state file damaged by the cut is
// set aside and its message delivered again whole (see load).
func (s *spool) writeState(id string, st []rcptState, durable bool) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, "tmp", id+".state")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	_, err = f.Write(b)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.statePath(id))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("queue: state of %s: %w", id, err)
	}
	return nil
}

// remove deletes a finished message: the message first, so that a crash
// between the two leaves an orphan state file, never a message without
// its state (which would be delivered again to everyone).
func (s *spool) remove(id string) error {
	if err := os.Remove(s.msgPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(s.statePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// moveAside moves a message's files to corrupt/.
func (s *spool) moveAside(id string) {
	for _, p := range []string{s.msgPath(id), s.statePath(id)} {
		os.Rename(p, filepath.Join(s.dir, "corrupt", filepath.Base(p)))
	}
}

// ids lists the messages in the spool, oldest first, and removes state
// files whose message is gone.
func (s *spool) ids() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	msgs := map[string]bool{}
	var out []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".msg"); ok && validID(id) {
			msgs[id] = true
			out = append(out, id)
		}
	}
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".state"); ok && !msgs[id] {
			os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
	return out, nil // os.ReadDir sorts by name: by arrival
}

// messageReader opens a message's content (Header then Body).
func (s *spool) messageReader(id string, off int64) (*os.File, io.Reader, error) {
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return nil, nil, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, bufio.NewReaderSize(f, 64<<10), nil
}

// readMessage returns a message's content whole.
func (s *spool) readMessage(id string, off int64) ([]byte, error) {
	b, err := os.ReadFile(s.msgPath(id))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < off {
		return nil, errCorrupt
	}
	return bytes.Clone(b[off:]), nil
}

// syncDir fsyncs a folder, so that a rename or create in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
