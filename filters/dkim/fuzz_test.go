package dkim

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

// fuzzDNS serves the RFC 8463 keys, a SERVFAIL and NXDOMAIN for the rest,
// in memory: a fuzzer must not wait for sockets.
type fuzzDNS struct{}

var fuzzKeys = map[string]string{
	"brisbane._domainkey.football.example.com": "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	"test._domainkey.football.example.com":     "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
}

func (fuzzDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if k, ok := fuzzKeys[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		return []string{k}, nil
	}
	if strings.HasPrefix(name, "servfail.") {
		return nil, &net.DNSError{Err: "server failure", Name: name, IsTemporary: true}
	}
	return nil, &net.DNSError{Err: "no such domain", Name: name, IsNotFound: true}
}
func (fuzzDNS) LookupMX(context.Context, string) ([]*net.MX, error)      { return nil, nil }
func (fuzzDNS) LookupIP(context.Context, string) ([]netip.Addr, error)   { return nil, nil }
func (fuzzDNS) LookupAddr(context.Context, netip.Addr) ([]string, error) { return nil, nil }

// FuzzSignature verifies the RFC 8463 message under a fuzzed
// DKIM-Signature field, through the library and the l= path alike: the
// filter must never panic, and must give one summary symbol, at most
// max_signatures results with known values, and properties fit for a
// header field.
func FuzzSignature(f *testing.F) {
	sigs := strings.Split(rfc8463, "\r\nDKIM-Signature: ")
	body := rfc8463[strings.Index(rfc8463, "From: Joe"):]
	ed := strings.TrimPrefix(sigs[0], "DKIM-Signature: ")
	rsa := sigs[1][:strings.Index(sigs[1], "\r\nFrom: Joe")]
	for _, s := range []string{
		ed, rsa,
		strings.Replace(ed, "c=relaxed/relaxed;", "c=relaxed/relaxed; l=10;", 1),
		strings.Replace(rsa, "c=relaxed/relaxed;", "l=99999999999999999999; c=simple;", 1),
		strings.Replace(ed, "s=brisbane", "s=servfail", 1),
		strings.Replace(ed, "x=", "x=1", 1) + "; x=1",
		"v=1; a=ed25519-sha256; d=football.example.com; s=brisbane; h=from; bh=; b=; l=0",
		";;;==;", "", "v=1; b=; b=", "=\r\n\tx=y",
	} {
		f.Add(s)
	}
	filter, err := New(DefaultConfig(), fuzzDNS{})
	if err != nil {
		f.Fatal(err)
	}
	values := map[filters.AuthValue]bool{filters.AuthPass: true, filters.AuthFail: true,
		filters.AuthTempError: true, filters.AuthPermError: true, filters.AuthNeutral: true}
	f.Fuzz(func(t *testing.T, sig string) {
		raw := "DKIM-Signature: " + sig + "\r\n" + body
		res, err := filter.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage([]byte(raw))})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Symbols) == 0 || len(res.Symbols) > 2 || len(res.Auth) > DefaultMaxSignatures {
			t.Fatalf("symbols %v, %d results", res.Symbols, len(res.Auth))
		}
		for _, a := range res.Auth {
			if !values[a.Value] {
				t.Errorf("result value %q", a.Value)
			}
			for _, p := range a.Props {
				if strings.ContainsFunc(p.Value, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
					t.Errorf("property %s=%q unfit for a header", p.Name, p.Value)
				}
			}
		}
		if res.HasSymbol(SymValid) != (len(res.FactValues(FactDomain)) > 0) {
			t.Errorf("%s without a dkim.domain fact, or the reverse: %+v", SymValid, res)
		}
	})
}
