package dnsxl

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCompile(t *testing.T) {
	ok := ListConfig{Zone: "zen.spamhaus.org", Weight: 3}
	tests := []struct {
		name string
		cfgs []ListConfig
		want string // part of the error, "" for none
	}{
		{"one", []ListConfig{ok}, ""},
		{"codes, mask and symbol", []ListConfig{{Zone: "multi.surbl.org.", Weight: 1, Codes: "127.0.0.[2..254]", Mask: 0x08, Symbol: "SURBL_MW"}}, ""},
		{"allow list", []ListConfig{{Zone: "list.dnswl.org", Weight: -2, Codes: "127.0.[0..255].[1..3]"}}, ""},
		{"missing zone", []ListConfig{ok, {Weight: 1}}, "list[1].zone: missing"},
		{"TLD", []ListConfig{{Zone: "org", Weight: 1}}, "list[0].zone: \"org\" is a top-level"},
		{"space in zone", []ListConfig{{Zone: "bl .example", Weight: 1}}, "list[0].zone"},
		{"U-label", []ListConfig{{Zone: "bl.bücher.example", Weight: 1}}, "A-labels"},
		{"empty label", []ListConfig{{Zone: "bl..example", Weight: 1}}, "list[0].zone"},
		{"long zone", []ListConfig{{Zone: strings.Repeat("a.", 100) + "example", Weight: 1}}, "longer than"},
		{"weight missing", []ListConfig{{Zone: "bl.example"}}, "list[0].weight: missing or 0"},
		{"weight NaN", []ListConfig{{Zone: "bl.example", Weight: math.NaN()}}, "list[0].weight"},
		{"bad codes", []ListConfig{{Zone: "bl.example", Weight: 1, Codes: "127.0.0.[2..1]"}}, "list[0].codes: octet 4"},
		{"codes outside 127/8", []ListConfig{{Zone: "bl.example", Weight: 1, Codes: "10.0.0.2"}}, "matches no answer"},
		{"mask too big", []ListConfig{{Zone: "bl.example", Weight: 1, Mask: 256}}, "list[0].mask"},
		{"lower-case symbol", []ListConfig{{Zone: "bl.example", Weight: 1, Symbol: "rbl_x"}}, "list[0].symbol"},
		{"reserved symbol", []ListConfig{{Zone: "bl.example", Weight: 1, Symbol: "DNSBL_LISTED"}}, "symbol of the filter itself"},
		{"shared symbol", []ListConfig{{Zone: "a.example", Weight: 1, Symbol: "X"}, {Zone: "b.example", Weight: 1, Symbol: "X"}}, "list[1].symbol: \"X\" is the symbol of list[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Compile(tt.cfgs, "list", IPList, nil, Options{}, "DNSBL_LISTED")
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestListConfigValidate(t *testing.T) {
	if err := (ListConfig{Zone: "bl.example", Weight: 1, Codes: "127.0.0.2"}).Validate(); err != nil {
		t.Errorf("valid table: %v", err)
	}
	if err := (ListConfig{Zone: "bl.example", Weight: 1, Codes: "127.0.0"}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "codes: ") {
		t.Errorf("err %v, want one naming codes", err)
	}
}

func TestCompileSharesZones(t *testing.T) {
	fx := newFixture(t)
	lists, zones, err := Compile([]ListConfig{
		{Zone: "zen.example", Weight: -1, Codes: "127.0.0.[10;11]"},
		{Zone: "ZEN.example.", Weight: 3, Codes: "127.0.0.[2..9]"},
		{Zone: "other.example", Weight: 1},
	}, "list", IPList, fx.dns, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(zones) != 2 || zones[0].Name() != "zen.example" || zones[1].Name() != "other.example" {
		t.Fatalf("zones %v", zones)
	}
	if lists[0].ZoneOf() != zones[0] || lists[1].ZoneOf() != zones[0] || lists[2].ZoneOf() != zones[1] {
		t.Error("lists do not point at their zones")
	}
	answer := addrs("127.0.0.4", "127.0.0.10")
	for i, want := range [][]netip.Addr{addrs("127.0.0.10"), addrs("127.0.0.4"), answer} {
		if got := lists[i].Match(answer); !slices.Equal(got, want) {
			t.Errorf("list %d keeps %v, want %v", i, got, want)
		}
	}
}

func TestMatchMask(t *testing.T) {
	// SURBL multi: 127.0.0.X, X a bit mask; the list keeps bit 8 (MW).
	l := List{mask: 0x08}
	answer := addrs("127.0.0.2", "127.0.0.8", "127.0.0.24", "127.0.0.68")
	if got, want := l.Match(answer), addrs("127.0.0.8", "127.0.0.24"); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
