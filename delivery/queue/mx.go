package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"

	"github.com/moatmail/moat/delivery/queue/mtasts"
	"github.com/moatmail/moat/filters/resolver"
)

// maxMXAddrs bounds the addresses tried in one attempt (Postfix's
// smtp_mx_address_limit is 5; moat tries a few more before deferring).
const maxMXAddrs = 10

// mxTargets returns the hosts to try for an Internet domain, in order: its
// MX hosts by preference (RFC 5321 §5.1; equal preferences shuffled), or
// the domain itself when it has no MX. It returns an outcome instead when
// the domain cannot get mail now (temporary) or ever (permanent).
func (q *Queue) mxTargets(ctx context.Context, domain string) ([]target, []outcome) {
	if q.opts.Resolver == nil {
		return nil, []outcome{temp("4.3.5", "no resolver configured")}
	}
	ascii, err := resolver.ASCIIDomain(domain)
	if err != nil {
		return nil, []outcome{perm("5.1.2", "bad destination domain "+domain)}
	}
	mxs, err := q.opts.Resolver.LookupMX(ctx, ascii)
	var hosts []string
	switch {
	case err == nil && len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == ""):
		// RFC 7505 §3, §4.1: a null MX; the domain takes no mail. The
		// DSN says 5.1.10 (RFC 7505 §4.3; RFC 3463 as updated).
		return nil, []outcome{{kind: kindPerm, status: "5.1.10",
			reply: "556 5.1.10 " + domain + " accepts no mail (null MX, RFC 7505)"}}
	case err == nil && len(mxs) > 0:
		for i := 0; i < len(mxs); {
			k := i
			for k < len(mxs) && mxs[k].Pref == mxs[i].Pref {
				k++
			}
			group := mxs[i:k]
			rand.Shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
			for _, mx := range group {
				if h := strings.TrimSuffix(mx.Host, "."); h != "" {
					hosts = append(hosts, h)
				}
			}
			i = k
		}
	case err == nil || resolver.IsNotFound(err) && errors.Is(err, resolver.ErrNoData):
		// RFC 5321 §5.1: no MX; the domain is its own implicit MX.
		hosts = []string{ascii}
	case resolver.IsNotFound(err):
		return nil, []outcome{perm("5.1.2", "domain "+domain+" does not exist")}
	default:
		return nil, []outcome{temp("4.4.3", "MX lookup for "+domain+": "+err.Error())}
	}

	var policy *mtasts.Policy
	if q.sts != nil {
		p, err := q.sts.Get(ctx, ascii)
		if err != nil {
			q.log.Warn("queue: MTA-STS policy not usable", "domain", ascii, "result-type", mtasts.ResultType(err), "err", err)
		}
		policy = p
	}

	var targets []target
	notFound := 0
	for _, h := range hosts {
		t := target{name: h, tls: TLSOpportunistic, class: "mx"}
		if policy != nil && policy.Mode != mtasts.ModeNone {
			if !policy.Match(h) {
				q.log.Warn("queue: MX not in the MTA-STS policy", "domain", ascii, "mx", h, "mode", policy.Mode,
					"result-type", "validation-failure")
				if policy.Mode == mtasts.ModeEnforce {
					continue // RFC 8461 §5.1: not a valid MX
				}
			} else if policy.Mode == mtasts.ModeEnforce {
				// RFC 8461 §4.2, §5.1: TLS with a certificate valid for the
				// MX's name under the WebPKI, or no delivery to that MX.
				t.sts = true
				t.tls = TLSRequired
				t.conf = &tls.Config{ServerName: h, RootCAs: q.opts.RootCAs, MinVersion: tls.VersionTLS12}
			}
		}
		addrs, err := q.opts.Resolver.LookupIP(ctx, h)
		if err != nil {
			if resolver.IsNotFound(err) {
				notFound++
			}
			q.log.Info("queue: MX host has no address", "domain", ascii, "mx", h, "err", err)
			continue
		}
		for _, a := range addrs {
			t.addr = net.JoinHostPort(a.String(), strconv.Itoa(q.cfg.MXPort))
			targets = append(targets, t)
			if len(targets) >= maxMXAddrs {
				return targets, nil
			}
		}
	}
	if len(targets) == 0 {
		if policy != nil && policy.Mode == mtasts.ModeEnforce {
			return nil, []outcome{temp("4.7.5", "no MX of "+domain+" matches its MTA-STS policy")}
		}
		if notFound == len(hosts) && len(hosts) == 1 && hosts[0] == ascii {
			return nil, []outcome{perm("5.1.2", "domain "+domain+" has no MX and no address")}
		}
		return nil, []outcome{temp("4.4.4", "no address for the MX hosts of "+domain)}
	}
	return targets, nil
}
