package rbldnstest

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/moatmail/moat/filters/resolver"
)

// TestServe asks a real rbldnsd through moat's resolver: IPv4 and IPv6
// entries, a domain list, and a name that is not listed.
func TestServe(t *testing.T) {
	srv := Start(t,
		Dataset{Zone: "bl.test", Type: "ip4set", Data: "192.0.2.5\n192.0.2.6 :127.0.0.4:\n"},
		Dataset{Zone: "bl.test", Type: "ip6trie", Data: "2001:db8::5\n"},
		Dataset{Zone: "dbl.test", Type: "dnset", Data: ".bad.example :127.0.1.2:\n"},
	)
	r := Resolver(t, srv.Addr(), resolver.DefaultCacheSize)
	tests := []struct {
		name string
		want string // "" for not found
	}{
		{"5.2.0.192.bl.test", "127.0.0.2"},
		{"6.2.0.192.bl.test", "127.0.0.4"},
		{"7.2.0.192.bl.test", ""},
		{"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test", "127.0.0.2"},
		{"www.bad.example.dbl.test", "127.0.1.2"},
		{"good.example.dbl.test", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.LookupA(context.Background(), tt.name)
			if tt.want == "" {
				if !resolver.IsNotFound(err) {
					t.Errorf("got %v, %v; want not found", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr(tt.want)}) {
				t.Errorf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}
