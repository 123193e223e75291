package listen

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by Acceptor.Serve and Acceptor.Close once the
// acceptor is closed.
var ErrClosed = errors.New("listen: acceptor closed")

// Acceptor runs the accept loops of one server (IMAP, POP3) over any
// number of listeners: it accepts until closed, waits out the accept
// failures that pass (TemporaryAcceptError) instead of stopping, and
// closes every listener it serves when the server closes. What to do
// with a connection is the server's. It is safe for concurrent use.
type Acceptor struct {
	name string
	log  *slog.Logger
	done chan struct{}

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
}

// NewAcceptor returns an acceptor for the server called name ("imap",
// "pop3": in its log lines and errors). log may be nil for slog.Default.
func NewAcceptor(name string, log *slog.Logger) *Acceptor {
	if log == nil {
		log = slog.Default()
	}
	return &Acceptor{name: name, log: log, done: make(chan struct{}), listeners: make(map[net.Listener]struct{})}
}

// Backoff bounds the wait after a failed Accept: it starts at the lower
// bound and doubles with each further failure up to the upper one.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Serve accepts connections on l and hands each to handle, until Close
// (it returns nil) or an accept error that will not pass (it returns it,
// as "<name> accept: ..."). A passing error is logged and Accept is tried
// again after a pause. handle runs on the accept loop: the next Accept
// waits for it. Serve returns ErrClosed when Close came first.
func (a *Acceptor) Serve(l net.Listener, handle func(net.Conn)) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	a.listeners[l] = struct{}{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.listeners, l)
		a.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if a.Closed() {
				return nil
			}
			if !TemporaryAcceptError(err) {
				return fmt.Errorf("%s accept: %w", a.name, err)
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			a.log.Warn(a.name+" accept failed; retrying", "err", err, "in", backoff)
			if !a.pause(backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		handle(c)
	}
}

// Done returns a channel that Close closes.
func (a *Acceptor) Done() <-chan struct{} { return a.done }

// Closed reports whether Close has been called.
func (a *Acceptor) Closed() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Close closes Done and every listener being served, so that every Serve
// returns; it returns what closing them failed with, or ErrClosed when
// the acceptor was closed already.
func (a *Acceptor) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	a.closed = true
	close(a.done)
	var errs []error
	for l := range a.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pause waits d; it returns false when the acceptor closes first.
func (a *Acceptor) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.done:
		return false
	}
}
