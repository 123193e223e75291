package policies

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moatmail/moat/filters/address"
)

// SenderList matches envelope senders against a list of patterns. The zero
// value matches nothing. A SenderList is immutable once built and safe for
// concurrent use.
//
// Three pattern forms are accepted:
//
//   - "user@b.example": exactly that address;
//   - "@b.example": any address at exactly the domain b.example;
//   - ".b.example": any address at b.example or at any of its subdomains
//     (x.b.example, y.x.b.example, ...).
//
// Matching ignores ASCII case in the domain (RFC 5321 §2.4: domain names
// are case-insensitive) and, deliberately, in the local part too. RFC 5321
// §2.4 lets a receiving host treat local parts as case-sensitive, but a
// sender's own systems vary the case freely, and a block list that
// "Bob@spammer.example" escapes by writing "BOB@" would be worse than an
// allow list that is slightly broad.
//
// The null reverse path "" (RFC 5321 §4.5.5, bounces) never matches any
// pattern: it names no sender that a list could vouch for or against.
type SenderList struct {
	patterns []string
	addrs    map[string]struct{}
	domains  map[string]struct{}
	trees    map[string]struct{} // ".b.example" is stored as "b.example"
}

// NewSenderList checks and compiles patterns. The error names the index
// and the pattern at fault, e.g. `[1] "foo": want "user@domain", "@domain"
// or ".domain"`; errors for several patterns are joined.
func NewSenderList(patterns []string) (SenderList, error) {
	return newSenderList("", patterns)
}

// newSenderList is NewSenderList with key (e.g.
// "policies.default.allow_senders") before each error.
func newSenderList(key string, patterns []string) (SenderList, error) {
	var l SenderList
	var errs []error
	for i, raw := range patterns {
		p := lowerASCII(raw)
		if err := l.add(p); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d] %q: %w", key, i, raw, err))
			continue
		}
		l.patterns = append(l.patterns, p)
	}
	if len(errs) > 0 {
		return SenderList{}, errors.Join(errs...)
	}
	return l, nil
}

func (l *SenderList) add(p string) error {
	switch {
	case p == "":
		return errors.New("empty pattern (the null sender never matches)")
	case p[0] == '@':
		if err := checkDomain(p[1:]); err != nil {
			return err
		}
		if l.domains == nil {
			l.domains = make(map[string]struct{})
		}
		l.domains[p[1:]] = struct{}{}
	case p[0] == '.':
		if err := checkDomain(p[1:]); err != nil {
			return err
		}
		if l.trees == nil {
			l.trees = make(map[string]struct{})
		}
		l.trees[p[1:]] = struct{}{}
	default:
		if err := checkAddress(p); err != nil {
			return err
		}
		if l.addrs == nil {
			l.addrs = make(map[string]struct{})
		}
		l.addrs[p] = struct{}{}
	}
	return nil
}

// Match reports whether the envelope sender addr matches any pattern.
// addr is the reverse path without angle brackets, as in
// filters.Envelope.From. Match does not allocate unless addr holds ASCII
// upper-case letters.
func (l SenderList) Match(addr string) bool {
	if addr == "" || len(l.patterns) == 0 {
		return false
	}
	a := lowerASCII(addr)
	if _, ok := l.addrs[a]; ok {
		return true
	}
	_, d, ok := address.Split(a)
	if !ok {
		return false
	}
	if _, ok := l.domains[d]; ok {
		return true
	}
	if len(l.trees) == 0 {
		return false
	}
	for {
		if _, ok := l.trees[d]; ok {
			return true
		}
		dot := strings.IndexByte(d, '.')
		if dot < 0 {
			return false
		}
		d = d[dot+1:]
	}
}

// Patterns returns the normalised (lower-case) patterns in configuration
// order. The caller must not modify the returned slice.
func (l SenderList) Patterns() []string { return l.patterns }

// Len returns the number of patterns.
func (l SenderList) Len() int { return len(l.patterns) }

// checkAddress checks a full address pattern "local@domain".
//
// It is deliberately not address.Valid, the envelope check: a pattern is
// configuration, checked once at load with an error that says what is
// wrong, and its domain must be an ASCII name of RFC 5321 §4.1.2 written
// as A-labels (checkDomain), because Match compares domains octet by
// octet and a U-label or a typo there would silently never match.
// address.Valid, run on every SMTP command, accepts any UTF-8 domain
// (RFC 6531) and gives no reason.
func checkAddress(a string) error {
	local, domain, ok := address.Split(a)
	if !ok {
		return errors.New(`want "user@domain", "@domain" or ".domain"`)
	}
	if local == "" {
		return errors.New("empty local part")
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("local part holds a space or control character at offset %d", i)
		}
	}
	return checkDomain(domain)
}

// checkDomain checks that d is a lower-case domain name in the form RFC
// 5321 §4.1.2 allows in a mailbox (Domain = sub-domain *("." sub-domain),
// letters, digits and hyphens, no hyphen at either end of a label) with the
// lengths of RFC 1035 §2.3.4 (63 octets a label, 253 in all, written
// without the root dot). Internationalised names must be written as
// A-labels ("xn--..."): moat compares domains octet by octet.
func checkDomain(d string) error {
	if d == "" {
		return errors.New("empty domain")
	}
	if len(d) > 253 {
		return fmt.Errorf("domain is %d octets long, above 253", len(d))
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" {
			return fmt.Errorf("domain %q has an empty label", d)
		}
		if len(label) > 63 {
			return fmt.Errorf("domain %q has a label longer than 63 octets", d)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain %q has a label that starts or ends with a hyphen", d)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("domain %q holds %q (want letters, digits, hyphens; IDNs as xn-- A-labels)", d, rune(c))
			}
		}
	}
	return nil
}

// lowerASCII lowers ASCII letters only, leaving any other byte alone. It
// returns s itself (no allocation) when there is nothing to lower.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
