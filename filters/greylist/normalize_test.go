package greylist

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizeSender(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", NullSender},
		{"<>", NullSender},
		{"Alice@Example.NET", "alice@example.net"},
		{"alice+news@example.net", "alice@example.net"},
		{"bounce-123-4567@lists.example.net", "bounce-#-#@lists.example.net"},
		{"bounces+1234@example.net", "bounces@example.net"},
		{"user2024@example.net", "user2024@example.net"}, // digits inside a word stay
		{"2024user@example.net", "2024user@example.net"}, // likewise
		{"a.17.b@example.net", "a.#.b@example.net"},      // a word of its own
		{"msg_42@example.net", "msg_42@example.net"},     // '_' is a word character
		{"42@example.net", "#@example.net"},              // the whole user
		{"prvs=1234abcdef=alice@example.net", "alice@example.net"},
		{"prvs=alice=1234abcdef@example.net", "alice@example.net"},
		{"prvs=0123456789=1234abcdef@example.net", "1234abcdef@example.net"}, // both look like tags: the standard side
		{"prvs=short=alice@example.net", "alice@example.net"},
		{"prvs=a=b=c@example.net", "prvs=a=b=c@example.net"}, // not BATV
		{"no-at-sign", "no-at-sign"},
		{"a@b@example.net", "a@b@example.net"},
	}
	for _, tt := range tests {
		if got := NormalizeSender(tt.in); got != tt.want {
			t.Errorf("NormalizeSender(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := strings.Repeat("x", 1000) + "@example.net"
	if got := NormalizeSender(long); len(got) != maxAddress {
		t.Errorf("a sender of %d bytes gives %d, want %d", len(long), len(got), maxAddress)
	}
	if got := NormalizeSender("a\xff\xfe@example.net"); !utf8.ValidString(got) {
		t.Errorf("invalid UTF-8 kept: %q", got)
	}
}

func FuzzNormalizeSender(f *testing.F) {
	for _, s := range []string{"", "<>", "alice+x@example.net", "prvs=1234abcdef=alice@example.net", "bounce-12-34@x", "a\xff@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := NormalizeSender(s)
		if len(got) > maxAddress*3 || !utf8.ValidString(got) {
			t.Fatalf("NormalizeSender(%q) = %q: too long or not UTF-8", s, got)
		}
		if got == "" {
			t.Fatalf("NormalizeSender(%q) is empty", s)
		}
		if s != "" && s != NullSender && got == NullSender && !strings.Contains(s, "<>") {
			t.Fatalf("NormalizeSender(%q) is the null sender", s)
		}
	})
}
