package rdns

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// fixtures is the zone folder shared by the whole module.
const fixtures = "../../testdata/dns"

// setup serves the fixture zones and returns a filter over a real
// resolver asking them.
func setup(t *testing.T, cfg Config) (*Filter, *dnstest.Server) {
	t.Helper()
	srv := dnstest.Start(t, dnstest.LoadZoneDir(t, fixtures))
	rcfg := resolver.DefaultConfig()
	rcfg.Upstream = srv.Addr()
	rcfg.Timeout = 100 * time.Millisecond
	r, err := resolver.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	return f, srv
}

// run checks a connection from ip and returns the symbols found.
func run(f *Filter, ip string) ([]filters.Symbol, error) {
	r, err := runResult(f, ip)
	return r.Symbols, err
}

// runResult checks a connection from ip.
func runResult(f *Filter, ip string) (filters.Result, error) {
	in := &filters.Input{Conn: &filters.Connection{ID: "c1", RemoteIP: netip.MustParseAddr(ip)}}
	return f.Check(context.Background(), in)
}

func TestCheck(t *testing.T) {
	f, srv := setup(t, DefaultConfig())
	srv.ServFail("broken.example.test")
	srv.ServFail("32.2.0.192.in-addr.arpa")
	srv.Hang("33.2.0.192.in-addr.arpa")
	tests := []struct {
		name    string
		ip      string
		want    string // symbol name, "" for none
		tempErr bool
		reason  string
		rname   string            // the rdns.name fact
		iprev   filters.AuthValue // RFC 8601 §2.7.3
	}{
		{"confirmed", "192.0.2.25", "", false, "", "mail.example.test", filters.AuthPass},
		{"confirmed, mapped", "::ffff:192.0.2.25", "", false, "", "mail.example.test", filters.AuthPass},
		{"confirmed, IPv6", "2001:db8::25", "", false, "", "v6mail.example.test", filters.AuthPass},
		{"second name confirms", "192.0.2.29", "", false, "", "multi29.example.test", filters.AuthPass},
		{"name has other address", "192.0.2.26", SymMismatch, false, "other.example.test. does not resolve back to 192.0.2.26", "", filters.AuthFail},
		{"name does not exist", "192.0.2.27", SymMismatch, false, "nowhere.example.test.", "", filters.AuthFail},
		{"no PTR (NODATA)", "192.0.2.30", SymNone, false, "192.0.2.30", "", filters.AuthPermError},
		{"no PTR (NXDOMAIN)", "192.0.2.31", SymNone, false, "", "", filters.AuthPermError},
		{"no PTR, IPv6", "2001:db8::31", SymNone, false, "", "", filters.AuthPermError},
		{"forward lookup fails", "192.0.2.28", "", true, "", "", ""},
		{"PTR lookup fails", "192.0.2.32", "", true, "", "", ""},
		{"PTR lookup times out", "192.0.2.33", "", true, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := runResult(f, tt.ip)
			syms := res.Symbols
			if tt.tempErr {
				if err == nil || !resolver.IsTemporary(err) || !res.IsZero() {
					t.Fatalf("got %v, %v; want a temporary error and no finding", res, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Fact(filters.FactReverseName); got != tt.rname {
				t.Errorf("rdns.name fact %q, want %q", got, tt.rname)
			}
			ip := netip.MustParseAddr(tt.ip).Unmap().String()
			if len(res.Auth) != 1 || res.Auth[0].Method != "iprev" || res.Auth[0].Value != tt.iprev || res.Auth[0].Prop("policy", "iprev") != ip {
				t.Errorf("auth results %+v, want iprev=%s policy.iprev=%s", res.Auth, tt.iprev, ip)
			}
			if tt.want == "" {
				if len(syms) != 0 {
					t.Errorf("symbols %v, want none", syms)
				}
				return
			}
			if len(syms) != 1 || syms[0].Name != tt.want {
				t.Fatalf("symbols %v, want %s", syms, tt.want)
			}
			wantScore := map[string]float64{SymNone: DefaultNoneScore, SymMismatch: DefaultMismatchScore}[tt.want]
			if syms[0].Score != wantScore {
				t.Errorf("score %v, want %v", syms[0].Score, wantScore)
			}
			if !strings.Contains(syms[0].Reason, tt.reason) {
				t.Errorf("reason %q, want it to say %q", syms[0].Reason, tt.reason)
			}
		})
	}
}

func TestSkipped(t *testing.T) {
	f, srv := setup(t, DefaultConfig())
	for _, ip := range []string{
		"127.0.0.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "fd00::1",
		"fe80::1", "169.254.1.1", "100.64.1.1", "0.0.0.0", "::", "::ffff:10.0.0.1",
	} {
		t.Run(ip, func(t *testing.T) {
			syms, err := run(f, ip)
			if err != nil || len(syms) != 0 {
				t.Errorf("got %v, %v; want nothing", syms, err)
			}
		})
	}
	if n := srv.Queries(); n != 0 {
		t.Errorf("%d DNS queries for skipped addresses, want 0", n)
	}
}

func TestMaxNames(t *testing.T) {
	// 192.0.2.29 has two PTR names; only the second confirms.
	cfg := DefaultConfig()
	cfg.MaxNames = 1
	f, _ := setup(t, cfg)
	syms, err := run(f, "192.0.2.29")
	if err != nil || len(syms) != 1 || syms[0].Name != SymMismatch {
		t.Errorf("got %v, %v; want %s from checking one name only", syms, err, SymMismatch)
	}
}

// stub is a Resolver with canned answers, for faults dnstest cannot make.
type stub struct {
	ptr    []string
	ptrErr error
	ipErr  error
}

func (s stub) LookupTXT(context.Context, string) ([]string, error) { return nil, nil }
func (s stub) LookupMX(context.Context, string) ([]*net.MX, error) { return nil, nil }
func (s stub) LookupIP(context.Context, string) ([]netip.Addr, error) {
	return nil, s.ipErr
}
func (s stub) LookupAddr(context.Context, netip.Addr) ([]string, error) {
	return s.ptr, s.ptrErr
}

func TestStubResolver(t *testing.T) {
	odd := errors.New("resolver exploded")
	tests := []struct {
		name    string
		r       stub
		want    string
		wantErr error
	}{
		{"empty PTR list", stub{}, SymNone, nil},
		{"unknown PTR error is an error", stub{ptrErr: odd}, "", odd},
		{"unknown forward error is an error", stub{ptr: []string{"a.test."}, ipErr: odd}, "", odd},
		{"control bytes in names", stub{ptr: []string{"a\x1b[31m.test."}, ipErr: &net.DNSError{IsNotFound: true}}, SymMismatch, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(DefaultConfig(), tt.r)
			if err != nil {
				t.Fatal(err)
			}
			syms, err := run(f, "192.0.2.1")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if tt.want == "" {
				if syms != nil {
					t.Errorf("symbols %v with an error", syms)
				}
				return
			}
			if len(syms) != 1 || syms[0].Name != tt.want {
				t.Fatalf("symbols %v, want %s", syms, tt.want)
			}
			if strings.ContainsRune(syms[0].Reason, 0x1b) {
				t.Errorf("reason %q holds a control byte", syms[0].Reason)
			}
		})
	}
}

func TestConfigAndContract(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"zero scores", func(c *Config) { c.NoneScore, c.MismatchScore = 0, 0 }, ""},
		{"max_names 0", func(c *Config) { c.MaxNames = 0 }, "max_names"},
		{"NaN", func(c *Config) { c.NoneScore = math.NaN() }, "none_score"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			_, err := New(cfg, stub{})
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := New(DefaultConfig(), nil); err == nil {
		t.Error("nil resolver accepted")
	}
	f, err := New(DefaultConfig(), stub{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "rdns" || f.Stage() != filters.StageConnect {
		t.Errorf("Name %q, Stage %v", f.Name(), f.Stage())
	}
	for _, in := range []*filters.Input{nil, {}, {Conn: &filters.Connection{}}} {
		if _, err := f.Check(context.Background(), in); err == nil {
			t.Errorf("no error for input %+v", in)
		}
	}
}
