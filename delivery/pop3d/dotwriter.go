package pop3d

import (
	"bufio"
	"bytes"
	"io"
	"sync"
)

// dotWriter writes a stored message as the body of a multi-line response
// (RFC 1939 §3): every line ends in CRLF (a bare LF gets its CR), a line
// that begins with "." gets a second "." in front of it, and finish ends
// the body with CRLF "." CRLF. Input arrives in chunks of any size; lines
// and CRLF pairs may straddle chunks.
//
// Lines that need no change are not copied one by one: a chunk is written
// in as few pieces as there are changes in it, so a CRLF message without
// leading dots costs one copy into the write buffer, and no allocation.
//
// For TOP (RFC 1939 §7), top is set and left is the number of body lines
// to send after the header and the blank line that ends it; done becomes
// true once they are written.
type dotWriter struct {
	w   *bufio.Writer
	err error

	bol     bool // the next input byte begins a line
	prev    byte // the last input byte seen
	lineLen int  // input bytes of the current line so far

	top    bool
	inBody bool
	left   int
	done   bool
}

func newDotWriter(w *bufio.Writer) dotWriter {
	return dotWriter{w: w, bol: true}
}

func newTopWriter(w *bufio.Writer, lines int) dotWriter {
	return dotWriter{w: w, bol: true, top: true, left: lines}
}

func (d *dotWriter) put(p []byte) {
	if d.err == nil && len(p) > 0 {
		_, d.err = d.w.Write(p)
	}
}

func (d *dotWriter) putString(s string) {
	if d.err == nil {
		_, d.err = d.w.WriteString(s)
	}
}

// write transforms one chunk of the message. It stops early once TOP has
// sent what it should (d.done).
func (d *dotWriter) write(p []byte) {
	if d.done {
		return
	}
	from := 0 // p[from:i] is input not yet written, to be copied as is
	i := 0
	for i < len(p) {
		if d.bol {
			d.bol = false
			if p[i] == '.' {
				// RFC 1939 §3: byte-stuff the termination octet.
				d.put(p[from:i])
				d.putString(".")
				from = i
			}
		}
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			d.lineLen += len(p) - i
			d.prev = p[len(p)-1]
			break
		}
		nl := i + j
		before := d.prev // the byte before the LF, maybe from the last chunk
		if nl > i {
			before = p[nl-1]
		}
		lineLen := d.lineLen + nl - i
		if before != '\r' || lineLen == 0 {
			// A bare LF: the line ends in CRLF on the wire.
			d.put(p[from:nl])
			d.putString("\r\n")
			from = nl + 1
		}
		d.prev, d.bol, d.lineLen = '\n', true, 0
		i = nl + 1
		if d.top && d.countLine(lineLen == 0 || (lineLen == 1 && before == '\r')) {
			d.put(p[from:i])
			d.done = true
			return
		}
	}
	d.put(p[from:])
}

// countLine advances TOP's count past one line; it reports whether TOP has
// sent everything it should.
func (d *dotWriter) countLine(empty bool) bool {
	if !d.inBody {
		// RFC 1939 §7: the header, the blank line that ends it, then
		// the body lines.
		d.inBody = empty
		return d.inBody && d.left == 0
	}
	d.left--
	return d.left <= 0
}

// finish ends the last line if the message did not, and writes the
// termination line.
func (d *dotWriter) finish() error {
	if !d.bol {
		if d.prev == '\r' {
			d.putString("\n")
		} else {
			d.putString("\r\n")
		}
	}
	d.putString(".\r\n")
	return d.err
}

// copyBufSize is the size of the buffers through which a message is read.
const copyBufSize = 32 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyMessage streams r through d until EOF or until TOP is done. The
// returned error is a read error (the response is then cut short) or the
// writer's error.
func copyMessage(d *dotWriter, r io.Reader) (readErr, writeErr error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for !d.done && d.err == nil {
		n, err := r.Read(buf)
		d.write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return err, d.err
		}
	}
	return nil, d.err
}
