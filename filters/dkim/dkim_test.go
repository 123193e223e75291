package dkim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver/dnstest"
	"github.com/moatmail/moat/filters/resolver/resolvertest"
)

// fixtures holds the zones of dkim.test, example.com (RFC 6376) and
// football.example.com (RFC 8463).
const fixtures = "../../testdata/dns/dkim"

// genZone is the zone that serves the keys made at test time.
const genZone = "gen.dkim.test."

// keySet is the signing keys of the tests and the zone publishing them.
type keySet struct {
	once sync.Once
	rsa  *rsa.PrivateKey
	ed   ed25519.PrivateKey
	zone string // genZone's text
}

// keys are made once per test binary: RSA key generation is slow.
var keys keySet

// testKeys returns the keys, making them on first use.
func testKeys(t testing.TB) *keySet {
	t.Helper()
	keys.once.Do(func() {
		var err error
		if keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if _, keys.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&keys.rsa.PublicKey)
		if err != nil {
			panic(err)
		}
		rsaP := base64.StdEncoding.EncodeToString(der)
		edP := base64.StdEncoding.EncodeToString(keys.ed.Public().(ed25519.PublicKey))
		var z strings.Builder
		z.WriteString("$TTL 300\n")
		fmt.Fprintf(&z, "rsa._domainkey IN TXT %s\n", txt("v=DKIM1; k=rsa; p="+rsaP))
		fmt.Fprintf(&z, "ed._domainkey IN TXT %s\n", txt("v=DKIM1; k=ed25519; p="+edP))
		// Records far past a UDP answer's 1232 bytes: asked again
		// over TCP, strings joined. One is a valid key with long
		// notes (n=), one is junk.
		fmt.Fprintf(&z, "huge._domainkey IN TXT %s\n", txt("v=DKIM1; k=rsa; n="+strings.Repeat("notes", 1200)+"; p="+rsaP))
		fmt.Fprintf(&z, "hugejunk._domainkey IN TXT %s\n", txt(strings.Repeat("junk", 2000)))
		keys.zone = z.String()
	})
	return &keys
}

// txt returns s as a TXT record's strings in master file format.
func txt(s string) string {
	var parts []string
	for len(s) > 250 {
		parts = append(parts, `"`+s[:250]+`"`)
		s = s[250:]
	}
	return strings.Join(append(parts, `"`+s+`"`), " ")
}

// setup serves the fixture zones and the test keys and returns a filter
// over a real resolver asking them.
func setup(t testing.TB, cfg Config) (*Filter, *dnstest.Server) {
	t.Helper()
	zones := dnstest.LoadZoneDir(t, fixtures)
	zones[genZone] = testKeys(t).zone
	r, srv := resolvertest.Start(t, zones, 100*time.Millisecond)
	f, err := New(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	return f, srv
}

// crlf turns the LF line ends of s into CRLF.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// plain is the unsigned message the tests sign.
var plain = crlf(`From: Alice <alice@gen.dkim.test>
To: Bob <bob@example.net>
Subject: Lunch
Date: Tue, 24 Nov 2026 10:00:00 +0000
Message-ID: <lunch-1@gen.dkim.test>

Hello Bob,

lunch at noon?   Alice
`)

// signedHeaders are the fields the tests sign: the RFC 6376 §5.4.1 core.
var signedHeaders = []string{"From", "To", "Subject", "Date", "Message-ID"}

// sign signs msg with go-msgauth and returns the signed message. domain
// and selector name the key record; key is the RSA or the Ed25519 test
// key. change adjusts the options.
func sign(t testing.TB, msg, domain, selector string, key crypto.Signer, change func(*msgauth.SignOptions)) string {
	t.Helper()
	o := &msgauth.SignOptions{
		Domain: domain, Selector: selector, Signer: key,
		HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
		BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
		HeaderKeys:             signedHeaders,
	}
	if change != nil {
		change(o)
	}
	var b bytes.Buffer
	if err := msgauth.Sign(&b, strings.NewReader(msg), o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// check runs the filter on raw.
func check(t testing.TB, f *Filter, raw string) filters.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := f.Check(ctx, &filters.Input{Msg: filters.ParseMessage([]byte(raw))})
	if err != nil {
		t.Fatalf("error %v; a result is wanted", err)
	}
	return res
}

// symbolNames returns the names of the symbols of r.
func symbolNames(r filters.Result) []string {
	var out []string
	for _, s := range r.Symbols {
		out = append(out, s.Name)
	}
	return out
}

// authValues returns the values of the dkim results of r.
func authValues(r filters.Result) []filters.AuthValue {
	var out []filters.AuthValue
	for _, a := range r.AuthOf("dkim") {
		out = append(out, a.Value)
	}
	return out
}

const (
	pass = filters.AuthPass
	fail = filters.AuthFail
	temp = filters.AuthTempError
	perm = filters.AuthPermError
)

// sigField replaces, in the topmost DKIM-Signature field of raw, old by
// new, to break a signature in a chosen way.
func sigField(t testing.TB, raw, old, new string) string {
	t.Helper()
	end := strings.Index(raw, "\r\nFrom:")
	if end < 0 || !strings.Contains(raw[:end], old) {
		t.Fatalf("%q not in the signature of %q", old, raw)
	}
	return strings.Replace(raw[:end], old, new, 1) + raw[end:]
}

func TestCheck(t *testing.T) {
	k := testKeys(t)
	f, srv := setup(t, DefaultConfig())
	srv.ServFail("servfail._domainkey.dkim.test")
	srv.Hang("hang._domainkey.dkim.test")

	rsaSigned := sign(t, plain, "gen.dkim.test", "rsa", k.rsa, nil)
	edSigned := sign(t, plain, "gen.dkim.test", "ed", k.ed, nil)
	ed := func(domain, selector string) string { return sign(t, plain, domain, selector, k.ed, nil) }
	lenRelaxed := readFile(t, "testdata/length-relaxed.eml")
	lenSimple := readFile(t, "testdata/length-simple.eml")

	tests := []struct {
		name   string
		raw    string
		syms   []string
		values []filters.AuthValue
		facts  []string // dkim.domain
		reason string   // a part of the first result's reason
	}{
		{"rsa-sha256 relaxed", rsaSigned, []string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},
		{"rsa-sha256 simple", sign(t, plain, "gen.dkim.test", "rsa", k.rsa, func(o *msgauth.SignOptions) {
			o.HeaderCanonicalization, o.BodyCanonicalization = msgauth.CanonicalizationSimple, msgauth.CanonicalizationSimple
		}), []string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},
		{"ed25519-sha256", edSigned, []string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},
		{"i= in a subdomain", sign(t, plain, "gen.dkim.test", "ed", k.ed, func(o *msgauth.SignOptions) { o.Identifier = "alice@sub.gen.dkim.test" }),
			[]string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},
		{"all header fields signed", sign(t, plain, "gen.dkim.test", "ed", k.ed, func(o *msgauth.SignOptions) { o.HeaderKeys = nil }),
			[]string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},
		{"relaxed survives rewrapped white space", strings.Replace(rsaSigned, "lunch at noon?   Alice", "lunch at noon? \t Alice", 1),
			[]string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},

		// altered after signing
		{"body altered", strings.Replace(rsaSigned, "noon", "one", 1), []string{SymInvalid}, []filters.AuthValue{fail}, nil, "body hash did not verify"},
		{"body altered, ed25519", strings.Replace(edSigned, "noon", "one", 1), []string{SymInvalid}, []filters.AuthValue{fail}, nil, "body hash"},
		{"body appended", rsaSigned + "P.S. unsigned\r\n", []string{SymInvalid}, []filters.AuthValue{fail}, nil, "body hash"},
		{"signed header altered", strings.Replace(rsaSigned, "Subject: Lunch", "Subject: Dinner", 1), []string{SymInvalid}, []filters.AuthValue{fail}, nil, "signature did not verify"},
		{"signed header altered, ed25519", strings.Replace(edSigned, "Subject: Lunch", "Subject: Dinner", 1), []string{SymInvalid}, []filters.AuthValue{fail}, nil, "signature did not verify"},
		{"unsigned header added", strings.Replace(rsaSigned, "Subject: Lunch", "X-Extra: yes\r\nSubject: Lunch", 1), []string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},
		{"signature altered", sigField(t, rsaSigned, "b=", "b=AAAA"), []string{SymInvalid}, []filters.AuthValue{fail}, nil, ""},

		// x=
		{"x= expired", sign(t, plain, "gen.dkim.test", "ed", k.ed, func(o *msgauth.SignOptions) { o.Expiration = time.Now().Add(-time.Hour) }),
			[]string{SymInvalid}, []filters.AuthValue{perm}, nil, "expired"},
		{"x= ahead", sign(t, plain, "gen.dkim.test", "ed", k.ed, func(o *msgauth.SignOptions) { o.Expiration = time.Now().Add(time.Hour) }),
			[]string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},

		// the key record (RFC 6376 §3.6.1, §6.1.2)
		{"key SERVFAIL", ed("dkim.test", "servfail"), []string{SymTempFail}, []filters.AuthValue{temp}, nil, "key unavailable"},
		{"key lookup timeout", ed("dkim.test", "hang"), []string{SymTempFail}, []filters.AuthValue{temp}, nil, "key unavailable"},
		{"key NXDOMAIN", ed("gen.dkim.test", "nosuch"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "no key"},
		{"key revoked", ed("dkim.test", "revoked"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "revoked"},
		{"two key records", ed("dkim.test", "two"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "multiple"},
		{"key not base64", ed("dkim.test", "badbase64"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, ""},
		{"unknown key type", ed("dkim.test", "badtype"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "unsupported key algorithm"},
		{"key for another service", ed("dkim.test", "http"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "service"},
		{"RSA key of 512 bits", sign(t, plain, "dkim.test", "short", k.rsa, nil), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "too short"},
		{"key record of another version", ed("dkim.test", "v2"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "version"},
		{"key type not the signature's", sign(t, plain, "gen.dkim.test", "ed", k.rsa, nil), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "inappropriate key algorithm"},
		{"huge key record, over TCP", sign(t, plain, "gen.dkim.test", "huge", k.rsa, nil), []string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},
		{"huge junk record", ed("gen.dkim.test", "hugejunk"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, ""},

		// malformed signature fields: permerror, never a crash
		{"sha1", sigField(t, rsaSigned, "a=rsa-sha256", "a=rsa-sha1"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "too weak"},
		{"unknown algorithm", sigField(t, rsaSigned, "a=rsa-sha256", "a=rsa-md5"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, ""},
		{"version 2", sigField(t, rsaSigned, "v=1", "v=2"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "version"},
		{"duplicate tag", sigField(t, rsaSigned, "v=1;", "v=1; v=1;"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "duplicate"},
		{"bh= not base64", sigField(t, rsaSigned, "bh=", "bh=*"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "body hash"},
		{"missing d=", sigField(t, rsaSigned, "d=gen.dkim.test;", ""), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "required tag"},
		{"i= outside d=", sigField(t, rsaSigned, "d=gen.dkim.test;", "d=gen.dkim.test; i=alice@evil.test;"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "domain mismatch"},
		{"From not signed", sigField(t, rsaSigned, "h=From:", "h="), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "From"},
		{"x= not a number", sigField(t, rsaSigned, "v=1;", "v=1; x=soon;"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "expiration"},
		{"unknown canonicalization", sigField(t, rsaSigned, "c=relaxed/relaxed", "c=nowsp/nowsp"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "canonicalization"},
		{"garbage", "DKIM-Signature: ;;;==;\r\n" + plain, []string{SymInvalid}, []filters.AuthValue{perm}, nil, "version"},
		{"empty", "DKIM-Signature:\r\n" + plain, []string{SymInvalid}, []filters.AuthValue{perm}, nil, ""},
		// the name is asked, and the test server refuses a zone it
		// does not serve (REFUSED is temporary)
		{"control bytes", "DKIM-Signature: v=1; a=rsa-sha256; d=\x1b[31m.test; s=x; h=from; bh=; b=\r\n" + plain, []string{SymTempFail}, []filters.AuthValue{temp}, nil, ""},

		// RFC 6376 Appendix A, with the key of Appendix C
		{"RFC 6376 Appendix A", rfc6376, []string{SymValid}, []filters.AuthValue{pass}, []string{"example.com"}, ""},
		// RFC 8463 Appendix A: the same message signed with Ed25519
		// and with RSA, verified with the keys of A.2
		{"RFC 8463 Appendix A", rfc8463, []string{SymValid}, []filters.AuthValue{pass, pass}, []string{"football.example.com"}, ""},

		// l=, on messages signed by dkimpy (see testdata/dns/dkim)
		{"l= relaxed", lenRelaxed, []string{SymValid}, []filters.AuthValue{pass}, []string{"fixture.dkim.test"}, ""},
		{"l= simple", lenSimple, []string{SymValid}, []filters.AuthValue{pass}, []string{"fixture.dkim.test"}, ""},
		{"l= relaxed, body appended", lenRelaxed + "Click here: http://evil.test/\r\n", []string{SymValid, SymUnsignedBody}, []filters.AuthValue{pass}, []string{"fixture.dkim.test"}, "unsigned"},
		{"l= simple, body appended", lenSimple + "Click here\r\n", []string{SymValid, SymUnsignedBody}, []filters.AuthValue{pass}, []string{"fixture.dkim.test"}, ""},
		{"l= signed part altered", strings.Replace(lenRelaxed, "hungry", "Hungry", 1), []string{SymInvalid}, []filters.AuthValue{fail}, nil, "body hash"},
		{"l= body cut short", strings.Replace(lenRelaxed, "Joe.\r\n", "", 1), []string{SymInvalid}, []filters.AuthValue{fail}, nil, "shorter than l="},
		{"l= header altered", strings.Replace(lenRelaxed, "dinner", "lunch", 1), []string{SymInvalid}, []filters.AuthValue{fail}, nil, "signature did not verify"},
		{"l= not a number", sigField(t, lenRelaxed, "l=54", "l=5x4"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "body length"},
		{"l= negative", sigField(t, lenRelaxed, "l=54", "l=-1"), []string{SymInvalid}, []filters.AuthValue{perm}, nil, "body length"},
		{"l= with a signature of the whole body", sign(t, lenRelaxed+"P.S.\r\n", "gen.dkim.test", "ed", k.ed, nil),
			[]string{SymValid}, []filters.AuthValue{pass, pass}, []string{"gen.dkim.test", "fixture.dkim.test"}, ""},

		// several signatures: the topmost first
		{"broken above valid", sign(t, edSigned, "gen.dkim.test", "nosuch", k.ed, nil), []string{SymValid}, []filters.AuthValue{perm, pass}, []string{"gen.dkim.test"}, "no key"},
		{"temporary above permanent", sign(t, ed("gen.dkim.test", "nosuch"), "dkim.test", "servfail", k.ed, nil), []string{SymTempFail}, []filters.AuthValue{temp, perm}, nil, ""},
		{"two valid of one domain", sign(t, rsaSigned, "gen.dkim.test", "ed", k.ed, nil), []string{SymValid}, []filters.AuthValue{pass, pass}, []string{"gen.dkim.test"}, ""},

		{"no signature", plain, []string{SymNone}, nil, nil, ""},
		{"header without end", strings.TrimSuffix(sign(t, crlf("From: a@gen.dkim.test\nSubject: x\n\n"), "gen.dkim.test", "ed", k.ed, nil), "\r\n"),
			[]string{SymValid}, []filters.AuthValue{pass}, []string{"gen.dkim.test"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := check(t, f, tt.raw)
			if got := symbolNames(res); !slices.Equal(got, tt.syms) {
				t.Fatalf("symbols %v, want %v (%+v)", got, tt.syms, res.Auth)
			}
			if got := authValues(res); !slices.Equal(got, tt.values) {
				t.Errorf("results %v, want %v (%+v)", got, tt.values, res.Auth)
			}
			if got := res.FactValues(FactDomain); !slices.Equal(got, tt.facts) {
				t.Errorf("dkim.domain %v, want %v", got, tt.facts)
			}
			if tt.reason != "" && (len(res.Auth) == 0 || !strings.Contains(res.Auth[0].Reason+res.Symbols[len(res.Symbols)-1].Reason, tt.reason)) {
				t.Errorf("reasons %+v, want one to say %q", res, tt.reason)
			}
			for _, a := range res.Auth {
				for _, p := range a.Props {
					if strings.ContainsFunc(p.Value, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
						t.Errorf("property %s.%s=%q holds a byte unfit for a header", p.Type, p.Name, p.Value)
					}
				}
				if strings.ContainsFunc(a.Reason, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
					t.Errorf("reason %q holds a byte unfit for a header", a.Reason)
				}
			}
		})
	}
}

// TestProps checks the properties of the results (RFC 8601 §2.7.1).
func TestProps(t *testing.T) {
	f, _ := setup(t, DefaultConfig())
	res := check(t, f, rfc6376)
	want := []filters.AuthProp{
		{Type: "header", Name: "d", Value: "example.com"},
		{Type: "header", Name: "s", Value: "brisbane"},
		{Type: "header", Name: "i", Value: "joe@football.example.com"},
		{Type: "header", Name: "a", Value: "rsa-sha256"},
	}
	if len(res.Auth) != 1 || !slices.Equal(res.Auth[0].Props, want) || res.Auth[0].Method != "dkim" {
		t.Errorf("results %+v, want one with props %+v", res.Auth, want)
	}
	res = check(t, f, rfc8463)
	if len(res.Auth) != 2 || res.Auth[0].Prop("header", "a") != "ed25519-sha256" || res.Auth[0].Prop("header", "s") != "brisbane" ||
		res.Auth[1].Prop("header", "a") != "rsa-sha256" || res.Auth[1].Prop("header", "s") != "test" {
		t.Errorf("results %+v, want ed25519-sha256 brisbane then rsa-sha256 test", res.Auth)
	}
}

func TestMaxSignatures(t *testing.T) {
	k := testKeys(t)
	cfg := DefaultConfig()
	cfg.MaxSignatures = 3
	f, srv := setup(t, cfg)
	raw := plain
	for range 5 {
		raw = sign(t, raw, "gen.dkim.test", "ed", k.ed, nil)
	}
	// Two more on top whose keys do not exist: they are among the 3
	// checked, the valid ones below only in part.
	raw = sign(t, raw, "gen.dkim.test", "nosuch", k.ed, nil)
	res := check(t, f, raw)
	if got := authValues(res); !slices.Equal(got, []filters.AuthValue{perm, pass, pass}) {
		t.Errorf("results %v, want the 3 topmost signatures: permerror, pass, pass", got)
	}
	if n := srv.Queries(); n != 2 {
		t.Errorf("%d DNS queries, want 2 (nosuch, ed)", n)
	}
}

func TestSkip(t *testing.T) {
	f, srv := setup(t, DefaultConfig())
	in := &filters.Input{
		Conn: &filters.Connection{RemoteIP: netip.MustParseAddr("192.0.2.1"), AuthUser: "alice"},
		Msg:  filters.ParseMessage([]byte(rfc6376)),
	}
	if res, err := f.Check(context.Background(), in); err != nil || !res.IsZero() {
		t.Errorf("got %+v, %v; want nothing for an authenticated client", res, err)
	}
	res := check(t, f, plain)
	if !res.HasSymbol(SymNone) || len(res.Auth) != 0 {
		t.Errorf("got %+v for an unsigned message, want %s alone", res, SymNone)
	}
	if n := srv.Queries(); n != 0 {
		t.Errorf("%d DNS queries, want 0", n)
	}
}

// TestDeadline checks that the filter's context bounds key lookups even
// when the resolver's own timeout is longer.
func TestDeadline(t *testing.T) {
	k := testKeys(t)
	r, srv := resolvertest.Start(t, dnstest.LoadZoneDir(t, fixtures), 5*time.Second)
	srv.Hang("hang._domainkey.dkim.test")
	f, err := New(DefaultConfig(), r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := f.Check(ctx, &filters.Input{Msg: filters.ParseMessage([]byte(sign(t, plain, "dkim.test", "hang", k.ed, nil)))})
	if err != nil || !res.HasSymbol(SymTempFail) {
		t.Fatalf("got %+v, %v; want %s", res, err, SymTempFail)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v after a 50ms deadline", d)
	}
}

func TestConfigAndContract(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"positive tempfail", func(c *Config) { c.TempFailScore = 1 }, "tempfail_score"},
		{"NaN", func(c *Config) { c.ValidScore = math.NaN() }, "valid_score"},
		{"max_signatures 0", func(c *Config) { c.MaxSignatures = 0 }, "max_signatures"},
		{"max_signatures 101", func(c *Config) { c.MaxSignatures = 101 }, "max_signatures"},
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
	if f.Name() != "dkim" || f.Stage() != filters.StageData || len(f.Symbols()) != 5 {
		t.Errorf("Name %q, Stage %v, Symbols %v", f.Name(), f.Stage(), f.Symbols())
	}
	for _, in := range []*filters.Input{nil, {}} {
		if _, err := f.Check(context.Background(), in); err == nil {
			t.Errorf("no error for input %+v", in)
		}
	}
	// An error that is not a DNS answer is temporary, never permanent.
	cfg := DefaultConfig()
	cfg.InvalidScore = 3
	f, err = New(cfg, resolvertest.Failing{Err: fmt.Errorf("resolver exploded")})
	if err != nil {
		t.Fatal(err)
	}
	res := check(t, f, rfc6376)
	if got := authValues(res); !slices.Equal(got, []filters.AuthValue{temp}) || !res.HasSymbol(SymTempFail) {
		t.Errorf("got %+v; want a temperror", res)
	}
	res = check(t, f, "DKIM-Signature: v=1\r\n"+plain)
	if len(res.Symbols) != 1 || res.Symbols[0].Name != SymInvalid || res.Symbols[0].Score != 3 {
		t.Errorf("got %+v; want %s scored 3", res.Symbols, SymInvalid)
	}
}

// readFile returns the text of a test file.
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rfc6376 is the signed message of RFC 6376 Appendix A.2, signed with
// the key of Appendix C (published as brisbane._domainkey.example.com).
var rfc6376 = crlf(`DKIM-Signature: v=1; a=rsa-sha256; s=brisbane; d=example.com;
      c=simple/simple; q=dns/txt; i=joe@football.example.com;
      h=Received : From : To : Subject : Date : Message-ID;
      bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
      b=AuUoFEfDxTDkHlLXSZEpZj79LICEps6eda7W3deTVFOk4yAUoqOB
      4nujc7YopdG5dWLSdNg6xNAZpOPr+kHxt1IrE+NahM6L/LbvaHut
      KVdkLLkpVaVVQPzeRDI009SO2Il5Lu7rDNH6mZckBdrIx0orEtZV
      4bmp/YzhwvcubU4=;
Received: from client1.football.example.com  [192.0.2.1]
      by submitserver.example.com with SUBMISSION;
      Fri, 11 Jul 2003 21:01:54 -0700 (PDT)
From: Joe SixPack <joe@football.example.com>
To: Suzie Q <suzie@shopping.example.net>
Subject: Is dinner ready?
Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
Message-ID: <20030712040037.46341.5F8J@football.example.com>

Hi.

We lost the game. Are you hungry yet?

Joe.
`)

// rfc8463 is the signed message of RFC 8463 Appendix A.3.
var rfc8463 = crlf(`DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=brisbane; t=1528637909; h=from : to :
 subject : date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus
 Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=test; t=1528637909; h=from : to : subject :
 date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3
 DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz
 dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=
From: Joe SixPack <joe@football.example.com>
To: Suzie Q <suzie@shopping.example.net>
Subject: Is dinner ready?
Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
Message-ID: <20030712040037.46341.5F8J@football.example.com>

Hi.

We lost the game.  Are you hungry yet?

Joe.
`)
