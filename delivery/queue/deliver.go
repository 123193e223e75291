package queue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The outcome kinds of one recipient's attempt.
const (
	kindSent = iota
	kindTemp
	kindPerm
)

// outcome is what one attempt did for one recipient.
type outcome struct {
	kind int
	// reply is the remote's reply or moat's own, as "451 4.4.1 text".
	reply string
	// status is the RFC 3463 status for a DSN ("5.1.1").
	status string
	// remote is the host that answered, for the DSN's Remote-MTA.
	remote string
}

func sent(remote, reply string) outcome { return outcome{kind: kindSent, reply: reply, remote: remote} }

func temp(status, text string) outcome {
	return outcome{kind: kindTemp, status: status, reply: "451 " + status + " " + text}
}

func perm(status, text string) outcome {
	return outcome{kind: kindPerm, status: status, reply: "550 " + status + " " + text}
}

// replyOutcome turns a remote SMTP error into an outcome.
func replyOutcome(remote string, e *smtp.SMTPError) outcome {
	status := ""
	if e.EnhancedCode != smtp.NoEnhancedCode && e.EnhancedCode != (smtp.EnhancedCode{}) {
		status = fmt.Sprintf("%d.%d.%d", e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2])
	}
	o := outcome{remote: remote, reply: strings.TrimSpace(fmt.Sprintf("%d %s %s", e.Code, status, oneLine(e.Message)))}
	switch {
	case e.Code >= 500:
		o.kind = kindPerm
		o.status = defaultString(status, "5.0.0")
	default: // 4xx, and anything odd: never a permanent failure from a fault
		o.kind = kindTemp
		o.status = defaultString(status, "4.0.0")
		if status != "" && status[0] == '5' {
			o.status = "4" + status[1:]
		}
	}
	o.reply = strings.Join(strings.Fields(o.reply), " ")
	return o
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// client speaks SMTP and LMTP to other servers: the queue's deliveries
// and the recipient callouts.
type client struct {
	hostname       string // in EHLO
	connectTimeout time.Duration
	commandTimeout time.Duration
	log            *slog.Logger
	pool           sessionPool
}

// The connection cache's bounds: Postfix's smtp_connection_cache_time_limit
// (2s idle) and smtp_connection_reuse_count_limit (moat: 100 messages).
const (
	poolIdle    = 2 * time.Second
	poolUses    = 100
	poolPerHost = 20
)

// sessionPool keeps idle sessions per host for the next message.
type sessionPool struct {
	mu   sync.Mutex
	idle map[string][]*idleSession
}

type idleSession struct {
	c     *smtp.Client
	done  func()
	since time.Time
	uses  int
}

// take returns a cached session for key, or nil.
func (p *sessionPool) take(key string) *idleSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	for list := p.idle[key]; len(list) > 0; list = p.idle[key] {
		s := list[len(list)-1]
		p.idle[key] = list[:len(list)-1]
		if time.Since(s.since) < poolIdle {
			return s
		}
		go func() { s.c.Quit(); s.done() }()
	}
	return nil
}

// put keeps a session whose transaction ended cleanly, unless it has
// served its count.
func (p *sessionPool) put(key string, s *idleSession) {
	s.uses++
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[string][]*idleSession{}
	}
	if s.uses >= poolUses || len(p.idle[key]) >= poolPerHost {
		go func() { s.c.Quit(); s.done() }()
		return
	}
	s.since = time.Now()
	p.idle[key] = append(p.idle[key], s)
}

// sweep closes the sessions idle too long (all of them with all).
func (p *sessionPool) sweep(all bool) {
	p.mu.Lock()
	var stale []*idleSession
	for k, list := range p.idle {
		keep := list[:0]
		for _, s := range list {
			if all || time.Since(s.since) >= poolIdle {
				stale = append(stale, s)
			} else {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 {
			delete(p.idle, k)
		} else {
			p.idle[k] = keep
		}
	}
	p.mu.Unlock()
	for _, s := range stale {
		s.c.Quit()
		s.done()
	}
}

// target is one server to try: a name and the address to dial.
type target struct {
	// name is the host's name: the TLS server name, the DSN's Remote-MTA.
	name string
	// addr is "ip:port" or "host:port".
	addr  string
	lmtp  bool
	tls   string      // TLSRequired, TLSOpportunistic, TLSNone
	conf  *tls.Config // for TLSRequired: how to verify; else unverified
	auth  *credentials
	class string // "relay" or "mx", for logs
	// sts is set when an MTA-STS policy in enforce mode demands verified
	// TLS: a failure is logged with its RFC 8460 result type.
	sts bool
}

type credentials struct{ user, password string }

// hostError is a failure of one host before any recipient was answered:
// the next host is tried. result is an RFC 8460 result type when TLS was
// the cause.
type hostError struct {
	out    outcome
	result string
}

func (e *hostError) Error() string { return e.out.reply }

// content opens the message for one transmission.
type content func() (io.ReadCloser, int64, error)

// transmit runs one SMTP or LMTP transaction with t for rcpts. It returns
// one outcome per recipient, or a *hostError when the host failed before
// answering any recipient.
func (cl *client) transmit(ctx context.Context, t target, from string, rcpts []string, open content) ([]outcome, error) {
	res, err := cl.transmitOnce(ctx, t, from, rcpts, open, t.tls, true)
	var he *hostError
	if errors.As(err, &he) && he.result == "starttls-failed" && t.tls == TLSOpportunistic {
		// Postfix's "may": a failed handshake is retried in plain text.
		cl.log.Info("queue: TLS handshake failed, retrying without TLS", "host", t.name, "addr", t.addr, "err", he.out.reply)
		return cl.transmitOnce(ctx, t, from, rcpts, open, TLSNone, true)
	}
	return res, err
}

// transmitOnce runs the transaction on a cached session to t when there
// is one (reuse), or on a new one. A session whose transaction ended
// cleanly is kept for the next message to the same host (Postfix's
// connection cache).
func (cl *client) transmitOnce(ctx context.Context, t target, from string, rcpts []string, open content, mode string, reuse bool) ([]outcome, error) {
	fail := func(status, format string, args ...any) error {
		o := temp(status, t.name+": "+fmt.Sprintf(format, args...))
		o.remote = t.name
		return &hostError{out: o}
	}
	key := t.addr + "|" + t.name + "|" + mode
	var sess *idleSession
	if reuse {
		sess = cl.pool.take(key)
	}
	if sess != nil && sess.c.Noop() != nil {
		// The server closed the cached session meanwhile (its idle
		// timeout): nothing was sent; a new session is opened.
		sess.done()
		sess = nil
	}
	if sess == nil {
		c, done, err := cl.connect(ctx, t, mode)
		if err != nil {
			return nil, err
		}
		sess = &idleSession{c: c, done: done}
	}
	c := sess.c
	keep := false
	defer func() {
		if keep {
			cl.pool.put(key, sess)
		} else {
			sess.done()
		}
	}()
	rc, size, err := open()
	if err != nil {
		return nil, fail("4.3.0", "reading the queue file: %v", err)
	}
	defer rc.Close()
	opts := &smtp.MailOptions{Size: size, UTF8: needsUTF8(from, rcpts)}
	if err := c.Mail(from, opts); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 500 {
			o := replyOutcome(t.name, se)
			return fill(len(rcpts), o), nil
		}
		if opts.UTF8 && !errors.As(err, &se) {
			// RFC 6531 §3.4: no SMTPUTF8, no delivery.
			return fill(len(rcpts), perm("5.6.7", t.name+" does not support SMTPUTF8")), nil
		}
		return nil, fail("4.4.2", "MAIL: %v", err)
	}
	res := make([]outcome, len(rcpts))
	var accepted []int
	for i, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				return nil, fail("4.4.2", "RCPT: %v", err)
			}
			res[i] = replyOutcome(t.name, se)
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		keep = c.Reset() == nil
		return res, nil
	}
	w, err := c.Data()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			for _, i := range accepted {
				res[i] = replyOutcome(t.name, se)
			}
			return res, nil
		}
		return nil, fail("4.4.2", "DATA: %v", err)
	}
	if _, err := io.Copy(w, rc); err != nil {
		return nil, fail("4.4.2", "sending the message: %v", err)
	}
	if t.lmtp {
		// RFC 2033 §4.2: one reply per accepted recipient, in order.
		resp, err := w.CloseWithLMTPResponse()
		var le smtp.LMTPDataError
		errors.As(err, &le)
		_, replies := err.(smtp.LMTPDataError) // every reply read: the session is sound
		keep = err == nil || replies
		for _, i := range accepted {
			switch {
			case resp[rcpts[i]] != nil:
				res[i] = sent(t.name, "250 "+oneLine(resp[rcpts[i]].StatusText))
			case le[rcpts[i]] != nil:
				res[i] = replyOutcome(t.name, le[rcpts[i]])
			default:
				res[i] = temp("4.4.2", t.name+": no reply after DATA")
			}
		}
	} else {
		resp, err := w.CloseWithResponse()
		var se *smtp.SMTPError
		keep = err == nil || errors.As(err, &se)
		for _, i := range accepted {
			switch {
			case err == nil:
				res[i] = sent(t.name, "250 "+oneLine(resp.StatusText))
			case errors.As(err, &se):
				res[i] = replyOutcome(t.name, se)
			default:
				// The connection broke after the message: the remote may
				// have it. Retried: at least once.
				res[i] = temp("4.4.2", t.name+": after DATA: "+err.Error())
			}
		}
	}
	return res, nil
}

// connect opens a session with t, through EHLO, STARTTLS as mode asks,
// and AUTH when t has credentials. done closes it.
func (cl *client) connect(ctx context.Context, t target, mode string) (*smtp.Client, func(), error) {
	fail := func(status, format string, args ...any) error {
		o := temp(status, t.name+": "+fmt.Sprintf(format, args...))
		o.remote = t.name
		return &hostError{out: o}
	}
	d := net.Dialer{Timeout: cl.connectTimeout}
	conn, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, nil, fail("4.4.1", "connect to %s: %v", t.addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	done := func() { stop(); conn.Close() }
	tconn, tlsState, err := cl.startTLS(conn, t, mode)
	if err != nil {
		done()
		return nil, nil, err
	}
	var c *smtp.Client
	if t.lmtp {
		c = smtp.NewClientLMTP(tconn)
	} else {
		c = smtp.NewClient(tconn)
	}
	c.CommandTimeout = cl.commandTimeout
	c.SubmissionTimeout = 2 * cl.commandTimeout
	if err := c.Hello(cl.hostname); err != nil {
		done()
		return nil, nil, fail("4.4.2", "EHLO: %v", err)
	}
	if t.auth != nil {
		if tlsState == nil {
			done()
			return nil, nil, fail("4.7.10", "AUTH without TLS refused")
		}
		if err := c.Auth(sasl.NewPlainClient("", t.auth.user, t.auth.password)); err != nil {
			done()
			return nil, nil, fail("4.7.8", "AUTH: %v", err)
		}
	}
	return c, done, nil
}

func fill(n int, o outcome) []outcome {
	out := make([]outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

func needsUTF8(from string, rcpts []string) bool {
	for _, s := range append([]string{from}, rcpts...) {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return true
			}
		}
	}
	return false
}

// startTLS reads the greeting, says EHLO (LHLO) and, as mode asks, runs
// STARTTLS (RFC 3207). go-smtp's client has no StartTLS of its own on an
// open connection, so this first exchange is done here; the connection
// returned replays a greeting for go-smtp's client, which then says EHLO
// again (RFC 3207 §4.2: the client must, after TLS).
func (cl *client) startTLS(conn net.Conn, t target, mode string) (net.Conn, *tls.ConnectionState, error) {
	fail := func(result, status, format string, args ...any) (net.Conn, *tls.ConnectionState, error) {
		o := temp(status, t.name+": "+fmt.Sprintf(format, args...))
		o.remote = t.name
		return nil, nil, &hostError{out: o, result: result}
	}
	conn.SetDeadline(time.Now().Add(cl.connectTimeout))
	tp := textproto.NewConn(conn)
	code, greeting, err := tp.ReadResponse(220)
	if err != nil {
		if code >= 500 && code < 600 {
			// RFC 5321 §3.1: 554 instead of 220 refuses the session; the
			// next host may take the mail.
			return fail("", "4.4.2", "greeting %d %s", code, oneLine(greeting))
		}
		return fail("", "4.4.2", "greeting: %v", err)
	}
	if mode == TLSNone {
		conn.SetDeadline(time.Time{})
		return &replayConn{Conn: conn, r: io.MultiReader(strings.NewReader("220 "+oneLine(greeting)+"\r\n"), conn)}, nil, nil
	}
	hello := "EHLO"
	if t.lmtp {
		hello = "LHLO"
	}
	conn.SetDeadline(time.Now().Add(cl.commandTimeout))
	if err := tp.PrintfLine("%s %s", hello, cl.hostname); err != nil {
		return fail("", "4.4.2", "%s: %v", hello, err)
	}
	_, ext, err := tp.ReadResponse(250)
	offered := false
	if err == nil {
		for _, l := range strings.Split(ext, "\n")[1:] {
			if strings.EqualFold(strings.TrimSpace(l), "STARTTLS") {
				offered = true
			}
		}
	}
	if !offered {
		if mode == TLSRequired || t.sts {
			return fail("starttls-not-supported", "4.7.10", "STARTTLS not offered and TLS is required")
		}
		conn.SetDeadline(time.Time{})
		return &replayConn{Conn: conn, r: io.MultiReader(strings.NewReader("220 "+oneLine(greeting)+"\r\n"), conn)}, nil, nil
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return fail("", "4.4.2", "STARTTLS: %v", err)
	}
	if _, msg, err := tp.ReadResponse(220); err != nil {
		if mode == TLSRequired || t.sts {
			return fail("starttls-not-supported", "4.7.10", "STARTTLS refused: %v %s", err, msg)
		}
		return fail("starttls-failed", "4.4.2", "STARTTLS refused: %v", err)
	}
	conf := t.conf
	if conf == nil || mode != TLSRequired && !t.sts {
		conf = &tls.Config{InsecureSkipVerify: true, ServerName: t.name}
	}
	tc := tls.Client(conn, conf)
	if err := tc.Handshake(); err != nil {
		if mode == TLSRequired || t.sts {
			return fail(tlsResult(err), "4.7.5", "TLS: %v", err)
		}
		return fail("starttls-failed", "4.7.5", "TLS handshake: %v", err)
	}
	st := tc.ConnectionState()
	tc.SetDeadline(time.Time{})
	return &replayConn{Conn: tc, r: io.MultiReader(strings.NewReader("220 "+oneLine(greeting)+"\r\n"), tc)}, &st, nil
}

// tlsResult maps a handshake failure to an RFC 8460 §4.3 result type.
func tlsResult(err error) string {
	var hn x509.HostnameError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &hn):
		return "certificate-host-mismatch"
	case errors.As(err, &ua):
		return "certificate-not-trusted"
	case errors.As(err, &ci):
		if ci.Reason == x509.Expired {
			return "certificate-expired"
		}
		return "certificate-not-trusted"
	case errors.Is(err, errPinMismatch):
		return "certificate-not-trusted"
	}
	return "validation-failure"
}

// replayConn is a connection whose first bytes come from r.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }
