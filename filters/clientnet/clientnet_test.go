package clientnet

import (
	"net/netip"
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	tests := []struct {
		ip     string
		v4, v6 int
		want   string
	}{
		{"192.0.2.77", 24, 64, "192.0.2.0/24"},
		{"192.0.2.77", 32, 64, "192.0.2.77/32"},
		{"::ffff:192.0.2.77", 24, 64, "192.0.2.0/24"},
		{"2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"},
		{"fe80::1%eth0", 24, 64, "fe80::/64"},
	}
	for _, tt := range tests {
		got := Mask(netip.MustParseAddr(tt.ip), tt.v4, tt.v6)
		if got.String() != tt.want {
			t.Errorf("Mask(%s, %d, %d) = %s, want %s", tt.ip, tt.v4, tt.v6, got, tt.want)
		}
	}
	if p := Mask(netip.Addr{}, 24, 64); p.IsValid() {
		t.Errorf("Mask of the zero address = %s, want the zero prefix", p)
	}
}

func TestCheckPrefixLengths(t *testing.T) {
	tests := []struct {
		v4, v6 int
		want   string
	}{
		{24, 64, ""},
		{8, 32, ""},
		{32, 128, ""},
		{7, 64, "ipv4_prefix: 7 is outside 8..32"},
		{33, 64, "ipv4_prefix: 33 is outside 8..32"},
		{24, 31, "ipv6_prefix: 31 is outside 32..128"},
		{24, 129, "ipv6_prefix: 129 is outside 32..128"},
	}
	for _, tt := range tests {
		err := CheckPrefixLengths("ipv4_prefix", tt.v4, "ipv6_prefix", tt.v6)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("CheckPrefixLengths(%d, %d) = %q, want %q", tt.v4, tt.v6, got, tt.want)
		}
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{in: nil, want: nil},
		{in: []string{"192.0.2.0/24", "2001:db8::/32"}, want: []string{"192.0.2.0/24", "2001:db8::/32"}},
		{in: []string{"192.0.2.9"}, want: []string{"192.0.2.9/32"}},
		{in: []string{"::ffff:192.0.2.9"}, want: []string{"192.0.2.9/32"}},
		{in: []string{"::ffff:192.0.2.0/120"}, want: []string{"192.0.2.0/24"}},
		{in: []string{"2001:db8::1"}, want: []string{"2001:db8::1/128"}},
		{in: []string{"192.0.2.0/24", "192.0.2.1/24"}, wantErr: `nets[1]: "192.0.2.1/24" has bits set past /24 (the network is 192.0.2.0/24)`},
		{in: []string{"example.com"}, wantErr: `nets[0]: "example.com" is neither a network`},
		{in: []string{"fe80::1%eth0"}, wantErr: `nets[0]: "fe80::1%eth0": an address with a zone`},
		{in: []string{"::ffff:0.0.0.0/95"}, wantErr: "has bits set past /95"},
	}
	for _, tt := range tests {
		l, err := ParseList("nets", tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseList(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseList(%q): %v", tt.in, err)
			continue
		}
		var got []string
		for _, p := range l {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("ParseList(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestContains(t *testing.T) {
	local, err := ParseList("local", Local)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"10.1.2.3", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"fd00::25", true},
		{"100.64.1.1", true},
		{"169.254.0.5", true},
		{"fe80::1%eth0", true},
		{"192.0.2.1", false},
		{"2001:db8::1", false},
	}
	for _, tt := range tests {
		if got := local.Contains(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Local.Contains(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	if (List{}).Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Error("an empty list contains 127.0.0.1")
	}
}
