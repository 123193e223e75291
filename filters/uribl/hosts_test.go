package uribl

import (
	"slices"
	"testing"
)

func TestURLHosts(t *testing.T) {
	tests := []struct {
		url  string
		want []string
	}{
		{"http://www.example.com/path?q#f", []string{"www.example.com"}},
		{"HTTPS://Example.COM:8443/", []string{"Example.COM"}},
		{"ftp://files.example.net", []string{"files.example.net"}},
		{"http://trusted.example@evil.example/", []string{"evil.example"}},
		{"http://a:b@evil.example:80", []string{"evil.example"}},
		{"http:\\\\evil.example\\path", []string{"evil.example"}},
		{"http:evil.example/path", []string{"evil.example"}},
		{"http://[2001:db8::1]:8080/", []string{"[2001:db8::1]"}},
		{"http://[2001:db8::1", nil},
		{"mailto:a@one.example,b@two.example?subject=x@three.example", []string{"one.example", "two.example"}},
		{"mailto:<a@one.example>", []string{"one.example"}},
		{"mailto:nobody", nil},
		{"javascript:alert(1)", nil},
		{"no scheme", nil},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			if got := urlHosts(tt.url); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHost(t *testing.T) {
	tests := []struct {
		in   string
		name string // "" for an address or nothing
		ip   string // "" for a name or nothing
	}{
		{"www.Example.COM.", "www.example.com", ""},
		{"ex%61mple.com", "example.com", ""},
		{"bad%zzexample.com", "", ""},
		{"bücher.example", "xn--bcher-kva.example", ""},
		{"evil。example", "evil.example", ""}, // an ideographic full stop
		{"EXAMPLE.com", "example.com", ""},
		{"under_score.example", "under_score.example", ""},
		{"localhost", "", ""},
		{"a..example", "", ""},
		{"sp ace.example", "", ""},
		{"192.0.2.1", "", "192.0.2.1"},
		{"192.0.2.1.", "", "192.0.2.1"},
		{"3221225985", "", "192.0.2.1"},
		{"0xc0000201", "", "192.0.2.1"},
		{"0xC0.0.2.1", "", "192.0.2.1"},
		{"0300.0.2.1", "", "192.0.2.1"},
		{"192.0.513", "", "192.0.2.1"},
		{"192.513", "", "192.0.2.1"},
		{"0x", "", "0.0.0.0"},
		{"192.0.2.256", "", ""},
		{"1.2.3.4.5", "", ""},
		{"4294967296", "", ""},
		{"09.0.0.1", "", ""},
		{"example.0x1g", "example.0x1g", ""}, // not a number: a name
		{"example.123", "", ""},
		{"[2001:db8::1]", "", "2001:db8::1"},
		{"[::ffff:192.0.2.1]", "", "192.0.2.1"},
		{"[fe80::1%25eth0]", "", ""},
		{"[nonsense]", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, ip, ok := host(tt.in)
			gotIP := ""
			if ip.IsValid() {
				gotIP = ip.String()
			}
			if name != tt.name || gotIP != tt.ip || ok != (tt.name != "" || tt.ip != "") {
				t.Errorf("got %q %q %v, want %q %q", name, gotIP, ok, tt.name, tt.ip)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	exceptions := []string{"hosting.example.net", "example.net"}
	tests := []struct{ in, want string }{
		{"www.shop.example.co.uk", "example.co.uk"},
		{"example.com", "example.com"},
		{"a.b.c.example.com", "example.com"},
		{"user.github.io", "user.github.io"}, // a private suffix of the list
		{"co.uk", ""},
		{"com", ""},
		{"a.b.hosting.example.net", "b.hosting.example.net"},
		{"hosting.example.net", ""},
		{"x.y.example.net", "y.example.net"},
		{"foo.unknowntld", "foo.unknowntld"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := registered(tt.in, exceptions)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("got %q %v, want %q", got, ok, tt.want)
			}
		})
	}
}
