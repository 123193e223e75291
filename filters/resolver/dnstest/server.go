// Package dnstest runs a real DNS server on loopback for tests anywhere in
// moat: it serves zones written in RFC 1035 master file format over UDP and
// TCP on one port, answers as an authoritative server would (NXDOMAIN and
// NODATA told apart, CNAMEs and wildcards followed, truncation over UDP),
// and lets a test make a name fail, hang or lag, and count queries.
//
//	srv := dnstest.Start(t, map[string]string{
//		"example.test.": "@ MX 10 mx\nmx A 192.0.2.25\n",
//	})
//	cfg := resolver.DefaultConfig()
//	cfg.Upstream = srv.Addr()
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// maxChase bounds the CNAME chain the server follows inside its zones.
const maxChase = 8

// Server is a running test DNS server. Its methods are safe for concurrent
// use.
type Server struct {
	addr     string
	udp, tcp *dns.Server
	zones    map[string]*zone // origin -> zone

	mu     sync.Mutex
	faults map[string]fault // lower-case FQDN -> fault
	counts map[query]int
	total  int
	tcpN   int
}

// query is a counted question.
type query struct {
	name  string
	qtype uint16
}

// fault is how the server misbehaves for one name.
type fault struct {
	servfail bool
	hang     bool
	delay    time.Duration
}

// Start parses zones (origin -> zone text) and serves them on 127.0.0.1 on
// a random port, over UDP and TCP alike, until the test ends. A parse or
// listen error fails the test.
func Start(t testing.TB, zones map[string]string) *Server {
	t.Helper()
	s := &Server{
		zones:  make(map[string]*zone, len(zones)),
		faults: make(map[string]fault),
		counts: make(map[query]int),
	}
	for origin, text := range zones {
		z, err := parseZone(origin, text)
		if err != nil {
			t.Fatalf("dnstest: %v", err)
		}
		s.zones[z.origin] = z
	}
	pc, l, err := listen()
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s.addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: l, Handler: s}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		failed := make(chan error, 1)
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { failed <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-failed:
			t.Fatalf("dnstest: serve: %v", err)
		}
	}
	t.Cleanup(func() {
		// Shutdown errors only say the server had stopped already.
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
	})
	return s
}

// listen opens a UDP socket on a random loopback port and a TCP listener on
// the same port number, trying again when the TCP port is taken.
func listen() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("listen tcp on the udp port: %w", lastErr)
}

// Addr returns the "127.0.0.1:port" address served over UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// ServFail makes every later query for name (exactly that name, any type)
// answer SERVFAIL.
func (s *Server) ServFail(name string) { s.setFault(name, fault{servfail: true}) }

// Hang makes the server drop every later query for name without an
// answer, as a lost packet or a dead upstream would: the client times out.
func (s *Server) Hang(name string) { s.setFault(name, fault{hang: true}) }

// Delay makes the server wait d before answering queries for name.
func (s *Server) Delay(name string, d time.Duration) { s.setFault(name, fault{delay: d}) }

// Heal undoes ServFail, Hang or Delay for name.
func (s *Server) Heal(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, canonical(name))
}

// setFault records how the server misbehaves for name.
func (s *Server) setFault(name string, f fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[canonical(name)] = f
}

// Queries returns how many queries the server received, over both
// transports, failed and dropped ones included.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// QueriesFor returns how many queries for (name, qtype) the server
// received; qtype is a dns.Type* constant such as dns.TypeTXT.
func (s *Server) QueriesFor(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[query{canonical(name), qtype}]
}

// TCPQueries returns how many of the queries came over TCP.
func (s *Server) TCPQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpN
}

// canonical returns name in lower case, fully qualified.
func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		_ = w.WriteMsg(m) // the client may be gone; nothing to do then
		return
	}
	q := r.Question[0]
	name := canonical(q.Name)
	isTCP := w.LocalAddr().Network() == "tcp"

	s.mu.Lock()
	s.total++
	s.counts[query{name, q.Qtype}]++
	if isTCP {
		s.tcpN++
	}
	f := s.faults[name]
	s.mu.Unlock()

	if f.hang {
		return
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true // the server stands in for a recursive upstream
	if f.servfail {
		m.Rcode = dns.RcodeServerFailure
	} else {
		s.answer(m, name, q.Qtype)
	}
	size := dns.MaxMsgSize
	if opt := r.IsEdns0(); opt != nil {
		// RFC 6891 §7: answer an EDNS query with an OPT record.
		m.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), false)
		if !isTCP {
			size = int(max(opt.UDPSize(), dns.MinMsgSize))
		}
	} else if !isTCP {
		size = dns.MinMsgSize
	}
	// RFC 1035 §4.2.1, RFC 6891 §7: what does not fit is cut and TC set.
	m.Truncate(size)
	_ = w.WriteMsg(m) // the client may be gone; nothing to do then
}

// answer fills m with the authoritative answer for (name, qtype): the
// records, following CNAMEs within the served zones (RFC 1034 §4.3.2), or
// NXDOMAIN or NODATA with the zone's SOA (RFC 2308 §2). A name outside
// every zone is REFUSED.
func (s *Server) answer(m *dns.Msg, name string, qtype uint16) {
	z := s.zoneOf(name)
	if z == nil {
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = true
	for range maxChase {
		rrs, cname, exists := z.lookup(name, qtype)
		switch {
		case len(rrs) > 0:
			m.Answer = append(m.Answer, rrs...)
			return
		case cname != nil:
			m.Answer = append(m.Answer, cname)
			name = canonical(cname.Target)
			if z = s.zoneOf(name); z == nil {
				return // the resolver follows it elsewhere
			}
		case exists:
			m.Ns = append(m.Ns, z.negativeSOA())
			return
		default:
			// RFC 6604 §3: after a CNAME the RCODE is about the
			// last name of the chain.
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, z.negativeSOA())
			return
		}
	}
}

// zoneOf returns the served zone that holds name: the one with the
// longest matching origin.
func (s *Server) zoneOf(name string) *zone {
	for n := name; ; {
		if z, ok := s.zones[n]; ok {
			return z
		}
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			if z, ok := s.zones["."]; ok {
				return z
			}
			return nil
		}
		n = n[i+1:]
	}
}
