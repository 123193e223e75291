// Command benchdns serves DNS zones from RFC 1035 master files on loopback,
// authoritatively, for benchmarks that run moat with its DNS checks on
// (SPF, DKIM, DMARC, DNS lists) against a resolver that answers at once:
//
//	go run ./scripts/benchdns -addr 127.0.0.1:5353 example.net=zones/example.net.zone
//
// Point moat's [dns] upstream at it. It answers the names of its zones
// (NXDOMAIN for others in them, REFUSED outside them) over UDP and TCP,
// until interrupted. The tests use filters/resolver/dnstest instead.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5353", "address to serve on (UDP and TCP)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchdns [-addr HOST:PORT] ORIGIN=FILE...")
		os.Exit(2)
	}
	zones := map[string][]dns.RR{}
	for _, arg := range flag.Args() {
		origin, path, ok := strings.Cut(arg, "=")
		if !ok {
			log.Fatalf("%q is not ORIGIN=FILE", arg)
		}
		origin = dns.Fqdn(strings.ToLower(origin))
		f, err := os.Open(path)
		if err != nil {
			log.Fatal(err)
		}
		zp := dns.NewZoneParser(f, origin, path)
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			zones[origin] = append(zones[origin], rr)
		}
		f.Close()
		if err := zp.Err(); err != nil {
			log.Fatalf("%s: %v", path, err)
		}
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			w.WriteMsg(m)
			return
		}
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		var zone string
		for origin := range zones {
			if dns.IsSubDomain(origin, name) && len(origin) > len(zone) {
				zone = origin
			}
		}
		if zone == "" {
			m.Rcode = dns.RcodeRefused
			w.WriteMsg(m)
			return
		}
		exists := false
		for _, rr := range zones[zone] {
			h := rr.Header()
			if strings.ToLower(h.Name) != name {
				continue
			}
			exists = true
			if h.Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
				m.Answer = append(m.Answer, rr)
			}
		}
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		if len(m.Answer) == 0 {
			for _, rr := range zones[zone] {
				if rr.Header().Rrtype == dns.TypeSOA {
					m.Ns = append(m.Ns, rr)
				}
			}
		}
		w.WriteMsg(m)
	})
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: *addr, Net: network, Handler: handler}
		go func() { log.Fatal(srv.ListenAndServe()) }()
	}
	log.Printf("serving %d zones on %s", len(zones), *addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
