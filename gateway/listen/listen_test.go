package listen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestTemporaryAcceptError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept", syscall.EMFILE)}, true},
		{fmt.Errorf("wrapped: %w", syscall.ECONNABORTED), true},
		{net.ErrClosed, false},
		{errors.New("something else"), false},
	} {
		if got := TemporaryAcceptError(tc.err); got != tc.want {
			t.Errorf("TemporaryAcceptError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 25}, "127.0.0.1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 25}, "2001:db8::1"},
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 53}, "192.0.2.1"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, "invalid IP"},
		{nil, "invalid IP"},
	} {
		if got := ClientIP(tc.addr); got.String() != tc.want {
			t.Errorf("ClientIP(%v) = %v, want %s", tc.addr, got, tc.want)
		}
	}
}
