// Package resolver is the one DNS resolver every check uses (SPF, DKIM,
// DMARC, DNSBL, MX, PTR): a stub resolver that asks a configured recursive
// upstream over UDP with EDNS0, falls back to TCP on truncation, caches
// answers (positive and negative) in a bounded LRU that honours TTLs, and
// coalesces concurrent identical queries.
//
// Its errors tell a definitive "does not exist" (IsNotFound) from a fault
// that may pass (IsTemporary), because a check must never turn a temporary
// DNS fault into a permanent rejection.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// Resolver is the DNS interface the checks depend on. Every method honours
// ctx. Errors satisfy IsNotFound or IsTemporary.
type Resolver interface {
	// LookupTXT returns the TXT records of name, each record's strings
	// joined into one (as net.LookupTXT does, and as RFC 7208 §3.3 and
	// RFC 6376 §3.6.2.2 require for SPF and DKIM).
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupIP returns the IPv4 (A) then IPv6 (AAAA) addresses of host.
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
	// LookupMX returns the MX records of name sorted by preference.
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	// LookupAddr returns the PTR names of addr (fully qualified, with the
	// trailing dot).
	LookupAddr(ctx context.Context, addr netip.Addr) ([]string, error)
}

// ednsBufSize is the UDP payload size announced in EDNS0: 1232 bytes fits
// an IPv6 packet within the 1280-byte minimum MTU without fragmentation
// (DNS Flag Day 2020; RFC 6891 §6.2.5 leaves the value to the requestor).
const ednsBufSize = 1232

// maxCNAMEHops bounds how many CNAMEs of an answer are followed.
const maxCNAMEHops = 8

// DNS is the stub resolver. It is safe for concurrent use.
type DNS struct {
	cfg    Config
	udp    *dns.Client
	tcp    *dns.Client
	cache  *cache // nil when disabled
	flight flight
	// now is the clock of the cache; tests replace it.
	now func() time.Time
}

var _ Resolver = (*DNS)(nil)

// New returns a resolver asking cfg.Upstream.
func New(cfg Config) (*DNS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("resolver config: %w", err)
	}
	d := &DNS{
		cfg: cfg,
		udp: &dns.Client{Net: "udp", UDPSize: ednsBufSize, Timeout: cfg.Timeout},
		tcp: &dns.Client{Net: "tcp", Timeout: cfg.Timeout},
		now: time.Now,
	}
	if cfg.CacheSize > 0 {
		d.cache = newCache(cfg.CacheSize)
	}
	return d, nil
}

// LookupTXT implements Resolver.
func (d *DNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := d.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, joinTXT(t.Txt))
		}
	}
	return out, nil
}

// LookupIP implements Resolver. The A and AAAA queries run concurrently.
//
// If either query fails temporarily, LookupIP fails temporarily even when
// the other returned addresses: a check that compares a client address
// with a partial list (FCrDNS, SPF "a") would otherwise conclude "no
// match" from a transient fault. There is no shortcut for IP literals:
// "192.0.2.1" is asked as a name, so that a PTR record naming an address
// cannot confirm itself.
func (d *DNS) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	type result struct {
		rrs []dns.RR
		err error
	}
	six := make(chan result, 1)
	go func() {
		rrs, err := d.lookup(ctx, host, dns.TypeAAAA)
		six <- result{rrs, err}
	}()
	rrs4, err4 := d.lookup(ctx, host, dns.TypeA)
	r6 := <-six
	for _, err := range []error{err4, r6.err} {
		if err != nil && !IsNotFound(err) {
			return nil, err
		}
	}
	out := addresses(slices.Concat(rrs4, r6.rrs))
	if len(out) == 0 {
		if err4 != nil {
			return nil, err4
		}
		if r6.err != nil {
			return nil, r6.err
		}
		return nil, notFound(host, d.cfg.Upstream, ErrNoData)
	}
	return out, nil
}

// IPv4Resolver is implemented by resolvers that can ask for A records
// alone. A DNS list (RFC 5782 §2.1) answers with A records only: asking
// for AAAA records too would double the queries the list sees, and a lost
// AAAA answer would fail a lookup whose A answer had arrived.
type IPv4Resolver interface {
	// LookupA returns the IPv4 addresses of host, from its A records.
	LookupA(ctx context.Context, host string) ([]netip.Addr, error)
}

var _ IPv4Resolver = (*DNS)(nil)

// LookupA implements IPv4Resolver. As with LookupIP, an address is asked
// as a name: "192.0.2.1" is not answered from the literal.
func (d *DNS) LookupA(ctx context.Context, host string) ([]netip.Addr, error) {
	rrs, err := d.lookup(ctx, host, dns.TypeA)
	if err != nil {
		return nil, err
	}
	out := addresses(rrs)
	if len(out) == 0 {
		return nil, notFound(host, d.cfg.Upstream, ErrNoData)
	}
	return out, nil
}

// LookupIPv4 returns the IPv4 addresses of host through r: with r's
// LookupA when r is an IPv4Resolver, otherwise with LookupIP, keeping the
// IPv4 addresses (then a name with IPv6 addresses only is not found).
func LookupIPv4(ctx context.Context, r Resolver, host string) ([]netip.Addr, error) {
	if r4, ok := r.(IPv4Resolver); ok {
		return r4.LookupA(ctx, host)
	}
	all, err := r.LookupIP(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(all))
	for _, a := range all {
		if a.Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, notFound(host, "", ErrNoData)
	}
	return out, nil
}

// addresses returns the addresses of the A and AAAA records among rrs.
func addresses(rrs []dns.RR) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
				out = append(out, a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// LookupMX implements Resolver. Records of equal preference keep the
// upstream's order (net.LookupMX shuffles them; moat's callers want
// reproducible results). A null MX (RFC 7505) is returned as is, with
// Host ".".
func (d *DNS) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := d.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		if mx, ok := rr.(*dns.MX); ok {
			out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
		}
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

// LookupAddr implements Resolver. An IPv4-mapped IPv6 address is looked up
// as the IPv4 address it carries. PTR targets that are not domain names
// are dropped.
func (d *DNS) LookupAddr(ctx context.Context, addr netip.Addr) ([]string, error) {
	if !addr.IsValid() {
		return nil, notFound(addr.String(), "", ErrInvalidName)
	}
	addr = addr.Unmap().WithZone("")
	rev, err := dns.ReverseAddr(addr.String())
	if err != nil {
		return nil, notFound(addr.String(), "", fmt.Errorf("%w: %w", ErrInvalidName, err))
	}
	rrs, err := d.lookup(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if p, ok := rr.(*dns.PTR); ok {
			if _, ok := dns.IsDomainName(p.Ptr); ok {
				out = append(out, p.Ptr)
			}
		}
	}
	if len(out) == 0 {
		return nil, notFound(rev, d.cfg.Upstream, ErrNoData)
	}
	return out, nil
}

// lookup returns the records of type qtype for name, from the cache or
// the upstream.
func (d *DNS) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	qname, err := normalise(name)
	if err != nil {
		return nil, notFound(name, "", err)
	}
	k := key{qname, qtype}
	if d.cache != nil {
		if a, ok := d.cache.get(k, d.now()); ok {
			return d.result(qname, a)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, temporary(qname, d.cfg.Upstream, err)
	}
	a, err := d.flight.do(ctx, k, func() (answer, error) { return d.query(qname, qtype) })
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, temporary(qname, d.cfg.Upstream, err) // ctx ended
	}
	return d.result(qname, a)
}

// result turns a cached or fresh answer into lookup's return values.
func (d *DNS) result(qname string, a answer) ([]dns.RR, error) {
	if a.neg != nil {
		return nil, notFound(qname, d.cfg.Upstream, a.neg)
	}
	return a.rrs, nil
}

// normalise returns name as asked on the wire: lower case, fully
// qualified. A name with non-ASCII bytes is invalid: internationalised
// names must reach the resolver as A-labels (RFC 5890 §2.3.2.1); callers
// that hold U-labels (SMTPUTF8 addresses) convert them first.
func normalise(name string) (string, error) {
	if name == "" {
		return "", ErrInvalidName
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return "", fmt.Errorf("%w: non-ASCII byte (U-label?)", ErrInvalidName)
		}
	}
	name = strings.ToLower(dns.Fqdn(name))
	if _, ok := dns.IsDomainName(name); !ok {
		return "", ErrInvalidName
	}
	return name, nil
}

// ASCIIDomain returns the domain name as the checks ask and compare it:
// A-labels (RFC 5890 §2.3.2.1; SMTPUTF8 addresses may carry U-labels), in
// lower case, without a trailing dot. It fails for what is no domain
// name: an empty label, a label over 63 octets, a name over 253, an
// address literal, a label IDNA refuses.
func ASCIIDomain(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" || strings.HasPrefix(name, "[") {
		return "", ErrInvalidName
	}
	a, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	a = strings.ToLower(a)
	if len(a) > 253 {
		return "", ErrInvalidName
	}
	for label := range strings.SplitSeq(a, ".") {
		if label == "" || len(label) > 63 {
			return "", ErrInvalidName
		}
	}
	return a, nil
}
