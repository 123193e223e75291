package dnsxl

import (
	"net/netip"
	"strings"
)

// loopbackNet is where every answer of a DNS list lies (RFC 5782 §2: a
// listing is an A record, by convention 127.0.0.2, other values of
// 127.0.0.0/8 telling sublists apart). An answer elsewhere is not a
// listing: it comes from a wildcarded or hijacked zone answering with a
// real address.
var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

// refusalNet holds the answers Spamhaus gives when it refuses a querier
// rather than lists the item: 127.255.255.252 (the zone name is
// mistyped), 127.255.255.254 (asked through a public or open resolver),
// 127.255.255.255 (too many queries). The whole /24 is taken as refusal.
var refusalNet = netip.MustParsePrefix("127.255.255.0/24")

// refusalAddrs are single refusal answers of other lists: 127.0.0.1,
// which URIBL and SURBL give to a querier they block (and which RFC 5782
// §5 forbids as a listing of anything), and 127.0.0.255, DNSWL's "you are
// blocked" answer (no bit-mask list can give it: bit 0 is never a
// listing).
var refusalAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.255")}

// IsRefusal reports whether a is an answer a list gives when it refuses
// to answer the querier (see refusalNet and refusalAddrs) rather than a
// listing.
func IsRefusal(a netip.Addr) bool {
	a = a.Unmap()
	if refusalNet.Contains(a) {
		return true
	}
	for _, r := range refusalAddrs {
		if a == r {
			return true
		}
	}
	return false
}

// Status is how a lookup in a list ended.
type Status int

// The statuses of a lookup.
const (
	// NotListed: the list answered NXDOMAIN or NODATA.
	NotListed Status = iota
	// Listed: the list answered with codes in 127.0.0.0/8.
	Listed
	// Failed: the lookup failed temporarily (timeout, SERVFAIL).
	Failed
	// Refused: the list answered with a refusal code; its answers are
	// ignored until the next probe.
	Refused
	// Malformed: the list answered only with addresses outside
	// 127.0.0.0/8 (a wildcarded zone); the answer is ignored.
	Malformed
	// Unusable: the list was not asked, or its answer not believed,
	// because a probe or an earlier answer found it unusable.
	Unusable
)

// String returns the status as an Observer outcome label.
func (s Status) String() string {
	switch s {
	case NotListed:
		return "not_listed"
	case Listed:
		return "listed"
	case Failed:
		return "error"
	case Refused:
		return "refused"
	case Malformed:
		return "malformed"
	case Unusable:
		return "unusable"
	}
	return "unknown"
}

// Statuses lists every Status, for an observer that declares its label
// values up front.
var Statuses = []Status{NotListed, Listed, Failed, Refused, Malformed, Unusable}

// Interpret classifies the addresses a list answered with: Refused if any
// is a refusal code; otherwise Listed with the addresses that lie in
// 127.0.0.0/8; otherwise Malformed if there were addresses; NotListed for
// none. The codes returned are unmapped IPv4 addresses in the answer's
// order, without duplicates.
func Interpret(addrs []netip.Addr) (Status, []netip.Addr) {
	var codes []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if IsRefusal(a) {
			return Refused, nil
		}
		if a.Is4() && loopbackNet.Contains(a) && !contains(codes, a) {
			codes = append(codes, a)
		}
	}
	switch {
	case len(codes) > 0:
		return Listed, codes
	case len(addrs) > 0:
		return Malformed, nil
	}
	return NotListed, nil
}

// contains reports whether a is in s.
func contains(s []netip.Addr, a netip.Addr) bool {
	for _, b := range s {
		if a == b {
			return true
		}
	}
	return false
}

// FormatCodes writes the codes of an answer for a reason: "127.0.0.2", or
// "127.0.0.2+127.0.0.4".
func FormatCodes(codes []netip.Addr) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = c.String()
	}
	return strings.Join(s, "+")
}

// ReverseIP returns the name under which an IP-based list publishes ip:
// the octets of an IPv4 address in reverse order (RFC 5782 §2.1,
// "192.0.2.99" → "99.2.0.192"), the 32 nibbles of an IPv6 address in
// reverse order (§2.4, as ip6.arpa). An IPv4-mapped IPv6 address is the
// IPv4 address it carries. It returns "" for an invalid address.
func ReverseIP(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	ip = ip.Unmap()
	const hex = "0123456789abcdef"
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		b.Grow(15)
		for i := 3; i >= 0; i-- {
			writeDecimal(&b, a[i])
			if i > 0 {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a := ip.As16()
	b.Grow(63)
	for i := 15; i >= 0; i-- {
		b.WriteByte(hex[a[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		if i > 0 {
			b.WriteByte('.')
		}
	}
	return b.String()
}

// writeDecimal appends v in decimal.
func writeDecimal(b *strings.Builder, v byte) {
	if v >= 100 {
		b.WriteByte('0' + v/100)
	}
	if v >= 10 {
		b.WriteByte('0' + v/10%10)
	}
	b.WriteByte('0' + v%10)
}
