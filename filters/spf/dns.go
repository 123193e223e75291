package spf

import (
	"context"
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
// bare *net.DNSError values; resolver.NetError makes every other error,
// from a Resolver that is not moat's, one the library reads right, so
// that no fault of ours can become a permerror.
type netResolver struct {
	r resolver.Resolver
}

var _ spflib.DNSResolver = netResolver{}

// LookupTXT implements spflib.DNSResolver.
func (n netResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := n.r.LookupTXT(ctx, name)
	return txts, resolver.NetError(name, err)
}

// LookupMX implements spflib.DNSResolver. A null MX (RFC 7505, the host
// ".") is dropped: it says the domain sends and receives no mail, so an
// mx term matches no address for it; asking the addresses of the root
// would only waste a lookup.
func (n netResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := n.r.LookupMX(ctx, name)
	if err != nil {
		return nil, resolver.NetError(name, err)
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
		return nil, resolver.NetError(host, err)
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
	return names, resolver.NetError(addr, err)
}
