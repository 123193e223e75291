package uribl

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/miekg/dns"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/dnsxl"
	"github.com/moatmail/moat/filters/dnsxl/rbldnstest"
	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// The domain lists rbldnsd serves: dbl.test answers as the Spamhaus DBL
// (127.0.1.x, 127.0.1.255 for an address), multi.test as SURBL multi (a
// bit mask), all.test lists everything (its "invalid" entry too).
var datasets = []rbldnstest.Dataset{
	{Zone: "dbl.test", Type: "dnset", Data: `
test :127.0.1.2:
bad.example :127.0.1.2:
phish.example :127.0.1.4:
sender.example :127.0.1.2:
helo.example :127.0.1.2:
x.hosted.example :127.0.1.2:
example.co.uk :127.0.1.2:
1.2.0.192 :127.0.1.255:
`},
	{Zone: "multi.test", Type: "dnset", Data: `
test :127.0.0.126:
spam.example :127.0.0.8:
phish.example :127.0.0.4:
both.example :127.0.0.12:
5.2.0.192 :127.0.0.8:
`},
	{Zone: "all.test", Type: "dnset", Data: "test\ninvalid\nbad.example\nclean.example\n"},
}

// list is a list table.
func list(zone string, weight float64, codes string, sources ...string) ListConfig {
	return ListConfig{ListConfig: dnsxl.ListConfig{Zone: zone, Weight: weight, Codes: codes}, Sources: sources}
}

// input is a message with body, from sender, after HELO helo.
func input(sender, helo, auth, body string) *filters.Input {
	raw := "From: <someone@example.org>\r\nTo: <rcpt@example.com>\r\nSubject: offer\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n" + body + "\r\n"
	return &filters.Input{
		Conn: &filters.Connection{ID: "c1", Helo: helo, AuthUser: auth},
		Env:  &filters.Envelope{From: sender, Rcpts: []string{"rcpt@example.com"}},
		Msg:  filters.ParseMessage([]byte(raw)),
	}
}

// symbols returns "NAME=score" for each symbol of r.
func symbols(r filters.Result) []string {
	var out []string
	for _, s := range r.Symbols {
		out = append(out, fmt.Sprintf("%s=%g", s.Name, s.Score))
	}
	return out
}

func TestCheck(t *testing.T) {
	srv := rbldnstest.Start(t, datasets...)
	r := rbldnstest.Resolver(t, srv.Addr(), resolver.DefaultCacheSize)
	dbl := list("dbl.test", 5, "")
	tests := []struct {
		name       string
		cfg        func(*Config)
		in         *filters.Input
		want       []string // NAME=score
		domains    []string // uribl.domain facts
		reason     string   // part of the first symbol's reason
		exceptions []string
	}{
		{name: "listed link", cfg: func(c *Config) { c.Lists = []ListConfig{dbl} },
			in:   input("a@example.org", "mx.example.org", "", `<a href="http://www.bad.example/offer">here</a>`),
			want: []string{"URIBL_LISTED=5"}, domains: []string{"bad.example"}, reason: "bad.example in dbl.test (127.0.1.2)"},
		{name: "bare link in text", cfg: func(c *Config) { c.Lists = []ListConfig{dbl} },
			in:   input("", "", "", "see https://shop.example.co.uk/x."),
			want: []string{"URIBL_LISTED=5"}, domains: []string{"example.co.uk"}},
		{name: "clean message", cfg: func(c *Config) { c.Lists = []ListConfig{dbl} },
			in: input("a@example.org", "mx.example.org", "", `<a href="http://clean.example/">x</a>`)},
		{name: "sender and HELO listed", cfg: func(c *Config) { c.Lists = []ListConfig{dbl} },
			in:   input("a@mail.sender.example", "mx1.helo.example", "", "no links"),
			want: []string{"RHSBL_SENDER=5", "RHSBL_HELO=5"}, domains: []string{"sender.example", "helo.example"}},
		{name: "sources restrict a list", cfg: func(c *Config) { c.Lists = []ListConfig{list("dbl.test", 5, "", "url")} },
			in: input("a@sender.example", "helo.example", "", "no links")},
		{name: "a domain in two sources", cfg: func(c *Config) { c.Lists = []ListConfig{dbl} },
			in:   input("a@bad.example", "", "", `<a href="http://bad.example/">x</a>`),
			want: []string{"URIBL_LISTED=5", "RHSBL_SENDER=5"}, domains: []string{"bad.example"}},
		{name: "a list counts once per source", cfg: func(c *Config) { c.Lists = []ListConfig{dbl} },
			in:   input("", "", "", `<a href="http://bad.example/">x</a> <a href="http://phish.example/">y</a>`),
			want: []string{"URIBL_LISTED=5"}, domains: []string{"bad.example", "phish.example"},
			reason: "bad.example in dbl.test (127.0.1.2), phish.example in dbl.test (127.0.1.4)"},
		{name: "lists add up", cfg: func(c *Config) { c.Lists = []ListConfig{dbl, list("multi.test", 2, "")} },
			in:   input("", "", "", `<a href="http://phish.example/">y</a>`),
			want: []string{"URIBL_LISTED=7"}, domains: []string{"phish.example"}},
		{name: "mask keeps a bit", cfg: func(c *Config) {
			c.Lists = []ListConfig{{ListConfig: dnsxl.ListConfig{Zone: "multi.test", Weight: 3, Mask: 8}}}
		},
			in:   input("", "", "", `http://spam.example/ http://phish.example/ http://both.example/`),
			want: []string{"URIBL_LISTED=3"}, domains: []string{"spam.example", "both.example"}},
		{name: "link to a listed address", cfg: func(c *Config) { c.Lists = []ListConfig{list("multi.test", 3, "")} },
			in:   input("", "", "", `<img src="http://192.0.2.5/pixel.gif">`),
			want: []string{"URIBL_LISTED=3"}, domains: []string{"192.0.2.5"}},
		{name: "link to a listed address written as a number", cfg: func(c *Config) { c.Lists = []ListConfig{list("multi.test", 3, "")} },
			in:   input("", "", "", `<a href="http://3221225989/">x</a>`),
			want: []string{"URIBL_LISTED=3"}, domains: []string{"192.0.2.5"}},
		{name: "codes exclude DBL's answer for an address", cfg: func(c *Config) { c.Lists = []ListConfig{list("dbl.test", 5, "127.0.1.[2..99]")} },
			in: input("", "", "", `<a href="http://192.0.2.1/">x</a>`)},
		{name: "private address links are not asked", cfg: func(c *Config) { c.Lists = []ListConfig{list("multi.test", 3, "")} },
			in: input("", "", "", `<a href="http://10.0.0.1/">x</a> <a href="http://[::1]/">y</a>`)},
		{name: "without the exception, the registered domain", cfg: func(c *Config) { c.Lists = []ListConfig{dbl} },
			in: input("", "", "", `<a href="http://a.x.hosted.example/">x</a>`)},
		{name: "with the exception, one label more", cfg: func(c *Config) {
			c.Lists, c.Exceptions = []ListConfig{dbl}, []string{"hosted.example"}
		},
			in:   input("", "", "", `<a href="http://a.x.hosted.example/">x</a>`),
			want: []string{"URIBL_LISTED=5"}, domains: []string{"x.hosted.example"}},
		{name: "skipped domain", cfg: func(c *Config) { c.Lists, c.SkipDomains = []ListConfig{dbl}, []string{"bad.example"} },
			in: input("a@bad.example", "", "", `<a href="http://www.bad.example/">x</a>`)},
		{name: "authenticated client: links only", cfg: func(c *Config) { c.Lists = []ListConfig{dbl} },
			in:   input("a@sender.example", "helo.example", "alice", `<a href="http://bad.example/">x</a>`),
			want: []string{"URIBL_LISTED=5"}, domains: []string{"bad.example"}},
		{name: "a list that answers everything is ignored", cfg: func(c *Config) { c.Lists = []ListConfig{list("all.test", 9, "")} },
			in: input("", "", "", `<a href="http://clean.example/">x</a>`)},
		{name: "list symbol", cfg: func(c *Config) {
			c.Lists = []ListConfig{{ListConfig: dnsxl.ListConfig{Zone: "dbl.test", Weight: 5, Symbol: "DBL_SPAM"}}}
		},
			in:   input("", "", "", `<a href="http://bad.example/">x</a>`),
			want: []string{"URIBL_LISTED=5", "DBL_SPAM=0"}, domains: []string{"bad.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.cfg(&cfg)
			f, err := New(cfg, r, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.Check(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := symbols(res); !slices.Equal(got, tt.want) {
				t.Errorf("symbols %v, want %v", got, tt.want)
			}
			if got := res.FactValues(FactDomain); !slices.Equal(got, tt.domains) {
				t.Errorf("domains %v, want %v", got, tt.domains)
			}
			if len(tt.want) > 0 {
				if zones := res.FactValues(FactList); len(zones) == 0 {
					t.Error("no uribl.list fact")
				}
			}
			if tt.reason != "" && !strings.Contains(res.Symbols[0].Reason, tt.reason) {
				t.Errorf("reason %q, want it to say %q", res.Symbols[0].Reason, tt.reason)
			}
			if len(res.Demands) != 0 {
				t.Errorf("demands %v: the filter only scores", res.Demands)
			}
		})
	}
}

// links returns an HTML body with n links, to distinct registered
// domains when distinct is true, else to subdomains of one.
func links(n int, distinct bool) string {
	var b strings.Builder
	for i := range n {
		if distinct {
			fmt.Fprintf(&b, "<a href=\"http://www.d%d.example/\">x</a>\n", i)
		} else {
			fmt.Fprintf(&b, "<a href=\"http://h%d.same.example/\">x</a>\n", i)
		}
	}
	return b.String()
}

// TestBoundedQueries: a message with 1,000 links costs at most
// max_domains lookups per zone, counted at the DNS server.
func TestBoundedQueries(t *testing.T) {
	zones := map[string]string{
		"one.test.": "test A 127.0.0.2\nd3.example A 127.0.0.2\n",
		"two.test.": "test A 127.0.0.2\n",
	}
	tests := []struct {
		name     string
		distinct bool
		max      int
		domains  int // distinct names asked per zone
	}{
		{"1000 domains, default bound", true, DefaultMaxDomains, DefaultMaxDomains},
		{"1000 domains, bound 5", true, 5, 5},
		{"1000 subdomains of one domain", false, DefaultMaxDomains, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := dnstest.Start(t, zones)
			r := rbldnstest.Resolver(t, srv.Addr(), 0) // no cache: every lookup reaches the server
			cfg := DefaultConfig()
			cfg.Lists = []ListConfig{list("one.test", 1, ""), list("two.test", 1, "")}
			cfg.MaxDomains = tt.max
			f, err := New(cfg, r, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			in := input("", "", "", links(1000, tt.distinct))
			if n := len(in.Msg.Content().URLs); n != 1000 {
				t.Fatalf("the walk found %d links", n)
			}
			res, err := f.Check(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			// The first names of the message, each asked in each zone.
			for _, zone := range []string{"one.test", "two.test"} {
				var asked []int
				for i := range 1000 {
					name := fmt.Sprintf("d%d.example.%s", i, zone)
					if !tt.distinct {
						name = "same.example." + zone
					}
					if srv.QueriesFor(name, dns.TypeA) > 0 {
						asked = append(asked, i)
					}
					if !tt.distinct {
						break
					}
				}
				if len(asked) != tt.domains || asked[len(asked)-1] != len(asked)-1 {
					t.Errorf("%s was asked about names %v, want the first %d", zone, asked, tt.domains)
				}
			}
			// And nothing more but the probes of "test" and "invalid".
			if got, want := srv.Queries(), 2*tt.domains+2*2; got != want {
				t.Errorf("%d queries, want %d", got, want)
			}
			wantListed := tt.distinct && tt.max > 3 // d3.example is the fourth link
			if got := res.HasSymbol(SymURL); got != wantListed {
				t.Errorf("URIBL_LISTED %v, want %v", got, wantListed)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	srv := dnstest.Start(t, map[string]string{
		"dbl.test.":  "test A 127.0.0.2\nbad.example A 127.0.1.2\n",
		"slow.test.": "test A 127.0.0.2\n",
	})
	srv.Hang("bad.example.slow.test")
	srv.Hang("slow.example.dbl.test")
	r := rbldnstest.Resolver(t, srv.Addr(), resolver.DefaultCacheSize)
	cfg := DefaultConfig()
	cfg.Lists = []ListConfig{list("dbl.test", 5, ""), list("slow.test", 5, "")}
	f, err := New(cfg, r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One list times out: the other one counts, the timeout nothing.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := f.Check(ctx, input("", "", "", `<a href="http://bad.example/">x</a>`))
	if err != nil || !slices.Equal(symbols(res), []string{"URIBL_LISTED=5"}) {
		t.Errorf("got %v, %v; want URIBL_LISTED=5 from dbl.test alone", symbols(res), err)
	}
	// Every lookup fails: an error, which the pipeline makes
	// URIBL_TEMPFAIL.
	cfg.Lists = cfg.Lists[:1]
	if f, err = New(cfg, r, nil, nil); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	res, err = f.Check(ctx2, input("", "", "", `<a href="http://slow.example/">x</a>`))
	if err == nil || !resolver.IsTemporary(err) || !res.IsZero() {
		t.Errorf("got %+v, %v; want a temporary error", res, err)
	}
}

func TestConfigAndContract(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"DBL and SURBL", func(c *Config) {
			c.Lists = []ListConfig{list("dbl.spamhaus.org", 5, "127.0.1.[2..99]"), list("multi.surbl.org", 4, "", "url")}
		}, ""},
		{"max_domains 0", func(c *Config) { c.MaxDomains = 0 }, "max_domains"},
		{"max_domains huge", func(c *Config) { c.MaxDomains = MaxMaxDomains + 1 }, "max_domains"},
		{"probe_interval", func(c *Config) { c.ProbeInterval = -time.Second }, "probe_interval"},
		{"bad source", func(c *Config) { c.Lists = []ListConfig{list("dbl.example", 1, "", "url", "body")} }, "list[0].sources[1]"},
		{"bad list", func(c *Config) { c.Lists = []ListConfig{list("dbl.example", 0, "")} }, "list[0].weight"},
		{"bad exception", func(c *Config) { c.Exceptions = []string{"example"} }, "exceptions[0]"},
		{"bad skip domain", func(c *Config) { c.SkipDomains = []string{"a.example", "b c.example"} }, "skip_domains[1]"},
		{"symbol of the filter", func(c *Config) {
			c.Lists = []ListConfig{{ListConfig: dnsxl.ListConfig{Zone: "dbl.example", Weight: 1, Symbol: SymHelo}}}
		}, "list[0].symbol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			verr := cfg.Validate()
			_, err := New(cfg, rbldnstest.Resolver(t, "127.0.0.1:53", 0), nil, nil)
			for _, e := range []error{verr, err} {
				if (tt.want == "") != (e == nil) || (e != nil && !strings.Contains(e.Error(), tt.want)) {
					t.Errorf("err %v, want %q", e, tt.want)
				}
			}
		})
	}
	if _, err := New(DefaultConfig(), nil, nil, nil); err == nil {
		t.Error("nil resolver accepted")
	}
	cfg := DefaultConfig()
	cfg.Lists = []ListConfig{{ListConfig: dnsxl.ListConfig{Zone: "dbl.example", Weight: 1, Symbol: "DBL"}}}
	f, err := New(cfg, rbldnstest.Resolver(t, "127.0.0.1:53", 0), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "uribl" || f.Stage() != filters.StageData {
		t.Errorf("Name %q, Stage %v", f.Name(), f.Stage())
	}
	if got, want := f.Symbols(), []string{SymURL, SymSender, SymHelo, "DBL"}; !slices.Equal(got, want) {
		t.Errorf("Symbols %v, want %v", got, want)
	}
	for _, in := range []*filters.Input{nil, {}} {
		if _, err := f.Check(context.Background(), in); err == nil {
			t.Errorf("no error for input %+v", in)
		}
	}
}

func TestTOML(t *testing.T) {
	const text = `
max_domains = 30
exceptions = ["hosting.example"]
skip_domains = ["example.com"]
probe_interval = "2m"

[[list]]
zone = "dbl.spamhaus.org"
weight = 5
codes = "127.0.1.[2..99]"
symbol = "DBL_SPAM"

[[list]]
zone = "multi.surbl.org"
weight = 4
mask = 8
sources = ["url"]
`
	cfg := DefaultConfig()
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Errorf("undecoded keys %v", u)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []ListConfig{
		{ListConfig: dnsxl.ListConfig{Zone: "dbl.spamhaus.org", Weight: 5, Codes: "127.0.1.[2..99]", Symbol: "DBL_SPAM"}},
		{ListConfig: dnsxl.ListConfig{Zone: "multi.surbl.org", Weight: 4, Mask: 8}, Sources: []string{"url"}},
	}
	if cfg.MaxDomains != 30 || cfg.ProbeInterval != 2*time.Minute || len(cfg.Lists) != 2 ||
		cfg.Lists[0].ListConfig != want[0].ListConfig || cfg.Lists[1].ListConfig != want[1].ListConfig ||
		!slices.Equal(cfg.Lists[1].Sources, want[1].Sources) || !slices.Equal(cfg.Exceptions, []string{"hosting.example"}) {
		t.Errorf("decoded %+v", cfg)
	}
}
