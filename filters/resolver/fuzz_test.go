package resolver

import (
	"encoding/hex"
	"testing"

	"github.com/miekg/dns"
)

// FuzzParseResponse feeds arbitrary wire messages to the response parser
// as answers to a fixed question: it must never panic, and whatever it
// returns must be one of its three shapes.
func FuzzParseResponse(f *testing.F) {
	seed := func(build func(m *dns.Msg)) {
		m := new(dns.Msg)
		m.SetQuestion("q.test.", dns.TypeTXT)
		m.Response = true
		build(m)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			f.Fatal(err)
		}
		return r
	}
	seed(func(m *dns.Msg) { m.Answer = []dns.RR{rr(`q.test. 60 TXT "a" "b\"c"`)} })
	seed(func(m *dns.Msg) {
		m.Answer = []dns.RR{rr("q.test. 60 CNAME r.test."), rr(`r.test. 60 TXT "x"`)}
	})
	seed(func(m *dns.Msg) {
		m.Answer = []dns.RR{rr("q.test. 60 CNAME q.test.")} // a loop
	})
	seed(func(m *dns.Msg) {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{rr("test. 60 SOA ns h 1 2 3 4 5")}
	})
	seed(func(m *dns.Msg) { m.Rcode = dns.RcodeServerFailure })
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, wire []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(wire); err != nil {
			return
		}
		a, ttl, err := parseResponse(m, "q.test.", dns.TypeTXT)
		switch {
		case err != nil:
			if a.rrs != nil || a.neg != nil {
				t.Errorf("error %v with an answer %v", err, a)
			}
		case a.neg != nil:
			if a.rrs != nil || (a.neg != ErrNXDomain && a.neg != ErrNoData) {
				t.Errorf("negative answer %v with records", a)
			}
		default:
			if len(a.rrs) == 0 {
				t.Error("positive answer without records")
			}
			for _, rr := range a.rrs {
				txt, ok := rr.(*dns.TXT)
				if !ok {
					t.Fatalf("answer holds a %T", rr)
				}
				_ = joinTXT(txt.Txt)
			}
		}
		if ttl < 0 {
			t.Errorf("negative TTL %v", ttl)
		}
	})
}

// FuzzJoinTXT checks that joinTXT gives back the exact bytes of a TXT
// character-string, whatever miekg/dns escaped in it.
func FuzzJoinTXT(f *testing.F) {
	for _, s := range []string{"", "v=spf1 -all", `a"b\c`, "\x00\x7f\xff;", `\065`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 255 {
			data = data[:255]
		}
		raw := &dns.RFC3597{
			Hdr:   dns.RR_Header{Name: "q.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Rdata: hex.EncodeToString(append([]byte{byte(len(data))}, data...)),
		}
		m := new(dns.Msg)
		m.SetQuestion("q.test.", dns.TypeTXT)
		m.Answer = []dns.RR{raw}
		wire, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var back dns.Msg
		if err := back.Unpack(wire); err != nil {
			t.Fatal(err)
		}
		txt, ok := back.Answer[0].(*dns.TXT)
		if !ok {
			t.Fatalf("unpacked a %T", back.Answer[0])
		}
		if got := joinTXT(txt.Txt); got != string(data) {
			t.Errorf("joinTXT(%q) = %q, want %q", txt.Txt, got, data)
		}
	})
}
