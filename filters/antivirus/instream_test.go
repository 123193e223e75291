package antivirus

// Tests of the INSTREAM client against fake servers written here: framing,
// every kind of reply, and servers that hang or hang up. They need no
// ClamAV.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatmail/moat/filters/antivirus/clamdtest"
)

// fakeClamd is a server on a unix socket or loopback TCP port that hands
// every connection to a handler.
type fakeClamd struct {
	address string       // in configuration form
	accepts atomic.Int32 // connections accepted
	done    chan struct{}
}

// startFake serves network ("unix" or "tcp") until the test ends. A
// handler that blocks should wait on f.done.
func startFake(t *testing.T, network string, handle func(f *fakeClamd, conn net.Conn)) *fakeClamd {
	t.Helper()
	var (
		l   net.Listener
		err error
	)
	f := &fakeClamd{done: make(chan struct{})}
	switch network {
	case "unix":
		path := filepath.Join(t.TempDir(), "fake.sock")
		l, err = net.Listen("unix", path)
		f.address = "unix:" + path
	case "tcp":
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			f.address = "tcp:" + l.Addr().String()
		}
	default:
		t.Fatalf("network %q", network)
	}
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			f.accepts.Add(1)
			wg.Go(func() {
				defer conn.Close()
				handle(f, conn)
			})
		}
	})
	t.Cleanup(func() {
		close(f.done)
		l.Close()
		wg.Wait()
	})
	return f
}

// readInstream reads one INSTREAM command and returns the stream, checking
// the framing as clamd does.
func readInstream(r io.Reader) ([]byte, error) {
	cmd := make([]byte, len("zINSTREAM\x00"))
	if _, err := io.ReadFull(r, cmd); err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	if string(cmd) != "zINSTREAM\x00" {
		return nil, fmt.Errorf("command %q, want zINSTREAM\\0", cmd)
	}
	var data []byte
	for {
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			return nil, fmt.Errorf("chunk length: %w", err)
		}
		if n == 0 {
			return data, nil
		}
		if n > chunkSize {
			return nil, fmt.Errorf("chunk of %d bytes, over the client's %d", n, chunkSize)
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, fmt.Errorf("chunk: %w", err)
		}
		data = append(data, chunk...)
	}
}

// replying reads the stream, checks it is want, and answers reply.
func replying(t *testing.T, want []byte, reply string) func(*fakeClamd, net.Conn) {
	return func(_ *fakeClamd, conn net.Conn) {
		got, err := readInstream(conn)
		if err != nil {
			t.Errorf("server: %v", err)
			return
		}
		if !bytes.Equal(got, want) {
			t.Errorf("server got %d bytes, want the %d sent", len(got), len(want))
		}
		_, _ = io.WriteString(conn, reply)
	}
}

func scanCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestInstreamFraming sends streams around the chunk size: the server must
// get exactly the bytes sent.
func TestInstreamFraming(t *testing.T) {
	for _, n := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(i * 7)
			}
			f := startFake(t, "unix", replying(t, data, "stream: OK\x00"))
			c, err := NewClamd(f.address)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Scan(scanCtx(t), data)
			if err != nil || res != (Result{Status: StatusClean}) {
				t.Fatalf("Scan: %+v, %v; want clean", res, err)
			}
		})
	}
}

// TestInstreamReplies checks the reading of every kind of reply.
func TestInstreamReplies(t *testing.T) {
	data := []byte("From: a@example.net\r\n\r\nbody\r\n")
	tests := []struct {
		name    string
		reply   string
		want    Result
		wantErr string // substring of the error; "" for none
	}{
		{name: "clean", reply: "stream: OK\x00", want: Result{Status: StatusClean}},
		{name: "found", reply: "stream: Win.Test.EICAR_HDB-1 FOUND\x00", want: Result{Status: StatusInfected, Signature: "Win.Test.EICAR_HDB-1"}},
		{name: "found with spaces and hash", reply: "stream: Some Sig(44d88612:68) FOUND\x00", want: Result{Status: StatusInfected, Signature: "Some Sig(44d88612:68)"}},
		{name: "no NUL then close", reply: "stream: OK\n", want: Result{Status: StatusClean}},
		{name: "size limit", reply: "INSTREAM size limit exceeded. ERROR\x00", want: Result{Status: StatusSizeLimit}},
		{name: "scan error", reply: "stream: Can't allocate memory ERROR\x00", wantErr: "scan failed"},
		{name: "unknown command", reply: "UNKNOWN COMMAND\x00", wantErr: "unexpected reply"},
		{name: "found without name", reply: "stream:  FOUND\x00", wantErr: "names no signature"},
		{name: "hang up without reply", reply: "", wantErr: "read reply: EOF"},
		{name: "endless reply", reply: strings.Repeat("x", maxReplyBytes+300), wantErr: "reply longer than"},
		{name: "control bytes quoted", reply: "stream: \x1b[31m ERROR\x00", wantErr: `"stream: ?[31m ERROR"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, "unix", replying(t, data, tt.reply))
			c, err := NewClamd(f.address)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Scan(scanCtx(t), data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Scan: %+v, %v; want an error containing %q", res, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), f.address) {
					t.Errorf("error %q does not name the address %s", err, f.address)
				}
				return
			}
			if err != nil || res != tt.want {
				t.Fatalf("Scan: %+v, %v; want %+v", res, err, tt.want)
			}
		})
	}
}

// TestInstreamEarlyReply plays a server that answers and hangs up while
// the client is still sending, as clamd does for a stream over its
// StreamMaxLength. The client must read the answer rather than report the
// broken pipe, but must not take "clean" about half a stream.
func TestInstreamEarlyReply(t *testing.T) {
	const readBytes = 100 << 10
	tests := []struct {
		reply   string
		want    Result
		wantErr string
	}{
		{reply: "INSTREAM size limit exceeded. ERROR\x00", want: Result{Status: StatusSizeLimit}},
		{reply: "stream: Early.Sig FOUND\x00", want: Result{Status: StatusInfected, Signature: "Early.Sig"}},
		{reply: "stream: OK\x00", wantErr: `send stream: `},
	}
	for _, tt := range tests {
		t.Run(tt.reply, func(t *testing.T) {
			f := startFake(t, "unix", func(_ *fakeClamd, conn net.Conn) {
				cmd := make([]byte, 10)
				if _, err := io.ReadFull(conn, cmd); err != nil {
					t.Errorf("server: %v", err)
					return
				}
				if _, err := io.CopyN(io.Discard, conn, readBytes); err != nil {
					t.Errorf("server: %v", err)
					return
				}
				_, _ = io.WriteString(conn, tt.reply)
			})
			c, err := NewClamd(f.address)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Scan(scanCtx(t), make([]byte, 8<<20))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "stream: OK") {
					t.Fatalf("Scan: %+v, %v; want an error containing %q and the reply", res, err, tt.wantErr)
				}
				return
			}
			if err != nil || res != tt.want {
				t.Fatalf("Scan: %+v, %v; want %+v", res, err, tt.want)
			}
		})
	}
}

// TestInstreamHangingServer: a server that accepts and never answers (and,
// for a large message, never reads) must not hold the scan past its
// context.
func TestInstreamHangingServer(t *testing.T) {
	hang := func(f *fakeClamd, _ net.Conn) { <-f.done }
	tests := []struct {
		network string
		size    int
		cancel  bool // cancel the context instead of letting its deadline pass
	}{
		{network: "unix", size: 10 << 10},
		{network: "unix", size: 8 << 20}, // blocks in write: the socket buffers fill
		{network: "tcp", size: 10 << 10},
		{network: "tcp", size: 8 << 20},
		{network: "unix", size: 8 << 20, cancel: true},
		{network: "tcp", size: 10 << 10, cancel: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/cancel=%v", tt.network, tt.size, tt.cancel), func(t *testing.T) {
			f := startFake(t, tt.network, hang)
			c, err := NewClamd(f.address)
			if err != nil {
				t.Fatal(err)
			}
			var (
				ctx    context.Context
				cancel context.CancelFunc
				want   error
			)
			if tt.cancel {
				ctx, cancel = context.WithCancel(context.Background())
				time.AfterFunc(200*time.Millisecond, cancel)
				want = context.Canceled
			} else {
				ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
				want = context.DeadlineExceeded
			}
			defer cancel()
			type result struct {
				res Result
				err error
			}
			ch := make(chan result, 1)
			go func() {
				res, err := c.Scan(ctx, make([]byte, tt.size))
				ch <- result{res, err}
			}()
			select {
			case r := <-ch:
				if !errors.Is(r.err, want) {
					t.Fatalf("Scan: %+v, %v; want an error matching %v", r.res, r.err, want)
				}
				if f.accepts.Load() != 1 {
					t.Errorf("server accepted %d connections, want 1", f.accepts.Load())
				}
			case <-time.After(10 * time.Second):
				// A hang guard, not a timing assertion: the context ends
				// after 200ms.
				t.Fatal("Scan still blocked 10s after a 200ms context")
			}
		})
	}
}

// TestInstreamUnreachable: nothing listening is an error, at once.
func TestInstreamUnreachable(t *testing.T) {
	dead := clamdtest.FreePort(t)
	for _, addr := range []string{
		"unix:" + filepath.Join(t.TempDir(), "absent.sock"),
		fmt.Sprintf("tcp:127.0.0.1:%d", dead),
	} {
		c, err := NewClamd(addr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Scan(scanCtx(t), []byte("x"))
		if err == nil || !strings.Contains(err.Error(), "connect") {
			t.Errorf("%s: %+v, %v; want a connect error", addr, res, err)
		}
	}
}

// TestInstreamNoDeadline: a context without a deadline still works (the
// client sets its own bound).
func TestInstreamNoDeadline(t *testing.T) {
	data := []byte("hello")
	f := startFake(t, "tcp", replying(t, data, "stream: OK\x00"))
	c, err := NewClamd(f.address)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.Scan(context.Background(), data); err != nil || res.Status != StatusClean {
		t.Fatalf("Scan: %+v, %v; want clean", res, err)
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in            string
		network, addr string
		wantErr       bool
	}{
		{in: "unix:/run/clamav/clamd.ctl", network: "unix", addr: "/run/clamav/clamd.ctl"},
		{in: "unix:relative.sock", network: "unix", addr: "relative.sock"},
		{in: "tcp:127.0.0.1:3310", network: "tcp", addr: "127.0.0.1:3310"},
		{in: "tcp:[::1]:3310", network: "tcp", addr: "[::1]:3310"},
		{in: "tcp:clamav.internal:3310", network: "tcp", addr: "clamav.internal:3310"},
		{in: "", wantErr: true},
		{in: "/run/clamav/clamd.ctl", wantErr: true},
		{in: "unix:", wantErr: true},
		{in: "unix:/a\x00b", wantErr: true},
		{in: "tcp:127.0.0.1", wantErr: true},
		{in: "tcp::3310", wantErr: true},
		{in: "tcp:127.0.0.1:0", wantErr: true},
		{in: "tcp:127.0.0.1:65536", wantErr: true},
		{in: "tcp:127.0.0.1:clamd", wantErr: true},
		{in: "udp:127.0.0.1:3310", wantErr: true},
	}
	for _, tt := range tests {
		network, addr, err := ParseAddress(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseAddress(%q) = %q, %q; want an error", tt.in, network, addr)
			}
			continue
		}
		if err != nil || network != tt.network || addr != tt.addr {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q, %q", tt.in, network, addr, err, tt.network, tt.addr)
		}
	}
}

// FuzzParseReply: any reply gives a result or an error, never a panic; an
// infected result names its signature, and the reason made from it is
// safe for a log line.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"stream: OK", "stream: Eicar-Signature FOUND", "INSTREAM size limit exceeded. ERROR",
		"stream: Can't allocate memory ERROR", "UNKNOWN COMMAND", "stream:  FOUND", "",
		"stream: a\x00b FOUND", "stream: \xff\xfe FOUND",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		res, err := parseReply(reply)
		if err != nil {
			if res != (Result{}) {
				t.Fatalf("error %v with result %+v", err, res)
			}
			return
		}
		switch res.Status {
		case StatusClean, StatusSizeLimit:
			if res.Signature != "" {
				t.Fatalf("%v with signature %q", res.Status, res.Signature)
			}
		case StatusInfected:
			if res.Signature == "" {
				t.Fatal("infected without a signature")
			}
			r := SignatureReason(res.Signature)
			if len(r) == 0 || len(r) > maxSignatureLen {
				t.Fatalf("reason %q: length %d", r, len(r))
			}
			for i := 0; i < len(r); i++ {
				if r[i] < 0x21 || r[i] > 0x7e {
					t.Fatalf("reason %q holds byte %#x", r, r[i])
				}
			}
		default:
			t.Fatalf("status %v", res.Status)
		}
	})
}
