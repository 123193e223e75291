package resolver

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// serveFunc runs h as a UDP DNS server on loopback until the test ends and
// returns its address: for upstream misbehaviour dnstest does not model.
func serveFunc(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// answerA answers any question with one A record.
func answerA(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 192.0.2.1")
	m.Answer = []dns.RR{rr}
	_ = w.WriteMsg(m)
}

func TestUpstreamMisbehaviour(t *testing.T) {
	tests := []struct {
		name    string
		handler dns.HandlerFunc
		want    error // nil: the lookup succeeds
		queries int
	}{
		{
			// RFC 6891 §7: FORMERR to an EDNS query, retry without.
			name: "no EDNS support",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				if r.IsEdns0() != nil {
					m := new(dns.Msg)
					m.SetRcode(r, dns.RcodeFormatError)
					_ = w.WriteMsg(m)
					return
				}
				answerA(w, r)
			},
			queries: 2,
		},
		{
			name: "answers another question",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				r.Question[0].Name = "elsewhere.test."
				answerA(w, r)
			},
			want:    ErrBadResponse,
			queries: 1,
		},
		{
			name: "answers another type",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				r.Question[0].Qtype = dns.TypeMX
				answerA(w, r)
			},
			want:    ErrBadResponse,
			queries: 1,
		},
		{
			name: "refused",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := new(dns.Msg)
				m.SetRcode(r, dns.RcodeRefused)
				_ = w.WriteMsg(m)
			},
			want:    ErrRcode,
			queries: 1,
		},
		{
			name: "records of another owner are ignored",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := new(dns.Msg)
				m.SetReply(r)
				rr, _ := dns.NewRR("other.test. 60 IN A 192.0.2.66")
				m.Answer = []dns.RR{rr}
				_ = w.WriteMsg(m)
			},
			want:    ErrNoData,
			queries: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			addr := serveFunc(t, func(w dns.ResponseWriter, r *dns.Msg) {
				n.Add(1)
				tt.handler(w, r)
			})
			cfg := DefaultConfig()
			cfg.Upstream = addr
			cfg.Timeout = 500 * time.Millisecond
			d, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.lookup(context.Background(), "q.test.", dns.TypeA)
			if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if tt.want != nil && !errors.Is(err, ErrNoData) && !IsTemporary(err) {
				t.Errorf("%v is not temporary", err)
			}
			if got := int(n.Load()); got != tt.queries {
				t.Errorf("%d queries, want %d", got, tt.queries)
			}
		})
	}
}
