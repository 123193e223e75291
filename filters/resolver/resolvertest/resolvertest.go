// Package resolvertest gives the tests of DNS-using checks a resolver:
// a real one asking a dnstest server on loopback, or one whose every
// lookup fails as the test says, for faults a server cannot make.
package resolvertest

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// Start serves zones (see dnstest.Start) until the test ends and returns
// the server and a resolver asking it, each exchange bounded by timeout.
// The resolver caches as the default configuration does.
func Start(t testing.TB, zones map[string]string, timeout time.Duration) (*resolver.DNS, *dnstest.Server) {
	t.Helper()
	srv := dnstest.Start(t, zones)
	cfg := resolver.DefaultConfig()
	cfg.Upstream = srv.Addr()
	cfg.Timeout = timeout
	r, err := resolver.New(cfg)
	if err != nil {
		t.Fatalf("resolvertest: %v", err)
	}
	return r, srv
}

// Failing is a resolver.Resolver whose every lookup fails with Err (with
// no answer when Err is nil).
type Failing struct{ Err error }

var _ resolver.Resolver = Failing{}

// LookupTXT implements resolver.Resolver.
func (f Failing) LookupTXT(context.Context, string) ([]string, error) { return nil, f.Err }

// LookupMX implements resolver.Resolver.
func (f Failing) LookupMX(context.Context, string) ([]*net.MX, error) { return nil, f.Err }

// LookupIP implements resolver.Resolver.
func (f Failing) LookupIP(context.Context, string) ([]netip.Addr, error) { return nil, f.Err }

// LookupAddr implements resolver.Resolver.
func (f Failing) LookupAddr(context.Context, netip.Addr) ([]string, error) { return nil, f.Err }
