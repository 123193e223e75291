package throttle

import (
	"errors"
	"net/netip"
	"sync"
	"time"
)

// ErrClosing is returned by Gate.Check when the server shuts down while the
// check waits.
var ErrClosing = errors.New("server shutting down")

// Gate is the path every password check takes, whatever the protocol
// (IMAP LOGIN, POP3 USER/PASS, SASL PLAIN): the throttle's delay for the
// client and the account, a bound on the checks running at once (an
// argon2id check takes 19 MiB: without a bound, a flood of logins
// exhausts memory), the check itself, then the throttle's bookkeeping.
type Gate struct {
	th   *Throttle
	sem  chan struct{}
	done <-chan struct{}

	mu    sync.Mutex
	sleep func(time.Duration) bool
}

// NewGate returns a gate over th allowing concurrency checks at once;
// done closes when the server shuts down. th may be nil for a throttle of
// default settings (a server on its own, tests).
func NewGate(th *Throttle, concurrency int, done <-chan struct{}) *Gate {
	if th == nil {
		th = defaultThrottle()
	}
	g := &Gate{th: th, sem: make(chan struct{}, max(concurrency, 1)), done: done}
	g.sleep = g.pause
	return g
}

// Throttle returns the throttle the gate consults.
func (g *Gate) Throttle() *Throttle { return g.th }

// pause waits d; false when the server closes first.
func (g *Gate) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-g.done:
		return false
	}
}

// SetSleep replaces the wait of the throttle's delay, for tests that must
// not sleep; f returns false to act as if the server closed.
func (g *Gate) SetSleep(f func(time.Duration) bool) {
	g.mu.Lock()
	g.sleep = f
	g.mu.Unlock()
}

// Check runs check for account from ip once the throttle allows it.
// check reports whether the password was right; its error means the check
// could not be made (a store fault), which the throttle does not count.
func (g *Gate) Check(ip netip.Addr, account string, check func() (bool, error)) (bool, error) {
	if d := g.th.Delay(ip, account); d > 0 {
		g.mu.Lock()
		sleep := g.sleep
		g.mu.Unlock()
		if !sleep(d) {
			return false, ErrClosing
		}
	}
	select {
	case g.sem <- struct{}{}:
	case <-g.done:
		return false, ErrClosing
	}
	ok, err := check()
	<-g.sem
	switch {
	case err != nil:
	case ok:
		g.th.Success(ip, account)
	default:
		g.th.Failure(ip, account)
	}
	return ok, err
}
