package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// `moat queue` works on the spool while moat runs:
//
//   - list and show read the files: a message file is renamed into place
//     whole and a state file is replaced atomically, so a reader sees one
//     version or the other, never half of one.
//   - retry, delete and bounce change what the running queue holds in
//     memory, so they go through it: the command writes ctl/NAME.cmd, the
//     queue (which polls ctl/ every second) carries it out and answers in
//     ctl/NAME.done. When no moat runs (the spool's lock file is free),
//     the command opens the queue itself and acts directly.

// Info describes a queued message.
type Info struct {
	ID      string
	From    string
	Origin  string
	Created time.Time
	Size    int64
	Rcpts   []RcptInfo
}

// RcptInfo is one recipient's state.
type RcptInfo struct {
	Addr     string
	Status   string // "pending", "sent", "failed"
	Attempts int
	Next     time.Time
	Last     string
}

// List reads the spool in dir, oldest first.
func List(dir string) ([]Info, error) {
	sp := &spool{dir: dir}
	ids, err := sp.ids()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, id := range ids {
		info, err := readInfo(sp, id)
		if err != nil {
			continue // gone meanwhile, or corrupt (the queue moves it aside)
		}
		out = append(out, info)
	}
	return out, nil
}

// Show returns a message's description and content.
func Show(dir, id string) (Info, []byte, error) {
	if !validID(id) {
		return Info{}, nil, fmt.Errorf("queue: %q is not a queue id", id)
	}
	sp := &spool{dir: dir}
	info, err := readInfo(sp, id)
	if err != nil {
		return Info{}, nil, err
	}
	_, off, err := sp.readEnvelope(id)
	if err != nil {
		return Info{}, nil, err
	}
	body, err := sp.readMessage(id, off)
	return info, body, err
}

func readInfo(sp *spool, id string) (Info, error) {
	env, _, err := sp.readEnvelope(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Info{}, fmt.Errorf("queue: no message %s", id)
		}
		return Info{}, err
	}
	st, err := sp.readState(id, len(env.Rcpts))
	if err != nil {
		return Info{}, err
	}
	info := Info{ID: id, From: env.From, Origin: env.Origin, Created: env.Created, Size: env.Size}
	for i, r := range env.Rcpts {
		status := st[i].Status
		if status == statusPending {
			status = "pending"
		}
		info.Rcpts = append(info.Rcpts, RcptInfo{Addr: r, Status: status, Attempts: st[i].Attempts, Next: st[i].Next, Last: st[i].Last})
	}
	return info, nil
}

// Command carries out an operator's command on the spool in dir: "retry"
// (every message now), "retry ID", "delete ID" or "bounce ID". It goes
// through the running moat when there is one, and waits up to timeout for
// its answer; otherwise it opens the queue itself with cfg and opts.
func Command(ctx context.Context, cfg Config, opts Options, cmd string, timeout time.Duration) error {
	if err := checkCommand(cmd); err != nil {
		return err
	}
	q, err := Open(cfg, opts)
	if err == nil {
		defer q.Close(ctx)
		return q.Do(cmd)
	}
	if !errors.Is(err, ErrLocked) {
		return err
	}
	return ask(ctx, opts.Dir, cmd, timeout)
}

// ask hands cmd to the running moat through ctl/ and waits up to timeout
// for its answer.
func ask(ctx context.Context, dir, cmd string, timeout time.Duration) error {
	name := newID(time.Now())
	ctl := filepath.Join(dir, "ctl")
	tmp := filepath.Join(ctl, name+".tmp")
	if err := os.WriteFile(tmp, []byte(cmd), 0o600); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(ctl, name+".cmd")); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	done := filepath.Join(ctl, name+".done")
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(done); err == nil {
			os.Remove(done)
			if ans := strings.TrimSpace(string(b)); ans != "ok" {
				return errors.New(ans)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	os.Remove(filepath.Join(ctl, name+".cmd"))
	return fmt.Errorf("queue: the running moat did not answer within %s", timeout)
}

// Drop queues a message from another process than the running moat (moat
// quarantine release), as Postfix's pickup takes what sendmail drops:
// with no moat running it is queued directly and sent at the next start;
// otherwise it is written into the spool (fsync'd, as by Enqueue) and the
// running queue is asked to take it ("adopt ID"). A moat that stops before
// it does finds the message at its next start, so once Drop returns an id
// the message is queued either way.
func Drop(ctx context.Context, cfg Config, opts Options, m *Message, timeout time.Duration) (string, error) {
	if len(m.Rcpts) == 0 {
		return "", errors.New("queue: a message without recipients")
	}
	probe := &Queue{opts: opts}
	for _, r := range m.Rcpts {
		if _, _, _, err := probe.destOf(r); err != nil {
			return "", err
		}
	}
	q, err := Open(cfg, opts)
	if err == nil {
		defer q.Close(ctx)
		return q.Enqueue(ctx, m)
	}
	if !errors.Is(err, ErrLocked) {
		return "", err
	}
	sp := &spool{dir: opts.Dir}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	id := newID(now)
	env := envelope{From: m.From, Rcpts: append([]string(nil), m.Rcpts...), Origin: defaultString(m.Origin, "inbound"), Created: now.UTC()}
	if _, err := sp.write(id, env, m.Header, m.Body); err != nil {
		return "", err
	}
	if err := ask(ctx, opts.Dir, "adopt "+id, timeout); err != nil && opts.Log != nil {
		opts.Log.Warn("queue: the running moat has not taken the message yet; it will at its next start", "id", id, "err", err)
	}
	return id, nil
}

// Dropper is an Enqueuer for commands run beside a moat: each message
// goes through Drop.
func Dropper(cfg Config, opts Options) Enqueuer { return dropper{cfg, opts} }

type dropper struct {
	cfg  Config
	opts Options
}

func (d dropper) Enqueue(ctx context.Context, m *Message) (string, error) {
	return Drop(ctx, d.cfg, d.opts, m, 10*time.Second)
}

func checkCommand(cmd string) error {
	f := strings.Fields(cmd)
	switch {
	case len(f) == 1 && f[0] == "retry":
		return nil
	case len(f) == 2 && (f[0] == "retry" || f[0] == "delete" || f[0] == "bounce" || f[0] == "adopt"):
		if !validID(f[1]) {
			return fmt.Errorf("queue: %q is not a queue id", f[1])
		}
		return nil
	}
	return fmt.Errorf("queue: unknown command %q", cmd)
}

// serveControl carries out the commands waiting in ctl/.
func (q *Queue) serveControl() {
	ctl := filepath.Join(q.spool.dir, "ctl")
	ents, err := os.ReadDir(ctl)
	if err != nil {
		return
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".cmd")
		if !ok {
			continue
		}
		p := filepath.Join(ctl, e.Name())
		b, err := os.ReadFile(p)
		os.Remove(p)
		if err != nil {
			continue
		}
		ans := "ok"
		if err := q.Do(string(b)); err != nil {
			ans = err.Error()
		}
		q.log.Info("queue: operator command", "cmd", string(b), "answer", ans)
		os.WriteFile(filepath.Join(ctl, name+".done"), []byte(ans+"\n"), 0o600)
	}
}

// Do carries out an operator's command (see Command).
func (q *Queue) Do(cmd string) error {
	if err := checkCommand(cmd); err != nil {
		return err
	}
	f := strings.Fields(cmd)
	if len(f) == 1 {
		q.RetryAll()
		return nil
	}
	switch f[0] {
	case "retry":
		return q.Retry(f[1])
	case "delete":
		return q.Delete(f[1])
	case "adopt":
		return q.adopt(f[1])
	default:
		return q.Bounce(f[1])
	}
}

// adopt takes into the schedule a message another process wrote into the
// spool (Drop).
func (q *Queue) adopt(id string) error {
	q.mu.Lock()
	_, have := q.entries[id]
	q.mu.Unlock()
	if have {
		return nil
	}
	env, off, err := q.spool.readEnvelope(id)
	if err != nil {
		return err
	}
	st, err := q.spool.readState(id, len(env.Rcpts))
	if err != nil {
		return err
	}
	q.admit(&entry{id: id, env: env, off: off, st: st})
	q.log.Info("queue: queued", "id", id, "from", env.From, "rcpts", len(env.Rcpts), "size", env.Size, "origin", env.Origin)
	q.obs.Queued(env.Origin)
	return nil
}

// RetryAll makes every waiting delivery due now.
func (q *Queue) RetryAll() {
	q.mu.Lock()
	ids := make([]string, 0, len(q.entries))
	for id := range q.entries {
		ids = append(ids, id)
	}
	q.mu.Unlock()
	for _, id := range ids {
		q.Retry(id)
	}
}

// lockEntry returns the entry of id with q.mu held, or an error (and
// q.mu free) when there is none.
func (q *Queue) lockEntry(id string) (*entry, error) {
	q.mu.Lock()
	e := q.entries[id]
	if e == nil {
		q.mu.Unlock()
		return nil, fmt.Errorf("queue: no message %s", id)
	}
	return e, nil
}

// Retry makes a message's waiting deliveries due now.
func (q *Queue) Retry(id string) error {
	now := q.now()
	e, err := q.lockEntry(id)
	if err != nil {
		return err
	}
	for _, j := range e.jobs {
		if !j.running {
			j.next = now
			if j.idx >= 0 {
				heap.Fix(&q.due, j.idx)
			}
		}
	}
	q.mu.Unlock()
	e.mu.Lock()
	for i := range e.st {
		if e.st[i].Status == statusPending {
			e.st[i].Next = time.Time{}
		}
	}
	e.mu.Unlock()
	q.poke()
	return q.record(e, false)
}

// Delete removes a message without a bounce. A delivery in progress
// finishes, but its result is not recorded.
func (q *Queue) Delete(id string) error {
	e, err := q.lockEntry(id)
	if err != nil {
		return err
	}
	q.forget(e)
	q.mu.Unlock()
	q.log.Info("queue: deleted by the operator", "id", id)
	return q.spool.remove(id)
}

// forget takes e out of the schedule; q.mu is held.
func (q *Queue) forget(e *entry) {
	e.deleted = true
	for _, j := range e.jobs {
		if j.idx >= 0 {
			heap.Remove(&q.due, j.idx)
		}
		if b := q.blocked[j.dest]; len(b) > 0 {
			for i, x := range b {
				if x == j {
					q.blocked[j.dest] = append(b[:i:i], b[i+1:]...)
					break
				}
			}
		}
	}
	delete(q.entries, e.id)
}

// Bounce gives up a message: its pending recipients fail with a DSN to
// the sender, and it leaves the queue.
func (q *Queue) Bounce(id string) error {
	e, err := q.lockEntry(id)
	if err != nil {
		return err
	}
	for _, j := range e.jobs {
		if j.running {
			q.mu.Unlock()
			return fmt.Errorf("queue: %s is being delivered; try again in a moment", id)
		}
	}
	q.forget(e)
	q.mu.Unlock()
	var failed []dsnRcpt
	e.mu.Lock()
	for i := range e.st {
		if e.st[i].Status == statusPending {
			o := perm("5.3.0", "delivery cancelled by the administrator")
			if e.st[i].Last != "" {
				o.reply += "; last: " + e.st[i].Last
			}
			failed = append(failed, dsnRcpt{addr: e.env.Rcpts[i], o: o})
			e.st[i].Status = statusFailed
		}
	}
	e.mu.Unlock()
	if err := q.notify(e, failed, false); err != nil {
		return err
	}
	q.log.Info("queue: bounced by the operator", "id", id, "rcpts", len(failed))
	return q.spool.remove(id)
}
