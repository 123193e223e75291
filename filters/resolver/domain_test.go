package resolver

import (
	"errors"
	"strings"
	"testing"
)

func TestASCIIDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Example.NET", "example.net"},
		{"example.net.", "example.net"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"XN--BCHER-KVA.example", "xn--bcher-kva.example"},
		{"localhost", "localhost"},
		{"", ""},
		{".", ""},
		{"a..b", ""},
		{"[192.0.2.1]", ""},
		{strings.Repeat("x", 64) + ".net", ""},
		{strings.Repeat("abcdefghi.", 26) + "net", ""},
		{"under_score.example", ""},
	}
	for _, tt := range tests {
		got, err := ASCIIDomain(tt.in)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("ASCIIDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ASCIIDomain(%q): error %v is not ErrInvalidName", tt.in, err)
		}
	}
}
