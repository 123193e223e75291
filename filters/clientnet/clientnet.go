// Package clientnet groups SMTP client addresses into networks, the unit
// in which the reputation checks (greylisting, rate limits) count
// clients, and matches addresses against configured lists of networks.
//
// A client rarely keeps one address: a mail provider sends from a pool
// of neighbouring IPv4 addresses, and an IPv6 end site usually holds a
// whole /64 and may pick any address in it (RFC 4291 §2.5.1, RFC 8981).
// Counting per network keeps such a client one client.
package clientnet

import (
	"fmt"
	"net/netip"
)

// Mask returns the network of ip: its first v4 bits when it is an IPv4
// address (an IPv4-mapped IPv6 address counts as IPv4, RFC 4291 §2.5.5.2),
// its first v6 bits otherwise. The zone is dropped. An invalid ip gives
// the zero Prefix.
func Mask(ip netip.Addr, v4, v6 int) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	bits := v6
	if ip.Is4() {
		bits = v4
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// CheckPrefixLengths reports a prefix length outside the ranges that make
// sense for grouping clients, naming the TOML keys: IPv4 8 to 32, IPv6 32
// to 128. Shorter prefixes would count whole providers as one client.
func CheckPrefixLengths(v4Key string, v4 int, v6Key string, v6 int) error {
	if v4 < 8 || v4 > 32 {
		return fmt.Errorf("%s: %d is outside 8..32", v4Key, v4)
	}
	if v6 < 32 || v6 > 128 {
		return fmt.Errorf("%s: %d is outside 32..128", v6Key, v6)
	}
	return nil
}

// List is a set of networks.
type List []netip.Prefix

// Local are the networks of clients that are the operator's own or
// cannot be anybody else's: loopback (RFC 1122 §3.2.1.3, RFC 4291
// §2.5.3), private (RFC 1918, RFC 4193), shared address space (RFC 6598)
// and link-local (RFC 3927, RFC 4291 §2.5.6).
var Local = []string{
	"127.0.0.0/8", "::1/128",
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
	"100.64.0.0/10",
	"169.254.0.0/16", "fe80::/10",
}

// Loopback are the loopback networks (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3).
var Loopback = []string{"127.0.0.0/8", "::1/128"}

// ParseList parses networks written as "192.0.2.0/24", "2001:db8::/32"
// or a bare address (one host). key is the TOML key, named with the
// index in errors: "allow_networks[2]: ...". A network with bits set
// past its prefix length ("192.0.2.1/24") is refused: it is most likely a
// typing error, and which network was meant is not clear.
func ParseList(key string, ss []string) (List, error) {
	l := make(List, 0, len(ss))
	for i, s := range ss {
		p, err := parseNetwork(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		l = append(l, p)
	}
	return l, nil
}

func parseNetwork(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: an address with a zone is not a network", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a network (192.0.2.0/24) nor an address", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has bits set past /%d (the network is %s)", s, p.Bits(), p.Masked())
	}
	if p.Addr().Is4In6() {
		// ::ffff:192.0.2.0/120 is the IPv4 network 192.0.2.0/24 (a
		// masked IPv4-mapped prefix keeps all 96 bits of the mapping).
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}

// Contains reports whether ip is in one of the networks. An IPv4-mapped
// address matches IPv4 networks.
func (l List) Contains(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range l {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
