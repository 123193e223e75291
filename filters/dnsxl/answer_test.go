package dnsxl

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestInterpret(t *testing.T) {
	tests := []struct {
		name  string
		in    []netip.Addr
		st    Status
		codes []netip.Addr
	}{
		{"nothing", nil, NotListed, nil},
		{"listed", addrs("127.0.0.2"), Listed, addrs("127.0.0.2")},
		{"several, duplicates dropped", addrs("127.0.0.4", "127.0.0.2", "127.0.0.4"), Listed, addrs("127.0.0.4", "127.0.0.2")},
		{"mapped", addrs("::ffff:127.0.0.3"), Listed, addrs("127.0.0.3")},
		{"real address only", addrs("192.0.2.1"), Malformed, nil},
		{"IPv6 only", addrs("2001:db8::1"), Malformed, nil},
		{"real address beside a code", addrs("192.0.2.1", "127.0.0.2"), Listed, addrs("127.0.0.2")},
		{"Spamhaus open resolver", addrs("127.255.255.254"), Refused, nil},
		{"Spamhaus over quota", addrs("127.255.255.255"), Refused, nil},
		{"Spamhaus typo", addrs("127.255.255.252"), Refused, nil},
		{"URIBL blocked", addrs("127.0.0.1"), Refused, nil},
		{"DNSWL blocked", addrs("127.0.0.255"), Refused, nil},
		{"refusal wins over a code", addrs("127.0.0.2", "127.255.255.254"), Refused, nil},
		{"DBL IP query is no refusal", addrs("127.0.1.255"), Listed, addrs("127.0.1.255")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, codes := Interpret(tt.in)
			if st != tt.st || !slices.Equal(codes, tt.codes) {
				t.Errorf("got %v %v, want %v %v", st, codes, tt.st, tt.codes)
			}
		})
	}
}

func TestReverseIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.99", "99.2.0.192"},
		{"127.0.0.2", "2.0.0.127"},
		{"0.0.0.0", "0.0.0.0"},
		{"255.10.100.1", "1.100.10.255"},
		{"::ffff:192.0.2.99", "99.2.0.192"},
		{"2001:DB8:1:2:3:4:567:89AB", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"},
		{"2001:db8::5", "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"},
		{"fe80::1%eth0", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ReverseIP(netip.MustParseAddr(tt.in)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if got := ReverseIP(netip.Addr{}); got != "" {
		t.Errorf("invalid address reversed to %q", got)
	}
	// Every IPv4 octet value round-trips.
	for v := range 256 {
		a := netip.AddrFrom4([4]byte{byte(v), 1, 2, 3})
		if got, want := ReverseIP(a), fmt.Sprintf("3.2.1.%d", v); got != want {
			t.Fatalf("%v: %s, want %s", a, got, want)
		}
	}
}

func TestStatusNames(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Statuses {
		n := s.String()
		if n == "unknown" || seen[n] {
			t.Errorf("status %d named %q", s, n)
		}
		seen[n] = true
	}
}
