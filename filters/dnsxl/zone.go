package dnsxl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/moatmail/moat/filters/resolver"
)

// Kind is what a list holds; it sets the test entries a probe asks.
type Kind int

// The kinds of list.
const (
	// IPList lists client addresses (RFC 5782 §2.1, §2.4). §5: it must
	// list 127.0.0.2 and must not list 127.0.0.1.
	IPList Kind = iota
	// DomainList lists domain names (a "domain-name-based DNSxL" of RFC
	// 5782: an RHSBL or a URI list). §5: it must list "TEST" and must not
	// list "INVALID".
	DomainList
)

// testEntries returns the entry a list of kind k must list and the one it
// must not (RFC 5782 §5).
func (k Kind) testEntries() (listed, notListed string) {
	if k == DomainList {
		return "test", "invalid"
	}
	return "2.0.0.127", "1.0.0.127"
}

// Observer is told how lookups in the lists went, for metrics. Its
// methods are called from many goroutines at once and must be cheap. Zone
// names come from the configuration, so label values stay few.
type Observer interface {
	// ObserveLookup counts one lookup in zone that ended with status.
	ObserveLookup(zone string, status Status)
	// ObserveUsable says whether zone is believed, after each probe and
	// whenever an answer finds it refusing: a gauge's value.
	ObserveUsable(zone string, usable bool)
}

// Options are what a Zone needs beside its name.
type Options struct {
	// ProbeInterval is how often a zone's test entries are asked
	// (default DefaultProbeInterval). It also bounds how often each kind
	// of fault of a zone is logged.
	ProbeInterval time.Duration
	// Observer, if not nil, is told of every lookup.
	Observer Observer
	// Log receives the zone's warnings; nil means slog.Default().
	Log *slog.Logger
}

// DefaultProbeInterval is the interval between probes of a zone.
const DefaultProbeInterval = 5 * time.Minute

// MinProbeInterval is the shortest probe interval a configuration may
// set: "probe_interval = 300" (a bare integer, read as nanoseconds) must
// not mean a probe at every lookup.
const MinProbeInterval = time.Second

// probeTimeout bounds one probe; it runs detached from the lookup that
// started it, so that a short check deadline does not cut it.
const probeTimeout = 10 * time.Second

// probeRetry is how soon a probe that could not be made is tried again.
const probeRetry = time.Minute

// health is what the probes found of a zone.
type health int

const (
	unknown health = iota // not probed yet, or every probe failed: believed
	usable
	unusable
)

// Zone is one DNS list zone as moat asks it: lookups through moat's
// resolver (and its cache), and a probe of the zone's test entries at
// most every ProbeInterval, which finds a zone that answers every query
// (a refusal, a wildcard, an open-resolver block) so that its answers are
// ignored rather than block all mail. It is safe for concurrent use.
type Zone struct {
	name     string
	kind     Kind
	dns      resolver.Resolver
	obs      Observer
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	state     health
	nextProbe time.Time
	probing   chan struct{} // closed when the running probe ends; nil when none runs
	warnedNo  bool          // the missing "listed" test entry was logged
	logged    map[string]time.Time
}

// NewZone returns the zone name (lower case, without the trailing dot)
// of a list of kind k, asked through r.
func NewZone(name string, k Kind, r resolver.Resolver, opt Options) *Zone {
	if opt.ProbeInterval <= 0 {
		opt.ProbeInterval = DefaultProbeInterval
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Zone{
		name: name, kind: k, dns: r, obs: opt.Observer,
		log:      opt.Log.With("zone", name),
		interval: opt.ProbeInterval,
		now:      time.Now,
		logged:   make(map[string]time.Time),
	}
}

// Name returns the zone name.
func (z *Zone) Name() string { return z.name }

// Answer is the outcome of one lookup.
type Answer struct {
	// Status says how the lookup ended.
	Status Status
	// Codes are the answers in 127.0.0.0/8 when Status is Listed.
	Codes []netip.Addr
	// Err is the resolver's error when Status is Failed.
	Err error
}

// Lookup asks whether item (a reversed address, see ReverseIP, or a
// domain name) is listed in the zone. A temporary fault is an answer of
// status Failed, never a listing.
func (z *Zone) Lookup(ctx context.Context, item string) Answer {
	a := z.lookup(ctx, item)
	if z.obs != nil {
		z.obs.ObserveLookup(z.name, a.Status)
	}
	return a
}

func (z *Zone) lookup(ctx context.Context, item string) Answer {
	probe, believed := z.startProbe()
	if !believed && probe == nil {
		return Answer{Status: Unusable}
	}
	// The probe, if one runs, and the lookup go out together; the answer
	// is judged once the probe has said whether to believe the zone.
	addrs, err := resolver.LookupIPv4(ctx, z.dns, item+"."+z.name)
	if probe != nil {
		select {
		case <-probe:
		case <-ctx.Done():
		}
	}
	if !z.believed() {
		return Answer{Status: Unusable}
	}
	if err != nil {
		if resolver.IsNotFound(err) {
			return Answer{Status: NotListed}
		}
		if z.first("error") {
			z.log.Warn("DNS list lookup failed; the list counts for nothing this time", "err", err)
		}
		return Answer{Status: Failed, Err: err}
	}
	st, codes := Interpret(addrs)
	switch st {
	case Refused:
		z.refused(addrs)
	case Malformed:
		if z.first("malformed") {
			z.log.Warn("DNS list answered outside 127.0.0.0/8 (a wildcarded zone?); answer ignored",
				"name", item+"."+z.name, "answer", fmt.Sprint(addrs))
		}
	}
	return Answer{Status: st, Codes: codes}
}

// startProbe starts a probe if one is due, and returns the channel of the
// running probe (nil when none runs) and whether the zone is believed.
func (z *Zone) startProbe() (<-chan struct{}, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.probing == nil && !z.now().Before(z.nextProbe) {
		z.nextProbe = z.now().Add(z.interval)
		z.probing = make(chan struct{})
		go z.probe(z.probing)
	}
	return z.probing, z.state != unusable
}

// believed reports whether the zone's answers count.
func (z *Zone) believed() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.state != unusable
}

// probe asks the zone's test entries (RFC 5782 §5) and records whether the
// zone can be believed; it closes done when finished.
func (z *Zone) probe(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	listed, notListed := z.kind.testEntries()
	type result struct {
		addrs []netip.Addr
		err   error
	}
	pos := make(chan result, 1)
	go func() {
		a, err := resolver.LookupIPv4(ctx, z.dns, listed+"."+z.name)
		pos <- result{a, err}
	}()
	negAddrs, negErr := resolver.LookupIPv4(ctx, z.dns, notListed+"."+z.name)
	p := <-pos

	z.mu.Lock()
	was := z.state
	warnNo, concluded := false, true
	switch {
	case negErr == nil:
		z.state = unusable
	case resolver.IsNotFound(negErr):
		if st, _ := Interpret(p.addrs); p.err == nil && st == Refused {
			z.state = unusable
			negAddrs = p.addrs
			break
		}
		z.state = usable
		if p.err != nil && resolver.IsNotFound(p.err) && !z.warnedNo {
			z.warnedNo, warnNo = true, true
		}
	default:
		// Unknown: the zone keeps its state, and is asked again soon.
		concluded = false
		z.nextProbe = z.now().Add(min(probeRetry, z.interval))
	}
	now := z.state
	z.mu.Unlock()
	// The probe ends once it has said what it found, so that whoever
	// waits for it finds the log and the observer told.
	defer func() {
		z.mu.Lock()
		z.probing = nil
		close(done)
		z.mu.Unlock()
	}()

	switch {
	case now == unusable:
		z.log.Warn("DNS list answers its test entry that must not be listed (RFC 5782 §5): it refuses us or answers every query; ignored until the next probe",
			"name", notListed+"."+z.name, "answer", fmt.Sprint(negAddrs), "next_probe", z.interval)
	case was == unusable && now == usable:
		z.log.Info("DNS list answers its test entries again; believed")
	case negErr != nil && !resolver.IsNotFound(negErr) && z.first("probe"):
		z.log.Warn("DNS list probe failed", "err", negErr)
	}
	if warnNo {
		z.log.Warn("DNS list does not list its test entry (RFC 5782 §5); is the zone name right?",
			"name", listed+"."+z.name)
	}
	if z.obs != nil && concluded {
		z.obs.ObserveUsable(z.name, now == usable)
	}
}

// refused records that the zone answered a lookup with a refusal code:
// its answers are ignored until the next probe, at least an interval
// from now.
func (z *Zone) refused(addrs []netip.Addr) {
	z.mu.Lock()
	was := z.state
	z.state = unusable
	if next := z.now().Add(z.interval); next.After(z.nextProbe) {
		z.nextProbe = next
	}
	z.mu.Unlock()
	if was != unusable {
		z.log.Warn("DNS list refuses our queries (a public resolver upstream, or over its quota?); ignored until the next probe",
			"answer", fmt.Sprint(addrs), "next_probe", z.interval)
		if z.obs != nil {
			z.obs.ObserveUsable(z.name, false)
		}
	}
}

// first reports whether a fault of this kind was not logged in the last
// probe interval, and records it as logged now.
func (z *Zone) first(kind string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	now := z.now()
	if last, ok := z.logged[kind]; ok && now.Sub(last) < z.interval {
		return false
	}
	z.logged[kind] = now
	return true
}

// Query is one lookup for LookupAll.
type Query struct {
	Zone *Zone
	Item string
}

// AllFailed returns an error naming the failures (the first three) when
// every lookup made failed, and nil otherwise: when one answered, or
// when none was made (every zone unusable). as are the answers to qs.
func AllFailed(qs []Query, as []Answer) error {
	made, failed := 0, 0
	var errs []error
	for i, a := range as {
		switch a.Status {
		case Unusable:
			continue
		case Failed:
			failed++
			if len(errs) < 3 {
				errs = append(errs, fmt.Errorf("%s: %w", qs[i].Zone.Name(), a.Err))
			}
		}
		made++
	}
	if made == 0 || failed < made {
		return nil
	}
	return fmt.Errorf("every lookup failed (%d): %w", failed, errors.Join(errs...))
}

// maxParallel bounds the lookups LookupAll runs at once.
const maxParallel = 32

// LookupAll runs the lookups concurrently, at most maxParallel at a time,
// each under ctx, and returns their answers in order.
func LookupAll(ctx context.Context, qs []Query) []Answer {
	out := make([]Answer, len(qs))
	if len(qs) == 1 {
		out[0] = qs[0].Zone.Lookup(ctx, qs[0].Item)
		return out
	}
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, q := range qs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i] = q.Zone.Lookup(ctx, q.Item)
		})
	}
	wg.Wait()
	return out
}
