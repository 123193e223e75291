package resolver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// query asks the upstream for (qname, qtype), caches the outcome and
// returns it. It runs detached from any caller (see flight.do), bounded by
// its own deadline: two UDP attempts, a TCP retry and a spare.
func (d *DNS) query(qname string, qtype uint16) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*d.cfg.Timeout)
	defer cancel()

	m := new(dns.Msg)
	m.SetQuestion(qname, qtype) // sets RD: we ask a recursive resolver
	m.SetEdns0(ednsBufSize, false)
	r, err := d.exchange(ctx, m)
	if err == nil && r.Rcode == dns.RcodeFormatError {
		// RFC 6891 §7: a responder that does not know EDNS may answer
		// FORMERR; ask again without the OPT record.
		m.Extra = nil
		r, err = d.exchange(ctx, m)
	}
	if err != nil {
		return answer{}, temporary(qname, d.cfg.Upstream, err)
	}
	a, ttl, err := parseResponse(r, qname, qtype)
	if err != nil {
		return answer{}, temporary(qname, d.cfg.Upstream, err)
	}
	if d.cache != nil {
		if a.neg != nil {
			ttl = min(ttl, d.cfg.NegativeTTL)
		} else {
			ttl = min(max(ttl, d.cfg.MinTTL), d.cfg.MaxTTL)
		}
		if ttl > 0 {
			d.cache.put(key{qname, qtype}, a, d.now().Add(ttl))
		}
	}
	return a, nil
}

// exchange sends m over UDP, once more if the first attempt times out, and
// over TCP when the UDP answer is truncated (RFC 1035 §4.2.1, RFC 7766
// §5). Each attempt uses a fresh socket, hence a fresh source port, and a
// fresh message ID (RFC 5452 §9).
func (d *DNS) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	var (
		r   *dns.Msg
		err error
	)
	for attempt := 0; attempt < 2; attempt++ {
		m.Id = dns.Id()
		r, _, err = d.udp.ExchangeContext(ctx, m, d.cfg.Upstream)
		if err == nil || !isTimeout(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("udp exchange: %w", err)
	}
	if r.Truncated {
		m.Id = dns.Id()
		r, _, err = d.tcp.ExchangeContext(ctx, m, d.cfg.Upstream)
		if err != nil {
			return nil, fmt.Errorf("tcp exchange after truncation: %w", err)
		}
	}
	return r, nil
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parseResponse classifies the upstream's response to (qname, qtype) and
// returns the answer with the time it may be cached. Temporary outcomes
// (SERVFAIL, other RCODEs, a response to another question) are errors.
func parseResponse(r *dns.Msg, qname string, qtype uint16) (answer, time.Duration, error) {
	if !r.Response || len(r.Question) != 1 ||
		!strings.EqualFold(r.Question[0].Name, qname) || r.Question[0].Qtype != qtype {
		return answer{}, 0, fmt.Errorf("%w: does not answer %s %s", ErrBadResponse, qname, dns.TypeToString[qtype])
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
		rrs, ttl := answerRecords(r.Answer, qname, qtype)
		if len(rrs) == 0 {
			return answer{neg: ErrNoData}, negativeTTL(r), nil
		}
		return answer{rrs: rrs}, ttl, nil
	case dns.RcodeNameError:
		// RFC 6604 §3: after a CNAME chain, NXDOMAIN is about the last
		// target; either way no record answers the question.
		return answer{neg: ErrNXDomain}, negativeTTL(r), nil
	case dns.RcodeServerFailure:
		return answer{}, 0, ErrServFail
	default:
		return answer{}, 0, fmt.Errorf("%w %s", ErrRcode, dns.RcodeToString[r.Rcode])
	}
}

// answerRecords picks from an answer section the records of type qtype
// that answer qname, following CNAMEs (RFC 1034 §3.6.2), and returns them
// with the smallest TTL met along the way.
func answerRecords(section []dns.RR, qname string, qtype uint16) ([]dns.RR, time.Duration) {
	var (
		rrs    []dns.RR
		ttl    uint32 = math.MaxUint32
		target        = qname
	)
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		next := ""
		for _, rr := range section {
			h := rr.Header()
			if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, target) {
				continue
			}
			switch {
			case h.Rrtype == qtype:
				rrs = append(rrs, rr)
				ttl = min(ttl, h.Ttl)
			case h.Rrtype == dns.TypeCNAME && next == "":
				next = rr.(*dns.CNAME).Target
				ttl = min(ttl, h.Ttl)
			}
		}
		if len(rrs) > 0 || next == "" {
			break
		}
		target = next
	}
	if len(rrs) == 0 {
		return nil, 0
	}
	return rrs, time.Duration(ttl) * time.Second
}

// negativeTTL is how long a negative answer may be cached: RFC 2308 §5,
// the smaller of the SOA's TTL and its MINIMUM field; 0 without an SOA in
// the authority section, which forbids caching.
func negativeTTL(r *dns.Msg) time.Duration {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return 0
}

// joinTXT concatenates the character-strings of one TXT record, undoing
// the presentation escapes (\" \\ \DDD) miekg/dns puts in them.
func joinTXT(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		if strings.IndexByte(p, '\\') < 0 {
			b.WriteString(p)
			continue
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if c != '\\' || i+1 == len(p) {
				b.WriteByte(c)
				continue
			}
			i++
			if i+2 < len(p) && isDigit(p[i]) && isDigit(p[i+1]) && isDigit(p[i+2]) {
				n := int(p[i]-'0')*100 + int(p[i+1]-'0')*10 + int(p[i+2]-'0')
				b.WriteByte(byte(n))
				i += 2
				continue
			}
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
