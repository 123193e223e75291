package dnstest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fixtures is the zone folder shared by the whole module.
const fixtures = "../../../testdata/dns"

// ask sends one query to srv and returns the response.
func ask(t *testing.T, srv *Server, network, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, srv.Addr())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

// rdata returns the records of a section in presentation form, without
// their headers, sorted.
func rdata(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		s := rr.String()
		out = append(out, strings.TrimPrefix(s, rr.Header().String()))
	}
	slices.Sort(out)
	return out
}

func TestAnswers(t *testing.T) {
	srv := Start(t, LoadZoneDir(t, fixtures))
	tests := []struct {
		name      string
		qtype     uint16
		rcode     int
		answer    []string // rdata, sorted; CNAMEs included
		soaInAuth bool
	}{
		{"www.example.test.", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.80"}, false},
		{"WWW.Example.Test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"2001:db8::80"}, false},
		{"example.test.", dns.TypeMX, dns.RcodeSuccess, []string{"10 mx1.example.test.", "20 mx2.example.test.", "5 mx0.example.test."}, false},
		{"multi.example.test.", dns.TypeTXT, dns.RcodeSuccess, []string{`"part one, " "part two"`, `"second record"`}, false},
		{"25.2.0.192.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"mail.example.test."}, false},
		// NODATA: the name exists, the type does not (RFC 2308 §2.2).
		{"v6only.example.test.", dns.TypeA, dns.RcodeSuccess, nil, true},
		// An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN.
		{"b.deep.example.test.", dns.TypeA, dns.RcodeSuccess, nil, true},
		{"nothing.example.test.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"below.a.b.deep.example.test.", dns.TypeA, dns.RcodeNameError, nil, true},
		// CNAMEs are followed inside the zones.
		{"chain.example.test.", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.80", "alias.example.test.", "www.example.test."}, false},
		{"dangling.example.test.", dns.TypeA, dns.RcodeNameError, []string{"nowhere.example.test."}, true},
		{"alias.example.test.", dns.TypeCNAME, dns.RcodeSuccess, []string{"www.example.test."}, false},
		// Wildcards (RFC 4592).
		{"anything.wild.example.test.", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.99"}, false},
		{"anything.wild.example.test.", dns.TypeMX, dns.RcodeSuccess, nil, true},
		// Outside every zone.
		{"example.org.", dns.TypeA, dns.RcodeRefused, nil, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.name, dns.TypeToString[tt.qtype]), func(t *testing.T) {
			r := ask(t, srv, "udp", tt.name, tt.qtype, 1232)
			if r.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if got := rdata(r.Answer); !slices.Equal(got, tt.answer) {
				t.Errorf("answer = %q, want %q", got, tt.answer)
			}
			hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
			if hasSOA != tt.soaInAuth {
				t.Errorf("authority = %v, want SOA: %v", r.Ns, tt.soaInAuth)
			}
			if hasSOA && r.Ns[0].Header().Ttl != 60 {
				t.Errorf("negative SOA TTL = %d, want 60 (RFC 2308 §3: min of TTL and MINIMUM)", r.Ns[0].Header().Ttl)
			}
			if r.IsEdns0() == nil {
				t.Error("no OPT record in the answer to an EDNS query")
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	var zone strings.Builder
	for i := range 20 {
		fmt.Fprintf(&zone, "big TXT \"%03d %s\"\n", i, strings.Repeat("x", 200))
	}
	srv := Start(t, map[string]string{"big.test": zone.String()})
	tests := []struct {
		network   string
		edns      uint16
		truncated bool
	}{
		{"udp", 0, true},
		{"udp", 1232, true},
		{"tcp", 0, false},
		{"tcp", 1232, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.network, tt.edns), func(t *testing.T) {
			r := ask(t, srv, tt.network, "big.big.test.", dns.TypeTXT, tt.edns)
			if r.Truncated != tt.truncated {
				t.Errorf("TC = %v, want %v", r.Truncated, tt.truncated)
			}
			if !tt.truncated && len(r.Answer) != 20 {
				t.Errorf("%d records over %s, want 20", len(r.Answer), tt.network)
			}
		})
	}
	if got := srv.TCPQueries(); got != 2 {
		t.Errorf("TCPQueries = %d, want 2", got)
	}
}

func TestFaultsAndCounters(t *testing.T) {
	srv := Start(t, map[string]string{"f.test": "a A 192.0.2.1\nb A 192.0.2.2\n"})
	srv.ServFail("A.f.test") // names are case-insensitive, FQDN or not
	if r := ask(t, srv, "udp", "a.f.test.", dns.TypeA, 0); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("after ServFail: rcode %s", dns.RcodeToString[r.Rcode])
	}
	if r := ask(t, srv, "udp", "b.f.test.", dns.TypeA, 0); r.Rcode != dns.RcodeSuccess {
		t.Errorf("other name: rcode %s", dns.RcodeToString[r.Rcode])
	}
	srv.Heal("a.f.test.")
	if r := ask(t, srv, "udp", "a.f.test.", dns.TypeA, 0); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after Heal: %v", r)
	}

	srv.Hang("b.f.test")
	m := new(dns.Msg)
	m.SetQuestion("b.f.test.", dns.TypeA)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	if _, _, err := c.Exchange(m, srv.Addr()); err == nil {
		t.Error("Hang: got an answer")
	}

	srv.Delay("b.f.test", 50*time.Millisecond)
	start := time.Now()
	if r := ask(t, srv, "tcp", "b.f.test.", dns.TypeA, 0); len(r.Answer) != 1 {
		t.Errorf("Delay: answer %v", r.Answer)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Error("Delay: answered early")
	}

	if got := srv.QueriesFor("a.f.test", dns.TypeA); got != 2 {
		t.Errorf("QueriesFor(a) = %d, want 2", got)
	}
	if got := srv.QueriesFor("b.f.test.", dns.TypeA); got != 3 {
		t.Errorf("QueriesFor(b) = %d, want 3", got)
	}
	if got := srv.QueriesFor("b.f.test.", dns.TypeAAAA); got != 0 {
		t.Errorf("QueriesFor(b, AAAA) = %d, want 0", got)
	}
	if got := srv.Queries(); got != 5 {
		t.Errorf("Queries = %d, want 5", got)
	}
	if got := srv.TCPQueries(); got != 1 {
		t.Errorf("TCPQueries = %d, want 1", got)
	}
}

func TestParseZoneErrors(t *testing.T) {
	tests := []struct {
		name, origin, text, want string
	}{
		{"syntax", "x.test.", "a IN A not-an-address\n", "bad A"},
		{"outside", "x.test.", "a.y.test. IN A 192.0.2.1\n", "outside the zone"},
		{"soa below apex", "x.test.", "a IN SOA ns h 1 2 3 4 5\n", "not at the apex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseZone(tt.origin, tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestDefaultSOA(t *testing.T) {
	z, err := parseZone("X.Test", "a A 192.0.2.1\n")
	if err != nil {
		t.Fatal(err)
	}
	if z.origin != "x.test." || z.soa == nil || z.soa.Hdr.Name != "x.test." {
		t.Fatalf("origin %q, soa %v", z.origin, z.soa)
	}
	if ttl := z.negativeSOA().Header().Ttl; ttl != 300 {
		t.Errorf("negative TTL %d, want 300", ttl)
	}
}
