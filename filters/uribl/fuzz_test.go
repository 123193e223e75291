package uribl

import (
	"strings"
	"testing"

	"github.com/moatmail/moat/filters/dnsxl"
)

// FuzzHosts: any link gives hosts that normalise to a lower-case
// LDH name with a dot or to an unmapped IP address, both stable when
// normalised again, and registered domains that end the name.
func FuzzHosts(f *testing.F) {
	for _, s := range []string{
		"http://www.example.com/path", "https://a:b@evil.example:8443/", "http:\\\\evil.example\\x",
		"http://[2001:db8::1]/", "http://3221225985/", "http://0xc0.0.2.1/", "http://0300.0.2.1./",
		"http://192.0.513/", "http://ex%61mple.com/", "http://bücher.example/", "http://evil。example/",
		"mailto:a@one.example,b@two.example?x=y", "http://1.2.3.4.5/", "http://0x/", "ftp://[fe80::1%25eth0]/",
		"http://" + strings.Repeat("a.", 130) + "example/", "http://user_name.example/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		for _, h := range urlHosts(u) {
			name, ip, ok := host(h)
			if !ok {
				if name != "" || ip.IsValid() {
					t.Fatalf("%q: not ok, but %q %v", h, name, ip)
				}
				continue
			}
			if (name != "") == ip.IsValid() {
				t.Fatalf("%q: name %q and address %v", h, name, ip)
			}
			if ip.IsValid() {
				if ip.Is4In6() || ip.Zone() != "" {
					t.Fatalf("%q: address %v is mapped or zoned", h, ip)
				}
				literal := ip.String()
				if ip.Is6() {
					literal = "[" + literal + "]"
				}
				if _, again, ok := host(literal); !ok || again != ip {
					t.Fatalf("%q: %v does not read back (%v)", h, ip, again)
				}
				continue
			}
			if len(name) > 253 || !strings.Contains(name, ".") || !dnsxl.IsHostName(name) || reparsedAsIP(name) {
				t.Fatalf("%q: bad name %q", h, name)
			}
			if again, _, ok := host(name); !ok || again != name {
				t.Fatalf("%q: name %q normalises again to %q", h, name, again)
			}
			if rd, ok := registered(name, []string{"hosting.example"}); ok && !under(name, rd) {
				t.Fatalf("%q: registered domain %q does not end %q", h, rd, name)
			}
		}
	})
}

// reparsedAsIP reports whether name would be read as an IPv4 address.
func reparsedAsIP(name string) bool {
	_, ip, _ := host(name)
	return ip.IsValid()
}
