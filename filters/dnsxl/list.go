package dnsxl

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"

	"github.com/moatmail/moat/filters/content"
	"github.com/moatmail/moat/filters/resolver"
)

// ListConfig configures one list: a zone, the weight of a listing, and
// which answers count as one. It is a [[filters.dnsbl.list]] or a
// [[filters.uribl.list]] table of the configuration; the same zone may
// appear in several tables with different codes and weights, as in
// Postfix's postscreen_dnsbl_sites ("zen.spamhaus.org=127.0.0.[10;11]*-1"
// beside "zen.spamhaus.org=127.0.0.[2..9]*3"): it is asked once.
type ListConfig struct {
	// Zone is the list's DNS zone, such as "zen.spamhaus.org" (TOML
	// zone, required).
	Zone string `toml:"zone"`
	// Weight is what a listing adds to the filter's sum, and to the
	// score of its symbol (TOML weight, required, not 0). Negative for
	// an allow list.
	Weight float64 `toml:"weight"`
	// Codes is the pattern of the answers that count as a listing, in
	// postscreen's syntax: "127.0.0.[2..11]", "127.0.0.[2;4]" (TOML
	// codes, default "": any answer in 127.0.0.0/8).
	Codes string `toml:"codes"`
	// Mask, when not 0, keeps only the answers whose last octet shares
	// a bit with it, for lists that encode sublists as bits (SURBL and
	// URIBL "multi": 127.0.0.X where X is a bit mask) (TOML mask,
	// default 0, from 0 to 255).
	Mask int `toml:"mask"`
	// Symbol, when set, is a symbol of score 0 the filter adds when this
	// list hits, for rules and logs that want to know which list it was
	// (TOML symbol, default "": none; upper case A-Z, 0-9 and '_').
	Symbol string `toml:"symbol"`
}

// maxZoneLen bounds a zone name so that every item fits before it: an
// IPv6 address reversed into nibbles takes 64 bytes of the 253 a name may
// have (RFC 1035 §2.3.4).
const maxZoneLen = 253 - 64

// Validate reports the first invalid field, named by its TOML key.
func (c ListConfig) Validate() error {
	_, err := c.compile()
	return err
}

// List is a configured list, ready to judge answers.
type List struct {
	// Zone is the list's zone (lower case, without the trailing dot).
	Zone string
	// Weight is the weight of a listing.
	Weight float64
	// Symbol is the list's own symbol, or "".
	Symbol string

	codes Codes // zero: any answer in 127.0.0.0/8
	mask  byte
	zone  *Zone
}

// compile checks c and returns the list it configures.
func (c ListConfig) compile() (List, error) {
	zone := strings.ToLower(strings.TrimSuffix(c.Zone, "."))
	switch {
	case zone == "":
		return List{}, errors.New("zone: missing")
	case len(zone) > maxZoneLen:
		return List{}, fmt.Errorf("zone: %q is longer than %d bytes", c.Zone, maxZoneLen)
	case strings.Count(zone, ".") == 0:
		return List{}, fmt.Errorf("zone: %q is a top-level domain, not a list's zone", c.Zone)
	}
	if !IsHostName(zone) {
		return List{}, fmt.Errorf("zone: %q is not a domain name of letters, digits, '-' and '_' (an internationalised name goes as A-labels, xn--)", c.Zone)
	}
	if math.IsNaN(c.Weight) || math.IsInf(c.Weight, 0) {
		return List{}, fmt.Errorf("weight: %v is not a finite number", c.Weight)
	}
	if c.Weight == 0 {
		return List{}, errors.New("weight: missing or 0 (postscreen's default weight is 1; negative for an allow list)")
	}
	l := List{Zone: zone, Weight: c.Weight, Symbol: c.Symbol}
	if c.Codes != "" {
		codes, err := ParseCodes(c.Codes)
		if err != nil {
			return List{}, fmt.Errorf("codes: %w", err)
		}
		if !codes.octets[0].has(127) {
			return List{}, fmt.Errorf("codes: %q matches no answer in 127.0.0.0/8, where every listing is", c.Codes)
		}
		l.codes = codes
	}
	if c.Mask < 0 || c.Mask > 255 {
		return List{}, fmt.Errorf("mask: %d is not from 0 to 255", c.Mask)
	}
	l.mask = byte(c.Mask)
	if c.Symbol != "" && !IsSymbolName(c.Symbol) {
		return List{}, fmt.Errorf("symbol: %q is not an upper-case name of A-Z, 0-9 and '_' (at most 64)", c.Symbol)
	}
	return l, nil
}

// IsHostName reports whether s is a domain name of lower-case letters,
// digits, '-' and '_' in labels of 1 to 63 bytes, without a trailing dot
// (content.IsHostName).
func IsHostName(s string) bool { return content.IsHostName(s) }

// IsSymbolName reports whether s can name a symbol: 1 to 64 bytes of
// A-Z, 0-9 and '_', starting with a letter.
func IsSymbolName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Match returns the codes of an answer that count as a listing in l:
// those the codes pattern matches (any, without one) whose last octet
// shares a bit with the mask (any, without one).
func (l *List) Match(codes []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range codes {
		if !l.codes.IsZero() && !l.codes.Match(a) {
			continue
		}
		if l.mask != 0 && a.As4()[3]&l.mask == 0 {
			continue
		}
		out = append(out, a)
	}
	return out
}

// ZoneOf returns the Zone l is asked in (set by Compile).
func (l *List) ZoneOf() *Zone { return l.zone }

// Compile checks the list tables of a configuration (errors name
// "key[i].field", key being the tables' TOML key) and returns the lists
// with the distinct zones they are asked in, in configuration order.
// reserved are symbol names a list's symbol must not take (the filter's
// own); two lists may not share a symbol either.
func Compile(cfgs []ListConfig, key string, k Kind, r resolver.Resolver, opt Options, reserved ...string) ([]List, []*Zone, error) {
	lists := make([]List, len(cfgs))
	var zones []*Zone
	byName := make(map[string]*Zone)
	symbols := make(map[string]int)
	for _, s := range reserved {
		symbols[s] = -1
	}
	for i, c := range cfgs {
		l, err := c.compile()
		if err != nil {
			return nil, nil, fmt.Errorf("%s[%d].%w", key, i, err)
		}
		if l.Symbol != "" {
			if j, ok := symbols[l.Symbol]; ok {
				if j < 0 {
					return nil, nil, fmt.Errorf("%s[%d].symbol: %q is a symbol of the filter itself", key, i, l.Symbol)
				}
				return nil, nil, fmt.Errorf("%s[%d].symbol: %q is the symbol of %s[%d] too", key, i, l.Symbol, key, j)
			}
			symbols[l.Symbol] = i
		}
		z, ok := byName[l.Zone]
		if !ok && r != nil {
			z = NewZone(l.Zone, k, r, opt)
			byName[l.Zone] = z
			zones = append(zones, z)
		}
		l.zone = z
		lists[i] = l
	}
	return lists, zones, nil
}
