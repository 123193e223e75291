package antivirus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Address schemes understood by ParseAddress.
const (
	schemeUnix = "unix:"
	schemeTCP  = "tcp:"
)

// chunkSize is the length of each INSTREAM chunk. clamd accepts any chunk
// that fits in what remains of its StreamMaxLength; 64 KiB keeps the
// number of chunk headers small without large buffers on either side.
const chunkSize = 64 << 10

// maxReplyBytes bounds a clamd reply. A reply is one line: "stream: OK",
// "stream: NAME FOUND" or a short error text.
const maxReplyBytes = 4 << 10

// fallbackTimeout bounds a scan whose context has no deadline, so that no
// network wait is unbounded (the pipeline always sets one). clamd's own
// default MaxScanTime is 120 s.
const fallbackTimeout = 2 * time.Minute

// Reply texts of clamd (clamd/session.c, clamd/scanner.c).
const (
	replyPrefix    = "stream: "
	replyOK        = "OK"
	replyFound     = " FOUND"
	replyError     = " ERROR"
	replySizeLimit = "INSTREAM size limit exceeded"
)

// Status is clamd's verdict on one stream.
type Status int

// The verdicts a scan can end with. A scan that could not be made is an
// error, never a Status.
const (
	// StatusClean means clamd found nothing ("stream: OK").
	StatusClean Status = iota
	// StatusInfected means a signature matched ("stream: NAME FOUND").
	StatusInfected
	// StatusSizeLimit means clamd refused the stream as longer than its
	// StreamMaxLength ("INSTREAM size limit exceeded. ERROR"): the data
	// was not scanned, and sending it again would not help.
	StatusSizeLimit
)

// String names the status for logs and test failures.
func (s Status) String() string {
	switch s {
	case StatusClean:
		return "clean"
	case StatusInfected:
		return "infected"
	case StatusSizeLimit:
		return "size-limit"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Result is clamd's answer about one stream.
type Result struct {
	// Status is the verdict.
	Status Status
	// Signature is the name of the matching signature as clamd sent it
	// (e.g. "Win.Test.EICAR_HDB-1"), set only for StatusInfected. It is not
	// sanitised.
	Signature string
}

// Clamd is a client of clamd's INSTREAM command (clamd(8), "INSTREAM").
// It keeps no connection: clamd answers one INSTREAM per connection
// outside an IDSESSION, so every scan dials anew. It is safe for
// concurrent use.
//
// github.com/dutchcoders/go-clamd is not used: it takes no context, sets no
// deadline on unix sockets, ignores write errors between chunks, and
// cannot tell clamd's size limit from other errors.
type Clamd struct {
	network string // "unix" or "tcp"
	addr    string // socket path or host:port
}

// NewClamd returns a client for address, "unix:/path/to/clamd.ctl" or
// "tcp:host:port" (see ParseAddress). It does not connect.
func NewClamd(address string) (*Clamd, error) {
	network, addr, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	return &Clamd{network: network, addr: addr}, nil
}

// String returns the address in configuration form.
func (c *Clamd) String() string { return c.network + ":" + c.addr }

// ParseAddress splits a clamd address into a network and an address for
// net.Dial: "unix:/run/clamav/clamd.ctl" gives ("unix",
// "/run/clamav/clamd.ctl"); "tcp:127.0.0.1:3310" gives ("tcp",
// "127.0.0.1:3310"). A TCP address needs a host and a numeric port.
func ParseAddress(address string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(address, schemeUnix):
		path := address[len(schemeUnix):]
		if path == "" {
			return "", "", fmt.Errorf("clamd address %q: empty socket path", address)
		}
		if strings.ContainsRune(path, 0) {
			return "", "", fmt.Errorf("clamd address %q: NUL in socket path", address)
		}
		return "unix", path, nil
	case strings.HasPrefix(address, schemeTCP):
		hostport := address[len(schemeTCP):]
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return "", "", fmt.Errorf("clamd address %q: %w", address, err)
		}
		if host == "" {
			return "", "", fmt.Errorf("clamd address %q: empty host", address)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", "", fmt.Errorf("clamd address %q: port %q is not a number from 1 to 65535", address, port)
		}
		return "tcp", hostport, nil
	}
	return "", "", fmt.Errorf("clamd address %q: want unix:/path or tcp:host:port", address)
}

// Scan sends data to clamd with INSTREAM and returns its verdict.
//
// The context's deadline (or its cancellation) applies to the dial, to
// every write and to the wait for the reply; without a deadline, Scan
// gives up after two minutes. An unreachable, slow or failing clamd is
// an error. A reply of "INSTREAM size limit exceeded" is StatusSizeLimit,
// not an error: the same data would be refused again.
func (c *Clamd) Scan(ctx context.Context, data []byte) (Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, fallbackTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return Result{}, c.fail(ctx, "connect", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return Result{}, c.fail(ctx, "set deadline", err)
	}
	// Cancellation before the deadline must wake a blocked read or write
	// too: move the deadline into the past.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	_, werr := instream(data).WriteTo(conn)
	// Read the reply even after a failed write: clamd answers "INSTREAM
	// size limit exceeded" and closes while the client is still sending,
	// so the write fails (EPIPE) with the reply already waiting.
	reply, rerr := readReply(conn)
	if rerr != nil {
		if werr != nil {
			return Result{}, c.fail(ctx, "send stream", werr)
		}
		return Result{}, c.fail(ctx, "read reply", rerr)
	}
	res, err := parseReply(reply)
	if err != nil {
		return Result{}, fmt.Errorf("clamd %s: %w", c, err)
	}
	if werr != nil && res.Status == StatusClean {
		// "Clean" about a stream that was not sent whole is no verdict
		// (a signature found, or the size limit, still is).
		return Result{}, c.fail(ctx, "send stream", fmt.Errorf("%w (clamd replied %q)", werr, printable(reply, 80)))
	}
	return res, nil
}

// fail wraps a network error, naming the context's error too when the
// context ended: a timed-out scan matches context.DeadlineExceeded.
func (c *Clamd) fail(ctx context.Context, op string, err error) error {
	cerr := ctx.Err()
	if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection's deadline is the context's, but its timer may
		// fire a moment before the context's own.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil {
		return fmt.Errorf("clamd %s: %s: %w: %w", c, op, cerr, err)
	}
	return fmt.Errorf("clamd %s: %s: %w", c, op, err)
}

// instream frames data as one INSTREAM command: the command with the
// NUL-terminated "z" form, then chunks of a 4-byte big-endian length and
// the bytes, then a zero length (clamd(8), "INSTREAM"). The buffers point
// into data (nothing is copied) and go out in as few writev(2) calls as
// the kernel takes.
func instream(data []byte) *net.Buffers {
	n := (len(data) + chunkSize - 1) / chunkSize
	lens := make([]byte, 4*(n+1)) // the last 4 stay zero: the terminator
	bufs := make(net.Buffers, 0, 2*n+2)
	bufs = append(bufs, []byte("zINSTREAM\x00"))
	for i := 0; i < n; i++ {
		chunk := data[i*chunkSize : min((i+1)*chunkSize, len(data))]
		binary.BigEndian.PutUint32(lens[4*i:], uint32(len(chunk)))
		bufs = append(bufs, lens[4*i:4*i+4], chunk)
	}
	bufs = append(bufs, lens[4*n:])
	return &bufs
}

// readReply reads one reply: up to the NUL that ends a reply to a "z"
// command, or to the end of the stream.
func readReply(conn net.Conn) (string, error) {
	buf := make([]byte, 0, 256)
	var tmp [256]byte
	for {
		n, err := conn.Read(tmp[:])
		buf = append(buf, tmp[:n]...)
		if i := bytes.IndexByte(buf, 0); i >= 0 {
			return string(buf[:i]), nil
		}
		if len(buf) > maxReplyBytes {
			return "", fmt.Errorf("reply longer than %d bytes", maxReplyBytes)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				// A reply without its NUL, then the end: take it.
				return string(buf), nil
			}
			return "", err
		}
	}
}

// parseReply reads clamd's reply to INSTREAM:
//
//	stream: OK
//	stream: Win.Test.EICAR_HDB-1 FOUND
//	INSTREAM size limit exceeded. ERROR
//	stream: <reason> ERROR          (any other failure)
func parseReply(reply string) (Result, error) {
	reply = strings.TrimRight(reply, "\x00\r\n ")
	if strings.HasPrefix(reply, replySizeLimit) {
		return Result{Status: StatusSizeLimit}, nil
	}
	if rest, ok := strings.CutPrefix(reply, replyPrefix); ok {
		if rest == replyOK {
			return Result{Status: StatusClean}, nil
		}
		if name, ok := strings.CutSuffix(rest, replyFound); ok {
			name = strings.TrimSpace(name)
			if name == "" {
				return Result{}, fmt.Errorf("reply %q names no signature", printable(reply, 80))
			}
			return Result{Status: StatusInfected, Signature: name}, nil
		}
	}
	if strings.HasSuffix(reply, replyError) {
		return Result{}, fmt.Errorf("scan failed: %q", printable(reply, 120))
	}
	return Result{}, fmt.Errorf("unexpected reply %q", printable(reply, 120))
}

// printable cuts s to at most n bytes and replaces bytes that are not
// printable ASCII, so that a reply can go into a log line.
func printable(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && i < n; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b.WriteByte(c)
	}
	if len(s) > n {
		b.WriteString("...")
	}
	return b.String()
}
