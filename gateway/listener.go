package gateway

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/gateway/listen"
	"github.com/moatmail/moat/rules"
)

// limitListener enforces the connection limits and wraps every accepted
// connection in a trackedConn that carries what is known of it across
// STARTTLS (go-smtp starts a new Session after the handshake).
type limitListener struct {
	net.Listener
	srv        *Server
	name       string
	implicit   bool
	submission bool
}

type trackedConn struct {
	net.Conn
	l     *limitListener
	ip    netip.Addr
	once  sync.Once
	info  filters.Connection
	ready bool // connect-stage filters have run
	// found is what the connect stage found, kept for every transaction
	// of the connection.
	found   rules.Result
	refusal *smtp.SMTPError // a connect-stage reject or tempfail

	greeted sync.Once
	early   []byte // what the client sent before the greeting, not yet read
}

// maxPregreet bounds what is kept of a client's pregreet.
const maxPregreet = 512

// Write writes to the client; the first write, the greeting, is split
// around smtp.greet_pause (see greet).
func (c *trackedConn) Write(p []byte) (int, error) {
	var err error
	c.greeted.Do(func() { err = c.greet(p) })
	if err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// greet sends the first line of a multi-line greeting and listens for
// smtp.greet_pause before go-smtp sends its own line (the last one, "220
// "): a client that speaks before it has not waited (RFC 5321 §3.1,
// §4.2.1 multi-line replies), as postscreen's pregreet test finds.
func (c *trackedConn) greet(greeting []byte) error {
	pause := c.l.srv.cfg.GreetPause
	// Not on submission either: the pause is for strangers (postscreen
	// guards port 25 only).
	if pause <= 0 || c.l.implicit || c.l.submission || !bytes.HasPrefix(greeting, []byte("220 ")) {
		return nil
	}
	if _, err := c.Conn.Write([]byte("220-" + c.l.srv.cfg.Hostname + " ESMTP\r\n")); err != nil {
		return err
	}
	c.Conn.SetReadDeadline(time.Now().Add(pause))
	buf := make([]byte, maxPregreet)
	n := 0
	for n < len(buf) {
		m, err := c.Conn.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	c.Conn.SetReadDeadline(time.Time{})
	if n > 0 {
		c.early = buf[:n]
		c.info.Pregreet = bytes.Clone(buf[:n])
	}
	return nil
}

// Read reads what the client sent during the greeting first.
func (c *trackedConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := listen.ClientIP(c.RemoteAddr())
		if reason := l.srv.admit(ip); reason != "" {
			l.srv.obs.Connection(l.name, reason)
			// RFC 5321 §3.1: a server may answer 421 and close when it
			// cannot serve. On an implicit-TLS listener the client
			// expects a handshake, so it only sees the close.
			if !l.implicit {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("421 4.7.0 " + l.srv.cfg.Hostname + " Too many connections, try again later\r\n"))
			}
			c.Close()
			continue
		}
		l.srv.obs.Connection(l.name, "accepted")
		tc := &trackedConn{Conn: c, l: l, ip: ip}
		tc.info = filters.Connection{
			ID:       newID(),
			Listener: l.name,
			RemoteIP: ip,
			LocalIP:  listen.ClientIP(c.LocalAddr()),
			Start:    time.Now(),
		}
		return tc, nil
	}
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.srv.release(c.ip) })
	return c.Conn.Close()
}

// trackedOf finds our trackedConn under the net.Conn go-smtp holds (a
// tls.Conn wraps it after STARTTLS; with implicit TLS it wraps the TLS
// connection).
func trackedOf(c net.Conn) *trackedConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// admit counts a new connection, or returns why it is refused.
func (s *Server) admit(ip netip.Addr) string {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.connTotal >= s.cfg.MaxConnections {
		return "refused_total"
	}
	if s.connPerIP[ip] >= s.cfg.MaxConnectionsPerIP {
		return "refused_per_ip"
	}
	s.connTotal++
	s.connPerIP[ip]++
	return ""
}

func (s *Server) release(ip netip.Addr) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.connTotal--
	if s.connPerIP[ip]--; s.connPerIP[ip] <= 0 {
		delete(s.connPerIP, ip)
	}
}

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKLMNPQRSTVWXY").WithPadding(base32.NoPadding)

// newID returns a short random identifier for connections and queue ids.
func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}
