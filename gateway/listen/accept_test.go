package listen

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scripted is a listener whose Accept returns the results it is given,
// then blocks until it is closed.
type scripted struct {
	results []error // nil: a connection
	closed  chan struct{}
	blocked chan struct{} // closed, when not nil, as Accept blocks
}

func (l *scripted) Accept() (net.Conn, error) {
	if len(l.results) > 0 {
		err := l.results[0]
		l.results = l.results[1:]
		if err != nil {
			return nil, err
		}
		c, _ := net.Pipe()
		return c, nil
	}
	if l.blocked != nil {
		close(l.blocked)
		l.blocked = nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *scripted) Close() error {
	select {
	case <-l.closed:
		return net.ErrClosed
	default:
		close(l.closed)
		return nil
	}
}

func (l *scripted) Addr() net.Addr { return &net.TCPAddr{} }

func TestAcceptorServe(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Err: os.NewSyscallError("accept", syscall.EMFILE)}
	for _, tc := range []struct {
		name    string
		results []error
		close   bool // close the acceptor once the results are used up
		conns   int
		want    string // "" for nil
	}{
		{"connections until closed", []error{nil, nil, nil}, true, 3, ""},
		{"a passing error is retried", []error{emfile, nil, emfile, emfile, nil}, true, 2, ""},
		{"a lasting error stops", []error{nil, errors.New("broken")}, false, 1, "test accept: broken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAcceptor("test", slog.New(slog.NewTextHandler(io.Discard, nil)))
			l := &scripted{results: tc.results, closed: make(chan struct{})}
			conns := 0
			errc := make(chan error, 1)
			go func() {
				errc <- a.Serve(l, func(c net.Conn) {
					conns++
					c.Close()
					if conns == tc.conns && tc.close {
						a.Close()
					}
				})
			}()
			select {
			case err := <-errc:
				if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Serve = %v, want %q", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return")
			}
			if conns != tc.conns {
				t.Errorf("%d connections handled, want %d", conns, tc.conns)
			}
			if tc.close {
				select {
				case <-l.closed:
				default:
					t.Error("Close left the listener open")
				}
			}
		})
	}
}

func TestAcceptorClose(t *testing.T) {
	a := NewAcceptor("test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Closing while Serve waits for a connection ends it.
	blocked := make(chan struct{})
	l := &scripted{results: []error{syscall.ECONNABORTED}, closed: make(chan struct{}), blocked: blocked}
	errc := make(chan error, 1)
	go func() { errc <- a.Serve(l, func(c net.Conn) { c.Close() }) }()
	<-blocked
	if a.Closed() {
		t.Fatal("Closed before Close")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
	if !a.Closed() {
		t.Error("not Closed after Close")
	}
	select {
	case <-a.Done():
	default:
		t.Error("Done not closed")
	}
	if err := a.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if err := a.Serve(&scripted{closed: make(chan struct{})}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close = %v, want ErrClosed", err)
	}
}
