package dnsxl

import (
	"net/netip"
	"testing"
)

// FuzzParseCodes: the pattern parser never panics, and what it accepts
// prints in a canonical form that parses back to the same set.
func FuzzParseCodes(f *testing.F) {
	for _, s := range []string{
		"127.0.0.2", "127.0.0.[2..11]", "127.0.0.[2;4]", "127.0.[0..255].[1..3]",
		"127.0.0.[9;2..4;3]", "[127].0.0.[0]", "127.0.0.[", "127.0.0.[]", "127.0.0.[2..]",
		"127.0.0.256", "127.0.0.02", "127..0.2", "127.0.0.2.", "1.2.3.[4;5..6;7..7]",
	} {
		f.Add(s, []byte{127, 0, 0, 2})
	}
	f.Fuzz(func(t *testing.T, s string, a []byte) {
		c, err := ParseCodes(s)
		if err != nil {
			if !c.IsZero() {
				t.Fatalf("%q: codes %v with error %v", s, c, err)
			}
			return
		}
		if c.IsZero() {
			t.Fatalf("%q: accepted, but matches nothing", s)
		}
		canon := c.String()
		c2, err := ParseCodes(canon)
		if err != nil || c2 != c {
			t.Fatalf("%q: canonical %q parses to %v, %v", s, canon, c2.String(), err)
		}
		if c2.String() != canon {
			t.Fatalf("%q: canonical form %q is not stable: %q", s, canon, c2.String())
		}
		if len(a) >= 4 {
			addr := netip.AddrFrom4([4]byte(a[:4]))
			if c.Match(addr) != c2.Match(addr) {
				t.Fatalf("%q and %q disagree on %v", s, canon, addr)
			}
			if c.Match(netip.AddrFrom16(addr.As16())) {
				t.Fatalf("%q matches the IPv4-mapped %v", s, addr)
			}
		}
	})
}

// FuzzInterpret: any set of answer addresses is classified in exactly one
// way, and a list keeps only codes it may count.
func FuzzInterpret(f *testing.F) {
	f.Add([]byte{0, 127, 0, 0, 2}, "", byte(0))
	f.Add([]byte{0, 127, 0, 0, 2, 0, 127, 0, 0, 4}, "127.0.0.[2..3]", byte(0))
	f.Add([]byte{0, 127, 0, 0, 6, 0, 127, 0, 0, 8}, "", byte(4))
	f.Add([]byte{0, 127, 255, 255, 254}, "", byte(0))
	f.Add([]byte{0, 192, 0, 2, 1}, "", byte(0))
	f.Add(append([]byte{1}, netip.MustParseAddr("::ffff:127.0.0.1").AsSlice()...), "", byte(0))
	f.Add(append([]byte{1}, netip.MustParseAddr("2001:db8::1").AsSlice()...), "", byte(0))
	f.Fuzz(func(t *testing.T, data []byte, pattern string, mask byte) {
		var in []netip.Addr
		for len(data) > 0 {
			n := 4
			if data[0]&1 == 1 {
				n = 16
			}
			if len(data) < 1+n {
				break
			}
			a, _ := netip.AddrFromSlice(data[1 : 1+n])
			in = append(in, a)
			data = data[1+n:]
		}
		st, codes := Interpret(in)
		refusal, loop := false, false
		for _, a := range in {
			refusal = refusal || IsRefusal(a)
			loop = loop || loopbackNet.Contains(a.Unmap())
		}
		want := NotListed
		switch {
		case refusal:
			want = Refused
		case loop:
			want = Listed
		case len(in) > 0:
			want = Malformed
		}
		if st != want {
			t.Fatalf("%v: status %v, want %v", in, st, want)
		}
		if (st == Listed) != (len(codes) > 0) {
			t.Fatalf("%v: status %v with codes %v", in, st, codes)
		}
		seen := map[netip.Addr]bool{}
		for _, c := range codes {
			if !c.Is4() || !loopbackNet.Contains(c) || IsRefusal(c) || seen[c] {
				t.Fatalf("%v: code %v should not be kept", in, c)
			}
			seen[c] = true
		}
		l := List{mask: mask}
		if pc, err := ParseCodes(pattern); err == nil {
			l.codes = pc
		}
		for _, c := range l.Match(codes) {
			if !seen[c] {
				t.Fatalf("Match made up %v", c)
			}
			if !l.codes.IsZero() && !l.codes.Match(c) {
				t.Fatalf("Match kept %v outside %v", c, l.codes)
			}
			if mask != 0 && c.As4()[3]&mask == 0 {
				t.Fatalf("Match kept %v outside mask %#x", c, mask)
			}
		}
	})
}
