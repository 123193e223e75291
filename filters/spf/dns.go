package spf

import (
	"context"
	"errors"
	"net"
	"net/netip"

	spflib "blitiri.com.ar/go/spf"

	"github.com/moatmail/moat/filters/resolver"
)

// netResolver adapts moat's resolver to the interface the SPF library
// asks for (the methods of *net.Resolver).
//
// The library classifies a lookup error with a type assertion to
// *net.DNSError, not errors.As: an error of any other type is taken as a
// permanent fault, and a wrapped DNSError too. moat's resolver returns
// bare *net.DNSError values; every other error, from a Resolver that is
// not moat's, is made one here (a wrapped DNSError unwrapped, anything
// else temporary), so that no fault of ours can become a permerror.
type netResolver struct {
	r resolver.Resolver
}

var _ spflib.DNSResolver = netResolver{}

// LookupTXT implements spflib.DNSResolver.
func (n netResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := n.r.LookupTXT(ctx, name)
	return txts, dnsError(name, err)
}

// LookupMX implements spflib.DNSResolver. A null MX (RFC 7505, the host
// ".") is dropped: it says the domain sends and receives no mail, so an
// mx term matches no address for it; asking the addresses of the root
// would only waste a lookup.
func (n netResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := n.r.LookupMX(ctx, name)
	if err != nil {
		return nil, dnsError(name, err)
	}
	out := mxs[:0:0]
	for _, mx := range mxs {
		if mx.Host != "." && mx.Host != "" {
			out = append(out, mx)
		}
	}
	return out, nil
}

// LookupIPAddr implements spflib.DNSResolver.
func (n netResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	addrs, err := n.r.LookupIP(ctx, host)
	if err != nil {
		return nil, dnsError(host, err)
	}
	out := make([]net.IPAddr, len(addrs))
	for i, a := range addrs {
		out[i] = net.IPAddr{IP: net.IP(a.Unmap().AsSlice())}
	}
	return out, nil
}

// LookupAddr implements spflib.DNSResolver.
func (n netResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "not an IP address", Name: addr, IsNotFound: true}
	}
	names, err := n.r.LookupAddr(ctx, a)
	return names, dnsError(addr, err)
}

// dnsError returns err as a bare *net.DNSError the library classifies
// right (see netResolver), or nil.
func dnsError(name string, err error) error {
	if err == nil {
		return nil
	}
	if de, ok := err.(*net.DNSError); ok {
		return de
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		c := *de
		return &c
	}
	// Not a DNS answer at all: nothing says the name does not exist.
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true, UnwrapErr: err}
}
