package queue

import (
	"container/heap"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/moatmail/moat/delivery/queue/mtasts"
	"github.com/moatmail/moat/filters/resolver"
)

// Options are what the queue is built over.
type Options struct {
	// Dir is the spool folder (cmd/moat: <data_dir>/queue).
	Dir string
	// Hostname is moat's name in EHLO and in DSNs.
	Hostname string
	// Routes maps recipient domains to routes; nil: all to the Internet.
	Routes *Routes
	// Resolver looks up MX, A/AAAA and MTA-STS records.
	Resolver resolver.Resolver
	// Local delivers to recipients of local routes (the store); nil: the
	// queue refuses them at Enqueue. A bounce to a local sender goes
	// through it.
	Local func(ctx context.Context, m *Message) error
	// Observer is told of deliveries and bounces (metrics); may be nil.
	Observer Observer
	// Log receives one line per delivery decision; nil: slog.Default().
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// RootCAs verifies MX certificates under MTA-STS, and the policy
	// server's (nil: the system's roots). For tests.
	RootCAs *x509.CertPool
	// HTTPClient fetches MTA-STS policies (nil: a client with timeouts
	// and no redirects). For tests.
	HTTPClient *http.Client
}

// Queue is the durable outbound queue. It implements Enqueuer.
type Queue struct {
	cfg   Config
	opts  Options
	log   *slog.Logger
	obs   Observer
	spool *spool
	lock  *os.File
	now   func() time.Time
	sts   *mtasts.Cache
	// hostname is moat's name in EHLO and DSNs.
	hostname string
	cl       *client

	mu      sync.Mutex
	entries map[string]*entry
	due     jobHeap
	blocked map[string][]*job // due jobs whose destination is busy
	active  map[string]int    // deliveries in progress per destination
	running int
	started bool

	wake   chan struct{}
	stop   chan struct{}
	ctx    context.Context // of deliveries; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Enqueuer = (*Queue)(nil)

// entry is a queued message in memory.
type entry struct {
	id  string
	env envelope
	off int64 // of the message in its file

	mu      sync.Mutex // guards st
	st      []rcptState
	jobs    []*job // guarded by Queue.mu
	deleted bool   // guarded by Queue.mu
}

// job is the delivery of one message to one destination.
type job struct {
	e       *entry
	dest    string // "mx:example.org", "relay:<route>", "local"
	class   string // "mx", "relay", "local": bounded metric label
	route   *Route
	rcpts   []int // indexes in e.env.Rcpts
	next    time.Time
	idx     int // in the heap; -1 when out of it
	running bool
}

// ErrLocked: another process holds the spool (a running moat).
var ErrLocked = errors.New("queue: the spool is in use by a running moat")

// Open locks the spool folder and loads what it holds; Start runs the
// deliveries. A spool held by another process gives ErrLocked.
func Open(cfg Config, opts Options) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("queue config: %w", err)
	}
	sp, err := openSpool(opts.Dir)
	if err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(opts.Dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("queue: lock: %w", err)
	}
	q := &Queue{cfg: cfg, opts: opts, spool: sp, lock: lock, now: opts.Now, log: opts.Log, obs: opts.Observer,
		hostname: opts.Hostname, entries: map[string]*entry{}, blocked: map[string][]*job{}, active: map[string]int{},
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
	if q.now == nil {
		q.now = time.Now
	}
	if q.log == nil {
		q.log = slog.Default()
	}
	if q.obs == nil {
		q.obs = nopObserver{}
	}
	if q.hostname == "" {
		q.hostname, _ = os.Hostname()
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.cl = &client{hostname: q.hostname, connectTimeout: cfg.ConnectTimeout, commandTimeout: cfg.CommandTimeout, log: q.log}
	if cfg.MTASTS && opts.Resolver != nil {
		q.sts = mtasts.NewCache(opts.Resolver, opts.HTTPClient, opts.RootCAs, q.now)
		if err := q.sts.SetFile(filepath.Join(opts.Dir, "mta-sts.json")); err != nil {
			q.log.Warn("queue: MTA-STS policies of the last run not loaded; they are fetched again", "err", err)
		}
	}
	sp.clearTmp()
	if err := q.load(); err != nil {
		q.Close(context.Background())
		return nil, err
	}
	return q, nil
}

// load reads the spool into memory. A file that cannot be read back is
// moved aside.
func (q *Queue) load() error {
	ids, err := q.spool.ids()
	if err != nil {
		return err
	}
	for _, id := range ids {
		env, off, err := q.spool.readEnvelope(id)
		var st []rcptState
		if err == nil {
			st, err = q.spool.readState(id, len(env.Rcpts))
			if err != nil {
				// The message is whole; its state is not: every
				// recipient is tried again (at least once, never lost).
				os.Rename(q.spool.statePath(id), filepath.Join(q.spool.dir, "corrupt", id+".state"))
				q.log.Error("queue: unreadable state file moved aside; the message is delivered again to every recipient",
					"id", id, "err", err)
				q.obs.Corrupt()
				st, err = make([]rcptState, len(env.Rcpts)), nil
			}
		}
		if err != nil {
			q.spool.moveAside(id)
			q.log.Error("queue: unreadable queue file moved aside", "id", id, "dir", filepath.Join(q.spool.dir, "corrupt"), "err", err)
			q.obs.Corrupt()
			continue
		}
		q.admit(&entry{id: id, env: env, off: off, st: st})
	}
	return nil
}

// admit makes an entry's jobs: one per destination of its pending
// recipients.
func (q *Queue) admit(e *entry) {
	byDest := map[string]*job{}
	var order []*job
	for i, r := range e.env.Rcpts {
		if e.st[i].Status != statusPending {
			continue
		}
		dest, class, route, err := q.destOf(r)
		if err != nil {
			// A route changed since: a local domain without a local
			// deliverer. Kept, retried, until the lifetime ends.
			dest, class = "unroutable", "local"
		}
		j := byDest[dest]
		if j == nil {
			j = &job{e: e, dest: dest, class: class, route: route, next: e.st[i].Next, idx: -1}
			byDest[dest] = j
			order = append(order, j)
		}
		j.rcpts = append(j.rcpts, i)
		if e.st[i].Next.Before(j.next) {
			j.next = e.st[i].Next
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(order) == 0 { // finished before a crash took its files
		q.spool.remove(e.id)
		return
	}
	q.entries[e.id] = e
	e.jobs = order
	for _, j := range order {
		heap.Push(&q.due, j)
	}
	q.poke()
}

// destOf returns the destination of a recipient.
func (q *Queue) destOf(rcpt string) (dest, class string, route *Route, err error) {
	domain := domainOf(rcpt)
	if domain == "" {
		return "", "", nil, fmt.Errorf("queue: %q has no domain", rcpt)
	}
	r := q.opts.Routes.Lookup(domain)
	switch {
	case r == nil:
		return "mx:" + domain, "mx", nil, nil
	case r.Type() == RouteLocal:
		if q.opts.Local == nil {
			return "", "", nil, fmt.Errorf("queue: %s is a local domain: deliver it to the store", domain)
		}
		return "local", "local", r, nil
	default:
		return "relay:" + r.Name(), "relay", r, nil
	}
}

// Enqueue implements Enqueuer: the message is in the spool, fsync'd, when
// it returns.
func (q *Queue) Enqueue(ctx context.Context, m *Message) (string, error) {
	if len(m.Rcpts) == 0 {
		return "", errors.New("queue: a message without recipients")
	}
	for _, r := range m.Rcpts {
		if _, _, _, err := q.destOf(r); err != nil {
			return "", err
		}
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	now := q.now()
	id := newID(now)
	origin := defaultString(m.Origin, "inbound")
	env := envelope{From: m.From, Rcpts: append([]string(nil), m.Rcpts...), Origin: origin, Created: now.UTC()}
	off, err := q.spool.write(id, env, m.Header, m.Body)
	if err != nil {
		return "", err
	}
	env.Size = int64(len(m.Header) + len(m.Body))
	q.admit(&entry{id: id, env: env, off: off, st: make([]rcptState, len(m.Rcpts))})
	q.log.Info("queue: queued", "id", id, "from", m.From, "rcpts", len(m.Rcpts), "size", env.Size, "origin", origin)
	q.obs.Queued(origin)
	return id, nil
}

// poke wakes the dispatcher.
func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Start runs the dispatcher and its deliveries until Close.
func (q *Queue) Start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started {
		return
	}
	q.started = true
	q.wg.Add(1)
	go q.dispatch()
}

// ctlPoll is how often the dispatcher looks for `moat queue` commands.
const ctlPoll = time.Second

func (q *Queue) dispatch() {
	defer q.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	lastCtl := time.Time{}
	for {
		q.mu.Lock()
		now := q.now()
		for q.due.Len() > 0 && q.running < q.cfg.Workers {
			j := q.due[0]
			if j.next.After(now) {
				break
			}
			heap.Pop(&q.due)
			if q.active[j.dest] >= q.limit(j) {
				q.blocked[j.dest] = append(q.blocked[j.dest], j)
				continue
			}
			q.startJob(j)
		}
		wait := ctlPoll
		if q.due.Len() > 0 && q.running < q.cfg.Workers {
			wait = min(wait, max(q.due[0].next.Sub(now), 0))
		}
		q.mu.Unlock()
		if time.Since(lastCtl) >= ctlPoll {
			q.cl.pool.sweep(false)
			q.serveControl()
			lastCtl = time.Now()
		}
		timer.Reset(wait)
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-timer.C:
		}
	}
}

// limit is the concurrency limit of a job's destination.
func (q *Queue) limit(j *job) int {
	if j.route != nil && j.route.cfg.Concurrency > 0 {
		return j.route.cfg.Concurrency
	}
	return q.cfg.PerDestination
}

// startJob runs j; q.mu is held.
func (q *Queue) startJob(j *job) {
	j.running = true
	q.running++
	q.active[j.dest]++
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		again := q.run(j)
		q.mu.Lock()
		j.running = false
		q.running--
		q.active[j.dest]--
		if q.active[j.dest] == 0 {
			delete(q.active, j.dest)
		}
		if b := q.blocked[j.dest]; len(b) > 0 {
			heap.Push(&q.due, b[0])
			if len(b) == 1 {
				delete(q.blocked, j.dest)
			} else {
				q.blocked[j.dest] = b[1:]
			}
		}
		if again && !j.e.deleted {
			heap.Push(&q.due, j)
		} else {
			q.dropJob(j)
		}
		q.mu.Unlock()
		q.poke()
	}()
}

// dropJob forgets a finished job, and its entry once it has no job left;
// q.mu is held.
func (q *Queue) dropJob(j *job) {
	e := j.e
	for i, x := range e.jobs {
		if x == j {
			e.jobs = append(e.jobs[:i:i], e.jobs[i+1:]...)
			break
		}
	}
	if len(e.jobs) == 0 {
		delete(q.entries, e.id)
	}
}

// backoff is the wait after a recipient's n-th failed attempt.
func (q *Queue) backoff(n int) time.Duration {
	d := q.cfg.MinBackoff
	for i := 1; i < n && d < q.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, q.cfg.MaxBackoff)
}

// run makes one attempt of j and records it. It reports whether j has
// recipients left to retry (j.rcpts and j.next are updated).
func (q *Queue) run(j *job) bool {
	e := j.e
	rcpts := make([]string, len(j.rcpts))
	for k, i := range j.rcpts {
		rcpts[k] = e.env.Rcpts[i]
	}
	var outs []outcome
	if j.dest == "unroutable" {
		outs = fill(len(rcpts), temp("4.3.5", "no route to this domain in the configuration"))
	} else {
		outs = q.deliver(q.ctx, j, rcpts)
	}
	now := q.now()
	lifetime := q.cfg.Lifetime
	if e.env.Origin == "bounce" {
		lifetime = q.cfg.BounceLifetime
	}
	expired := now.Sub(e.env.Created) >= lifetime
	var failed, delayed []dsnRcpt
	var left []int
	next := time.Time{}
	q.mu.Lock()
	deleted := e.deleted
	q.mu.Unlock()
	if deleted {
		return false
	}
	e.mu.Lock()
	prev := append([]rcptState(nil), e.st...)
	final := false
	for k, i := range j.rcpts {
		o, s := outs[k], &e.st[i]
		s.Attempts++
		s.Last = o.reply
		result := ""
		final = final || o.kind != kindTemp || expired
		switch {
		case o.kind == kindSent:
			s.Status = statusSent
			result = "sent"
		case o.kind == kindPerm:
			s.Status = statusFailed
			failed = append(failed, dsnRcpt{addr: e.env.Rcpts[i], o: o})
			result = "bounced"
		case expired:
			s.Status = statusFailed
			o.reply = "expired after " + now.Sub(e.env.Created).Round(time.Second).String() + " in the queue; last: " + o.reply
			failed = append(failed, dsnRcpt{addr: e.env.Rcpts[i], o: o})
			result = "expired"
		default:
			s.Next = now.Add(q.backoff(s.Attempts))
			left = append(left, i)
			if next.IsZero() || s.Next.Before(next) {
				next = s.Next
			}
			result = "deferred"
			if q.cfg.DelayWarning > 0 && !s.Warned && now.Sub(e.env.Created) >= q.cfg.DelayWarning {
				s.Warned = true
				delayed = append(delayed, dsnRcpt{addr: e.env.Rcpts[i], o: o})
			}
		}
		q.log.Info("queue: delivery", "id", e.id, "to", e.env.Rcpts[i], "dest", j.dest, "result", result,
			"remote", o.remote, "reply", o.reply, "attempt", s.Attempts, "delay", now.Sub(e.env.Created).Round(time.Millisecond))
		latency := time.Duration(0)
		if result != "deferred" {
			latency = now.Sub(e.env.Created)
		}
		q.obs.Delivery(result, j.class, latency)
	}
	e.mu.Unlock()
	if err := q.notify(e, failed, false); err != nil {
		// No bounce could be queued: the failed recipients stay pending
		// (retried, refused again), so that no failure goes unreported.
		q.log.Error("queue: bounce not queued; recipients kept", "id", e.id, "err", err)
		e.mu.Lock()
		for _, f := range failed {
			for _, i := range j.rcpts {
				if e.env.Rcpts[i] == f.addr {
					e.st[i] = prev[i]
					e.st[i].Next = now.Add(q.cfg.MinBackoff)
					left = append(left, i)
					next = e.st[i].Next
				}
			}
		}
		e.mu.Unlock()
	}
	if err := q.notify(e, delayed, true); err != nil {
		q.log.Error("queue: delay warning not queued", "id", e.id, "err", err)
	}
	if err := q.record(e, final); err != nil {
		q.log.Error("queue: recording the attempt failed", "id", e.id, "err", err)
	}
	if len(left) == 0 {
		return false
	}
	j.rcpts, j.next = left, next
	return true
}

// record writes an entry's state, or removes its files once no
// recipient is pending.
func (q *Queue) record(e *entry, durable bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.st {
		if s.Status == statusPending {
			return q.spool.writeState(e.id, e.st, durable)
		}
	}
	q.log.Info("queue: removed", "id", e.id)
	return q.spool.remove(e.id)
}

// notify queues a DSN of failed (or, with delay, delayed) recipients to
// the envelope sender. A message from the null sender gets none (RFC 5321
// §4.5.5: no bounce of a bounce): it is logged and dropped.
func (q *Queue) notify(e *entry, rcpts []dsnRcpt, delay bool) error {
	if len(rcpts) == 0 {
		return nil
	}
	if e.env.From == "" {
		if !delay {
			for _, r := range rcpts {
				q.log.Warn("queue: bounce dropped: the message has the null sender", "id", e.id, "to", r.addr, "reply", r.o.reply)
			}
			q.obs.Bounce("dropped")
		}
		return nil
	}
	orig, err := q.originalHeader(e)
	if err != nil {
		return err
	}
	body := buildDSN(dsnInfo{hostname: q.hostname, id: e.id, from: e.env.From, arrival: e.env.Created,
		now: q.now(), rcpts: rcpts, delayed: delay, header: orig, lifetime: q.cfg.Lifetime})
	if _, err := q.Enqueue(context.Background(), &Message{From: "", Rcpts: []string{e.env.From}, Body: body, Origin: "bounce"}); err != nil {
		return err
	}
	kind := "bounce"
	if delay {
		kind = "delay"
	}
	q.log.Info("queue: DSN queued", "id", e.id, "to", e.env.From, "kind", kind, "rcpts", len(rcpts))
	q.obs.Bounce(kind)
	return nil
}

// originalHeader returns the header section of a queued message.
func (q *Queue) originalHeader(e *entry) ([]byte, error) {
	f, r, err := q.spool.messageReader(e.id, e.off)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readHeader(io.LimitReader(r, 1<<20))
}

// deliver makes one attempt of a job: local, relay or MX.
func (q *Queue) deliver(ctx context.Context, j *job, rcpts []string) []outcome {
	e := j.e
	if j.dest == "local" {
		body, err := q.spool.readMessage(e.id, e.off)
		if err != nil {
			return fill(len(rcpts), temp("4.3.0", "reading the queue file: "+err.Error()))
		}
		// One recipient at a time: one unknown user must not fail the
		// others.
		outs := make([]outcome, len(rcpts))
		for i, r := range rcpts {
			err := q.opts.Local(ctx, &Message{From: e.env.From, Rcpts: []string{r}, Body: body, Origin: e.env.Origin})
			switch {
			case err == nil:
				outs[i] = sent("local", "250 2.0.0 delivered to the store")
			case errors.Is(err, ErrNoRecipient):
				outs[i] = perm("5.1.1", "no such mailbox")
			default:
				outs[i] = temp("4.3.0", "local delivery: "+err.Error())
			}
		}
		return outs
	}
	open := func() (io.ReadCloser, int64, error) {
		f, r, err := q.spool.messageReader(e.id, e.off)
		if err != nil {
			return nil, 0, err
		}
		return struct {
			io.Reader
			io.Closer
		}{r, f}, e.env.Size, nil
	}
	var targets []target
	if j.route != nil {
		targets = j.route.targets()
	} else {
		var early []outcome
		targets, early = q.mxTargets(ctx, domainOf(rcpts[0]))
		if early != nil {
			return fill(len(rcpts), early[0])
		}
	}
	var last outcome
	for _, t := range targets {
		res, err := q.cl.transmit(ctx, t, e.env.From, rcpts, open)
		if err == nil {
			return res
		}
		var he *hostError
		if errors.As(err, &he) {
			last = he.out
			if he.result != "" {
				// RFC 8460 result types, for a TLS-RPT report built from
				// the logs.
				q.log.Warn("queue: TLS failure", "id", e.id, "host", t.name, "addr", t.addr, "result-type", he.result,
					"policy", policyType(t), "domain", domainOf(rcpts[0]), "err", he.out.reply)
			} else {
				q.log.Info("queue: host failed, trying the next", "id", e.id, "host", t.name, "addr", t.addr, "err", he.out.reply)
			}
			continue
		}
		last = temp("4.4.2", err.Error())
	}
	if last.reply == "" {
		last = temp("4.4.4", "no host to deliver to")
	}
	return fill(len(rcpts), last)
}

func policyType(t target) string {
	if t.sts {
		return "sts"
	}
	if t.class == "relay" {
		return "relay"
	}
	return "no-policy-found"
}

// Close stops the dispatcher, lets deliveries in progress finish within
// ctx (then cancels them: they are retried after a restart), and unlocks
// the spool.
func (q *Queue) Close(ctx context.Context) error {
	select {
	case <-q.stop:
		return nil
	default:
		close(q.stop)
	}
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		q.cancel()
		<-done
	}
	q.cancel()
	q.cl.pool.sweep(true)
	if q.lock != nil {
		q.lock.Close()
	}
	return nil
}

// jobHeap orders jobs by their next attempt.
type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, k int) bool { return h[i].next.Before(h[k].next) }
func (h jobHeap) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].idx, h[k].idx = i, k
}
func (h *jobHeap) Push(x any) {
	j := x.(*job)
	j.idx = len(*h)
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.idx = -1
	return j
}
