// Package geoiptest writes small MaxMind DB (.mmdb) files for tests: a
// GeoIP2-Country database and a GeoLite2-ASN database with the networks a
// test names, in the schemas MaxMind's databases use, so that the geoip
// filter (and an end-to-end test of moat) reads them as it reads the real
// ones.
//
// Reserved networks (loopback, RFC 1918, the documentation ranges of
// RFC 5737 and RFC 3849) are allowed: a test's clients live there.
package geoiptest

import (
	"cmp"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// The database types the writers set in the metadata, as MaxMind names
// them; readers choose their decoding by it.
const (
	TypeCountry = "GeoIP2-Country"
	TypeASN     = "GeoLite2-ASN"
)

// ASN is the record of one network in an ASN database.
type ASN struct {
	// Number is the autonomous system number (autonomous_system_number).
	Number uint32
	// Organization is its holder (autonomous_system_organization); empty
	// leaves the field out.
	Organization string
}

// WriteCountryDB writes a GeoIP2-Country database to path that maps each
// network ("192.0.2.0/24", "2001:db8::/32", or a single address such as
// "::1") to an ISO 3166-1 country code: the record
// {"country": {"iso_code": CODE}}.
func WriteCountryDB(t testing.TB, path string, networks map[string]string) {
	t.Helper()
	records := make(map[string]mmdbtype.Map, len(networks))
	for n, code := range networks {
		records[n] = mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(code)}}
	}
	WriteDB(t, path, TypeCountry, records)
}

// WriteASNDB writes a GeoLite2-ASN database to path that maps each network
// (as for WriteCountryDB) to an autonomous system: the record
// {"autonomous_system_number": N, "autonomous_system_organization": ORG}.
func WriteASNDB(t testing.TB, path string, networks map[string]ASN) {
	t.Helper()
	records := make(map[string]mmdbtype.Map, len(networks))
	for n, as := range networks {
		rec := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(as.Number)}
		if as.Organization != "" {
			rec["autonomous_system_organization"] = mmdbtype.String(as.Organization)
		}
		records[n] = rec
	}
	WriteDB(t, path, TypeASN, records)
}

// WriteDB writes a database of type dbType (the metadata's database_type,
// such as "GeoIP2-City") to path with a record per network, for a schema
// the other writers do not cover. A network may hold another: the more
// specific one wins whatever the map's order. Write IPv4 networks in IPv4
// form; an IPv4-mapped IPv6 address (::ffff:192.0.2.1) is looked up as
// the IPv4 one.
//
// The file is written beside path and renamed onto it, as geoipupdate
// replaces a database, so a reader with the old file open keeps a valid
// mapping and the replacement gets a new inode.
func WriteDB(t testing.TB, path, dbType string, networks map[string]mmdbtype.Map) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		t.Fatalf("geoiptest: %v", err)
	}
	prefixes := make([]netip.Prefix, 0, len(networks))
	byPrefix := make(map[netip.Prefix]mmdbtype.Map, len(networks))
	for n, rec := range networks {
		p := parseNetwork(t, n)
		prefixes = append(prefixes, p)
		byPrefix[p] = rec
	}
	// Wider networks first: a later insert replaces what it covers.
	slices.SortFunc(prefixes, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(a.Bits(), b.Bits()), a.Addr().Compare(b.Addr()))
	})
	for _, p := range prefixes {
		ipnet := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		if err := tree.Insert(ipnet, byPrefix[p]); err != nil {
			t.Fatalf("geoiptest: insert %s: %v", p, err)
		}
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), ".geoiptest-*.mmdb")
	if err != nil {
		t.Fatalf("geoiptest: %v", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; left behind only on failure
	if _, err := tree.WriteTo(tmp); err != nil {
		tmp.Close()
		t.Fatalf("geoiptest: write %s: %v", path, err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatalf("geoiptest: write %s: %v", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatalf("geoiptest: %v", err)
	}
}

// parseNetwork reads "addr/bits" or a single address, in canonical form
// (host bits cleared).
func parseNetwork(t testing.TB, s string) netip.Prefix {
	t.Helper()
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked()
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("geoiptest: %q is neither a network nor an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen())
}
