// Package uribl is a data-stage filter that asks domain-name DNS lists
// (RHSBLs and URI lists, in the manner of Spamhaus DBL, SURBL and URIBL)
// about the names a message brings: the domain of the envelope sender,
// the HELO name, and the hosts of the links found by the shared MIME walk
// (filters.Message.Content).
//
// Each name is reduced to its registered domain by the Public Suffix List
// ("www.shop.example.co.uk" → "example.co.uk", as SURBL and the DBL list
// domains), except under configured exceptions; a link to an IP address
// is asked as the reversed address ("http://192.0.2.1/" →
// "1.2.0.192.<zone>"), as SURBL publishes them. Names are deduplicated
// and their number bounded (max_domains, as rspamd's surbl max_urls), so
// a message with a thousand links costs at most max_domains lookups per
// zone.
//
// Each list (zone, weight, codes, mask, symbol, sources) adds its weight
// to the score of URIBL_LISTED, RHSBL_SENDER or RHSBL_HELO when it lists
// at least one name of that source. A list that fails counts for nothing;
// if every lookup failed, Check fails and the pipeline makes
// URIBL_TEMPFAIL. A list found answering every query is ignored (package
// dnsxl).
package uribl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/dnsxl"
	"github.com/moatmail/moat/filters/resolver"
)

// The symbol names the filter returns, beside the lists' own symbols.
const (
	// SymURL: lists list the domain (or address) of a link.
	SymURL = "URIBL_LISTED"
	// SymSender: lists list the envelope sender's domain.
	SymSender = "RHSBL_SENDER"
	// SymHelo: lists list the HELO name's domain.
	SymHelo = "RHSBL_HELO"
)

// The facts the filter sets, for rules.
const (
	// FactList is set once for each zone that lists a name.
	FactList = "uribl.list"
	// FactDomain is set once for each name found listed (a registered
	// domain, or an IP address of a link).
	FactDomain = "uribl.domain"
)

// The sources of names a list may be asked about.
const (
	SourceURL    = "url"    // the hosts of links in the message
	SourceSender = "sender" // the envelope sender's domain
	SourceHelo   = "helo"   // the HELO/EHLO name
)

// source is a set of sources, one bit each.
type source uint8

const (
	srcURL source = 1 << iota
	srcSender
	srcHelo
	srcAll = srcURL | srcSender | srcHelo
)

// sources are the symbols of each source, in the order they are returned.
var sources = []sourceInfo{{srcURL, SourceURL, SymURL}, {srcSender, SourceSender, SymSender}, {srcHelo, SourceHelo, SymHelo}}

// sourceInfo names a source in the configuration and its symbol.
type sourceInfo struct {
	bit    source
	name   string
	symbol string
}

// ListConfig configures one list: a [[filters.uribl.list]] table.
type ListConfig struct {
	// The keys zone, weight, codes, mask and symbol, as dnsbl's lists.
	dnsxl.ListConfig
	// Sources say which names the list is asked about: "url", "sender",
	// "helo" (TOML sources, default all three). SURBL and URIBL ask for
	// "url" only; the Spamhaus DBL takes all three.
	Sources []string `toml:"sources"`
}

// Config configures the filter ([filters.uribl]). Start from
// DefaultConfig.
type Config struct {
	// Lists are the lists asked (default none: the filter asks nothing).
	Lists []ListConfig `toml:"list"`
	// MaxDomains bounds the distinct names asked per message, the
	// sender's and the HELO name's first, then the links' in the order
	// they appear (TOML max_domains, default 20).
	MaxDomains int `toml:"max_domains"`
	// Exceptions are domains under which each name is a registration of
	// its own, beside the Public Suffix List's: under "hosting.example",
	// "a.b.hosting.example" is asked as "b.hosting.example" (TOML
	// exceptions, default none).
	Exceptions []string `toml:"exceptions"`
	// SkipDomains are domains never asked about, with their subdomains:
	// the operator's own, or ones no list should judge (TOML
	// skip_domains, default none).
	SkipDomains []string `toml:"skip_domains"`
	// ProbeInterval is how often each list's RFC 5782 §5 test entries
	// ("test" listed, "invalid" not) are asked (TOML probe_interval,
	// default "5m", at least "1s").
	ProbeInterval time.Duration `toml:"probe_interval"`
}

// Defaults of Config, documented on its fields.
const (
	DefaultMaxDomains    = 20
	DefaultProbeInterval = dnsxl.DefaultProbeInterval
	// MaxMaxDomains is the largest max_domains Validate accepts.
	MaxMaxDomains = 1000
)

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{MaxDomains: DefaultMaxDomains, ProbeInterval: DefaultProbeInterval}
}

// Validate reports the first invalid field, named by its TOML key.
func (c Config) Validate() error {
	_, err := c.compile(nil, dnsxl.Options{})
	return err
}

// compiled is a checked configuration.
type compiled struct {
	lists      []dnsxl.List
	sources    []source // by list
	zones      []*dnsxl.Zone
	zoneSrc    map[*dnsxl.Zone]source // the sources each zone is asked about
	max        int
	exceptions []string // longest first
	skip       []string
}

// compile checks c and builds its lists over r (zones only when r is
// not nil).
func (c Config) compile(r resolver.Resolver, opt dnsxl.Options) (compiled, error) {
	cc := compiled{max: c.MaxDomains, zoneSrc: make(map[*dnsxl.Zone]source)}
	if c.MaxDomains < 1 || c.MaxDomains > MaxMaxDomains {
		return cc, fmt.Errorf("max_domains: %d is not from 1 to %d", c.MaxDomains, MaxMaxDomains)
	}
	if c.ProbeInterval < dnsxl.MinProbeInterval {
		return cc, fmt.Errorf("probe_interval: %v is below %v (write a duration with a unit: \"5m\")", c.ProbeInterval, dnsxl.MinProbeInterval)
	}
	var err error
	if cc.exceptions, err = domains(c.Exceptions, "exceptions"); err != nil {
		return cc, err
	}
	slices.SortStableFunc(cc.exceptions, func(a, b string) int { return len(b) - len(a) })
	if cc.skip, err = domains(c.SkipDomains, "skip_domains"); err != nil {
		return cc, err
	}
	base := make([]dnsxl.ListConfig, len(c.Lists))
	cc.sources = make([]source, len(c.Lists))
	for i, l := range c.Lists {
		base[i] = l.ListConfig
		for j, s := range l.Sources {
			k := slices.IndexFunc(sources, func(x sourceInfo) bool { return x.name == s })
			if k < 0 {
				return cc, fmt.Errorf("list[%d].sources[%d]: %q is not url, sender or helo", i, j, s)
			}
			cc.sources[i] |= sources[k].bit
		}
		if len(l.Sources) == 0 {
			cc.sources[i] = srcAll
		}
	}
	opt.ProbeInterval = c.ProbeInterval
	cc.lists, cc.zones, err = dnsxl.Compile(base, "list", dnsxl.DomainList, r, opt, SymURL, SymSender, SymHelo)
	if err != nil {
		return cc, err
	}
	for i := range cc.lists {
		if z := cc.lists[i].ZoneOf(); z != nil {
			cc.zoneSrc[z] |= cc.sources[i]
		}
	}
	return cc, nil
}

// domains checks a list of domain names and returns them in lower case
// without the trailing dot.
func domains(in []string, key string) ([]string, error) {
	out := make([]string, len(in))
	for i, d := range in {
		n := strings.ToLower(strings.TrimSuffix(d, "."))
		if !strings.Contains(n, ".") || !dnsxl.IsHostName(n) {
			return nil, fmt.Errorf("%s[%d]: %q is not a domain name with a dot (an internationalised name goes as A-labels, xn--)", key, i, d)
		}
		out[i] = n
	}
	return out, nil
}

// Filter is the domain and URI list check. It is safe for concurrent use.
type Filter struct {
	compiled
}

var _ filters.Filter = (*Filter)(nil)

// New returns the filter, asking r. obs, if not nil, is told of every
// lookup and of each list's health; log receives the lists' warnings
// (nil: slog.Default()).
func New(cfg Config, r resolver.Resolver, obs dnsxl.Observer, log *slog.Logger) (*Filter, error) {
	if r == nil {
		return nil, errors.New("uribl: no resolver")
	}
	if log == nil {
		log = slog.Default()
	}
	cc, err := cfg.compile(r, dnsxl.Options{Observer: obs, Log: log.With("filter", "uribl")})
	if err != nil {
		return nil, fmt.Errorf("uribl config: %w", err)
	}
	return &Filter{cc}, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return "uribl" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageData }

// Symbols implements filters.SymbolDeclarer: URIBL_LISTED, RHSBL_SENDER,
// RHSBL_HELO and the symbols the lists name.
func (f *Filter) Symbols() []string {
	out := []string{SymURL, SymSender, SymHelo}
	for _, l := range f.lists {
		if l.Symbol != "" {
			out = append(out, l.Symbol)
		}
	}
	return out
}

// name is one name to ask about.
type name struct {
	item string // as asked: a domain, or a reversed address
	show string // as shown in reasons and facts: the domain or the address
	src  source
}

// Check implements filters.Filter.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Msg == nil {
		return filters.Result{}, errors.New("uribl: no message")
	}
	if len(f.zones) == 0 {
		return filters.Result{}, nil
	}
	names := f.collect(in)

	// One lookup per zone and name, for the names of the sources the
	// zone's lists are asked about.
	type key struct {
		zone *dnsxl.Zone
		item string
	}
	var qs []dnsxl.Query
	at := make(map[key]int)
	for _, z := range f.zones {
		for _, n := range names {
			if n.src&f.zoneSrc[z] != 0 {
				at[key{z, n.item}] = len(qs)
				qs = append(qs, dnsxl.Query{Zone: z, Item: n.item})
			}
		}
	}
	if len(qs) == 0 {
		return filters.Result{}, nil
	}
	answers := dnsxl.LookupAll(ctx, qs)
	if err := dnsxl.AllFailed(qs, answers); err != nil {
		return filters.Result{}, fmt.Errorf("uribl: %w", err)
	}

	var r report
	for i := range f.lists {
		l := &f.lists[i]
		for _, n := range names {
			src := n.src & f.sources[i]
			if src == 0 {
				continue
			}
			a := answers[at[key{l.ZoneOf(), n.item}]]
			if a.Status != dnsxl.Listed {
				continue
			}
			if codes := l.Match(a.Codes); len(codes) > 0 {
				r.add(l, n, src, codes)
			}
		}
	}
	return r.result(), nil
}

// collect returns the names to ask about, deduplicated, at most max: the
// sender's domain and the HELO name's (not for an authenticated client,
// whose HELO is a laptop's and whose sender domain is the operator's),
// then the links'.
func (f *Filter) collect(in *filters.Input) []name {
	var names []name
	idx := make(map[string]int)
	add := func(raw string, src source) {
		h, ip, ok := host(raw)
		if !ok {
			return
		}
		var n name
		if ip.IsValid() {
			if ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() {
				return // no list lists them; asking would leak them
			}
			n = name{item: dnsxl.ReverseIP(ip), show: ip.String()}
		} else {
			if f.skipped(h) {
				return
			}
			rd, ok := registered(h, f.exceptions)
			if !ok {
				return
			}
			n = name{item: rd, show: rd}
		}
		if i, ok := idx[n.item]; ok {
			names[i].src |= src
			return
		}
		if len(names) >= f.max {
			return
		}
		n.src = src
		idx[n.item] = len(names)
		names = append(names, n)
	}
	authenticated := in.Conn != nil && in.Conn.AuthUser != ""
	if !authenticated {
		if in.Env != nil {
			if i := strings.LastIndexByte(in.Env.From, '@'); i >= 0 {
				add(in.Env.From[i+1:], srcSender)
			}
		}
		if in.Conn != nil && in.Conn.Helo != "" && !strings.HasPrefix(in.Conn.Helo, "[") {
			add(in.Conn.Helo, srcHelo)
		}
	}
	for _, u := range in.Msg.Content().URLs {
		for _, h := range urlHosts(u) {
			add(h, srcURL)
		}
	}
	return names
}

// skipped reports whether host is under one of the skipped domains.
func (f *Filter) skipped(host string) bool {
	for _, d := range f.skip {
		if under(host, d) {
			return true
		}
	}
	return false
}

// maxReasonItems bounds the findings a reason names.
const maxReasonItems = 5

// report gathers the hits of a check.
type report struct {
	score   [3]float64               // by source, in the order of sources
	counted [3]map[*dnsxl.List]bool  // lists already counted, by source
	why     [3][]string              // by source
	lists   []*dnsxl.List            // lists with a symbol that hit, in order
	listWhy map[*dnsxl.List][]string // by list
	facts   []filters.Fact
	seen    map[filters.Fact]bool
}

// add records that l lists n, found as src, with codes.
func (r *report) add(l *dnsxl.List, n name, src source, codes []netip.Addr) {
	why := n.show + " in " + l.Zone + " (" + dnsxl.FormatCodes(codes) + ")"
	for i, s := range sources {
		if src&s.bit == 0 {
			continue
		}
		if r.counted[i] == nil {
			r.counted[i] = make(map[*dnsxl.List]bool)
		}
		if !r.counted[i][l] {
			r.counted[i][l] = true
			r.score[i] += l.Weight
		}
		r.why[i] = append(r.why[i], why)
	}
	if l.Symbol != "" {
		if r.listWhy == nil {
			r.listWhy = make(map[*dnsxl.List][]string)
		}
		if _, ok := r.listWhy[l]; !ok {
			r.lists = append(r.lists, l)
		}
		r.listWhy[l] = append(r.listWhy[l], why)
	}
	for _, fact := range []filters.Fact{{Name: FactList, Value: l.Zone}, {Name: FactDomain, Value: n.show}} {
		if r.seen == nil {
			r.seen = make(map[filters.Fact]bool)
		}
		if !r.seen[fact] {
			r.seen[fact] = true
			r.facts = append(r.facts, fact)
		}
	}
}

// result turns the report into symbols and facts.
func (r *report) result() filters.Result {
	var res filters.Result
	for i, s := range sources {
		if len(r.why[i]) > 0 {
			res.Symbols = append(res.Symbols, filters.Symbol{Name: s.symbol, Score: r.score[i], Reason: reason(r.why[i])})
		}
	}
	for _, l := range r.lists {
		res.Symbols = append(res.Symbols, filters.Symbol{Name: l.Symbol, Reason: reason(r.listWhy[l])})
	}
	res.Facts = r.facts
	return res
}

// reason joins findings, naming at most maxReasonItems.
func reason(items []string) string {
	if len(items) <= maxReasonItems {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxReasonItems], ", "), len(items)-maxReasonItems)
}
