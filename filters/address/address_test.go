package address

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"Alice@Example.COM", "alice@example.com"},
		{"  bob@example.org\t", "bob@example.org"},
		{"ÉLODIE@exemple.fr", "élodie@exemple.fr"},
		{"", ""},
	} {
		if got := Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"alice@example.com", true},
		{"a@b", true},
		{"first.last+tag@sub.example.co.uk", true},
		{"élodie@exemple.fr", true},                        // RFC 6531 UTF-8 local part
		{"用户@例子.广告", true},                                 // and domain
		{"odd@local@example.com", true},                    // split at the last '@'
		{strings.Repeat("a", 242) + "@example.com", true},  // 254 octets,
		{strings.Repeat("a", 243) + "@example.com", false}, // 255 octets
		{"", false},
		{"alice", false},
		{"@example.com", false},
		{"alice@", false},
		{"al ice@example.com", false},
		{"alice@exa mple.com", false},
		{"alice\t@example.com", false},
		{"<alice@example.com>", false},
		{`"alice"@example.com`, false},
		{"alice@example..com", false},
		{"alice\x7f@example.com", false},
		{"alice\x00@example.com", false},
	} {
		if got := Valid(tc.addr); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestSplitAndDomain(t *testing.T) {
	for _, tc := range []struct {
		addr, local, domain string
		ok                  bool
	}{
		{"alice@example.com", "alice", "example.com", true},
		{"odd@local@example.com", "odd@local", "example.com", true},
		{"@example.com", "", "example.com", true},
		{"alice@", "alice", "", true},
		{"alice", "alice", "", false},
		{"", "", "", false},
	} {
		local, domain, ok := Split(tc.addr)
		if local != tc.local || domain != tc.domain || ok != tc.ok {
			t.Errorf("Split(%q) = %q, %q, %v; want %q, %q, %v", tc.addr, local, domain, ok, tc.local, tc.domain, tc.ok)
		}
		if got := Domain(tc.addr); got != tc.domain {
			t.Errorf("Domain(%q) = %q, want %q", tc.addr, got, tc.domain)
		}
	}
}

// FuzzAddress: Split puts the address back together, and Valid accepts
// only what splits into two non-empty parts free of the refused octets.
func FuzzAddress(f *testing.F) {
	for _, s := range []string{"alice@example.com", "a@b@c", "@", "", "é@x..y", "<a@b>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		local, domain, ok := Split(addr)
		if ok && local+"@"+domain != addr {
			t.Fatalf("Split(%q) = %q, %q: does not rebuild the address", addr, local, domain)
		}
		if !ok && (local != addr || domain != "" || strings.Contains(addr, "@")) {
			t.Fatalf("Split(%q) = %q, %q, false", addr, local, domain)
		}
		if !Valid(addr) {
			return
		}
		if !ok || local == "" || domain == "" || strings.ContainsAny(addr, " <>\"\x7f") || strings.Contains(domain, "..") {
			t.Fatalf("Valid(%q) is true", addr)
		}
		if n := Normalize(addr); Normalize(n) != n {
			t.Fatalf("Normalize is not idempotent on %q", addr)
		}
	})
}
