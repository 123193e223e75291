// Package dnsbl is a recipient-stage filter that asks DNS lists about the
// client address, weighted as Postfix's postscreen weighs them
// (postscreen_dnsbl_sites, postscreen_dnsbl_threshold): each list that
// lists the client adds its weight, negative for an allow list (a DNSWL),
// and a sum at or above the threshold asks the verdict for a reject.
//
// The lists are asked in parallel under the filter's deadline, through
// moat's resolver and its cache (see package dnsxl, which also ignores a
// list found answering every query). A list that fails to answer counts
// for nothing: a DNS fault never turns into a reject. If every list
// failed, Check fails and the pipeline makes DNSBL_TEMPFAIL.
//
// Why the rcpt stage and not connect, where postscreen judges: (1) a
// reject after RCPT TO puts the envelope (sender, recipient) in the log
// line of the refusal; (2) authentication comes after the greeting, and
// a submission client on a dynamic address (Spamhaus PBL lists them all)
// must be skipped, which only a stage after AUTH can know; (3) the
// recipient's policy is known at RCPT, so an operator can exempt
// postmaster@ or abuse@ from the check. The filter runs for each
// recipient; the resolver's cache makes the repeated lookups cheap, and
// a recipient whose transaction already holds the filter's findings
// (a dnsbl.list fact in Input.Prior) adds nothing, so a listing scores
// once per transaction.
package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/dnsxl"
	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/policies"
)

// The symbol names the filter returns, beside the lists' own symbols.
const (
	// SymListed: block lists (positive weight) list the client; the
	// score is the sum of their weights.
	SymListed = "DNSBL_LISTED"
	// SymAllowed: allow lists (negative weight) list the client; the
	// score is the sum of their weights.
	SymAllowed = "DNSWL_LISTED"
)

// FactList is the fact set once for each zone that lists the client
// (the zone name), for rules: fact("dnsbl.list"), facts("dnsbl.list").
const FactList = "dnsbl.list"

// Config configures the filter ([filters.dnsbl] in the configuration
// file). Start from DefaultConfig.
type Config struct {
	// Lists are the lists asked ([[filters.dnsbl.list]] tables: zone,
	// weight, codes, mask, symbol; see dnsxl.ListConfig). Default: none,
	// and then the filter asks nothing. Several tables may name one zone
	// with different codes and weights; it is asked once.
	Lists []dnsxl.ListConfig `toml:"list"`
	// Threshold is the inclusive lower bound of the sum of weights at
	// which the filter asks for a reject, as postscreen_dnsbl_threshold
	// (TOML threshold, default 1). 0 never asks: the weights only score.
	Threshold float64 `toml:"threshold"`
	// SkipNetworks are client networks never looked up, as CIDR prefixes
	// (TOML skip_networks; default loopback, private (RFC 1918, RFC
	// 4193), shared (RFC 6598), link-local and unspecified addresses:
	// lists hold none of them, and asking would leak internal addresses).
	// An IPv4-mapped IPv6 client is matched as the IPv4 address.
	SkipNetworks []string `toml:"skip_networks"`
	// ProbeInterval is how often each list's RFC 5782 §5 test entries are
	// asked, to find a list that answers every query (TOML
	// probe_interval, default "5m", at least "1s"). It also bounds how
	// often each kind of fault of a list is logged.
	ProbeInterval time.Duration `toml:"probe_interval"`
}

// Defaults of Config, documented on its fields.
const (
	DefaultThreshold     = 1.0
	DefaultProbeInterval = dnsxl.DefaultProbeInterval
)

// DefaultSkipNetworks are the networks skipped by default.
var DefaultSkipNetworks = []string{
	"127.0.0.0/8", "::1/128", // loopback
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", // private
	"100.64.0.0/10",               // shared (CGNAT)
	"169.254.0.0/16", "fe80::/10", // link-local
	"0.0.0.0/8", "::/128", // unspecified, "this network"
}

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{
		Threshold:     DefaultThreshold,
		SkipNetworks:  append([]string(nil), DefaultSkipNetworks...),
		ProbeInterval: DefaultProbeInterval,
	}
}

// Validate reports the first invalid field, named by its TOML key.
func (c Config) Validate() error {
	_, _, err := c.compile(nil, dnsxl.Options{})
	return err
}

// compile checks c and returns its lists, zones (when r is not nil) and
// skipped networks.
func (c Config) compile(r resolver.Resolver, opt dnsxl.Options) (compiled, []netip.Prefix, error) {
	var cc compiled
	if math.IsNaN(c.Threshold) || math.IsInf(c.Threshold, 0) || c.Threshold < 0 {
		return cc, nil, fmt.Errorf("threshold: %v is not a finite number of 0 or more", c.Threshold)
	}
	if c.ProbeInterval < dnsxl.MinProbeInterval {
		return cc, nil, fmt.Errorf("probe_interval: %v is below %v (write a duration with a unit: \"5m\")", c.ProbeInterval, dnsxl.MinProbeInterval)
	}
	skip := make([]netip.Prefix, 0, len(c.SkipNetworks))
	for i, s := range c.SkipNetworks {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cc, nil, fmt.Errorf("skip_networks[%d]: %q is not a CIDR prefix: %w", i, s, err)
		}
		skip = append(skip, p.Masked())
	}
	opt.ProbeInterval = c.ProbeInterval
	var err error
	cc.lists, cc.zones, err = dnsxl.Compile(c.Lists, "list", dnsxl.IPList, r, opt, SymListed, SymAllowed)
	return cc, skip, err
}

// compiled are the lists of a configuration and the zones they are asked in.
type compiled struct {
	lists []dnsxl.List
	zones []*dnsxl.Zone
}

// Filter is the DNS list check. It is safe for concurrent use.
type Filter struct {
	compiled
	threshold float64
	skip      []netip.Prefix
}

var _ filters.Filter = (*Filter)(nil)

// New returns the filter, asking r. obs, if not nil, is told of every
// lookup and of each list's health (for metrics); log receives the lists'
// warnings (nil: slog.Default()).
func New(cfg Config, r resolver.Resolver, obs dnsxl.Observer, log *slog.Logger) (*Filter, error) {
	if r == nil {
		return nil, errors.New("dnsbl: no resolver")
	}
	if log == nil {
		log = slog.Default()
	}
	cc, skip, err := cfg.compile(r, dnsxl.Options{Observer: obs, Log: log.With("filter", "dnsbl")})
	if err != nil {
		return nil, fmt.Errorf("dnsbl config: %w", err)
	}
	return &Filter{compiled: cc, threshold: cfg.Threshold, skip: skip}, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return "dnsbl" }

// Stage implements filters.Filter: the rcpt stage (see the package
// documentation for why).
func (f *Filter) Stage() filters.Stage { return filters.StageRcpt }

// Symbols implements filters.SymbolDeclarer: DNSBL_LISTED, DNSWL_LISTED
// and the symbols the lists name.
func (f *Filter) Symbols() []string {
	out := []string{SymListed, SymAllowed}
	for _, l := range f.lists {
		if l.Symbol != "" {
			out = append(out, l.Symbol)
		}
	}
	return out
}

// hit is a list that lists the client, with the codes that count.
type hit struct {
	list  *dnsxl.List
	codes []netip.Addr
}

// Check implements filters.Filter.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Conn == nil || !in.Conn.RemoteIP.IsValid() {
		return filters.Result{}, errors.New("dnsbl: no client address")
	}
	ip := in.Conn.RemoteIP.Unmap().WithZone("")
	switch {
	case len(f.zones) == 0:
		return filters.Result{}, nil
	case in.Conn.AuthUser != "":
		// An authenticated client is judged by its credentials; its
		// address is often a dynamic one, which lists list as such.
		return filters.Result{}, nil
	case f.skipped(ip):
		return filters.Result{}, nil
	case in.Prior.Fact(FactList) != "":
		// An earlier recipient of the transaction found it: it counts
		// once.
		return filters.Result{}, nil
	}

	item := dnsxl.ReverseIP(ip)
	qs := make([]dnsxl.Query, len(f.zones))
	for i, z := range f.zones {
		qs[i] = dnsxl.Query{Zone: z, Item: item}
	}
	answers := dnsxl.LookupAll(ctx, qs)
	if err := dnsxl.AllFailed(qs, answers); err != nil {
		return filters.Result{}, fmt.Errorf("dnsbl: %s: %w", ip, err)
	}
	byZone := make(map[*dnsxl.Zone]dnsxl.Answer, len(answers))
	for i, a := range answers {
		byZone[f.zones[i]] = a
	}

	var hits []hit
	for i := range f.lists {
		l := &f.lists[i]
		a := byZone[l.ZoneOf()]
		if a.Status != dnsxl.Listed {
			continue
		}
		if codes := l.Match(a.Codes); len(codes) > 0 {
			hits = append(hits, hit{l, codes})
		}
	}
	return f.result(hits), nil
}

// result turns the hits into symbols, facts and a demand.
func (f *Filter) result(hits []hit) filters.Result {
	if len(hits) == 0 {
		return filters.Result{}
	}
	var (
		res          filters.Result
		block, allow float64
		bWhy, aWhy   []string
		sum          float64
		seen         = make(map[string]bool)
		listSymbols  []filters.Symbol
	)
	for _, h := range hits {
		why := h.list.Zone + " " + dnsxl.FormatCodes(h.codes)
		if h.list.Weight > 0 {
			block += h.list.Weight
			bWhy = append(bWhy, why)
		} else {
			allow += h.list.Weight
			aWhy = append(aWhy, why)
		}
		sum += h.list.Weight
		if h.list.Symbol != "" {
			listSymbols = append(listSymbols, filters.Symbol{Name: h.list.Symbol, Reason: why})
		}
		if !seen[h.list.Zone] {
			seen[h.list.Zone] = true
			res.Facts = append(res.Facts, filters.Fact{Name: FactList, Value: h.list.Zone})
		}
	}
	if len(bWhy) > 0 {
		res.Symbols = append(res.Symbols, filters.Symbol{Name: SymListed, Score: block, Reason: "listed by " + strings.Join(bWhy, ", ")})
	}
	if len(aWhy) > 0 {
		res.Symbols = append(res.Symbols, filters.Symbol{Name: SymAllowed, Score: allow, Reason: "allowed by " + strings.Join(aWhy, ", ")})
	}
	res.Symbols = append(res.Symbols, listSymbols...)
	// postscreen_dnsbl_threshold is an inclusive bound; the tolerance
	// keeps 0.1+0.2 at a threshold of 0.3.
	if f.threshold > 0 && sum >= f.threshold-1e-9 {
		res.Demands = []filters.Demand{{Action: policies.ActionReject,
			Reason: fmt.Sprintf("DNS list weight %s reaches the threshold %s: %s",
				strconv.FormatFloat(sum, 'g', -1, 64), strconv.FormatFloat(f.threshold, 'g', -1, 64),
				strings.Join(append(bWhy, aWhy...), ", "))}}
	}
	return res
}

// skipped reports whether ip is in a skipped network.
func (f *Filter) skipped(ip netip.Addr) bool {
	for _, p := range f.skip {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
