package dnstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// defaultTTL is the TTL of records whose zone text gives none.
const defaultTTL = 3600

// zone is one parsed zone: its records by owner name and the set of names
// that exist in it, empty non-terminals included (RFC 8020).
type zone struct {
	origin  string
	soa     *dns.SOA
	records map[string][]dns.RR // owner (lower case, FQDN) -> records
	names   map[string]bool
}

// parseZone reads zone text in RFC 1035 master file format. $ORIGIN,
// $TTL and relative names work as in any master file; $INCLUDE does not.
// A zone without an SOA record gets one, so that negative answers carry
// the SOA that RFC 2308 §3 asks for.
func parseZone(origin, text string) (*zone, error) {
	origin = strings.ToLower(dns.Fqdn(origin))
	z := &zone{origin: origin, records: make(map[string][]dns.RR), names: map[string]bool{origin: true}}
	zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
	zp.SetDefaultTTL(defaultTTL)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		h.Name = strings.ToLower(h.Name)
		if !dns.IsSubDomain(origin, h.Name) {
			return nil, fmt.Errorf("zone %s: record %q is outside the zone", origin, rr.String())
		}
		if soa, ok := rr.(*dns.SOA); ok {
			if h.Name != origin {
				return nil, fmt.Errorf("zone %s: SOA at %s, not at the apex", origin, h.Name)
			}
			z.soa = soa
		}
		z.records[h.Name] = append(z.records[h.Name], rr)
		for n := h.Name; n != origin; {
			z.names[n] = true
			i := strings.IndexByte(n, '.')
			n = n[i+1:]
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("zone %s: %w", origin, err)
	}
	if z.soa == nil {
		rr, err := dns.NewRR(fmt.Sprintf("%s 3600 IN SOA ns.%s hostmaster.%s 1 3600 600 86400 300", origin, origin, origin))
		if err != nil {
			return nil, fmt.Errorf("zone %s: default SOA: %w", origin, err)
		}
		z.soa = rr.(*dns.SOA)
		z.records[origin] = append(z.records[origin], rr)
	}
	return z, nil
}

// negativeSOA returns the SOA to put in the authority section of a
// negative answer: RFC 2308 §3, its TTL is the smaller of its own TTL and
// its MINIMUM field.
func (z *zone) negativeSOA() dns.RR {
	soa := dns.Copy(z.soa).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return soa
}

// lookup returns the records of name with type qtype, and the CNAME at
// name if there is one, synthesised from a "*" record when name itself
// does not exist (RFC 4592). exists tells NODATA from NXDOMAIN.
func (z *zone) lookup(name string, qtype uint16) (rrs []dns.RR, cname *dns.CNAME, exists bool) {
	owner := name
	if !z.names[name] {
		// RFC 4592 §3.3.1: a wildcard at the closest encloser answers
		// a name that does not exist.
		ce := name
		for ce != z.origin && !z.names[ce] {
			ce = ce[strings.IndexByte(ce, '.')+1:]
		}
		owner = "*." + ce
		if !z.names[owner] {
			return nil, nil, false
		}
	}
	for _, rr := range z.records[owner] {
		h := rr.Header()
		switch {
		case h.Rrtype == qtype:
			rrs = append(rrs, synthesise(rr, name))
		case h.Rrtype == dns.TypeCNAME:
			cname = synthesise(rr, name).(*dns.CNAME)
		}
	}
	return rrs, cname, true
}

// synthesise returns rr with owner name, copying it when it came from a
// wildcard.
func synthesise(rr dns.RR, name string) dns.RR {
	if rr.Header().Name == name {
		return rr
	}
	c := dns.Copy(rr)
	c.Header().Name = name
	return c
}

// LoadZoneFile returns the text of a zone file, for Start. Fixture zones
// live under testdata/dns at the top of the module.
func LoadZoneFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	return string(b)
}

// LoadZoneDir reads every "*.zone" file of dir into a map for Start; the
// file name minus ".zone" is the zone origin ("example.test.zone" serves
// example.test.).
func LoadZoneDir(t testing.TB, dir string) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.zone"))
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	if len(paths) == 0 {
		t.Fatalf("dnstest: no *.zone file in %s", dir)
	}
	zones := make(map[string]string, len(paths))
	for _, p := range paths {
		zones[strings.TrimSuffix(filepath.Base(p), ".zone")+"."] = LoadZoneFile(t, p)
	}
	return zones
}
