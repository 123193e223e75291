package main

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/moatmail/moat/delivery/dkimsign"
	"github.com/moatmail/moat/delivery/imapd"
	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/pop3d"
	"github.com/moatmail/moat/delivery/queue"
	"github.com/moatmail/moat/filters/antivirus"
	"github.com/moatmail/moat/filters/attachments"
	"github.com/moatmail/moat/filters/bayes"
	"github.com/moatmail/moat/filters/content"
	"github.com/moatmail/moat/filters/content/mimecheck"
	"github.com/moatmail/moat/filters/dkim"
	"github.com/moatmail/moat/filters/dmarc"
	"github.com/moatmail/moat/filters/dnsbl"
	"github.com/moatmail/moat/filters/earlytalker"
	"github.com/moatmail/moat/filters/geoip"
	"github.com/moatmail/moat/filters/greylist"
	"github.com/moatmail/moat/filters/gtube"
	"github.com/moatmail/moat/filters/headers"
	"github.com/moatmail/moat/filters/heuristics"
	"github.com/moatmail/moat/filters/ratelimit"
	"github.com/moatmail/moat/filters/rdns"
	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/spf"
	"github.com/moatmail/moat/filters/state"
	"github.com/moatmail/moat/filters/uribl"
	"github.com/moatmail/moat/gateway"
	"github.com/moatmail/moat/gateway/throttle"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/quarantine"
	"github.com/moatmail/moat/rules"
)

// defaultConfig is the embedded configuration `moat serve` runs when no
// -config is given: everything under ./data, unprivileged loopback ports,
// a demo domain and user.
//
//go:embed default.toml
var defaultConfig string

// Config is the whole configuration file. Each section is the typed
// Config of the package that owns it.
type Config struct {
	// DataDir holds the index, the message files and the generated
	// certificate.
	DataDir    string            `toml:"data_dir"`
	Listen     ListenConfig      `toml:"listen"`
	Store      mailstore.Config  `toml:"store"`
	TLS        gateway.TLSConfig `toml:"tls"`
	SMTP       gateway.Config    `toml:"smtp"`
	IMAP       imapd.Config      `toml:"imap"`
	POP3       pop3d.Config      `toml:"pop3"`
	Auth       throttle.Config   `toml:"auth_throttle"`
	DNS        resolver.Config   `toml:"dns"`
	Filters    FiltersConfig     `toml:"filters"`
	State      state.Config      `toml:"state"`
	Rules      rules.Config      `toml:"rules"`
	Policies   policies.Config   `toml:"policies"`
	Quarantine quarantine.Config `toml:"quarantine"`
	// Queue is the outbound queue; Routes say where each recipient
	// domain's mail goes ([[route]] tables).
	Queue  queue.Config        `toml:"queue"`
	Routes []queue.RouteConfig `toml:"route"`
	// DKIMSigning signs submitted mail.
	DKIMSigning dkimsign.Config `toml:"dkim_signing"`
	Log         LogConfig       `toml:"log"`
	Demo        DemoConfig      `toml:"demo"`
}

// ListenConfig holds every listener address; an empty address switches the
// listener off.
type ListenConfig struct {
	SMTP    string `toml:"smtp"`    // MX with STARTTLS (port 25 in production)
	SMTPS   string `toml:"smtps"`   // MX over implicit TLS
	IMAP    string `toml:"imap"`    // IMAP with STARTTLS (143)
	IMAPS   string `toml:"imaps"`   // IMAP over implicit TLS (993)
	POP3    string `toml:"pop3"`    // POP3 with STLS (110)
	POP3S   string `toml:"pop3s"`   // POP3 over implicit TLS (995)
	Metrics string `toml:"metrics"` // Prometheus /metrics over HTTP
	// Submission is message submission with STARTTLS (587, RFC 6409);
	// Submissions over implicit TLS (465, RFC 8314). Off by default.
	Submission  string `toml:"submission"`
	Submissions string `toml:"submissions"`
}

// FiltersConfig configures the filters, which run in the order cmd/moat
// lists them.
type FiltersConfig struct {
	// Disabled names filters that never run.
	Disabled []string `toml:"disabled"`
	// Content bounds the MIME walk shared by the content filters.
	Content     content.Limits     `toml:"content"`
	RDNS        rdns.Config        `toml:"rdns"`
	SPF         spf.Config         `toml:"spf"`
	DKIM        dkim.Config        `toml:"dkim"`
	DMARC       dmarc.Config       `toml:"dmarc"`
	Greylist    greylist.Config    `toml:"greylist"`
	RateLimit   ratelimit.Config   `toml:"ratelimit"`
	EarlyTalker earlytalker.Config `toml:"earlytalker"`
	GeoIP       geoip.Config       `toml:"geoip"`
	DNSBL       dnsbl.Config       `toml:"dnsbl"`
	URIBL       uribl.Config       `toml:"uribl"`
	Headers     headers.Config     `toml:"headers"`
	MIME        mimecheck.Config   `toml:"mime"`
	// Heuristics scores the content heuristics (docs/detection.md).
	Heuristics  heuristics.Config  `toml:"heuristics"`
	GTUBE       gtube.Config       `toml:"gtube"`
	Attachments attachments.Config `toml:"attachments"`
	Bayes       bayes.Config       `toml:"bayes"`
	Antivirus   antivirus.Config   `toml:"antivirus"`
	// VirusAction is what happens to a message clamd finds a virus in:
	// "reject" (default, 554 5.7.0 in the dialogue) or "quarantine".
	VirusAction string `toml:"virus_action"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info (default), warn, error
	Format string `toml:"format"` // text (default) or json
}

// DemoConfig creates a demo user on first start.
type DemoConfig struct {
	// User, when set and the store has no users, is created with a random
	// password kept in <data_dir>/demo-password and printed at start.
	User string `toml:"user"`
}

// loadConfig reads a configuration file (or the embedded default when path
// is empty), strictly: unknown keys are errors.
func loadConfig(path string) (*Config, error) {
	text, name := defaultConfig, "embedded default"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		text, name = string(b), path
	}
	return parseConfig(text, name)
}

func parseConfig(text, name string) (*Config, error) {
	// Sections whose zero values are meaningful (a score of 0, a cache of
	// 0) start from their defaults; the file overrides what it sets.
	cfg := Config{
		DNS:   resolver.DefaultConfig(),
		State: state.DefaultConfig(),
		Queue: queue.DefaultConfig(),
		Filters: FiltersConfig{
			RDNS:        rdns.DefaultConfig(),
			SPF:         spf.DefaultConfig(),
			DKIM:        dkim.DefaultConfig(),
			DMARC:       dmarc.DefaultConfig(),
			Greylist:    greylist.DefaultConfig(),
			RateLimit:   ratelimit.DefaultConfig(),
			EarlyTalker: earlytalker.DefaultConfig(),
			GeoIP:       geoip.DefaultConfig(),
			DNSBL:       dnsbl.DefaultConfig(),
			URIBL:       uribl.DefaultConfig(),
			Headers:     headers.DefaultConfig(),
			MIME:        mimecheck.DefaultConfig(),
			Heuristics:  heuristics.DefaultConfig(),
			GTUBE:       gtube.DefaultConfig(),
			Attachments: attachments.DefaultConfig(),
			Bayes:       bayes.DefaultConfig(),
			Antivirus:   antivirus.DefaultConfig(),
		},
	}
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			if pe.LastKey != "" {
				return nil, fmt.Errorf("config %s: line %d: %s: %s", name, pe.Position.Line, pe.LastKey, pe.Message)
			}
			return nil, fmt.Errorf("config %s: line %d: %s", name, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("config %s: unknown key %s", name, strings.Join(keys, ", "))
	}
	if err := applyScoresFile(&cfg, md, name); err != nil {
		return nil, fmt.Errorf("config %s:\n  %w", name, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config %s:\n%w", name, err)
	}
	return &cfg, nil
}

// Validate checks every section and fills defaults; each error names its
// key in full (section.key).
func (c *Config) Validate() error {
	var errs []error
	add := func(section string, err error) {
		for _, err := range flatten(err) {
			if strings.HasPrefix(err.Error(), section+".") {
				errs = append(errs, fmt.Errorf("  %w", err))
			} else {
				errs = append(errs, fmt.Errorf("  %s.%w", section, err))
			}
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("  data_dir: must be set"))
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	add("listen", c.Listen.validate())
	if c.Store.Dir != "" {
		errs = append(errs, errors.New("  store.dir: set data_dir instead"))
	}
	c.Store.Dir = c.DataDir
	add("store", c.Store.Validate())
	add("tls", c.TLS.Validate())
	add("smtp", c.SMTP.Validate())
	add("imap", c.IMAP.Validate())
	add("pop3", c.POP3.Validate())
	add("auth_throttle", c.Auth.Validate())
	add("dns", c.DNS.Validate())
	add("filters", c.Filters.validate())
	add("state", c.State.Validate())
	c.addStateRules()
	c.addBuiltinRules()
	add("rules", c.Rules.Validate())
	if err := c.Policies.Validate(); err != nil {
		add("policies", err)
	} else if set, err := policies.New(c.Policies); err == nil {
		for _, n := range set.DisabledFilters() {
			if !contains(filterNames, n) {
				errs = append(errs, fmt.Errorf("  policies: disable_filters or ignore_demands names unknown filter %q (known: %s)", n, strings.Join(filterNames, ", ")))
			}
		}
	}
	for i, n := range c.SMTP.Submission.Filters {
		if !contains(filterNames, n) {
			errs = append(errs, fmt.Errorf("  smtp.submission.filters[%d]: unknown filter %q (known: %s)", i, n, strings.Join(filterNames, ", ")))
		}
	}
	add("quarantine", c.Quarantine.Validate())
	add("queue", c.Queue.Validate())
	for _, err := range flatten(queue.ValidateRoutes(c.Routes)) {
		errs = append(errs, fmt.Errorf("  %w", err))
	}
	for i, r := range c.Routes {
		for _, d := range r.Domains {
			local := contains(c.SMTP.LocalDomains, d)
			if r.Type == queue.RouteLocal && !local {
				errs = append(errs, fmt.Errorf("  route[%d].domains: %q is a local route but not in smtp.local_domains", i, d))
			}
			if r.Type == queue.RouteRelay && local {
				errs = append(errs, fmt.Errorf("  route[%d].domains: %q is in smtp.local_domains: a relay route's domain cannot be local too", i, d))
			}
		}
	}
	// A relay domain's mail must have somewhere to go: without a relay
	// route it would be sent to the domain's MX, which is this gateway.
	for i, d := range c.SMTP.RelayDomains {
		routed := false
		for _, r := range c.Routes {
			if r.Type == queue.RouteRelay && contains(r.Domains, strings.ToLower(strings.TrimSuffix(d, "."))) {
				routed = true
			}
		}
		if !routed {
			errs = append(errs, fmt.Errorf("  smtp.relay_domains[%d]: %q has no [[route]] with type = \"relay\" naming it: its mail would go to its MX, which is this gateway", i, d))
		}
	}
	add("dkim_signing", c.DKIMSigning.Validate(c.DataDir))
	add("log", c.Log.validate())
	if c.Demo.User != "" {
		at := strings.LastIndexByte(c.Demo.User, '@')
		if at < 0 || !contains(c.SMTP.LocalDomains, strings.ToLower(c.Demo.User[at+1:])) {
			errs = append(errs, fmt.Errorf("  demo.user: %q is not in a local domain (smtp.local_domains)", c.Demo.User))
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (l *ListenConfig) validate() error {
	var errs []error
	for _, f := range []struct{ key, addr string }{
		{"smtp", l.SMTP}, {"smtps", l.SMTPS}, {"imap", l.IMAP}, {"imaps", l.IMAPS},
		{"pop3", l.POP3}, {"pop3s", l.POP3S}, {"metrics", l.Metrics},
		{"submission", l.Submission}, {"submissions", l.Submissions},
	} {
		if f.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", f.key, f.addr))
		}
	}
	if l.SMTP == "" && l.SMTPS == "" {
		errs = append(errs, errors.New("smtp: at least one of smtp and smtps must be set"))
	}
	return errors.Join(errs...)
}

// filterNames lists the filters in pipeline order.
var filterNames = []string{"rdns", "geoip", "earlytalker", "ratelimit-connect", "spf", "ratelimit-mail",
	"dnsbl", "greylist", "ratelimit-rcpt", "headers", "mime", "heuristics", "gtube", "attachments", "dkim", "dmarc", "uribl",
	"bayes", "antivirus"}

func (f *FiltersConfig) validate() error {
	var errs []error
	switch f.VirusAction {
	case "":
		f.VirusAction = "reject"
	case "reject", "quarantine":
	default:
		errs = append(errs, fmt.Errorf("virus_action: %q is not reject or quarantine", f.VirusAction))
	}
	for i, n := range f.Disabled {
		if !contains(filterNames, n) {
			errs = append(errs, fmt.Errorf("disabled[%d]: unknown filter %q (known: %s)", i, n, strings.Join(filterNames, ", ")))
		}
	}
	for _, v := range []struct {
		key string
		fn  func() error
	}{{"content", f.Content.Validate}, {"rdns", f.RDNS.Validate}, {"spf", f.SPF.Validate},
		{"dkim", f.DKIM.Validate}, {"dmarc", f.DMARC.Validate}, {"greylist", f.Greylist.Validate},
		{"ratelimit", f.RateLimit.Validate}, {"earlytalker", f.EarlyTalker.Validate}, {"geoip", f.GeoIP.Validate},
		{"dnsbl", f.DNSBL.Validate}, {"uribl", f.URIBL.Validate}, {"headers", f.Headers.Validate},
		{"mime", f.MIME.Validate}, {"heuristics", f.Heuristics.Validate}, {"gtube", f.GTUBE.Validate}, {"attachments", f.Attachments.Validate}, {"bayes", f.Bayes.Validate},
		{"antivirus", f.Antivirus.Validate}} {
		for _, err := range flatten(v.fn()) {
			errs = append(errs, fmt.Errorf("%s.%w", v.key, err))
		}
	}
	return errors.Join(errs...)
}

// flatten returns the errors an errors.Join holds, each on its own, so
// that each gets its section's prefix.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	multi, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range multi.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

func (l *LogConfig) validate() error {
	switch l.Level {
	case "":
		l.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("level: %q is not debug, info, warn or error", l.Level)
	}
	switch l.Format {
	case "":
		l.Format = "text"
	case "text", "json":
	default:
		return fmt.Errorf("format: %q is not text or json", l.Format)
	}
	return nil
}

// virusRule is the name of the rule moat adds to act on the antivirus
// verdict.
const virusRule = "VIRUS_FOUND"

// addBuiltinRules adds what the antivirus needs to the rules, unless the
// file says otherwise: a clamd fault defers the message (451 4.7.1, so
// that nothing passes unscanned and nothing is refused for good), and a
// virus is refused with 554 5.7.0 (RFC 3463 X.7.0) or quarantined.
func (c *Config) addBuiltinRules() {
	// A greylist store that fails defers the recipient (451) rather than
	// accept it untested or refuse it for good.
	if _, set := c.Rules.Filters["greylist"]; !set && !contains(c.Filters.Disabled, "greylist") {
		if c.Rules.Filters == nil {
			c.Rules.Filters = map[string]rules.FilterConfig{}
		}
		c.Rules.Filters["greylist"] = rules.FilterConfig{OnError: rules.OnErrorTempfail}
	}
	if contains(c.Filters.Disabled, "antivirus") {
		return
	}
	if _, set := c.Rules.Filters["antivirus"]; !set {
		if c.Rules.Filters == nil {
			c.Rules.Filters = map[string]rules.FilterConfig{}
		}
		c.Rules.Filters["antivirus"] = rules.FilterConfig{OnError: rules.OnErrorTempfail}
	}
	for _, r := range c.Rules.Rules {
		if r.Name == virusRule {
			return // the file defines it
		}
	}
	r := rules.RuleConfig{Name: virusRule, Expr: `has("VIRUS")`, Action: c.Filters.VirusAction,
		Reason: "clamd found a virus"}
	if r.Action == "reject" {
		r.Reply = "554 5.7.0"
	}
	c.Rules.Rules = append(c.Rules.Rules, r)
}
