package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters/address"
	"github.com/moatmail/moat/gateway/listen"
	"github.com/moatmail/moat/gateway/throttle"
)

// opTimeout bounds one store operation made for a command.
const opTimeout = time.Minute

// session is one IMAP connection. go-imap calls its methods from the
// connection's goroutine, except Idle, which runs on a second goroutine
// while the first waits for DONE. mu guards the selected state against
// that goroutine, against Close (called when the connection drops,
// possibly during IDLE) and against the timer that drops per-message
// details; the methods that use the selected mailbox hold it throughout.
type session struct {
	srv     *Server
	conn    *imapserver.Conn
	log     *slog.Logger // with the user once logged in
	baseLog *slog.Logger
	remote  netip.Addr
	cork    *corkConn // nil for connections that came in as TLS

	mu   sync.Mutex
	user mailstore.User // ID 0 until logged in
	sel  *selected      // nil unless a mailbox is selected
}

var (
	_ imapserver.SessionIMAP4rev2      = (*session)(nil)
	_ imapserver.SessionSASL           = (*session)(nil)
	_ imapserver.SessionAppendLimit    = (*session)(nil)
	_ imapserver.SessionUnauthenticate = (*session)(nil)
)

func (s *Server) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	nc := conn.NetConn()
	sess := &session{
		srv:    s,
		conn:   conn,
		remote: listen.ClientIP(nc.RemoteAddr()),
	}
	sess.cork, _ = nc.(*corkConn)
	sess.baseLog = s.log.With("conn", s.nextID.Add(1), "remote", sess.remote.String())
	sess.log = sess.baseLog
	return sess, nil, nil
}

// ctx returns the context of one store operation.
func (sess *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// Close implements imapserver.Session.
func (sess *session) Close() error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.unselect()
	return nil
}

// plaintextAllowed reports whether this connection may authenticate:
// RFC 9051 §6.2.3 (LOGIN) and §6.2.2 (AUTHENTICATE PLAIN) send the password
// as is, so only over TLS, or in clear from a loopback address when the
// operator allowed it.
func (sess *session) plaintextAllowed() bool {
	if _, isTLS := sess.conn.NetConn().(*tls.Conn); isTLS {
		return true
	}
	return sess.srv.cfg.AllowPlaintextLoopback && sess.remote.IsLoopback()
}

var errShuttingDown = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeUnavailable,
	Text: "Server shutting down",
}

var errPrivacyRequired = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodePrivacyRequired,
	Text: "TLS is required to log in",
}

// Login implements imapserver.Session: the password is checked against the
// store after the throttle's delay for this client and account.
func (sess *session) Login(username, password string) error {
	if !sess.plaintextAllowed() {
		sess.srv.loginFailed(throttle.ReasonPlaintext)
		sess.log.Info("imap login refused before TLS")
		return errPrivacyRequired
	}
	if sess.user.ID != 0 {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Already logged in"}
	}
	account := address.Normalize(username)
	var u mailstore.User
	ok, err := sess.srv.gate.Check(sess.remote, account, func() (bool, error) {
		ctx, cancel := sess.ctx()
		defer cancel()
		var err error
		u, err = sess.srv.store.Authenticate(ctx, account, password)
		if errors.Is(err, mailstore.ErrAuthFailed) {
			return false, nil
		}
		return err == nil, err
	})
	switch {
	case errors.Is(err, throttle.ErrClosing):
		return errShuttingDown
	case err != nil:
		sess.srv.loginFailed(throttle.ReasonInternal)
		sess.log.Error("imap login: store failed", "user", clip(account), "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
			Text: "Temporary failure, try again later"}
	case !ok:
		sess.srv.loginFailed(throttle.ReasonCredentials)
		sess.log.Info("imap login failed", "user", clip(account))
		return imapserver.ErrAuthFailed
	}
	sess.mu.Lock()
	sess.user = u
	sess.mu.Unlock()
	sess.log = sess.baseLog.With("user", u.Address)
	sess.log.Info("imap login")
	return nil
}

// AuthenticateMechanisms implements imapserver.SessionSASL.
func (sess *session) AuthenticateMechanisms() []string { return []string{sasl.Plain} }

// Authenticate implements imapserver.SessionSASL: PLAIN only (RFC 4616).
func (sess *session) Authenticate(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
	}
	if !sess.plaintextAllowed() {
		sess.srv.loginFailed(throttle.ReasonPlaintext)
		return nil, errPrivacyRequired
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		// RFC 4616 §2: an empty authorization identity means the
		// authentication identity; acting as someone else is not offered.
		if identity != "" && address.Normalize(identity) != address.Normalize(username) {
			sess.srv.loginFailed(throttle.ReasonIdentity)
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed,
				Text: "Authorization identity not supported"}
		}
		return sess.Login(username, password)
	}), nil
}

// Unauthenticate implements imapserver.SessionUnauthenticate.
func (sess *session) Unauthenticate() error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.unselect()
	sess.user = mailstore.User{}
	sess.log = sess.baseLog
	return nil
}

// AppendLimit implements imapserver.SessionAppendLimit (RFC 7889).
func (sess *session) AppendLimit() uint32 { return uint32(sess.srv.cfg.AppendLimit) }

// Namespace implements imapserver.SessionNamespace (RFC 2342): one
// personal namespace with no prefix and, for an admin, the shared namespace
// "Shared/" holding the other users' quarantines (see resolve.go). There
// is no "other users" namespace.
func (sess *session) Namespace() (*imap.NamespaceData, error) {
	data := &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: mailstore.Delimiter}},
	}
	if sess.user.Admin {
		data.Shared = []imap.NamespaceDescriptor{{Prefix: sharedRoot + delim, Delim: mailstore.Delimiter}}
	}
	return data, nil
}

// internalError logs a store failure and returns what the client sees:
// never the error text, which may name files or SQL.
func (sess *session) internalError(op string, err error) error {
	sess.log.Error("imap "+op+" failed", "err", err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, mailstore.ErrClosed) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
			Text: "Temporary failure, try again later"}
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug,
		Text: fmt.Sprintf("%s failed", op)}
}

var errNoMailbox = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeNonExistent,
	Text: "No such mailbox",
}

// mailboxError maps a store error about a named mailbox to a response.
func (sess *session) mailboxError(op string, err error) error {
	switch {
	case errors.Is(err, mailstore.ErrNoMailbox):
		return errNoMailbox
	case errors.Is(err, mailstore.ErrMailboxExists):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists,
			Text: "Mailbox already exists"}
	}
	return sess.internalError(op, err)
}

// clip shortens client-supplied text for a log line.
func clip(s string) string {
	const n = 128
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
