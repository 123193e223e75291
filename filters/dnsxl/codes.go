package dnsxl

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Codes is a set of IPv4 answers a list may give, written as Postfix's
// postscreen_dnsbl_sites filters are: four dot-separated octets, each a
// number or, inside brackets, ';'-separated numbers and number..number
// ranges ("127.0.0.[2..11]", "127.0.0.[2;4]", "127.0.[0..255].[1;3..5]").
// The zero Codes matches nothing; parse one with ParseCodes.
type Codes struct {
	octets [4]octetSet
}

// octetSet is a set of octet values, one bit per value.
type octetSet [4]uint64

func (s *octetSet) add(lo, hi int) {
	for v := lo; v <= hi; v++ {
		s[v/64] |= 1 << (v % 64)
	}
}

func (s *octetSet) has(v byte) bool { return s[v/64]&(1<<(v%64)) != 0 }

// maxCodesLen bounds the text ParseCodes reads: a real pattern is a few
// dozen bytes.
const maxCodesLen = 256

// ParseCodes parses a return-code pattern. Its errors say what is wrong
// and where, for a configuration error message.
func ParseCodes(s string) (Codes, error) {
	var c Codes
	if len(s) > maxCodesLen {
		return c, fmt.Errorf("pattern longer than %d bytes", maxCodesLen)
	}
	if s == "" {
		return c, errors.New("empty pattern")
	}
	rest := s
	for i := range 4 {
		var part string
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return Codes{}, fmt.Errorf("octet %d of %q: '[' without ']'", i+1, s)
			}
			part, rest = rest[:end+1], rest[end+1:]
		} else if dot := strings.IndexByte(rest, '.'); dot >= 0 {
			part, rest = rest[:dot], rest[dot:]
		} else {
			part, rest = rest, ""
		}
		if err := c.octets[i].parse(part); err != nil {
			return Codes{}, fmt.Errorf("octet %d of %q: %w", i+1, s, err)
		}
		if i < 3 {
			if !strings.HasPrefix(rest, ".") {
				return Codes{}, fmt.Errorf("%q has %d octets, want 4", s, i+1)
			}
			rest = rest[1:]
		}
	}
	if rest != "" {
		return Codes{}, fmt.Errorf("%q: unexpected %q after the fourth octet", s, rest)
	}
	return c, nil
}

// parse reads one octet: a number, or "[" alternatives "]".
func (o *octetSet) parse(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	if p[0] != '[' {
		v, err := octet(p)
		if err != nil {
			return err
		}
		o.add(v, v)
		return nil
	}
	inner := p[1 : len(p)-1]
	if inner == "" {
		return errors.New("empty brackets")
	}
	for _, alt := range strings.Split(inner, ";") {
		lo, hi, isRange := strings.Cut(alt, "..")
		a, err := octet(lo)
		if err != nil {
			return err
		}
		b := a
		if isRange {
			if b, err = octet(hi); err != nil {
				return err
			}
			if b < a {
				return fmt.Errorf("range %s runs backwards", alt)
			}
		}
		o.add(a, b)
	}
	return nil
}

// octet parses a decimal number from 0 to 255, without sign or leading
// zeros (so that "010" is not read as ten by one tool and eight by another).
func octet(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a number", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v > 255 {
		return 0, fmt.Errorf("%q is not a number from 0 to 255", s)
	}
	return v, nil
}

// Match reports whether a is an IPv4 address in the set.
func (c Codes) Match(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	for i := range 4 {
		if !c.octets[i].has(b[i]) {
			return false
		}
	}
	return true
}

// IsZero reports whether c is the zero Codes, which matches nothing.
func (c Codes) IsZero() bool { return c == Codes{} }

// String returns the pattern in its canonical form: each octet a number
// or a bracket of ascending, merged ranges ("127.0.0.[2..4;9]"). Parsing it
// gives c again.
func (c Codes) String() string {
	if c.IsZero() {
		return ""
	}
	var b strings.Builder
	for i := range 4 {
		if i > 0 {
			b.WriteByte('.')
		}
		c.octets[i].write(&b)
	}
	return b.String()
}

// write appends the octet in canonical form.
func (o *octetSet) write(b *strings.Builder) {
	type span struct{ lo, hi int }
	var spans []span
	for v := 0; v < 256; v++ {
		if !o.has(byte(v)) {
			continue
		}
		if n := len(spans); n > 0 && spans[n-1].hi == v-1 {
			spans[n-1].hi = v
		} else {
			spans = append(spans, span{v, v})
		}
	}
	if len(spans) == 1 && spans[0].lo == spans[0].hi {
		b.WriteString(strconv.Itoa(spans[0].lo))
		return
	}
	b.WriteByte('[')
	for i, s := range spans {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(strconv.Itoa(s.lo))
		if s.hi > s.lo {
			b.WriteString("..")
			b.WriteString(strconv.Itoa(s.hi))
		}
	}
	b.WriteByte(']')
}
