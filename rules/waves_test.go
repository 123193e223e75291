package rules

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

// authFilter is a data-stage filter that finds one authentication result
// after sleeping d, and counts how many run at once.
func authFilter(name string, d time.Duration, running, peak *atomic.Int32) *fakeFilter {
	return &fakeFilter{name: name, stage: filters.StageData,
		result: func(ctx context.Context, _ *filters.Input) (filters.Result, error) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			defer running.Add(-1)
			time.Sleep(d)
			return filters.Result{Auth: []filters.AuthResult{{Method: name, Value: filters.AuthPass}},
				Facts: []filters.Fact{{Name: name + ".domain", Value: "example.net"}}}, nil
		}}
}

// TestRunWaves: a filter that runs after others of its stage starts once
// they have finished and reads their results in Prior, beside what earlier
// stages found; the others still run concurrently.
func TestRunWaves(t *testing.T) {
	var running, peak atomic.Int32
	var seen []string
	var seenFacts []string
	dmarc := &fakeFilter{name: "dmarc", stage: filters.StageData, after: []string{"spf", "dkim", "missing"},
		result: func(_ context.Context, in *filters.Input) (filters.Result, error) {
			if running.Load() != 0 {
				t.Errorf("dmarc started while %d filters of the first wave ran", running.Load())
			}
			for _, a := range in.Prior.Auth {
				seen = append(seen, a.Method+"="+string(a.Value))
			}
			seenFacts = in.Prior.FactValues("dkim.domain")
			return filters.Result{Symbols: []filters.Symbol{sym("DMARC_PASS", -1)}}, nil
		}}
	spf := authFilter("spf", 0, &running, &peak)
	spf.stage = filters.StageMail
	fs := []filters.Filter{
		dmarc, // listed first: order in the list is not the order of waves
		authFilter("dkim", 30*time.Millisecond, &running, &peak),
		authFilter("arc", 30*time.Millisecond, &running, &peak),
		spf,
	}
	p, err := NewPipeline(Config{}, fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	// What the mail stage found is in Prior when the data stage starts.
	mail := p.Run(context.Background(), filters.StageMail, &filters.Input{}, nil)
	in := &filters.Input{Prior: &mail.Result}
	r := p.Run(context.Background(), filters.StageData, in, nil)

	slices.Sort(seen)
	if want := []string{"arc=pass", "dkim=pass", "spf=pass"}; !slices.Equal(seen, want) {
		t.Errorf("dmarc saw auth results %v, want %v", seen, want)
	}
	if want := []string{"example.net"}; !slices.Equal(seenFacts, want) {
		t.Errorf("dmarc saw dkim.domain facts %v, want %v", seenFacts, want)
	}
	if peak.Load() != 2 {
		t.Errorf("at most %d first-wave filters ran at once, want 2 (concurrently)", peak.Load())
	}
	if len(mail.Auth) != 1 || len(in.Prior.Auth) != 1 {
		t.Errorf("the caller's Prior was written into: %v", in.Prior.Auth)
	}
	var methods []string
	for _, a := range r.Auth {
		methods = append(methods, a.Method)
	}
	if want := []string{"dkim", "arc"}; !slices.Equal(methods, want) {
		t.Errorf("data-stage auth results %v, want %v (wave, then pipeline order)", methods, want)
	}
	if !r.HasSymbol("DMARC_PASS") {
		t.Errorf("symbols %v lack DMARC_PASS", r.Symbols)
	}

	// A policy that does not run dkim: dmarc still runs, after arc.
	seen = nil
	r = p.Run(context.Background(), filters.StageData, &filters.Input{}, func(name string) bool { return name != "dkim" })
	if want := []string{"arc=pass"}; !slices.Equal(seen, want) || !r.HasSymbol("DMARC_PASS") {
		t.Errorf("without dkim: dmarc saw %v, symbols %v", seen, r.Symbols)
	}
}

func TestNewPipelineWaveErrors(t *testing.T) {
	data := func(name string, after ...string) *fakeFilter {
		return &fakeFilter{name: name, stage: filters.StageData, after: after}
	}
	mail := &fakeFilter{name: "spf", stage: filters.StageMail, after: []string{"dkim"}}
	for _, tc := range []struct {
		name string
		fs   []filters.Filter
		want string
	}{
		{"cycle", []filters.Filter{data("a", "b"), data("b", "c"), data("c", "a")}, "cycle: a → b → c → a"},
		{"itself", []filters.Filter{data("a", "a")}, "cycle: a → a"},
		{"later stage", []filters.Filter{mail, data("dkim")}, `"spf" runs at mail and cannot run after "dkim"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPipeline(Config{}, tc.fs, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewPipeline: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestRuleFacts: rule expressions read the facts found so far.
func TestRuleFacts(t *testing.T) {
	p, err := NewPipeline(Config{Rules: []RuleConfig{
		{Name: "FROM_EXAMPLE", Stage: "data", Expr: `fact("rdns.name") endsWith ".example.net" && len(facts("dkim.domain")) == 2`, Score: 3},
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := Result{Result: filters.Result{Facts: []filters.Fact{
		{Name: filters.FactReverseName, Value: "mail.example.net"},
		{Name: "dkim.domain", Value: "a.example"}, {Name: "dkim.domain", Value: "b.example"},
	}}}
	v := p.Decide(filters.StageData, &filters.Input{}, f, policies.Builtin())
	if v.Score != 3 || len(v.Added) != 1 || v.Added[0].Name != "FROM_EXAMPLE" {
		t.Errorf("with the facts: score %v, added %v; want the rule to match", v.Score, v.Added)
	}
	f.Facts = f.Facts[:2]
	if v := p.Decide(filters.StageData, &filters.Input{}, f, policies.Builtin()); v.Score != 0 || len(v.Added) != 0 {
		t.Errorf("with one dkim domain: score %v, added %v; want no match", v.Score, v.Added)
	}
}

// TestDemands: a check's demanded action acts as a forced rule does:
// tempfail and reject at once, quarantine only at the data stage, never
// waived by an allow list; the pipeline names the check that asked.
func TestDemands(t *testing.T) {
	greylist := &fakeFilter{name: "greylist", stage: filters.StageRcpt,
		result: func(context.Context, *filters.Input) (filters.Result, error) {
			return filters.Result{Demands: []filters.Demand{{Action: policies.ActionTempfail, Reason: "new triplet"}}}, nil
		}}
	dnsbl := &fakeFilter{name: "dnsbl", stage: filters.StageConnect,
		result: func(context.Context, *filters.Input) (filters.Result, error) {
			return filters.Result{Demands: []filters.Demand{{Action: policies.ActionQuarantine, Reason: "listed"}}}, nil
		}}
	p, err := NewPipeline(Config{}, []filters.Filter{greylist, dnsbl}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pols, err := policies.New(policies.Config{Default: policies.PolicyConfig{AllowSenders: []string{"bob@example.net"}}})
	if err != nil {
		t.Fatal(err)
	}
	pol := pols.Default()
	in := &filters.Input{Env: &filters.Envelope{From: "bob@example.net"}}

	rcpt := p.Run(context.Background(), filters.StageRcpt, in, nil)
	if len(rcpt.Demands) != 1 || rcpt.Demands[0].Check != "greylist" {
		t.Fatalf("demands %+v, want one named greylist", rcpt.Demands)
	}
	if v := p.Decide(filters.StageRcpt, in, rcpt, pol); v.Action != policies.ActionTempfail ||
		len(v.Reasons) != 1 || v.Reasons[0] != "check greylist demands tempfail: new triplet" {
		t.Errorf("rcpt verdict %v, want tempfail from greylist even for an allowed sender", v)
	}

	conn := p.Run(context.Background(), filters.StageConnect, in, nil)
	if v := p.Decide(filters.StageConnect, in, conn, pol); v.Action != policies.ActionAccept {
		t.Errorf("connect verdict %v, want accept (quarantine waits for data)", v)
	}
	if v := p.Decide(filters.StageData, in, conn, pol); v.Action != policies.ActionQuarantine {
		t.Errorf("data verdict %v, want the connect stage's quarantine", v)
	}
}

// TestDemandText: the text a demand asks for goes with the verdict only
// when that demand decides; a rule that forces a greater action, or the
// same with its own reply code, takes it away.
func TestDemandText(t *testing.T) {
	limited := filters.Result{Demands: []filters.Demand{{Action: policies.ActionTempfail, Check: "ratelimit-mail", Text: "Message rate limit reached"}}}
	for _, tc := range []struct {
		name       string
		rules      []RuleConfig
		found      filters.Result
		wantAction policies.Action
		wantText   string
	}{
		{"the demand decides", nil, limited, policies.ActionTempfail, "Message rate limit reached"},
		{"a demand without text", nil, filters.Result{Demands: []filters.Demand{{Action: policies.ActionTempfail, Check: "greylist"}}},
			policies.ActionTempfail, ""},
		{"a rule rejects", []RuleConfig{{Name: "ALWAYS", Stage: "mail", Expr: "true", Action: "reject"}}, limited,
			policies.ActionReject, ""},
		{"a rule defers with its own reply", []RuleConfig{{Name: "ALWAYS", Stage: "mail", Expr: "true", Action: "tempfail", Reply: "450 4.7.1"}},
			limited, policies.ActionTempfail, ""},
		{"a rule defers without a reply", []RuleConfig{{Name: "ALWAYS", Stage: "mail", Expr: "true", Action: "tempfail"}},
			limited, policies.ActionTempfail, "Message rate limit reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPipeline(Config{Rules: tc.rules}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			v := p.Decide(filters.StageMail, &filters.Input{}, Result{Result: tc.found}, policies.Builtin())
			if v.Action != tc.wantAction || v.Text != tc.wantText {
				t.Errorf("verdict %v with text %q, want %v with %q", v.Action, v.Text, tc.wantAction, tc.wantText)
			}
		})
	}
}
