package resolver

import (
	"context"
	"net"
	"net/netip"
)

// Counted returns a Resolver (and an IPv4Resolver) that asks r and tells
// count of every lookup first, by record type ("TXT", "A+AAAA", "A", "MX",
// "PTR"), cache hits included: what a check asks, for metrics per check.
// count must be cheap and safe for concurrent use.
func Counted(r Resolver, count func(qtype string)) Resolver {
	return counted{r: r, count: count}
}

type counted struct {
	r     Resolver
	count func(string)
}

func (c counted) LookupTXT(ctx context.Context, name string) ([]string, error) {
	c.count("TXT")
	return c.r.LookupTXT(ctx, name)
}

func (c counted) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	c.count("A+AAAA")
	return c.r.LookupIP(ctx, host)
}

func (c counted) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	c.count("MX")
	return c.r.LookupMX(ctx, name)
}

// LookupA implements IPv4Resolver, through r's LookupA when it has one.
func (c counted) LookupA(ctx context.Context, host string) ([]netip.Addr, error) {
	c.count("A")
	return LookupIPv4(ctx, c.r, host)
}

func (c counted) LookupAddr(ctx context.Context, addr netip.Addr) ([]string, error) {
	c.count("PTR")
	return c.r.LookupAddr(ctx, addr)
}
