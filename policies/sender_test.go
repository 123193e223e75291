package policies

import (
	"strings"
	"testing"
)

func TestSenderListMatch(t *testing.T) {
	l, err := NewSenderList([]string{
		"Boss@Home.Example", "@partner.example", ".spammer.example", `"odd@local"@quoted.example`,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"boss@home.example", true},
		{"BOSS@HOME.EXAMPLE", true},
		{"boss2@home.example", false},
		{"other@home.example", false},
		{"boss@sub.home.example", false},
		{"anyone@partner.example", true},
		{"anyone@PARTNER.example", true},
		{"anyone@sub.partner.example", false},
		{"anyone@notpartner.example", false},
		{"x@spammer.example", true},
		{"x@a.spammer.example", true},
		{"x@b.a.SPAMMER.example", true},
		{"x@notspammer.example", false},
		{"x@spammer.example.org", false},
		{`"odd@local"@quoted.example`, true},
		{"", false},
		{"@partner.example", true},
		{"partner.example", false},
		{"postmaster", false},
	}
	for _, tt := range tests {
		if got := l.Match(tt.addr); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if l.Len() != 4 {
		t.Errorf("Len() = %d, want 4", l.Len())
	}
	var zero SenderList
	if zero.Match("a@b.example") {
		t.Error("zero SenderList matched")
	}
}

func TestNewSenderListErrors(t *testing.T) {
	tests := []struct {
		pattern string
		want    string
	}{
		{"", "empty pattern"},
		{"@", "empty domain"},
		{".", "empty domain"},
		{"user@", "empty domain"},
		{"@a..example", "empty label"},
		{"@a_b.example", "holds '_'"},
		{"@-a.example", "starts or ends with a hyphen"},
		{"a b@example.com", "space or control character"},
		{"@b\u00fccher.example", "IDNs as xn-- A-labels"},
		{"example.com", `want "user@domain"`},
		{"*.example.com", `want "user@domain"`},
		{"@" + strings.Repeat("a.", 127) + "com", "above 253"},
	}
	for _, tt := range tests {
		_, err := NewSenderList([]string{"@ok.example", tt.pattern})
		if err == nil {
			t.Errorf("NewSenderList(%q) succeeded", tt.pattern)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "[1] ") {
			t.Errorf("NewSenderList(%q) = %v, want [1] ... %s", tt.pattern, err, tt.want)
		}
	}
}

// FuzzSenderPattern checks that any pattern either fails to compile or
// compiles into a list that matches consistently and never panics.
func FuzzSenderPattern(f *testing.F) {
	for _, s := range []string{"a@b.example", "@b.example", ".b.example", "", "@", ".", "x@y@z.example", "@B.EXAMPLE"} {
		f.Add(s, "user@b.example")
	}
	f.Fuzz(func(t *testing.T, pattern, addr string) {
		l, err := NewSenderList([]string{pattern})
		if err != nil {
			if l.Len() != 0 {
				t.Fatalf("failed list has %d patterns", l.Len())
			}
			return
		}
		if l.Match("") {
			t.Fatal("the null sender matched")
		}
		if l.Match(addr) != l.Match(strings.ToUpper(addr)) && addr == lowerASCII(addr) && isASCII(addr) {
			t.Fatalf("pattern %q: match of %q depends on case", pattern, addr)
		}
		if pattern[0] != '@' && pattern[0] != '.' && !l.Match(pattern) {
			t.Fatalf("address pattern %q does not match itself", pattern)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
