package uribl

import (
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/moatmail/moat/filters/content"
)

// urlHosts returns the hosts a link points at (content.LinkHosts).
func urlHosts(u string) []string { return content.LinkHosts(u) }

// host turns a raw host into a name or an address to look up
// (content.ParseHost).
func host(h string) (name string, ip netip.Addr, ok bool) { return content.ParseHost(h) }

// registered returns the registered domain of name by the Public Suffix
// List (its public suffix and one label more: "www.a.example.co.uk" →
// "example.co.uk"), or, under one of the exceptions, the exception and one
// label more. ok is false for a name that is itself a public suffix or an
// exception.
func registered(name string, exceptions []string) (string, bool) {
	for _, e := range exceptions {
		if rest, ok := strings.CutSuffix(name, "."+e); ok {
			return rest[strings.LastIndexByte(rest, '.')+1:] + "." + e, true
		}
		if name == e {
			return "", false
		}
	}
	rd, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return "", false
	}
	return rd, true
}

// under reports whether name is domain or a subdomain of it.
func under(name, domain string) bool {
	return name == domain || strings.HasSuffix(name, "."+domain)
}
