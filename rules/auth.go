package rules

import (
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/address"
)

// The facts the sender-authentication and GeoIP checks set, which the
// rule environment and the allow lists read. They are named here, not
// imported, because rules does not depend on any single check.
const (
	factDKIMDomain = "dkim.domain" // a domain with a valid DKIM signature
	factFromDomain = "from.domain" // the RFC5322.From domain (DMARC)
	factCountry    = "geoip.country"
	factASN        = "geoip.asn"
	factASNOrg     = "geoip.asn_org"
)

// authValue returns the result of the first authentication result of
// method, "" when the method was not applied.
func authValue(found *filters.Result, method string) string {
	if found == nil {
		return ""
	}
	for _, a := range found.Auth {
		if a.Method == method {
			return string(a.Value)
		}
	}
	return ""
}

// senderAuthenticated reports whether the envelope sender's domain is
// authenticated by what the checks found: an SPF pass for it (RFC 7208
// checks exactly that domain), or a valid DKIM signature or a DMARC pass
// whose domain is aligned with it (RFC 7489 §3.1 relaxed alignment: the
// same organizational domain). An allow list names envelope senders, so
// only an identity aligned with the envelope sender vouches for it: a
// DMARC pass for another From domain does not.
func senderAuthenticated(from string, found *filters.Result) bool {
	_, domain, ok := address.Split(from)
	if found == nil || !ok {
		return false // the null sender is never allow-listed by auth
	}
	for _, a := range found.Auth {
		if a.Value != filters.AuthPass {
			continue
		}
		var d string
		switch a.Method {
		case "spf":
			d = address.Domain(a.Prop("smtp", "mailfrom"))
		case "dkim":
			d = a.Prop("header", "d")
		case "dmarc":
			d = a.Prop("header", "from")
		}
		if d != "" && aligned(d, domain) {
			return true
		}
	}
	return false
}

// aligned reports whether two domains are in relaxed alignment (RFC 7489
// §3.1.1): equal, or with the same organizational domain.
func aligned(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSuffix(a, ".")), strings.ToLower(strings.TrimSuffix(b, "."))
	if a == b {
		return true
	}
	oa, err := publicsuffix.EffectiveTLDPlusOne(a)
	if err != nil {
		return false
	}
	ob, err := publicsuffix.EffectiveTLDPlusOne(b)
	return err == nil && oa == ob
}
