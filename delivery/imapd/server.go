package imapd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/gateway/listen"
	"github.com/moatmail/moat/gateway/throttle"
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("imapd: server closed")

// Server is an IMAP server over a mailstore.Store.
//
// Connections are handed to one of two go-imap servers: a strict one that
// refuses authentication before TLS (and says so with LOGINDISABLED,
// RFC 3501 §6.2.3, so that well-behaved clients never send a password in
// clear), and, only when AllowPlaintextLoopback is set, a lenient one for
// plaintext connections from a loopback address. go-imap's InsecureAuth
// option is global to a server, hence two; Login checks the same rule again
// per connection.
type Server struct {
	// Observer, when set before Serve is first called, is told about
	// refused logins. Nil is allowed.
	Observer Observer
	// Reviewer, when set before Serve is first called, is told of moves,
	// copies and quarantine expunges. Nil is allowed.
	Reviewer Reviewer

	cfg    Config
	cfgErr error
	store  *mailstore.Store
	log    *slog.Logger

	strict, lenient   *imapserver.Server
	strictL, lenientL *chanListener

	accept *listen.Acceptor
	gate   *throttle.Gate // every password check goes through it
	start  sync.Once
	// started is set when the inner servers started (under start).
	started bool
	inner   sync.WaitGroup
	nextID  atomic.Uint64
	// listings are the shared listings of selected mailboxes.
	listings *listings
}

// capabilities advertised on top of what go-imap adds by itself (SASL-IR,
// LITERAL-, STARTTLS, AUTH=PLAIN or LOGINDISABLED, and for IMAP4rev1 clients
// UNSELECT, ENABLE, IDLE, UTF8=ACCEPT). IMAP4rev2 implies NAMESPACE, UIDPLUS,
// ESEARCH, SEARCHRES, LIST-EXTENDED, LIST-STATUS, MOVE, STATUS=SIZE, BINARY
// and CHILDREN, which are listed for IMAP4rev1 clients. APPENDLIMIT comes
// from the session.
//
// Not offered:
//   - LITERAL+ (RFC 7888): go-imap refuses an APPEND over the limit without
//     consuming a non-synchronizing literal the client has already sent,
//     then parses the message as commands. LITERAL- (non-synchronizing up
//     to 4096 bytes) stays, and AppendLimit is at least 4096 so that the
//     same cannot happen there.
//   - CONDSTORE (RFC 7162): go-imap beta.8's server neither parses
//     CHANGEDSINCE nor writes MODSEQ items.
//   - ID (RFC 2971): go-imap beta.8's server has no ID command.
var capabilities = imap.CapSet{
	imap.CapIMAP4rev1:        {},
	imap.CapIMAP4rev2:        {},
	imap.CapNamespace:        {},
	imap.CapUIDPlus:          {},
	imap.CapESearch:          {},
	imap.CapSearchRes:        {},
	imap.CapListExtended:     {},
	imap.CapListStatus:       {},
	imap.CapMove:             {},
	imap.CapStatusSize:       {},
	imap.CapBinary:           {},
	imap.CapChildren:         {},
	imap.CapSpecialUse:       {},
	imap.CapCreateSpecialUse: {},
	imap.CapUnauthenticate:   {},
}

// New returns a server over store. tlsConfig enables STARTTLS on plain
// listeners (nil: no STARTTLS, so only loopback clients with
// AllowPlaintextLoopback can log in there). th may be nil for a throttle
// with default settings. cfg is validated here; an invalid cfg makes Serve
// return the error.
func New(cfg Config, store *mailstore.Store, tlsConfig *tls.Config, th *throttle.Throttle, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{store: store, log: log, accept: listen.NewAcceptor("imap", log), listings: newListings(store)}
	s.cfgErr = cfg.Validate()
	s.cfg = cfg
	s.gate = throttle.NewGate(th, cfg.AuthConcurrency, s.accept.Done())
	options := imapserver.Options{
		NewSession: s.newSession,
		Caps:       capabilities,
		Logger:     logAdapter{log},
		TLSConfig:  tlsConfig,
	}
	s.strictL = newChanListener()
	s.strict = imapserver.New(&options)
	if cfg.AllowPlaintextLoopback {
		options.InsecureAuth = true
		s.lenientL = newChanListener()
		s.lenient = imapserver.New(&options)
	}
	return s
}

// Serve accepts connections on l until Close. l is either a plain listener
// (STARTTLS is offered when the server has a TLS configuration) or a
// tls.NewListener one (IMAPS, RFC 8314); TLS is detected per connection.
func (s *Server) Serve(l net.Listener) error {
	if s.cfgErr != nil {
		return fmt.Errorf("imap config: %w", s.cfgErr)
	}
	s.start.Do(s.startInner) // not after Close: Close spends the Once
	err := s.accept.Serve(l, s.route)
	if errors.Is(err, listen.ErrClosed) {
		return ErrServerClosed
	}
	return err
}

// route hands an accepted connection to the go-imap server that serves
// it: the lenient one for a plaintext loopback client when there is one.
// It waits until that server takes it.
func (s *Server) route(c net.Conn) {
	target := s.strictL
	if _, isTLS := c.(*tls.Conn); !isTLS {
		if s.lenientL != nil && isLoopback(c.RemoteAddr()) {
			target = s.lenientL
		}
		c = &corkConn{Conn: c}
	}
	if !target.push(c) {
		c.Close()
	}
}

func (s *Server) startInner() {
	s.started = true // under s.start: Close reads it after spending the Once
	run := func(srv *imapserver.Server, l *chanListener) {
		s.inner.Add(1)
		go func() {
			defer s.inner.Done()
			if err := srv.Serve(l); err != nil && !s.accept.Closed() {
				s.log.Error("imap server stopped", "err", err)
			}
		}()
	}
	run(s.strict, s.strictL)
	if s.lenient != nil {
		run(s.lenient, s.lenientL)
	}
}

// Close stops the listeners and closes every connection.
func (s *Server) Close() error {
	err := s.accept.Close()
	if errors.Is(err, listen.ErrClosed) {
		return ErrServerClosed
	}
	errs := []error{err}
	s.start.Do(func() {}) // no inner server starts after this
	s.strictL.Close()
	if s.started {
		// go-imap's Server.Serve adds to a WaitGroup that its Close
		// waits on: closing before Serve got that far races (the race
		// detector sees it when a moat stops right after it started).
		// Serve has passed it once it asks for a connection.
		<-s.strictL.accepting
	}
	errs = append(errs, s.strict.Close())
	if s.lenient != nil {
		s.lenientL.Close()
		if s.started {
			<-s.lenientL.accepting
		}
		errs = append(errs, s.lenient.Close())
	}
	s.inner.Wait()
	return errors.Join(errs...)
}

func (s *Server) loginFailed(reason string) {
	if s.Observer != nil {
		s.Observer.LoginFailed(reason)
	}
}

func isLoopback(a net.Addr) bool { return listen.ClientIP(a).IsLoopback() }

// chanListener feeds connections accepted elsewhere to a go-imap server.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
	// accepting is closed at the first Accept.
	accepting     chan struct{}
	acceptingOnce sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{}), accepting: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// Accept implements net.Listener.
func (l *chanListener) Accept() (net.Conn, error) {
	l.acceptingOnce.Do(func() { close(l.accepting) })
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr implements net.Listener.
func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// logAdapter passes go-imap's log lines to slog.
type logAdapter struct{ log *slog.Logger }

func (a logAdapter) Printf(format string, args ...any) {
	a.log.Warn(fmt.Sprintf(format, args...), "component", "imapserver")
}
