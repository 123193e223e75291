package queue

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config configures the outbound queue (TOML section [queue]). Start from
// DefaultConfig: a zero field is a value, not a request for the default.
type Config struct {
	// Workers bounds the deliveries in progress at once, every
	// destination together (TOML workers, default 20; Postfix's
	// default_process_limit is 100, for a whole MTA).
	Workers int `toml:"workers"`
	// PerDestination bounds the deliveries in progress at once to one
	// destination: a recipient domain on the Internet, or one relay route
	// (TOML per_destination, default 10; Postfix's
	// default_destination_concurrency_limit is 20). A route's concurrency
	// overrides it.
	PerDestination int `toml:"per_destination"`
	// MinBackoff is the wait after the first failed attempt; it doubles at
	// each attempt up to MaxBackoff (TOML min_backoff, default "5m";
	// max_backoff, default "1h": Postfix's minimal_backoff_time 300s and
	// maximal_backoff_time 4000s).
	MinBackoff time.Duration `toml:"min_backoff"`
	MaxBackoff time.Duration `toml:"max_backoff"`
	// Lifetime is how long a recipient is retried before it is bounced as
	// expired (TOML lifetime, default "120h": five days, Postfix's
	// maximal_queue_lifetime and RFC 5321 §4.5.4.1's "at least 4-5 days").
	Lifetime time.Duration `toml:"lifetime"`
	// BounceLifetime is the lifetime of a bounce moat itself sends (TOML
	// bounce_lifetime, default "120h"; Postfix's bounce_queue_lifetime).
	BounceLifetime time.Duration `toml:"bounce_lifetime"`
	// DelayWarning, when positive, sends the envelope sender one
	// "delayed" DSN (RFC 3464 Action: delayed) for a recipient still
	// undelivered after that long (TOML delay_warning, default "0s": off,
	// as Postfix's delay_warning_time).
	DelayWarning time.Duration `toml:"delay_warning"`
	// ConnectTimeout bounds connecting to a server and its greeting (TOML
	// connect_timeout, default "30s"; Postfix's smtp_connect_timeout).
	ConnectTimeout time.Duration `toml:"connect_timeout"`
	// CommandTimeout bounds each command's reply (TOML command_timeout,
	// default "5m", RFC 5321 §4.5.3.2); the end of DATA waits twice as
	// long (§4.5.3.2.6 asks 10 minutes).
	CommandTimeout time.Duration `toml:"command_timeout"`
	// MTASTS enables MTA-STS (RFC 8461) for Internet delivery: a domain
	// that publishes a policy in enforce mode gets its mail only over
	// verified TLS to the MX hosts the policy names (TOML mta_sts,
	// default true).
	MTASTS bool `toml:"mta_sts"`
	// MXPort is the port MX hosts are reached on (TOML mx_port, default
	// 25). FOR TESTS ONLY: the Internet listens on 25; tests point MX
	// delivery at a loopback server with it.
	MXPort int `toml:"mx_port"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Workers:        20,
		PerDestination: 10,
		MinBackoff:     5 * time.Minute,
		MaxBackoff:     time.Hour,
		Lifetime:       120 * time.Hour,
		BounceLifetime: 120 * time.Hour,
		ConnectTimeout: 30 * time.Second,
		CommandTimeout: 5 * time.Minute,
		MTASTS:         true,
		MXPort:         25,
	}
}

// Validate reports the first fault of each key, naming it.
func (c *Config) Validate() error {
	var errs []error
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers: %d is not a positive number", c.Workers))
	}
	if c.PerDestination < 1 {
		errs = append(errs, fmt.Errorf("per_destination: %d is not a positive number", c.PerDestination))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"min_backoff", c.MinBackoff}, {"max_backoff", c.MaxBackoff}, {"lifetime", c.Lifetime},
		{"bounce_lifetime", c.BounceLifetime}, {"connect_timeout", c.ConnectTimeout}, {"command_timeout", c.CommandTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %v is not a positive duration", d.key, d.v))
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("max_backoff: %v is shorter than min_backoff %v", c.MaxBackoff, c.MinBackoff))
	}
	if c.DelayWarning < 0 {
		errs = append(errs, fmt.Errorf("delay_warning: %v is negative", c.DelayWarning))
	}
	if c.MXPort < 1 || c.MXPort > 65535 {
		errs = append(errs, fmt.Errorf("mx_port: %d is not a port", c.MXPort))
	}
	return errors.Join(errs...)
}

// The route types.
const (
	RouteLocal = "local" // the integrated store
	RouteRelay = "relay" // downstream servers
)

// The TLS levels of a relay route.
const (
	TLSRequired      = "required"
	TLSOpportunistic = "opportunistic"
	TLSNone          = "none"
)

// RouteConfig is one [[route]] table: where mail for some domains goes.
// Domains without a route, and not local, go to the Internet by MX.
type RouteConfig struct {
	// Domains are the recipient domains of the route (TOML domains).
	Domains []string `toml:"domains"`
	// Type is "local" (the integrated store) or "relay" (TOML type,
	// default "relay").
	Type string `toml:"type"`
	// Hosts are the downstream servers, "host" or "host:port" (TOML
	// hosts; port 25 for SMTP, 24 for LMTP).
	Hosts []string `toml:"hosts"`
	// Protocol is "smtp" or "lmtp" (TOML protocol, default "smtp").
	Protocol string `toml:"protocol"`
	// Balance is "ordered" (the first host that answers, then the next:
	// a primary and its backups) or "balanced" (a different first host
	// for each delivery, round robin) (TOML balance, default "ordered").
	Balance string `toml:"balance"`
	// TLS is "required" (STARTTLS or no delivery, the certificate
	// verified), "opportunistic" (STARTTLS when offered, unverified, as
	// Postfix's "may") or "none" (TOML tls, default "opportunistic").
	TLS string `toml:"tls"`
	// CAFile verifies the downstream's certificate against these PEM
	// roots instead of the system's (TOML ca_file; tls = "required").
	CAFile string `toml:"ca_file"`
	// PinSHA256 accepts a downstream certificate whose public key's
	// SHA-256 (of the DER SubjectPublicKeyInfo, RFC 7469 §2.4; hex or
	// base64) is listed, whoever signed it (TOML pin_sha256;
	// tls = "required").
	PinSHA256 []string `toml:"pin_sha256"`
	// ClientCert and ClientKey are a PEM certificate and key moat shows
	// the downstream (TOML client_cert, client_key).
	ClientCert string `toml:"client_cert"`
	ClientKey  string `toml:"client_key"`
	// AuthUser and AuthPasswordFile log in with AUTH PLAIN (RFC 4616)
	// after STARTTLS (TOML auth_user, auth_password_file: a file holding
	// the password; tls = "required").
	AuthUser         string `toml:"auth_user"`
	AuthPasswordFile string `toml:"auth_password_file"`
	// Concurrency bounds the deliveries in progress to this route (TOML
	// concurrency, default: queue.per_destination).
	Concurrency int `toml:"concurrency"`
	// Verify is how moat checks a recipient at RCPT: "none", "list"
	// (verify_list and verify_file) or "callout" (asking a downstream
	// host: MAIL FROM:<>, RCPT TO, QUIT) (TOML verify, default "none").
	Verify string `toml:"verify"`
	// VerifyList and VerifyFile are the known addresses for verify =
	// "list": addresses inline, or a file of one address a line (# starts
	// a comment), read at start.
	VerifyList []string `toml:"verify_list"`
	VerifyFile string   `toml:"verify_file"`
	// CalloutPositiveTTL and CalloutNegativeTTL are how long a callout's
	// "exists" and "does not exist" are remembered (TOML
	// callout_positive_ttl, default "24h"; callout_negative_ttl, default
	// "1h"). Shorter than Postfix's address_verify (31d and 3d): the
	// downstream is the organisation's own server, whose users change.
	CalloutPositiveTTL time.Duration `toml:"callout_positive_ttl"`
	CalloutNegativeTTL time.Duration `toml:"callout_negative_ttl"`
}

// Validate fills the defaults and reports each fault, naming its key.
func (r *RouteConfig) Validate() error {
	var errs []error
	if len(r.Domains) == 0 {
		errs = append(errs, errors.New("domains: must name at least one domain"))
	}
	for i, d := range r.Domains {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d == "" || strings.ContainsAny(d, "@ []") {
			errs = append(errs, fmt.Errorf("domains[%d]: %q is not a domain", i, r.Domains[i]))
		}
		r.Domains[i] = d
	}
	if r.Type == "" {
		r.Type = RouteRelay
	}
	if r.Type == RouteLocal {
		if len(r.Hosts) > 0 || r.Verify != "" && r.Verify != "none" {
			errs = append(errs, errors.New("hosts, verify: a local route takes neither"))
		}
		return errors.Join(errs...)
	}
	if r.Type != RouteRelay {
		errs = append(errs, fmt.Errorf("type: %q is not local or relay", r.Type))
		return errors.Join(errs...)
	}
	r.Protocol = defaultString(r.Protocol, "smtp")
	if r.Protocol != "smtp" && r.Protocol != "lmtp" {
		errs = append(errs, fmt.Errorf("protocol: %q is not smtp or lmtp", r.Protocol))
	}
	if len(r.Hosts) == 0 {
		errs = append(errs, errors.New("hosts: a relay route needs at least one host"))
	}
	for i, h := range r.Hosts {
		if _, err := hostPort(h, 25); err != nil {
			errs = append(errs, fmt.Errorf("hosts[%d]: %w", i, err))
		}
	}
	r.Balance = defaultString(r.Balance, "ordered")
	if r.Balance != "ordered" && r.Balance != "balanced" {
		errs = append(errs, fmt.Errorf("balance: %q is not ordered or balanced", r.Balance))
	}
	r.TLS = defaultString(r.TLS, TLSOpportunistic)
	switch r.TLS {
	case TLSRequired, TLSOpportunistic, TLSNone:
	default:
		errs = append(errs, fmt.Errorf("tls: %q is not required, opportunistic or none", r.TLS))
	}
	if r.TLS != TLSRequired {
		// Verification and a password only make sense where TLS cannot be
		// stripped by whoever sits on the path.
		for _, k := range []struct{ key, v string }{{"ca_file", r.CAFile}, {"auth_user", r.AuthUser}} {
			if k.v != "" {
				errs = append(errs, fmt.Errorf("%s: needs tls = \"required\"", k.key))
			}
		}
		if len(r.PinSHA256) > 0 {
			errs = append(errs, errors.New("pin_sha256: needs tls = \"required\""))
		}
	}
	for i, p := range r.PinSHA256 {
		if _, err := parsePin(p); err != nil {
			errs = append(errs, fmt.Errorf("pin_sha256[%d]: %w", i, err))
		}
	}
	if (r.ClientCert == "") != (r.ClientKey == "") {
		errs = append(errs, errors.New("client_cert, client_key: set both or neither"))
	}
	if (r.AuthUser == "") != (r.AuthPasswordFile == "") {
		errs = append(errs, errors.New("auth_user, auth_password_file: set both or neither"))
	}
	if r.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency: %d is negative", r.Concurrency))
	}
	r.Verify = defaultString(r.Verify, "none")
	switch r.Verify {
	case "none", "callout":
	case "list":
		if len(r.VerifyList) == 0 && r.VerifyFile == "" {
			errs = append(errs, errors.New("verify_list, verify_file: verify = \"list\" needs one of them"))
		}
	default:
		errs = append(errs, fmt.Errorf("verify: %q is not none, list or callout", r.Verify))
	}
	if r.CalloutPositiveTTL == 0 {
		r.CalloutPositiveTTL = 24 * time.Hour
	}
	if r.CalloutNegativeTTL == 0 {
		r.CalloutNegativeTTL = time.Hour
	}
	if r.CalloutPositiveTTL < 0 || r.CalloutNegativeTTL < 0 {
		errs = append(errs, errors.New("callout_positive_ttl, callout_negative_ttl: must not be negative"))
	}
	return errors.Join(errs...)
}

// ValidateRoutes validates each route and refuses a domain named twice.
// Each error names the route by its index: route[2].tls.
func ValidateRoutes(routes []RouteConfig) error {
	var errs []error
	seen := map[string]int{}
	for i := range routes {
		for _, err := range flatten(routes[i].Validate()) {
			errs = append(errs, fmt.Errorf("route[%d].%w", i, err))
		}
		for _, d := range routes[i].Domains {
			if j, ok := seen[d]; ok {
				errs = append(errs, fmt.Errorf("route[%d].domains: %q is in route[%d] already", i, d, j))
			}
			seen[d] = i
		}
	}
	return errors.Join(errs...)
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if m, ok := err.(interface{ Unwrap() []error }); ok {
		return m.Unwrap()
	}
	return []error{err}
}

func defaultString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// hostPort returns h as host:port, with port def when h has none.
func hostPort(h string, def int) (string, error) {
	if h == "" {
		return "", errors.New("empty host")
	}
	if host, port, err := net.SplitHostPort(h); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return "", fmt.Errorf("%q is not host:port", h)
		}
		return h, nil
	}
	if strings.ContainsAny(h, " /@") {
		return "", fmt.Errorf("%q is not a host", h)
	}
	return net.JoinHostPort(strings.Trim(h, "[]"), strconv.Itoa(def)), nil
}

// parsePin decodes a SHA-256 pin written in hex or base64.
func parsePin(p string) ([]byte, error) {
	if b, err := hex.DecodeString(p); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(p); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, fmt.Errorf("%q is not a SHA-256 digest in hex or base64", p)
}
