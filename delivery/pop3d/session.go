package pop3d

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/gateway/listen"
)

// Limits of one session.
const (
	// maxBadCommands is how many refused commands (unknown, malformed,
	// out of state) in a row a connection may send before it is closed.
	maxBadCommands = 10
	// maxLoginFailures is how many failed or refused logins a connection
	// may make before it is closed (the throttle slows them down too).
	maxLoginFailures = 5
	// readBufSize holds one line of maxLine octets and its CRLF.
	readBufSize = 1024
	// writeBufSize is the pooled response buffer: a 10 KB message and
	// its status and termination lines leave in one write.
	writeBufSize = 64 << 10
	// writeTimeout bounds one write to the client.
	writeTimeout = 2 * time.Minute
	// handshakeTimeout bounds a TLS handshake (POP3S or STLS).
	handshakeTimeout = 30 * time.Second
)

// state is the session state of RFC 1939 §3.
type state int

const (
	stateAuthorization state = iota
	stateTransaction
)

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}

// session is one POP3 connection, served by one goroutine.
type session struct {
	srv    *Server
	raw    net.Conn // the accepted connection
	conn   net.Conn // raw, or the TLS connection over it
	isTLS  bool
	r      *bufio.Reader
	w      *bufio.Writer // nil while waiting for a command: it is pooled
	remote netip.Addr
	log    *slog.Logger

	state         state
	bad           int // refused commands in a row
	loginFailures int
	user          string // from USER, waiting for PASS
	account       mailstore.User
	drop          *maildrop // nil until logged in; holds the maildrop lock
	// retrieved counts RETR answers, for the log line at logout.
	retrieved int

	num [32]byte // scratch for formatting numbers
}

func newSession(s *Server, c net.Conn) *session {
	sess := &session{srv: s, raw: c, conn: c, remote: listen.ClientIP(c.RemoteAddr())}
	_, sess.isTLS = c.(*tls.Conn)
	sess.log = s.log.With("conn", s.nextID.Add(1), "remote", sess.remote.String())
	return sess
}

// connWriter is what the pooled bufio.Writer writes to: the session's
// current connection, with a fresh deadline for every write.
type connWriter struct{ sess *session }

func (cw connWriter) Write(p []byte) (int, error) {
	cw.sess.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return cw.sess.conn.Write(p)
}

// out returns the response buffer, taking one from the pool if needed.
func (sess *session) out() *bufio.Writer {
	if sess.w == nil {
		sess.w = writers.Get().(*bufio.Writer)
		sess.w.Reset(connWriter{sess})
	}
	return sess.w
}

// flush sends the buffered responses and returns the buffer to the pool.
func (sess *session) flush() error {
	if sess.w == nil {
		return nil
	}
	err := sess.w.Flush()
	sess.w.Reset(nil)
	writers.Put(sess.w)
	sess.w = nil
	return err
}

// reply writes a one-line response: "+OK text" or "-ERR text" as given.
func (sess *session) reply(line string) {
	w := sess.out()
	w.WriteString(line)
	w.WriteString("\r\n")
}

// fail answers -ERR for a command the client should not have sent, and
// counts it against maxBadCommands.
func (sess *session) fail(text string) {
	sess.bad++
	sess.reply("-ERR " + text)
}

func (sess *session) writeNumber(n int64) {
	sess.out().Write(strconv.AppendInt(sess.num[:0], n, 10))
}

// plaintextAllowed reports whether this connection may authenticate:
// USER/PASS (RFC 1939 §13) and AUTH PLAIN (RFC 4616 §6) carry the password
// as is, so only over TLS, or in clear from a loopback address when the
// operator allowed it (RFC 2595 §2.2).
func (sess *session) plaintextAllowed() bool {
	return sess.isTLS || (sess.srv.cfg.AllowPlaintextLoopback && sess.remote.IsLoopback())
}

// serve runs the session: greeting, then one command at a time until QUIT,
// an error or the end of the connection.
func (sess *session) serve() {
	if tc, ok := sess.conn.(*tls.Conn); ok {
		// POP3S (RFC 8314 §3.3): the handshake comes first.
		tc.SetDeadline(time.Now().Add(handshakeTimeout))
		if err := tc.Handshake(); err != nil {
			sess.log.Debug("pop3s handshake failed", "err", err)
			return
		}
	}
	sess.r = bufio.NewReaderSize(sess.conn, readBufSize)
	sess.reply("+OK moat POP3 server ready")
	for {
		// Pipelined commands (RFC 2449 §6.6) share one write: flush
		// only when no further complete command is waiting.
		if !sess.lineWaiting() {
			if err := sess.flush(); err != nil {
				sess.log.Debug("pop3 write failed", "err", err)
				return
			}
			// The client reads the response now: read ahead meanwhile.
			sess.readAhead()
		}
		line, err := sess.readLine()
		if err != nil {
			sess.readFailed(err)
			return
		}
		if !sess.command(line) {
			sess.flush()
			return
		}
		if sess.bad >= maxBadCommands || sess.loginFailures >= maxLoginFailures {
			sess.reply("-ERR Too many errors, closing connection")
			sess.flush()
			sess.log.Info("pop3 connection closed after too many errors")
			return
		}
	}
}

// lineWaiting reports whether a whole command line is already buffered.
func (sess *session) lineWaiting() bool {
	n := sess.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := sess.r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line and strips its CRLF (or bare LF).
func (sess *session) readLine() ([]byte, error) {
	sess.conn.SetReadDeadline(time.Now().Add(sess.srv.cfg.IdleTimeout))
	line, err := sess.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errLineTooLong
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > maxLine {
		return nil, errLineTooLong
	}
	return line, nil
}

// readFailed ends the session after a failed read, telling the client why
// when it is still listening.
func (sess *session) readFailed(err error) {
	switch {
	case errors.Is(err, errLineTooLong):
		sess.reply("-ERR Line too long")
		sess.flush()
		sess.log.Info("pop3 connection closed: line too long")
	case errors.Is(err, os.ErrDeadlineExceeded):
		// RFC 1939 §3: the autologout timer ends the session without
		// entering the UPDATE state.
		sess.reply("-ERR Idle timeout, closing connection")
		sess.flush()
		sess.log.Info("pop3 idle timeout")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		sess.log.Debug("pop3 read failed", "err", err)
	}
}

// command runs one command line; false ends the session.
func (sess *session) command(line []byte) bool {
	bad := sess.bad
	defer func() {
		if sess.bad == bad {
			sess.bad = 0 // only errors in a row count
		}
	}()
	cmd, err := parseCommand(line)
	if err != nil {
		sess.fail(err.Error())
		return true
	}
	if cmd.name == cmdQUIT {
		if sess.state == stateTransaction {
			sess.update()
		} else {
			sess.reply("+OK moat POP3 server signing off")
		}
		return false
	}
	if cmd.name == cmdCAPA {
		sess.capa()
		return true
	}
	if sess.state == stateAuthorization {
		return sess.authorizationCommand(cmd)
	}
	sess.transactionCommand(cmd)
	return true
}

// capa answers CAPA (RFC 2449 §5). USER and SASL are listed only where a
// login is allowed (RFC 2595 §4 advises against offering a plaintext
// mechanism before TLS), STLS only before TLS in the AUTHORIZATION state.
func (sess *session) capa() {
	w := sess.out()
	w.WriteString("+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n")
	if sess.state == stateAuthorization {
		if sess.plaintextAllowed() {
			w.WriteString("USER\r\nSASL PLAIN\r\n")
		}
		if !sess.isTLS && sess.srv.tlsConfig != nil {
			w.WriteString("STLS\r\n")
		}
	}
	w.WriteString("IMPLEMENTATION moat\r\n.\r\n")
}

// end releases what the session holds. Without QUIT nothing is deleted.
func (sess *session) end() {
	if sess.w != nil {
		sess.w.Reset(nil)
		writers.Put(sess.w)
		sess.w = nil
	}
	if sess.drop != nil {
		sess.drop.close()
		sess.srv.unlockMaildrop(sess.account.ID)
		sess.drop = nil
	}
	sess.raw.Close()
}

// clip shortens client-supplied text for a log line.
func clip(s string) string {
	const n = 128
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
