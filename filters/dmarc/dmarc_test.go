package dmarc

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/resolver/dnstest"
	"github.com/moatmail/moat/filters/resolver/resolvertest"
	"github.com/moatmail/moat/policies"
)

// fixtures holds the zone of the policy records.
const fixtures = "../../testdata/dns/dmarc"

// setup serves the fixture zone and returns a filter over a real
// resolver asking it.
func setup(t testing.TB) (*Filter, *dnstest.Server) {
	t.Helper()
	r, srv := resolvertest.Start(t, dnstest.LoadZoneDir(t, fixtures), 100*time.Millisecond)
	f, err := New(DefaultConfig(), r)
	if err != nil {
		t.Fatal(err)
	}
	return f, srv
}

// message returns a message with the given header fields.
func message(fields ...string) *filters.Message {
	return filters.ParseMessage([]byte(strings.Join(fields, "\r\n") + "\r\nSubject: hi\r\nMessage-ID: <1@x.test>\r\n\r\nbody\r\n"))
}

// spf is the result filters/spf gives for the reverse path mailfrom.
func spf(v filters.AuthValue, mailfrom string) filters.AuthResult {
	return filters.AuthResult{Method: "spf", Value: v, Props: []filters.AuthProp{{Type: "smtp", Name: "mailfrom", Value: mailfrom}}}
}

// dkim is a result filters/dkim gives for a signature of domain d.
func dkim(v filters.AuthValue, d string) filters.AuthResult {
	return filters.AuthResult{Method: "dkim", Value: v, Props: []filters.AuthProp{{Type: "header", Name: "d", Value: d}, {Type: "header", Name: "s", Value: "sel"}}}
}

const (
	pass = filters.AuthPass
	fail = filters.AuthFail
	temp = filters.AuthTempError
)

func TestCheck(t *testing.T) {
	f, srv := setup(t)
	srv.ServFail("_dmarc.servfail.test")
	srv.Hang("_dmarc.hang.test")
	srv.ServFail("_dmarc.sub.fallback.test")
	tests := []struct {
		name   string
		from   string
		auth   []filters.AuthResult
		syms   []string
		policy string // dmarc.policy fact
		reason string
	}{
		// RFC 7489 §3.1.2 SPF alignment
		{"SPF relaxed", "a@reject.test", []filters.AuthResult{spf(pass, "b@bounce.reject.test")}, []string{SymPass}, "", "SPF passed"},
		{"SPF same domain", "a@reject.test", []filters.AuthResult{spf(pass, "b@reject.test")}, []string{SymPass}, "", ""},
		{"SPF other domain", "a@reject.test", []filters.AuthResult{spf(pass, "b@other.example")}, []string{SymFail, SymPolicyReject}, "reject", "neither SPF nor DKIM"},
		{"SPF look-alike domain", "a@reject.test", []filters.AuthResult{spf(pass, "b@notreject.test")}, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"SPF aligned but failed", "a@reject.test", []filters.AuthResult{spf(fail, "b@reject.test")}, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"SPF strict, subdomain", "a@strict.test", []filters.AuthResult{spf(pass, "b@bounce.strict.test")}, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"SPF strict, same", "a@strict.test", []filters.AuthResult{spf(pass, "b@strict.test")}, []string{SymPass}, "", ""},
		{"SPF of the null sender (HELO)", "a@reject.test", []filters.AuthResult{spf(pass, "postmaster@mx1.reject.test")}, []string{SymPass}, "", ""},
		// §3.1.1 DKIM alignment
		{"DKIM relaxed", "a@reject.test", []filters.AuthResult{dkim(pass, "mail.reject.test")}, []string{SymPass}, "", "DKIM passed"},
		{"DKIM strict, subdomain", "a@strict.test", []filters.AuthResult{dkim(pass, "mail.strict.test")}, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"DKIM strict, same, other case", "a@strict.test", []filters.AuthResult{dkim(pass, "Strict.TEST")}, []string{SymPass}, "", ""},
		{"DKIM aligned but failed", "a@reject.test", []filters.AuthResult{dkim(fail, "reject.test"), dkim(pass, "other.example")}, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"DKIM one of two aligned", "a@reject.test", []filters.AuthResult{dkim(pass, "esp.example"), dkim(pass, "reject.test")}, []string{SymPass}, "", ""},
		{"SPF fails, DKIM aligned", "a@reject.test", []filters.AuthResult{spf(fail, "b@reject.test"), dkim(pass, "reject.test")}, []string{SymPass}, "", ""},
		{"nothing", "a@reject.test", nil, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"From domain in upper case", "a@REJECT.Test", []filters.AuthResult{dkim(pass, "reject.test")}, []string{SymPass}, "", ""},
		{"internationalised From", "a@bücher.test", []filters.AuthResult{dkim(pass, "xn--bcher-kva.test")}, []string{SymPass}, "", ""},
		{"internationalised From, failing", "a@bücher.test", nil, []string{SymFail, SymPolicyReject}, "reject", ""},
		// §6.6.3 policy discovery, p= and sp=
		{"quarantine", "a@quarantine.test", nil, []string{SymFail, SymPolicyQuarantine}, "quarantine", "dis=quarantine"},
		{"p=none", "a@none.test", nil, []string{SymFail}, "none", "p=none"},
		{"subdomain, org p=reject", "a@mail.reject.test", nil, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"subdomain, org sp=quarantine", "a@sub.sp.test", nil, []string{SymFail, SymPolicyQuarantine}, "quarantine", "sp=quarantine"},
		{"deep subdomain, sp", "a@a.b.sp.test", nil, []string{SymFail, SymPolicyQuarantine}, "quarantine", ""},
		{"org domain itself, p not sp", "a@sp.test", nil, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"subdomain with its own record", "a@own.sp.test", nil, []string{SymFail}, "none", ""},
		{"subdomain, org sp=none", "a@x.sp2.test", nil, []string{SymFail}, "none", ""},
		{"subdomain passes by org DKIM", "a@x.sp.test", []filters.AuthResult{dkim(pass, "sp.test")}, []string{SymPass}, "", ""},
		{"keywords in upper case", "a@upper.test", []filters.AuthResult{dkim(pass, "mail.upper.test")}, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"record beside other TXT", "a@mixed.test", nil, []string{SymFail, SymPolicyQuarantine}, "quarantine", ""},
		// §6.6.4 pct
		{"pct=0, reject", "a@pct0.test", nil, []string{SymFail, SymPolicyQuarantine}, "quarantine", "pct=0 dis=quarantine"},
		{"pct=0, quarantine", "a@pct0q.test", nil, []string{SymFail}, "none", ""},
		// no record
		{"no record", "a@norecord.test", nil, []string{SymNone}, "", "no DMARC record"},
		{"no record, subdomain", "a@mail.norecord.test", nil, []string{SymNone}, "", ""},
		{"only other TXT", "a@other.test", nil, []string{SymNone}, "", ""},
		{"v= not first", "a@notfirst.test", nil, []string{SymNone}, "", ""},
		{"v=dmarc1 in lower case", "a@lower.test", nil, []string{SymNone}, "", ""},
		{"no record, DKIM pass", "a@norecord.test", []filters.AuthResult{dkim(pass, "norecord.test")}, []string{SymNone}, "", ""},
		// broken records
		{"bad p=", "a@bad.test", nil, []string{SymPermError}, "", "p=\"block\""},
		{"bad pct=", "a@badpct.test", nil, []string{SymPermError}, "", "pct="},
		{"bad p= with rua", "a@badrua.test", nil, []string{SymFail}, "none", ""},
		{"two records", "a@two.test", nil, []string{SymPermError}, "", "several"},
		// temporary faults: never a failure
		{"SERVFAIL", "a@servfail.test", nil, []string{SymTempError}, "", "failed temporarily"},
		{"timeout", "a@hang.test", nil, []string{SymTempError}, "", ""},
		{"SERVFAIL, no fallback to org", "a@sub.fallback.test", nil, []string{SymTempError}, "", ""},
		{"SPF temperror, aligned", "a@reject.test", []filters.AuthResult{spf(temp, "b@reject.test")}, []string{SymTempError}, "", "SPF could not be checked"},
		{"SPF temperror, not aligned", "a@reject.test", []filters.AuthResult{spf(temp, "b@other.example")}, []string{SymFail, SymPolicyReject}, "reject", ""},
		{"DKIM temperror, aligned", "a@reject.test", []filters.AuthResult{dkim(temp, "reject.test")}, []string{SymTempError}, "", "DKIM could not"},
		{"DKIM temperror, SPF aligned", "a@reject.test", []filters.AuthResult{dkim(temp, "reject.test"), spf(pass, "b@reject.test")}, []string{SymPass}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := check(t, f, message("From: Alice <"+tt.from+">"), &filters.Result{Auth: tt.auth})
			want := "" // the dmarc result value
			switch tt.syms[0] {
			case SymPass:
				want = "pass"
			case SymFail:
				want = "fail"
			case SymNone:
				want = "none"
			case SymTempError:
				want = "temperror"
			case SymPermError:
				want = "permerror"
			}
			assertResult(t, res, tt.syms, want, tt.policy, tt.reason)
			from, _ := resolver.ASCIIDomain(tt.from[strings.IndexByte(tt.from, '@')+1:])
			if got := res.Fact(FactFromDomain); got != from {
				t.Errorf("from.domain %q, want %q", got, from)
			}
			if len(res.Auth) != 1 || res.Auth[0].Prop("header", "from") != from {
				t.Errorf("auth results %+v, want one with header.from=%s", res.Auth, from)
			}
			// Enforce and DeferTempError are on by default: the
			// disposition after pct is demanded, and a reject domain
			// whose aligned check could not be made is deferred.
			wantDemand := map[string]policies.Action{"reject": policies.ActionReject, "quarantine": policies.ActionQuarantine}[tt.policy]
			if tt.syms[0] == SymTempError && strings.Contains(tt.reason, "could not") {
				wantDemand = policies.ActionTempfail
			}
			switch {
			case wantDemand == policies.ActionAccept && len(res.Demands) != 0:
				t.Errorf("demands %+v, want none", res.Demands)
			case wantDemand != policies.ActionAccept && (len(res.Demands) != 1 || res.Demands[0].Action != wantDemand):
				t.Errorf("demands %+v, want %v", res.Demands, wantDemand)
			}
		})
	}
}

// TestScoreOnly: with enforce and defer_temperror off, DMARC scores and
// demands nothing.
func TestScoreOnly(t *testing.T) {
	r, _ := resolvertest.Start(t, dnstest.LoadZoneDir(t, fixtures), 100*time.Millisecond)
	cfg := DefaultConfig()
	cfg.Enforce, cfg.DeferTempError = false, false
	f, err := New(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, prior := range []filters.Result{{}, {Auth: []filters.AuthResult{spf(temp, "b@reject.test")}}} {
		res := check(t, f, message("From: a@reject.test"), &prior)
		if len(res.Demands) != 0 || len(res.Symbols) == 0 {
			t.Errorf("prior %+v: symbols %+v demands %+v, want symbols and no demand", prior.Auth, res.Symbols, res.Demands)
		}
	}
}

// check runs the filter on msg with prior.
func check(t testing.TB, f *Filter, msg *filters.Message, prior *filters.Result) filters.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := f.Check(ctx, &filters.Input{Msg: msg, Prior: prior})
	if err != nil {
		t.Fatalf("error %v; a result is wanted", err)
	}
	return res
}

// assertResult checks the symbols, the dmarc result, dmarc.result and
// dmarc.policy facts and the reason of res.
func assertResult(t *testing.T, res filters.Result, syms []string, value, policy, reason string) {
	t.Helper()
	var names []string
	for _, s := range res.Symbols {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, syms) {
		t.Fatalf("symbols %v, want %v (%+v)", names, syms, res)
	}
	if len(res.Auth) != 1 || res.Auth[0].Method != "dmarc" || string(res.Auth[0].Value) != value {
		t.Errorf("auth results %+v, want dmarc=%s", res.Auth, value)
	}
	if got := res.Fact(FactResult); got != value {
		t.Errorf("dmarc.result %q, want %q", got, value)
	}
	if got := res.FactValues(FactPolicy); !slices.Equal(got, nonEmpty(policy)) {
		t.Errorf("dmarc.policy %v, want %q", got, policy)
	}
	if !strings.Contains(res.Symbols[0].Reason, reason) {
		t.Errorf("reason %q, want it to say %q", res.Symbols[0].Reason, reason)
	}
}

// nonEmpty returns []string{s}, or nil for "".
func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func TestScores(t *testing.T) {
	f, _ := setup(t)
	want := map[string]float64{
		SymPass: DefaultPassScore, SymFail: DefaultFailScore, SymPolicyReject: DefaultRejectScore,
		SymPolicyQuarantine: DefaultQuarantineScore, SymNone: DefaultNoneScore, SymPermError: DefaultPermErrorScore,
		SymBadFrom: DefaultBadFromScore,
	}
	for _, from := range []string{"From: a@reject.test", "From: a@quarantine.test", "From: a@norecord.test", "From: a@bad.test", "From: a, b"} {
		for _, s := range check(t, f, message(from), nil).Symbols {
			if s.Score != want[s.Name] {
				t.Errorf("%s scored %v, want %v", s.Name, s.Score, want[s.Name])
			}
		}
	}
	if s := check(t, f, message("From: a@reject.test"), &filters.Result{Auth: []filters.AuthResult{dkim(pass, "reject.test")}}).Symbols; s[0].Score != DefaultPassScore {
		t.Errorf("%+v, want the pass score", s)
	}
}

// TestFilterFailures checks that a failed spf or dkim filter (the
// pipeline's <NAME>_TEMPFAIL symbol, no results) makes DMARC temperror.
func TestFilterFailures(t *testing.T) {
	f, _ := setup(t)
	tests := []struct {
		name  string
		prior filters.Result
		want  string
	}{
		{"spf filter failed", filters.Result{Symbols: []filters.Symbol{{Name: "SPF_TEMPFAIL"}}}, SymTempError},
		{"dkim filter failed", filters.Result{Symbols: []filters.Symbol{{Name: "DKIM_TEMPFAIL"}}}, SymTempError},
		{"dkim key lookup failed, not aligned", filters.Result{Symbols: []filters.Symbol{{Name: "DKIM_TEMPFAIL"}},
			Auth: []filters.AuthResult{dkim(temp, "other.example")}}, SymFail},
		{"dkim filter failed, SPF aligned", filters.Result{Symbols: []filters.Symbol{{Name: "DKIM_TEMPFAIL"}},
			Auth: []filters.AuthResult{spf(pass, "b@reject.test")}}, SymPass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := check(t, f, message("From: a@reject.test"), &tt.prior)
			if res.Symbols[0].Name != tt.want || res.HasSymbol(SymPolicyReject) != (tt.want == SymFail) {
				t.Errorf("symbols %+v, want %s", res.Symbols, tt.want)
			}
		})
	}
}

func TestBadFrom(t *testing.T) {
	f, srv := setup(t)
	tests := []struct {
		name   string
		fields []string
		reason string
	}{
		{"missing", []string{"To: b@reject.test"}, "no From field"},
		{"doubled", []string{"From: a@reject.test", "From: a@reject.test"}, "2 From fields"},
		{"two addresses", []string{"From: a@reject.test, b@other.example"}, "2 addresses"},
		{"empty group", []string{"From: undisclosed:;"}, ""},
		{"unparsable", []string{"From: <<<"}, "cannot be parsed"},
		{"no domain", []string{"From: alice"}, ""},
		{"single label", []string{"From: a@localhost"}, "no valid domain"},
		{"address literal", []string{"From: a@[192.0.2.1]"}, ""},
		{"empty", []string{"From:"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := check(t, f, message(tt.fields...), &filters.Result{Auth: []filters.AuthResult{dkim(pass, "reject.test")}})
			assertResult(t, res, []string{SymBadFrom}, "permerror", "", tt.reason)
			if res.Fact(FactFromDomain) != "" {
				t.Errorf("from.domain %q for a bad From", res.Fact(FactFromDomain))
			}
		})
	}
	if n := srv.Queries(); n != 0 {
		t.Errorf("%d DNS queries, want none: DMARC is not evaluated", n)
	}
	// Display names in any form do not matter.
	for _, from := range []string{
		`From: =?x-unknown?Q?Jo=E9?= <a@reject.test>`,
		`From: "Doe, Jane" <a@reject.test>`,
		"From: Jane\r\n Doe <a@reject.test>",
		`From: a@reject.test (comment)`,
	} {
		res := check(t, f, message(from), nil)
		if res.Fact(FactFromDomain) != "reject.test" || !res.HasSymbol(SymFail) {
			t.Errorf("%q: got %+v, want a DMARC failure for reject.test", from, res)
		}
	}
}

// TestSampling checks pct=50: about half the messages are in the sample,
// and a message is judged the same way each time.
func TestSampling(t *testing.T) {
	f, _ := setup(t)
	const n = 1000
	in := 0
	for i := range n {
		msg := filters.ParseMessage([]byte(fmt.Sprintf("From: a@pct50.test\r\nMessage-ID: <%d@pct50.test>\r\n\r\nx\r\n", i)))
		res := check(t, f, msg, nil)
		rejected := res.HasSymbol(SymPolicyReject)
		if !rejected && !res.HasSymbol(SymPolicyQuarantine) {
			t.Fatalf("%+v: out of the sample, p=reject must still quarantine", res)
		}
		if again := check(t, f, msg, nil); again.HasSymbol(SymPolicyReject) != rejected {
			t.Fatalf("message %d judged differently the second time", i)
		}
		if rejected {
			in++
		}
	}
	// 1000 fair draws: 6 standard deviations either side of 500.
	if in < 400 || in > 600 {
		t.Errorf("%d of %d messages in a 50%% sample", in, n)
	}
	// Without Message-ID, the header is hashed.
	msg := filters.ParseMessage([]byte("From: a@pct50.test\r\nSubject: s\r\n\r\nx\r\n"))
	first, second := check(t, f, msg, nil), check(t, f, msg, nil)
	if first.HasSymbol(SymPolicyReject) != second.HasSymbol(SymPolicyReject) {
		t.Error("a message without Message-ID judged differently the second time")
	}
}

func TestOrgDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"a.b.example.com", "example.com"},
		{"mail.example.co.uk", "example.co.uk"},
		{"co.uk", "co.uk"},
		{"x.reject.test", "reject.test"},
		{"com", "com"},
	}
	for _, tt := range tests {
		if got := orgDomain(tt.in); got != tt.want {
			t.Errorf("orgDomain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		mode     Alignment
		id, from string
		want     bool
	}{
		{AlignRelaxed, "mail.example.co.uk", "example.co.uk", true},
		{AlignRelaxed, "other.co.uk", "example.co.uk", false},
		{AlignStrict, "mail.example.co.uk", "example.co.uk", false},
		{AlignRelaxed, "", "example.com", false},
		{AlignRelaxed, "bad..name", "example.com", false},
	} {
		if got := aligned(tt.mode, tt.id, tt.from); got != tt.want {
			t.Errorf("aligned(%s, %q, %q) = %v, want %v", tt.mode, tt.id, tt.from, got, tt.want)
		}
	}
}

func TestSkipAndContract(t *testing.T) {
	f, srv := setup(t)
	in := &filters.Input{Conn: &filters.Connection{RemoteIP: netip.MustParseAddr("192.0.2.1"), AuthUser: "alice"}, Msg: message("From: a@reject.test")}
	if res, err := f.Check(context.Background(), in); err != nil || !res.IsZero() || srv.Queries() != 0 {
		t.Errorf("got %+v, %v; want nothing and no query for an authenticated client", res, err)
	}
	if f.Name() != "dmarc" || f.Stage() != filters.StageData || !slices.Equal(f.After(), []string{"dkim"}) || len(f.Symbols()) != 8 {
		t.Errorf("Name %q, Stage %v, After %v, Symbols %v", f.Name(), f.Stage(), f.After(), f.Symbols())
	}
	for _, in := range []*filters.Input{nil, {}} {
		if _, err := f.Check(context.Background(), in); err == nil {
			t.Errorf("no error for input %+v", in)
		}
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"positive temperror", func(c *Config) { c.TempErrorScore = 0.5 }, "temperror_score"},
		{"NaN", func(c *Config) { c.RejectScore = math.NaN() }, "reject_score"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.change(&cfg)
		_, err := New(cfg, resolvertest.Failing{})
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := New(DefaultConfig(), nil); err == nil {
		t.Error("nil resolver accepted")
	}
	// An error that is not a DNS answer is temporary.
	f, err := New(DefaultConfig(), resolvertest.Failing{Err: fmt.Errorf("resolver exploded")})
	if err != nil {
		t.Fatal(err)
	}
	if res := check(t, f, message("From: a@reject.test"), nil); !res.HasSymbol(SymTempError) {
		t.Errorf("got %+v, want %s", res, SymTempError)
	}
}
