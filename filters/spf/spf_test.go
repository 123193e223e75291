package spf

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver/dnstest"
	"github.com/moatmail/moat/filters/resolver/resolvertest"
)

// fixtures holds the zones of spf.test and its reverse zone.
const fixtures = "../../testdata/dns/spf"

// setup serves the fixture zones and returns a filter over a real
// resolver asking them.
func setup(t testing.TB) (*Filter, *dnstest.Server) {
	t.Helper()
	r, srv := resolvertest.Start(t, dnstest.LoadZoneDir(t, fixtures), 100*time.Millisecond)
	f, err := New(DefaultConfig(), r)
	if err != nil {
		t.Fatal(err)
	}
	return f, srv
}

// input is a transaction from ip with reverse path from after HELO helo.
func input(ip, from, helo string) *filters.Input {
	return &filters.Input{
		Conn: &filters.Connection{ID: "c1", RemoteIP: netip.MustParseAddr(ip), Helo: helo},
		Env:  &filters.Envelope{From: from},
	}
}

func TestCheck(t *testing.T) {
	f, srv := setup(t)
	srv.ServFail("broken.spf.test")
	srv.ServFail("brokenhost.spf.test")
	srv.Hang("hang.spf.test")
	const helo = "mail.example.net"
	tests := []struct {
		name   string
		ip     string
		from   string
		helo   string            // default helo
		want   filters.AuthValue // the SPF result
		domain string            // the spf.domain fact, "" for the sender's domain
		reason string            // a part of the reason
	}{
		// RFC 7208 §5.6 ip4, ip6
		{"ip4 exact", "192.0.2.10", "a@ip4.spf.test", "", filters.AuthPass, "", "192.0.2.10 is permitted to send for ip4.spf.test"},
		{"ip4 prefix", "198.51.100.77", "a@ip4.spf.test", "", filters.AuthPass, "", ""},
		{"ip4 no match", "192.0.2.11", "a@ip4.spf.test", "", filters.AuthFail, "", "not permitted"},
		{"ip4 mapped client", "::ffff:192.0.2.10", "a@ip4.spf.test", "", filters.AuthPass, "", ""},
		{"ip4 terms do not match IPv6", "2001:db8::10", "a@ip4.spf.test", "", filters.AuthFail, "", ""},
		{"ip6 exact", "2001:db8::10", "a@ip6.spf.test", "", filters.AuthPass, "", ""},
		{"ip6 prefix", "2001:db8:1:2::3", "a@ip6.spf.test", "", filters.AuthPass, "", ""},
		{"ip6 no match", "2001:db8:2::1", "a@ip6.spf.test", "", filters.AuthFail, "", ""},
		// §4.6.2 qualifiers
		{"~all", "192.0.2.11", "a@softfail.spf.test", "", filters.AuthSoftFail, "", "probably not"},
		{"~all, listed", "192.0.2.10", "a@softfail.spf.test", "", filters.AuthPass, "", ""},
		{"?all", "192.0.2.11", "a@neutral.spf.test", "", filters.AuthNeutral, "", "no assertion"},
		{"+all", "203.0.113.9", "a@passall.spf.test", "", filters.AuthPass, "", ""},
		{"§4.7 no term matches", "192.0.2.11", "a@empty.spf.test", "", filters.AuthNeutral, "", ""},
		{"§12 upper case", "192.0.2.10", "a@upper.spf.test", "", filters.AuthPass, "", ""},
		{"domain in upper case", "192.0.2.10", "a@IP4.SPF.Test", "", filters.AuthPass, "ip4.spf.test", ""},
		// §4.5 none, multiple records
		{"not an SPF TXT", "192.0.2.10", "a@nospf.spf.test", "", filters.AuthNone, "", "no SPF record"},
		{"NXDOMAIN", "192.0.2.10", "a@missing.spf.test", "", filters.AuthNone, "", ""},
		{"two records", "192.0.2.10", "a@two.spf.test", "", filters.AuthPermError, "", "more than one SPF record"},
		// §5.3 a, §5.4 mx
		{"a", "192.0.2.20", "a@a.spf.test", "", filters.AuthPass, "", ""},
		{"a, IPv6", "2001:db8::20", "a@a.spf.test", "", filters.AuthPass, "", ""},
		{"a no match", "192.0.2.21", "a@a.spf.test", "", filters.AuthFail, "", ""},
		{"a with prefix", "192.0.2.40", "a@acidr.spf.test", "", filters.AuthPass, "", ""},
		{"a with prefix, outside", "192.0.2.48", "a@acidr.spf.test", "", filters.AuthFail, "", ""},
		{"mx", "192.0.2.30", "a@mx.spf.test", "", filters.AuthPass, "", ""},
		{"mx, IPv6", "2001:db8::30", "a@mx.spf.test", "", filters.AuthPass, "", ""},
		{"mx no match", "192.0.2.31", "a@mx.spf.test", "", filters.AuthFail, "", ""},
		{"null MX matches nothing", "192.0.2.31", "a@nullmx.spf.test", "", filters.AuthSoftFail, "", ""},
		{"§4.6.4 11 MX hosts", "192.0.2.31", "a@mxmany.spf.test", "", filters.AuthPermError, "", "more than 10 hosts"},
		// §5.2 include, §6.1 redirect
		{"include pass", "192.0.2.10", "a@include.spf.test", "", filters.AuthPass, "", ""},
		{"include no match", "192.0.2.11", "a@include.spf.test", "", filters.AuthFail, "", ""},
		{"redirect", "192.0.2.10", "a@redirect.spf.test", "", filters.AuthPass, "", ""},
		{"redirect fail", "192.0.2.11", "a@redirect.spf.test", "", filters.AuthFail, "", ""},
		{"include of none", "192.0.2.10", "a@incnone.spf.test", "", filters.AuthPermError, "", "without SPF record"},
		{"redirect to none", "192.0.2.10", "a@rednone.spf.test", "", filters.AuthPermError, "", ""},
		{"include loop", "192.0.2.10", "a@loop1.spf.test", "", filters.AuthPermError, "", "more than 10 terms"},
		{"redirect loop", "192.0.2.10", "a@redloop.spf.test", "", filters.AuthPermError, "", "more than 10 terms"},
		// §4.6.4 limits
		{"10 lookups", "192.0.2.10", "a@ten.spf.test", "", filters.AuthPass, "", ""},
		{"11 lookups", "192.0.2.10", "a@eleven.spf.test", "", filters.AuthPermError, "", "more than 10 terms"},
		{"2 void lookups", "192.0.2.10", "a@void2.spf.test", "", filters.AuthFail, "", ""},
		{"3 void lookups", "192.0.2.10", "a@void3.spf.test", "", filters.AuthPermError, "", "more than 2 lookups found nothing"},
		// §5.7 exists and §7 macros
		{"exists %{i}", "192.0.2.40", "a@exists.spf.test", "", filters.AuthPass, "", ""},
		{"exists %{i} no match", "192.0.2.41", "a@exists.spf.test", "", filters.AuthFail, "", ""},
		{"%{ir}.%{v}", "192.0.2.41", "a@macroir.spf.test", "", filters.AuthPass, "", ""},
		{"%{l}.%{d}", "192.0.2.1", "alice@macrol.spf.test", "", filters.AuthPass, "", ""},
		{"%{l}.%{d} other user", "192.0.2.1", "bob@macrol.spf.test", "", filters.AuthFail, "", ""},
		{"%{h}", "192.0.2.1", "a@macroh.spf.test", "", filters.AuthPass, "", ""},
		{"%{h} other HELO", "192.0.2.1", "a@macroh.spf.test", "other.example.net", filters.AuthFail, "", ""},
		{"bad macro", "192.0.2.1", "a@badmacro.spf.test", "", filters.AuthPermError, "", "syntax error"},
		{"unknown mechanism", "192.0.2.1", "a@badmech.spf.test", "", filters.AuthPermError, "", "syntax error"},
		{"bad ip4", "192.0.2.1", "a@badip.spf.test", "", filters.AuthPermError, "", "syntax error"},
		// §5.5 ptr
		{"ptr confirmed", "203.0.113.50", "a@ptr.spf.test", "", filters.AuthPass, "", ""},
		{"ptr not confirmed", "203.0.113.51", "a@ptr.spf.test", "", filters.AuthFail, "", ""},
		{"no ptr", "203.0.113.52", "a@ptr.spf.test", "", filters.AuthFail, "", ""},
		// §2.4 null sender: postmaster@HELO
		{"null sender, HELO passes", "192.0.2.60", "", "helo.spf.test", filters.AuthPass, "helo.spf.test", ""},
		{"null sender, HELO fails", "192.0.2.61", "", "helo.spf.test", filters.AuthFail, "helo.spf.test", ""},
		{"null sender, %{l} is postmaster", "192.0.2.1", "", "nullmacro.spf.test", filters.AuthPass, "nullmacro.spf.test", ""},
		{"null sender, address literal HELO", "192.0.2.1", "", "[192.0.2.1]", filters.AuthNone, "-", "no valid domain"},
		{"null sender, single-label HELO", "192.0.2.1", "", "localhost", filters.AuthNone, "-", ""},
		{"null sender, no HELO", "192.0.2.1", "", "-", filters.AuthNone, "-", ""},
		{"no local-part", "192.0.2.1", "@nullmacro.spf.test", "", filters.AuthPass, "", ""},
		{"sender without domain", "192.0.2.1", "alice", "", filters.AuthNone, "-", ""},
		// temporary faults: temperror, never a permanent result
		{"SERVFAIL", "192.0.2.10", "a@broken.spf.test", "", filters.AuthTempError, "", "failed temporarily"},
		{"timeout", "192.0.2.10", "a@hang.spf.test", "", filters.AuthTempError, "", "failed temporarily"},
		{"SERVFAIL in include", "192.0.2.10", "a@incbroken.spf.test", "", filters.AuthTempError, "", ""},
		{"SERVFAIL of an a term", "192.0.2.10", "a@abroken.spf.test", "", filters.AuthTempError, "", ""},
	}
	wantSym := map[filters.AuthValue]string{
		filters.AuthPass: SymPass, filters.AuthFail: SymFail, filters.AuthSoftFail: SymSoftFail,
		filters.AuthNeutral: SymNeutral, filters.AuthNone: SymNone,
		filters.AuthTempError: SymTempError, filters.AuthPermError: SymPermError,
	}
	wantScore := map[string]float64{
		SymPass: DefaultPassScore, SymFail: DefaultFailScore, SymSoftFail: DefaultSoftFailScore,
		SymNeutral: DefaultNeutralScore, SymNone: DefaultNoneScore,
		SymTempError: DefaultTempErrorScore, SymPermError: DefaultPermErrorScore,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := helo
			switch tt.helo {
			case "":
			case "-":
				h = ""
			default:
				h = tt.helo
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			res, err := f.Check(ctx, input(tt.ip, tt.from, h))
			if err != nil {
				t.Fatalf("error %v; a result is wanted", err)
			}
			sym := wantSym[tt.want]
			if len(res.Symbols) != 1 || res.Symbols[0].Name != sym || res.Symbols[0].Score != wantScore[sym] {
				t.Fatalf("symbols %+v, want %s scored %v", res.Symbols, sym, wantScore[sym])
			}
			if !strings.Contains(res.Symbols[0].Reason, tt.reason) {
				t.Errorf("reason %q, want it to say %q", res.Symbols[0].Reason, tt.reason)
			}
			if len(res.Auth) != 1 || res.Auth[0].Method != "spf" || res.Auth[0].Value != tt.want {
				t.Fatalf("auth results %+v, want spf=%s", res.Auth, tt.want)
			}
			domain := tt.domain
			switch {
			case domain == "-":
				domain = ""
			case domain == "":
				domain = tt.from[strings.LastIndexByte(tt.from, '@')+1:]
			}
			if got := res.Fact(FactDomain); got != domain {
				t.Errorf("spf.domain %q, want %q", got, domain)
			}
			mailfrom := tt.from
			if tt.from == "" {
				mailfrom = "postmaster@" + h
			} else if strings.HasPrefix(tt.from, "@") {
				mailfrom = "postmaster" + tt.from
			} else if domain != "" {
				mailfrom = tt.from[:strings.LastIndexByte(tt.from, '@')+1] + domain
			}
			if got := res.Auth[0].Prop("smtp", "mailfrom"); got != mailfrom {
				t.Errorf("smtp.mailfrom %q, want %q", got, mailfrom)
			}
		})
	}
}

// TestLookupCounts checks, on the DNS server's side, that the limits of
// RFC 7208 §4.6.4 stop the evaluation: the 11th include is never asked.
func TestLookupCounts(t *testing.T) {
	f, srv := setup(t)
	if _, err := f.Check(context.Background(), input("192.0.2.10", "a@eleven.spf.test", "h.example.net")); err != nil {
		t.Fatal(err)
	}
	if n := srv.QueriesFor("l10.spf.test", dns.TypeTXT); n != 1 {
		t.Errorf("l10 asked %d times, want 1", n)
	}
	if n := srv.QueriesFor("l11.spf.test", dns.TypeTXT); n != 0 {
		t.Errorf("l11 asked %d times, want 0: the lookup limit must stop before it", n)
	}
	if _, err := f.Check(context.Background(), input("192.0.2.10", "a@void3.spf.test", "h.example.net")); err != nil {
		t.Fatal(err)
	}
	if n := srv.QueriesFor("nx3.spf.test", dns.TypeA); n != 1 {
		t.Errorf("nx3 asked %d times, want 1 (the third void lookup is made, then refused)", n)
	}
}

// TestDeadline checks that the filter's context bounds the evaluation
// even when the resolver's own timeout is longer.
func TestDeadline(t *testing.T) {
	r, srv := resolvertest.Start(t, dnstest.LoadZoneDir(t, fixtures), 5*time.Second)
	srv.Hang("hang.spf.test")
	f, err := New(DefaultConfig(), r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := f.Check(ctx, input("192.0.2.10", "a@hang.spf.test", "h.example.net"))
	if err != nil || !res.HasSymbol(SymTempError) {
		t.Fatalf("got %+v, %v; want %s", res, err, SymTempError)
	}
	// Generous: the point is that it is not the resolver's 5 s.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v after a 50ms deadline", d)
	}
}

func TestSkipAuthenticated(t *testing.T) {
	f, srv := setup(t)
	in := input("192.0.2.11", "a@ip4.spf.test", "h.example.net")
	in.Conn.AuthUser = "alice"
	res, err := f.Check(context.Background(), in)
	if err != nil || !res.IsZero() {
		t.Errorf("got %+v, %v; want nothing for an authenticated client", res, err)
	}
	if n := srv.Queries(); n != 0 {
		t.Errorf("%d DNS queries for an authenticated client, want 0", n)
	}
}

// TestForeignErrors checks that an error the library does not know (not
// a bare *net.DNSError) is a temperror, never a permerror.
func TestForeignErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want filters.AuthValue
	}{
		{"plain error", errors.New("resolver exploded"), filters.AuthTempError},
		{"context deadline", context.DeadlineExceeded, filters.AuthTempError},
		{"wrapped not-found", wrap{&net.DNSError{IsNotFound: true}}, filters.AuthNone},
		{"wrapped temporary", wrap{&net.DNSError{IsTemporary: true}}, filters.AuthTempError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(DefaultConfig(), resolvertest.Failing{Err: tt.err})
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.Check(context.Background(), input("192.0.2.1", "a@example.net", "h.example.net"))
			if err != nil || len(res.Auth) != 1 || res.Auth[0].Value != tt.want {
				t.Errorf("got %+v, %v; want spf=%s", res, err, tt.want)
			}
		})
	}
}

// wrap hides an error behind a type the SPF library does not assert.
type wrap struct{ err error }

func (w wrap) Error() string { return "wrapped: " + w.err.Error() }
func (w wrap) Unwrap() error { return w.err }

func TestIdentity(t *testing.T) {
	tests := []struct {
		from, helo            string
		domain, sender, mfrom string
	}{
		{"a@example.net", "h.test", "example.net", "a@example.net", "a@example.net"},
		{"a@Example.NET.", "h.test", "example.net", "a@example.net", "a@example.net"},
		{"a@bücher.example", "h.test", "xn--bcher-kva.example", "a@xn--bcher-kva.example", "a@xn--bcher-kva.example"},
		{"\"a@b\"@example.net", "h.test", "example.net", "\"a@b\"@example.net", "\"a@b\"@example.net"},
		{"", "mail.example.net", "mail.example.net", "postmaster@mail.example.net", "postmaster@mail.example.net"},
		{"", "[192.0.2.1]", "", "", "postmaster@[192.0.2.1]"},
		{"a@example..net", "h.test", "", "", "a@example..net"},
		{"a@" + strings.Repeat("x", 64) + ".net", "h.test", "", "", "a@" + strings.Repeat("x", 64) + ".net"},
		{"a@net", "h.test", "", "", "a@net"},
	}
	for _, tt := range tests {
		id := identityOf(tt.from, tt.helo)
		if id.domain != tt.domain || id.sender != tt.sender || id.mailfrom != tt.mfrom {
			t.Errorf("identityOf(%q, %q) = %+v, want domain %q sender %q mailfrom %q",
				tt.from, tt.helo, id, tt.domain, tt.sender, tt.mfrom)
		}
	}
}

func TestConfigAndContract(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"negative temperror", func(c *Config) { c.TempErrorScore = -1 }, ""},
		{"positive temperror", func(c *Config) { c.TempErrorScore = 0.1 }, "temperror_score"},
		{"NaN", func(c *Config) { c.FailScore = math.NaN() }, "fail_score"},
		{"Inf", func(c *Config) { c.SoftFailScore = math.Inf(1) }, "softfail_score"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			_, err := New(cfg, resolvertest.Failing{})
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := New(DefaultConfig(), nil); err == nil {
		t.Error("nil resolver accepted")
	}
	f, err := New(DefaultConfig(), resolvertest.Failing{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "spf" || f.Stage() != filters.StageMail || len(f.Symbols()) != 7 {
		t.Errorf("Name %q, Stage %v, Symbols %v", f.Name(), f.Stage(), f.Symbols())
	}
	for _, in := range []*filters.Input{nil, {}, {Conn: &filters.Connection{}}, {Conn: &filters.Connection{RemoteIP: netip.MustParseAddr("192.0.2.1")}}} {
		if _, err := f.Check(context.Background(), in); err == nil {
			t.Errorf("no error for input %+v", in)
		}
	}
	// A configured score reaches the symbol.
	cfg := DefaultConfig()
	cfg.NoneScore = 0.25
	f, err = New(cfg, resolvertest.Failing{Err: &net.DNSError{IsNotFound: true}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Check(context.Background(), input("192.0.2.1", "a@example.net", "h.example.net"))
	if err != nil || len(res.Symbols) != 1 || res.Symbols[0].Name != SymNone || res.Symbols[0].Score != 0.25 {
		t.Errorf("got %+v, %v; want %s scored 0.25", res, err, SymNone)
	}
}
