// Package listen holds what every moat server (SMTP, IMAP, POP3) does the
// same way with its listeners and connections: telling a passing accept
// failure from a closed listener, and naming the client's address.
//
// It lives under gateway/, moat's network front, as a leaf: it imports
// nothing of moat, so that the mail servers under delivery/ (imapd, pop3d)
// use it as the SMTP front does, and it must never import package gateway.
package listen

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// TemporaryAcceptError reports whether an Accept error will likely pass
// (a timeout, running out of file descriptors or buffers, a connection
// aborted before it was accepted): the server should wait a moment and
// accept again rather than stop.
func TemporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ClientIP returns the IP address of a connection's peer, with IPv4-mapped
// IPv6 addresses unmapped (so that 127.0.0.1 is loopback however the
// socket was opened); the zero Addr when a is not an IP address.
func ClientIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
