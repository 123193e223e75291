package dnsxl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// zones are test lists served by dnstest: bl.test behaves; all.test
// answers every name (a wildcard); refuse.test answers a lookup with
// Spamhaus's open-resolver code; nolisting.test lacks its test entry;
// dbl.test is a domain list.
var zones = map[string]string{
	"bl.test.": `
2.0.0.127  A 127.0.0.2
5.2.0.192  A 127.0.0.4
5.2.0.192  A 127.0.0.10
7.2.0.192  A 192.0.2.1
`,
	"all.test.": "* A 127.0.0.2\n",
	"refuse.test.": `
2.0.0.127  A 127.0.0.2
5.2.0.192  A 127.255.255.254
6.2.0.192  A 127.0.0.2
`,
	"nolisting.test.": "5.2.0.192 A 127.0.0.2\n",
	"dbl.test.": `
test            A 127.0.1.2
bad.example     A 127.0.1.2
`,
}

// observer records what a Zone tells it.
type observer struct {
	mu      sync.Mutex
	lookups map[string]int // "zone status"
	usable  []string       // "zone true|false"
}

func (o *observer) ObserveLookup(zone string, st Status) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lookups == nil {
		o.lookups = map[string]int{}
	}
	o.lookups[zone+" "+st.String()]++
}

func (o *observer) ObserveUsable(zone string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.usable = append(o.usable, zone+" "+map[bool]string{true: "true", false: "false"}[ok])
}

func (o *observer) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lookups[key]
}

func (o *observer) usables() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.usable)
}

// fixture is a dnstest server, a resolver asking it, and what the zones
// log and observe.
type fixture struct {
	srv *dnstest.Server
	dns *resolver.DNS
	obs *observer
	log *bytes.Buffer
	mu  sync.Mutex // guards log
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{srv: dnstest.Start(t, zones), obs: &observer{}, log: &bytes.Buffer{}}
	cfg := resolver.DefaultConfig()
	cfg.Upstream = fx.srv.Addr()
	cfg.Timeout = 500 * time.Millisecond
	r, err := resolver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fx.dns = r
	return fx
}

// Write implements io.Writer for the log handler.
func (fx *fixture) Write(p []byte) (int, error) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return fx.log.Write(p)
}

func (fx *fixture) logged() string {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return fx.log.String()
}

// zone returns a zone over the fixture whose clock the test moves.
func (fx *fixture) zone(name string, k Kind, clock *time.Time) *Zone {
	z := NewZone(name, k, fx.dns, Options{ProbeInterval: time.Minute, Observer: fx.obs,
		Log: slog.New(slog.NewTextHandler(fx, nil))})
	z.now = func() time.Time { return *clock }
	return z
}

func TestZoneLookup(t *testing.T) {
	fx := newFixture(t)
	fx.srv.Hang("8.2.0.192.bl.test")
	clock := time.Unix(1e9, 0)
	bl := fx.zone("bl.test", IPList, &clock)
	tests := []struct {
		item  string
		st    Status
		codes string
	}{
		{"5.2.0.192", Listed, "127.0.0.4 127.0.0.10"},
		{"6.2.0.192", NotListed, ""},
		{"7.2.0.192", Malformed, ""},
		{"8.2.0.192", Failed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.item, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			a := bl.Lookup(ctx, tt.item)
			var codes []string
			for _, c := range a.Codes {
				codes = append(codes, c.String())
			}
			slices.Sort(codes)
			want := strings.Fields(tt.codes)
			slices.Sort(want)
			if a.Status != tt.st || !slices.Equal(codes, want) {
				t.Errorf("got %v %v, want %v %v", a.Status, codes, tt.st, want)
			}
			if (a.Status == Failed) != (a.Err != nil) || (a.Err != nil && !resolver.IsTemporary(a.Err)) {
				t.Errorf("status %v with error %v", a.Status, a.Err)
			}
		})
	}
	// One probe in the interval: the test entries were asked once.
	for _, e := range []string{"1.0.0.127.bl.test", "2.0.0.127.bl.test"} {
		if n := fx.srv.QueriesFor(e, dns.TypeA); n != 1 {
			t.Errorf("%s asked %d times, want 1", e, n)
		}
	}
	if n := fx.srv.QueriesFor("5.2.0.192.bl.test", dns.TypeAAAA); n != 0 {
		t.Errorf("AAAA asked %d times; a list answers A records", n)
	}
	if got := fx.obs.count("bl.test listed"); got != 1 {
		t.Errorf("observed %d listed lookups, want 1", got)
	}
	if got := fx.obs.usables(); !slices.Equal(got, []string{"bl.test true"}) {
		t.Errorf("usable observations %v", got)
	}
	if l := fx.logged(); !strings.Contains(l, "outside 127.0.0.0/8") || !strings.Contains(l, "lookup failed") {
		t.Errorf("log lacks the malformed answer or the failure:\n%s", l)
	}
}

func TestZoneAnswersEverything(t *testing.T) {
	fx := newFixture(t)
	clock := time.Unix(1e9, 0)
	all := fx.zone("all.test", IPList, &clock)
	ctx := context.Background()
	if a := all.Lookup(ctx, "5.2.0.192"); a.Status != Unusable {
		t.Fatalf("first lookup %v, want %v: the probe finds 127.0.0.1 listed", a.Status, Unusable)
	}
	// Within the interval the zone is not asked at all.
	for range 3 {
		if a := all.Lookup(ctx, "6.2.0.192"); a.Status != Unusable {
			t.Fatalf("lookup %v, want %v", a.Status, Unusable)
		}
	}
	if n := fx.srv.QueriesFor("6.2.0.192.all.test", dns.TypeA); n != 0 {
		t.Errorf("an unusable zone was asked %d times", n)
	}
	if n := strings.Count(fx.logged(), "must not be listed"); n != 1 {
		t.Errorf("logged %d times in one interval, want once:\n%s", n, fx.logged())
	}
	// A probe an interval later (answered from the resolver's cache)
	// finds it still broken, and says so once more.
	clock = clock.Add(time.Minute)
	if a := all.Lookup(ctx, "6.2.0.192"); a.Status != Unusable {
		t.Fatalf("after the interval: %v", a.Status)
	}
	if n := strings.Count(fx.logged(), "must not be listed"); n != 2 {
		t.Errorf("logged %d times in two intervals, want twice", n)
	}
	if got := fx.obs.usables(); !slices.Equal(got, []string{"all.test false", "all.test false"}) {
		t.Errorf("usable observations %v", got)
	}
	if got := fx.obs.count("all.test unusable"); got != 5 {
		t.Errorf("observed %d unusable lookups, want 5", got)
	}
}

func TestZoneRefusal(t *testing.T) {
	fx := newFixture(t)
	clock := time.Unix(1e9, 0)
	z := fx.zone("refuse.test", IPList, &clock)
	ctx := context.Background()
	if a := z.Lookup(ctx, "5.2.0.192"); a.Status != Refused {
		t.Fatalf("got %v, want %v", a.Status, Refused)
	}
	// Until the next probe the zone is ignored, even for a real listing.
	if a := z.Lookup(ctx, "6.2.0.192"); a.Status != Unusable {
		t.Fatalf("got %v, want %v", a.Status, Unusable)
	}
	if n := fx.srv.QueriesFor("6.2.0.192.refuse.test", dns.TypeA); n != 0 {
		t.Errorf("a refusing zone was asked %d times", n)
	}
	// The probe an interval later finds the test entries right: believed
	// again.
	clock = clock.Add(time.Minute)
	if a := z.Lookup(ctx, "6.2.0.192"); a.Status != Listed {
		t.Fatalf("after the interval: %v, want %v", a.Status, Listed)
	}
	if got := fx.obs.usables(); !slices.Equal(got, []string{"refuse.test true", "refuse.test false", "refuse.test true"}) {
		t.Errorf("usable observations %v", got)
	}
	if l := fx.logged(); !strings.Contains(l, "refuses our queries") || !strings.Contains(l, "believed") {
		t.Errorf("log:\n%s", l)
	}
}

func TestZoneProbe(t *testing.T) {
	fx := newFixture(t)
	clock := time.Unix(1e9, 0)
	ctx := context.Background()

	// A zone without its "listed" test entry is believed, with a warning
	// (once).
	nl := fx.zone("nolisting.test", IPList, &clock)
	for range 2 {
		if a := nl.Lookup(ctx, "5.2.0.192"); a.Status != Listed {
			t.Fatalf("got %v, want %v", a.Status, Listed)
		}
		clock = clock.Add(time.Minute)
	}
	if n := strings.Count(fx.logged(), "does not list its test entry"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}

	// A domain list is probed on TEST and INVALID.
	dbl := fx.zone("dbl.test", DomainList, &clock)
	if a := dbl.Lookup(ctx, "bad.example"); a.Status != Listed {
		t.Fatalf("got %v, want %v", a.Status, Listed)
	}
	for _, e := range []string{"test.dbl.test", "invalid.dbl.test"} {
		if n := fx.srv.QueriesFor(e, dns.TypeA); n != 1 {
			t.Errorf("%s asked %d times, want 1", e, n)
		}
	}

	// A probe that cannot be made leaves the zone believed and is tried
	// again after probeRetry, not the whole interval.
	fx.srv.Hang("1.0.0.127.bl.test")
	bl := NewZone("bl.test", IPList, fx.dns, Options{ProbeInterval: time.Hour, Log: slog.New(slog.NewTextHandler(fx, nil))})
	bl.now = func() time.Time { return clock }
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if a := bl.Lookup(sctx, "5.2.0.192"); a.Status != Listed {
		t.Fatalf("with the probe hanging: %v, want %v", a.Status, Listed)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		bl.mu.Lock()
		done, next := bl.probing == nil, bl.nextProbe
		bl.mu.Unlock()
		if done {
			if want := clock.Add(probeRetry); !next.Equal(want) {
				t.Errorf("next probe at %v, want %v", next, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the probe did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLookupAll(t *testing.T) {
	fx := newFixture(t)
	clock := time.Unix(1e9, 0)
	bl, dbl := fx.zone("bl.test", IPList, &clock), fx.zone("dbl.test", DomainList, &clock)
	var qs []Query
	for range 50 {
		qs = append(qs, Query{bl, "5.2.0.192"}, Query{dbl, "good.example"}, Query{dbl, "bad.example"})
	}
	got := LookupAll(context.Background(), qs)
	for i, a := range got {
		want := []Status{Listed, NotListed, Listed}[i%3]
		if a.Status != want {
			t.Fatalf("answer %d: %v, want %v", i, a.Status, want)
		}
	}
}

func TestAllFailed(t *testing.T) {
	z := NewZone("bl.test", IPList, nil, Options{})
	fail := Answer{Status: Failed, Err: errors.New("timeout")}
	tests := []struct {
		name string
		as   []Answer
		fail bool
	}{
		{"none made", nil, false},
		{"all unusable", []Answer{{Status: Unusable}, {Status: Unusable}}, false},
		{"one answered", []Answer{fail, {Status: NotListed}}, false},
		{"all failed", []Answer{fail, fail}, true},
		{"all made failed", []Answer{fail, {Status: Unusable}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qs := make([]Query, len(tt.as))
			for i := range qs {
				qs[i] = Query{z, "2.0.0.127"}
			}
			err := AllFailed(qs, tt.as)
			if (err != nil) != tt.fail || (err != nil && !strings.Contains(err.Error(), "bl.test: timeout")) {
				t.Errorf("err %v, want failure %v", err, tt.fail)
			}
		})
	}
}
