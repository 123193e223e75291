package pop3d

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/gateway/listen"
	"github.com/moatmail/moat/gateway/throttle"
)

// ErrServerClosed is returned by Serve and Close after Close.
var ErrServerClosed = errors.New("pop3d: server closed")

// Server is a POP3 server over a mailstore.Store.
type Server struct {
	// Observer, when set before Serve is first called, is told about
	// refused logins. Nil is allowed.
	Observer Observer

	cfg       Config
	cfgErr    error
	store     *mailstore.Store
	tlsConfig *tls.Config
	log       *slog.Logger

	accept *listen.Acceptor
	gate   *throttle.Gate // every password check goes through it
	conns  sync.WaitGroup
	nextID atomic.Uint64
	// panics counts sessions ended by a recovered panic (tests assert
	// that it stays zero).
	panics atomic.Int64

	mu     sync.Mutex // guards active
	active map[net.Conn]struct{}

	// locked holds the users whose maildrop a session has open.
	lockMu sync.Mutex
	locked map[int64]struct{}

	// authenticate is store.Authenticate; the fuzz test replaces it with
	// a check that costs less than argon2id.
	authenticate func(ctx context.Context, address, password string) (mailstore.User, error)
}

// New returns a server over store. tlsConfig enables STLS on plain
// listeners (nil: no STLS, so only loopback clients with
// AllowPlaintextLoopback can log in there). th may be nil for a throttle
// with default settings. cfg is validated here; an invalid cfg makes Serve
// return the error.
func New(cfg Config, store *mailstore.Store, tlsConfig *tls.Config, th *throttle.Throttle, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		store:     store,
		tlsConfig: tlsConfig,
		log:       log,
		accept:    listen.NewAcceptor("pop3", log),
		active:    make(map[net.Conn]struct{}),
		locked:    make(map[int64]struct{}),
	}
	s.cfgErr = cfg.Validate()
	s.cfg = cfg
	s.gate = throttle.NewGate(th, cfg.AuthConcurrency, s.accept.Done())
	if store != nil {
		s.authenticate = store.Authenticate
	}
	return s
}

// Serve accepts connections on l until Close. l is either a plain listener
// (STLS is offered when the server has a TLS configuration) or a
// tls.NewListener one (POP3S, RFC 8314 §3.3); TLS is detected per
// connection.
func (s *Server) Serve(l net.Listener) error {
	if s.cfgErr != nil {
		return fmt.Errorf("pop3 config: %w", s.cfgErr)
	}
	err := s.accept.Serve(l, func(c net.Conn) {
		if !s.track(c) {
			c.Close() // closing: the next Accept ends Serve
			return
		}
		go s.handle(c)
	})
	if errors.Is(err, listen.ErrClosed) {
		return ErrServerClosed
	}
	return err
}

// track registers a connection for Close; false once the server is
// closed. Close closes the acceptor before it takes mu to close the
// active connections, so a connection is either refused here or closed
// there.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accept.Closed() {
		return false
	}
	s.active[c] = struct{}{}
	s.conns.Add(1)
	return true
}

// handle runs one connection to its end.
func (s *Server) handle(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.active, c)
		s.mu.Unlock()
		s.conns.Done()
	}()
	sess := newSession(s, c)
	defer func() {
		// A bug must cost one connection, not the process; the
		// maildrop lock is released and nothing is deleted.
		if v := recover(); v != nil {
			s.panics.Add(1)
			sess.log.Error("pop3 session panicked", "panic", v, "stack", string(debug.Stack()))
		}
		sess.end()
	}()
	sess.serve()
}

// Close stops the listeners and closes every connection. Sessions that
// had not reached the UPDATE state delete nothing (RFC 1939 §6).
func (s *Server) Close() error {
	err := s.accept.Close()
	if errors.Is(err, listen.ErrClosed) {
		return ErrServerClosed
	}
	s.mu.Lock()
	for c := range s.active {
		c.Close()
	}
	s.mu.Unlock()
	s.conns.Wait()
	return err
}

func (s *Server) loginFailed(reason string) {
	if s.Observer != nil {
		s.Observer.LoginFailed(reason)
	}
}

// lockMaildrop takes the POP3 lock on a user's maildrop. RFC 1939 §4: the
// server acquires an exclusive-access lock on the maildrop at login, so
// that no two sessions mark and delete from one message list. The lock is
// per process; IMAP sessions do not take it (their changes show up as
// messages RETR can no longer read).
func (s *Server) lockMaildrop(userID int64) bool {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if _, held := s.locked[userID]; held {
		return false
	}
	s.locked[userID] = struct{}{}
	return true
}

func (s *Server) unlockMaildrop(userID int64) {
	s.lockMu.Lock()
	delete(s.locked, userID)
	s.lockMu.Unlock()
}

// opTimeout bounds one store operation made for a command.
const opTimeout = time.Minute

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}
