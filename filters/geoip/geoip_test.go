package geoip

import (
	"bytes"
	"context"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/geoip/geoiptest"
)

// countries is the test country database: documentation networks, a
// network inside another, and loopback (which the lead's end-to-end
// tests map too).
var countries = map[string]string{
	"192.0.2.0/24":    "DE",
	"198.51.100.0/24": "FR",
	"2001:db8::/32":   "JP",
	"2001:db8:1::/48": "BR",
	"127.0.0.0/8":     "XX",
	"::1":             "XX",
}

// systems is the test ASN database.
var systems = map[string]geoiptest.ASN{
	"192.0.2.0/24":    {Number: 64496, Organization: "Example Net"},
	"198.51.100.0/24": {Number: 64497},
	"2001:db8::/32":   {Number: 64498, Organization: "Example Six"},
	"127.0.0.0/8":     {Number: 64499, Organization: "Loopback"},
	"::1":             {Number: 64499, Organization: "Loopback"},
}

// writeDBs writes both test databases into a new folder and returns their
// paths.
func writeDBs(t *testing.T) (country, asn string) {
	t.Helper()
	dir := t.TempDir()
	country, asn = filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	geoiptest.WriteCountryDB(t, country, countries)
	geoiptest.WriteASNDB(t, asn, systems)
	return country, asn
}

// newFilter builds a filter over cfg and closes it when the test ends.
func newFilter(t testing.TB, cfg Config) *Filter {
	t.Helper()
	f, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// check looks up a connection from ip.
func check(f *Filter, ip string) (filters.Result, error) {
	in := &filters.Input{Conn: &filters.Connection{ID: "c1", RemoteIP: netip.MustParseAddr(ip)}}
	return f.Check(context.Background(), in)
}

// mustCheck looks up ip and fails the test on an error.
func mustCheck(t testing.TB, f *Filter, ip string) filters.Result {
	t.Helper()
	r, err := check(f, ip)
	if err != nil {
		t.Fatalf("%s: %v", ip, err)
	}
	return r
}

// facts builds the facts a lookup should set; "" leaves one out.
func facts(country, asn, org string) []filters.Fact {
	var fs []filters.Fact
	for _, f := range []filters.Fact{{Name: FactCountry, Value: country}, {Name: FactASN, Value: asn}, {Name: FactASNOrg, Value: org}} {
		if f.Value != "" {
			fs = append(fs, f)
		}
	}
	return fs
}

func TestCheck(t *testing.T) {
	country, asn := writeDBs(t)
	cfg := DefaultConfig()
	cfg.CountryDB, cfg.ASNDB = country, asn
	cfg.CountryScores = map[string]float64{"FR": 2, "XX": -1, "US": 5}
	cfg.ASNScores = map[string]float64{"64496": 3, "64498": 0}
	f := newFilter(t, cfg)

	sym := func(name string, score float64, reason string) []filters.Symbol {
		return []filters.Symbol{{Name: name, Score: score, Reason: reason}}
	}
	tests := []struct {
		name  string
		ip    string
		facts []filters.Fact
		syms  []filters.Symbol
	}{
		{"IPv4, AS scored", "192.0.2.1", facts("DE", "64496", "Example Net"), sym(SymASN, 3, "AS64496")},
		{"IPv4, country scored, AS without organisation", "198.51.100.7", facts("FR", "64497", ""), sym(SymCountry, 2, "country FR")},
		{"IPv4-mapped IPv6", "::ffff:198.51.100.7", facts("FR", "64497", ""), sym(SymCountry, 2, "country FR")},
		{"IPv6, AS scored 0", "2001:db8::25", facts("JP", "64498", "Example Six"), sym(SymASN, 0, "AS64498")},
		{"IPv6 with a zone", "2001:db8::25%eth0", facts("JP", "64498", "Example Six"), sym(SymASN, 0, "AS64498")},
		{"IPv6, the inner network wins", "2001:db8:1::1", facts("BR", "64498", "Example Six"), sym(SymASN, 0, "AS64498")},
		{"loopback IPv4", "127.0.0.1", facts("XX", "64499", "Loopback"), sym(SymCountry, -1, "country XX")},
		{"loopback IPv4, elsewhere in 127/8", "127.1.2.3", facts("XX", "64499", "Loopback"), sym(SymCountry, -1, "country XX")},
		{"loopback IPv6", "::1", facts("XX", "64499", "Loopback"), sym(SymCountry, -1, "country XX")},
		{"in neither database", "203.0.113.9", nil, nil},
		{"IPv6 in neither database", "2001:db9::1", nil, nil},
		{"private, not in the databases", "10.1.2.3", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustCheck(t, f, tt.ip)
			if !reflect.DeepEqual(r.Facts, tt.facts) {
				t.Errorf("facts %v, want %v", r.Facts, tt.facts)
			}
			if !reflect.DeepEqual(r.Symbols, tt.syms) {
				t.Errorf("symbols %v, want %v", r.Symbols, tt.syms)
			}
			if len(r.Auth) != 0 || len(r.Demands) != 0 {
				t.Errorf("auth %v, demands %v: want none", r.Auth, r.Demands)
			}
		})
	}
}

func TestCheckWithoutScoresFindsFactsOnly(t *testing.T) {
	country, asn := writeDBs(t)
	cfg := DefaultConfig()
	cfg.CountryDB, cfg.ASNDB = country, asn
	f := newFilter(t, cfg)
	for _, ip := range []string{"192.0.2.1", "198.51.100.7", "2001:db8::25", "127.0.0.1", "::1"} {
		r := mustCheck(t, f, ip)
		if len(r.Symbols) != 0 {
			t.Errorf("%s: symbols %v, want none by default", ip, r.Symbols)
		}
		if r.Fact(FactCountry) == "" || r.Fact(FactASN) == "" {
			t.Errorf("%s: facts %v, want country and AS", ip, r.Facts)
		}
	}
}

func TestNoDatabase(t *testing.T) {
	f := newFilter(t, DefaultConfig())
	if dbs := f.Databases(); len(dbs) != 0 {
		t.Errorf("Databases() = %v, want none", dbs)
	}
	for _, ip := range []string{"192.0.2.1", "::1"} {
		if r := mustCheck(t, f, ip); !r.IsZero() {
			t.Errorf("%s: %+v, want nothing", ip, r)
		}
	}
	if err := f.Reload(); err != nil {
		t.Errorf("Reload: %v", err)
	}
}

func TestOneDatabase(t *testing.T) {
	country, asn := writeDBs(t)
	tests := []struct {
		name  string
		cfg   Config
		facts []filters.Fact
		key   string
	}{
		{"country only", Config{CountryDB: country}, facts("DE", "", ""), "country_db"},
		{"AS only", Config{ASNDB: asn}, facts("", "64496", "Example Net"), "asn_db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilter(t, tt.cfg)
			if r := mustCheck(t, f, "192.0.2.1"); !reflect.DeepEqual(r.Facts, tt.facts) {
				t.Errorf("facts %v, want %v", r.Facts, tt.facts)
			}
			if dbs := f.Databases(); len(dbs) != 1 || dbs[0].Key != tt.key {
				t.Errorf("Databases() = %v, want %s alone", dbs, tt.key)
			}
		})
	}
}

// A City database serves as country_db; a record with only a registered
// country gives that country.
func TestCityDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "city.mmdb")
	geoiptest.WriteDB(t, path, "GeoLite2-City", map[string]mmdbtype.Map{
		"192.0.2.0/24": {
			"city":               mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("Berlin")}},
			"country":            mmdbtype.Map{"iso_code": mmdbtype.String("DE")},
			"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("NL")},
		},
		"198.51.100.0/24": {"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("SE")}},
		"203.0.113.0/24":  {"continent": mmdbtype.Map{"code": mmdbtype.String("EU")}},
	})
	f := newFilter(t, Config{CountryDB: path, CountryScores: map[string]float64{"SE": 1.5}})
	tests := []struct {
		ip    string
		facts []filters.Fact
		syms  int
	}{
		{"192.0.2.1", facts("DE", "", ""), 0},
		{"198.51.100.1", facts("SE", "", ""), 1},
		{"203.0.113.1", nil, 0},
	}
	for _, tt := range tests {
		r := mustCheck(t, f, tt.ip)
		if !reflect.DeepEqual(r.Facts, tt.facts) || len(r.Symbols) != tt.syms {
			t.Errorf("%s: facts %v symbols %v, want %v and %d symbols", tt.ip, r.Facts, r.Symbols, tt.facts, tt.syms)
		}
	}
	if dbs := f.Databases(); len(dbs) != 1 || dbs[0].Type != "GeoLite2-City" {
		t.Errorf("Databases() = %v", dbs)
	}
}

func TestDatabases(t *testing.T) {
	country, asn := writeDBs(t)
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	f := newFilter(t, Config{CountryDB: country, ASNDB: asn})
	dbs := f.Databases()
	want := []Database{
		{Key: "country_db", Path: country, Type: geoiptest.TypeCountry},
		{Key: "asn_db", Path: asn, Type: geoiptest.TypeASN},
	}
	if len(dbs) != len(want) {
		t.Fatalf("Databases() = %v, want %v", dbs, want)
	}
	for i, d := range dbs {
		if d.Built.Before(before) || d.Built.After(time.Now()) {
			t.Errorf("%s built %v, want about now", d.Key, d.Built)
		}
		d.Built = time.Time{}
		if d != want[i] {
			t.Errorf("Databases()[%d] = %+v, want %+v", i, d, want[i])
		}
	}
}

func TestNoClientAddress(t *testing.T) {
	f := newFilter(t, DefaultConfig())
	for _, in := range []*filters.Input{nil, {}, {Conn: &filters.Connection{}}} {
		if _, err := f.Check(context.Background(), in); err == nil {
			t.Errorf("Check(%+v): no error", in)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	country, asn := writeDBs(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("this is not a MaxMind DB"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.mmdb")
	truncate(t, country, truncated)
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing country file", Config{CountryDB: filepath.Join(dir, "nope.mmdb")}, "geoip: country_db: stat"},
		{"missing AS file", Config{CountryDB: country, ASNDB: filepath.Join(dir, "nope.mmdb")}, "geoip: asn_db: stat"},
		{"not a database", Config{CountryDB: garbage}, "country_db: " + garbage},
		{"cut short", Config{ASNDB: truncated}, "asn_db: " + truncated},
		{"empty", Config{CountryDB: empty}, "country_db: " + empty + ": file is empty"},
		{"an AS database as country_db", Config{CountryDB: asn}, "country_db: " + asn + ": not a database of this kind"},
		{"a country database as asn_db", Config{ASNDB: country}, "asn_db: " + country + ": not a database of this kind"},
		{"invalid config", Config{ReloadInterval: -time.Second}, "geoip config: reload_interval: -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.cfg, Options{})
			if err == nil {
				f.Close()
				t.Fatalf("New: no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want %q", err, tt.want)
			}
		})
	}
}

// truncate writes the first half of the file from to the file to.
func truncate(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"scores", func(c *Config) {
			c.CountryDB, c.ASNDB = "c.mmdb", "a.mmdb"
			c.CountryScores = map[string]float64{"DE": 1, "US": -2.5}
			c.ASNScores = map[string]float64{"64496": 3, "4294967295": 0, "1": 1}
		}, ""},
		{"reload interval 0", func(c *Config) { c.ReloadInterval = 0 }, ""},
		{"negative reload interval", func(c *Config) { c.ReloadInterval = -time.Minute }, "reload_interval: -1m0s is negative"},
		{"lower-case country", func(c *Config) { c.CountryDB = "c"; c.CountryScores = map[string]float64{"de": 1} }, `country_scores: "de" is not an ISO 3166-1 alpha-2`},
		{"three letters", func(c *Config) { c.CountryDB = "c"; c.CountryScores = map[string]float64{"DEU": 1} }, `country_scores: "DEU" is not`},
		{"NaN country score", func(c *Config) { c.CountryDB = "c"; c.CountryScores = map[string]float64{"DE": math.NaN()} }, "country_scores.DE: NaN is not a finite number"},
		{"first key in order", func(c *Config) {
			c.CountryDB = "c"
			c.CountryScores = map[string]float64{"ZZ": math.Inf(1), "AA": math.Inf(-1)}
		}, "country_scores.AA: -Inf"},
		{"country scores without database", func(c *Config) { c.CountryScores = map[string]float64{"DE": 1} }, "country_scores: set, but country_db is empty"},
		{"AS with prefix", func(c *Config) { c.ASNDB = "a"; c.ASNScores = map[string]float64{"AS64496": 1} }, `asn_scores: "AS64496" is not an AS number`},
		{"AS with leading zero", func(c *Config) { c.ASNDB = "a"; c.ASNScores = map[string]float64{"064496": 1} }, `asn_scores: "064496"`},
		{"AS 0", func(c *Config) { c.ASNDB = "a"; c.ASNScores = map[string]float64{"0": 1} }, `asn_scores: "0"`},
		{"AS beyond 32 bits", func(c *Config) { c.ASNDB = "a"; c.ASNScores = map[string]float64{"4294967296": 1} }, `asn_scores: "4294967296"`},
		{"infinite AS score", func(c *Config) { c.ASNDB = "a"; c.ASNScores = map[string]float64{"64496": math.Inf(1)} }, "asn_scores.64496: +Inf is not a finite number"},
		{"AS scores without database", func(c *Config) { c.ASNScores = map[string]float64{"64496": 1} }, "asn_scores: set, but asn_db is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDeclaredSymbols(t *testing.T) {
	f := newFilter(t, DefaultConfig())
	if got, want := f.Symbols(), []string{SymCountry, SymASN}; !reflect.DeepEqual(got, want) {
		t.Errorf("Symbols() = %v, want %v", got, want)
	}
	if f.Name() != "geoip" || f.Stage() != filters.StageConnect {
		t.Errorf("Name %q, Stage %v", f.Name(), f.Stage())
	}
}

// BenchmarkCheck looks up a client with both databases loaded and a
// score for its country and its AS (warm: the readers are open).
func BenchmarkCheck(b *testing.B) {
	dir := b.TempDir()
	country, asn := filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	geoiptest.WriteCountryDB(b, country, countries)
	geoiptest.WriteASNDB(b, asn, systems)
	cfg := DefaultConfig()
	cfg.CountryDB, cfg.ASNDB = country, asn
	cfg.CountryScores = map[string]float64{"DE": 1}
	cfg.ASNScores = map[string]float64{"64496": 1}
	f := newFilter(b, cfg)
	ctx := context.Background()
	input := func(ip string) *filters.Input {
		return &filters.Input{Conn: &filters.Connection{RemoteIP: netip.MustParseAddr(ip)}}
	}
	found, notFound := input("192.0.2.1"), input("203.0.113.9")
	if r, err := f.Check(ctx, found); err != nil || len(r.Facts) != 3 || len(r.Symbols) != 2 {
		b.Fatalf("warm-up: %+v, %v", r, err)
	}
	b.Run("found", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.Check(ctx, found); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("not-found", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.Check(ctx, notFound); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("found-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := f.Check(ctx, found); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// factOf looks up ip and returns the first value of the fact name.
func factOf(t testing.TB, f *Filter, ip, name string) string {
	t.Helper()
	r := mustCheck(t, f, ip)
	return r.Fact(name)
}

// In an IPv4-only database an IPv4-mapped IPv6 client is found as the
// IPv4 address it is, and an IPv6 client is not found (the lookup of an
// IPv6 address would be an error).
func TestIPv4OnlyDatabase(t *testing.T) {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: geoiptest.TypeCountry, IPVersion: 4,
		IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	_, network, _ := net.ParseCIDR("192.0.2.0/24")
	if err := tree.Insert(network, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("DE")}}); err != nil {
		t.Fatal(err)
	}
	var db bytes.Buffer
	if _, err := tree.WriteTo(&db); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "v4.mmdb")
	if err := os.WriteFile(path, db.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFilter(t, Config{CountryDB: path})
	for ip, want := range map[string]string{"192.0.2.1": "DE", "::ffff:192.0.2.1": "DE", "2001:db8::1": "", "::1": ""} {
		if got := factOf(t, f, ip, FactCountry); got != want {
			t.Errorf("%s: %q, want %q", ip, got, want)
		}
	}
}

// A record the filter cannot decode is an error (GEOIP_TEMPFAIL), never a
// finding.
func TestUndecodableRecord(t *testing.T) {
	dir := t.TempDir()
	country, asn := filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	geoiptest.WriteDB(t, country, geoiptest.TypeCountry, map[string]mmdbtype.Map{
		"192.0.2.0/24": {"country": mmdbtype.Map{"iso_code": mmdbtype.Uint32(49)}},
	})
	geoiptest.WriteDB(t, asn, geoiptest.TypeASN, map[string]mmdbtype.Map{
		"198.51.100.0/24": {"autonomous_system_number": mmdbtype.String("64496")},
	})
	f := newFilter(t, Config{CountryDB: country, ASNDB: asn})
	for ip, want := range map[string]string{"192.0.2.1": "geoip: country of 192.0.2.1: ", "198.51.100.1": "geoip: AS of 198.51.100.1: "} {
		if r, err := check(f, ip); err == nil || !strings.HasPrefix(err.Error(), want) || !r.IsZero() {
			t.Errorf("%s: %+v, %v; want nothing and an error %q...", ip, r, err, want)
		}
	}
}

// The section as an operator writes it decodes into Config (the keys of
// docs/configuration.md); an integer score is a float.
func TestConfigTOML(t *testing.T) {
	const section = `
country_db = "/var/lib/GeoIP/GeoLite2-Country.mmdb"
asn_db = "/var/lib/GeoIP/GeoLite2-ASN.mmdb"
reload_interval = "5m"
country_scores = { XX = 2.0, DE = -1 }
asn_scores = { "64496" = 3.0 }
`
	cfg := DefaultConfig()
	md, err := toml.Decode(section, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Errorf("undecoded keys %v", u)
	}
	want := Config{
		CountryDB:      "/var/lib/GeoIP/GeoLite2-Country.mmdb",
		ASNDB:          "/var/lib/GeoIP/GeoLite2-ASN.mmdb",
		ReloadInterval: 5 * time.Minute,
		CountryScores:  map[string]float64{"XX": 2, "DE": -1},
		ASNScores:      map[string]float64{"64496": 3},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("decoded %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
