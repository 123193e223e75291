package dnsxl

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseCodes(t *testing.T) {
	tests := []struct {
		in    string
		canon string // "" when in is invalid
		err   string // part of the error
		match []string
		miss  []string
	}{
		{in: "127.0.0.2", canon: "127.0.0.2", match: []string{"127.0.0.2"}, miss: []string{"127.0.0.3", "127.0.1.2", "::ffff:127.0.0.2"}},
		{in: "127.0.0.[2..11]", canon: "127.0.0.[2..11]", match: []string{"127.0.0.2", "127.0.0.11"}, miss: []string{"127.0.0.1", "127.0.0.12"}},
		{in: "127.0.0.[2;4]", canon: "127.0.0.[2;4]", match: []string{"127.0.0.2", "127.0.0.4"}, miss: []string{"127.0.0.3"}},
		{in: "127.0.[0..255].[1..3]", canon: "127.0.[0..255].[1..3]", match: []string{"127.0.15.1", "127.0.255.3"}, miss: []string{"127.0.15.0", "127.1.0.1"}},
		// Alternatives are merged and sorted in the canonical form.
		{in: "127.0.0.[9;2..4;3;5]", canon: "127.0.0.[2..5;9]", match: []string{"127.0.0.5", "127.0.0.9"}, miss: []string{"127.0.0.6"}},
		{in: "127.0.0.[7..7]", canon: "127.0.0.7"},
		{in: "[127].0.0.[0]", canon: "127.0.0.0"},
		{in: "127.[0;1].0.2", canon: "127.[0..1].0.2", match: []string{"127.1.0.2"}},
		{in: "", err: "empty"},
		{in: "127.0.0", err: "3 octets"},
		{in: "127.0.0.2.1", err: "after the fourth"},
		{in: "127.0.0.256", err: "0 to 255"},
		{in: "127.0.0.-1", err: "not a number"},
		{in: "127.0.0.02", err: "leading zero"},
		{in: "127.0.0.[11..2]", err: "backwards"},
		{in: "127.0.0.[2", err: "without ']'"},
		{in: "127.0.0.[]", err: "empty brackets"},
		{in: "127.0.0.[2;]", err: "missing number"},
		{in: "127.0.0.[2..]", err: "missing number"},
		{in: "127.0..2", err: "empty"},
		{in: "127.0.0.*", err: "not a number"},
		{in: " 127.0.0.2", err: "not a number"},
		{in: strings.Repeat("1", 300), err: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := ParseCodes(tt.in)
			if tt.canon == "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one saying %q", err, tt.err)
				}
				if !c.IsZero() {
					t.Errorf("codes %v with an error", c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.String(); got != tt.canon {
				t.Errorf("String %q, want %q", got, tt.canon)
			}
			for _, a := range tt.match {
				if !c.Match(netip.MustParseAddr(a)) {
					t.Errorf("%s not matched", a)
				}
			}
			for _, a := range tt.miss {
				if c.Match(netip.MustParseAddr(a)) {
					t.Errorf("%s matched", a)
				}
			}
		})
	}
	if (Codes{}).Match(netip.MustParseAddr("127.0.0.2")) || (Codes{}).String() != "" {
		t.Error("the zero Codes matches or prints something")
	}
}
