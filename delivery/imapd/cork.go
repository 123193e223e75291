package imapd

import (
	"net"
	"sync"
)

// corkConn batches writes while corked. go-imap flushes its 4 KiB write
// buffer at the end of every response, so a FETCH of many messages costs
// several write system calls per message; corked, the responses of a FETCH
// leave in writes of up to corkSize bytes. The buffer comes from a pool
// shared by all connections and is held only while a command runs.
//
// It wraps plain connections (and so sits below TLS after STARTTLS); a
// connection accepted from a tls.NewListener is already a *tls.Conn, which
// go-imap must see as such to know it is encrypted, so it is not wrapped.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	buf    *[]byte
	corked bool
}

const corkSize = 64 << 10

var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, corkSize); return &b }}

// Write implements net.Conn.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	if len(*c.buf)+len(p) > cap(*c.buf) {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= cap(*c.buf) {
			return c.Conn.Write(p)
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

func (c *corkConn) flushLocked() error {
	b := *c.buf
	*c.buf = b[:0]
	for len(b) > 0 {
		n, err := c.Conn.Write(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Read implements net.Conn. What a command left corked goes out before
// the server waits for the client: SELECT corks its untagged responses and
// go-imap writes the tagged reply after Select returns, so the whole
// reply leaves in one write when the serving goroutine reads the next
// command. (A few hundred bytes: they fit the socket's buffer, so this
// write does not wait on a client that does not read.)
func (c *corkConn) Read(p []byte) (int, error) {
	if err := c.uncork(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// Close implements net.Conn: a BYE written while corked still goes out.
func (c *corkConn) Close() error {
	c.uncork()
	return c.Conn.Close()
}

// cork starts batching writes; a nil corkConn does nothing.
func (c *corkConn) cork() {
	if c == nil {
		return
	}
	c.mu.Lock()
	if !c.corked {
		c.buf = corkBufs.Get().(*[]byte)
		c.corked = true
	}
	c.mu.Unlock()
}

// uncork sends what was batched and writes through again.
func (c *corkConn) uncork() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return nil
	}
	err := c.flushLocked()
	corkBufs.Put(c.buf)
	c.buf, c.corked = nil, false
	return err
}
