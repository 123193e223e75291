package queue

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
)

// Routes maps recipient domains to their route. A domain without a route
// goes to the Internet by MX.
type Routes struct {
	byDomain map[string]*Route
}

// Route is one configured route, ready to use.
type Route struct {
	cfg   RouteConfig
	hosts []string // host:port
	conf  *tls.Config
	auth  *credentials
	next  atomic.Uint32 // round robin for balance = "balanced"
}

// NewRoutes builds the routes of validated configurations: it reads the
// CA files, client certificates and password files.
func NewRoutes(cfgs []RouteConfig) (*Routes, error) {
	rs := &Routes{byDomain: map[string]*Route{}}
	for i, c := range cfgs {
		r, err := newRoute(c)
		if err != nil {
			return nil, fmt.Errorf("route[%d].%w", i, err)
		}
		for _, d := range c.Domains {
			rs.byDomain[strings.ToLower(d)] = r
		}
	}
	return rs, nil
}

func newRoute(c RouteConfig) (*Route, error) {
	r := &Route{cfg: c}
	if c.Type == RouteLocal {
		return r, nil
	}
	def := 25
	if c.Protocol == "lmtp" {
		def = 24
	}
	for _, h := range c.Hosts {
		hp, err := hostPort(h, def)
		if err != nil {
			return nil, fmt.Errorf("hosts: %w", err)
		}
		r.hosts = append(r.hosts, hp)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: no PEM certificate in %s", c.CAFile)
		}
	}
	if len(c.PinSHA256) > 0 {
		var pins [][]byte
		for _, p := range c.PinSHA256 {
			b, err := parsePin(p)
			if err != nil {
				return nil, fmt.Errorf("pin_sha256: %w", err)
			}
			pins = append(pins, b)
		}
		// A pinned key is trusted whoever signed its certificate and
		// whatever name it bears (as Postfix's tls_fingerprint level).
		conf.InsecureSkipVerify = true
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errPinMismatch
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
			for _, p := range pins {
				if bytes.Equal(p, sum[:]) {
					return nil
				}
			}
			return errPinMismatch
		}
	}
	if c.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("client_cert: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	r.conf = conf
	if c.AuthUser != "" {
		pw, err := os.ReadFile(c.AuthPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("auth_password_file: %w", err)
		}
		r.auth = &credentials{user: c.AuthUser, password: strings.TrimRight(string(pw), "\r\n")}
	}
	return r, nil
}

// errPinMismatch: the downstream's key is not among the pins.
var errPinMismatch = errors.New("certificate key matches no pin_sha256")

// Lookup returns the route of a domain, nil for the Internet.
func (rs *Routes) Lookup(domain string) *Route {
	if rs == nil {
		return nil
	}
	return rs.byDomain[strings.ToLower(strings.TrimSuffix(domain, "."))]
}

// Type is RouteLocal or RouteRelay.
func (r *Route) Type() string { return r.cfg.Type }

// Name names the route in logs and `moat queue`: its first domain.
func (r *Route) Name() string { return r.cfg.Domains[0] }

// Config returns the route's configuration.
func (r *Route) Config() RouteConfig { return r.cfg }

// targets returns the route's hosts in the order to try them.
func (r *Route) targets() []target {
	hosts := r.hosts
	if r.cfg.Balance == "balanced" && len(hosts) > 1 {
		k := int(r.next.Add(1)-1) % len(hosts)
		hosts = append(append([]string{}, hosts[k:]...), hosts[:k]...)
	}
	out := make([]target, len(hosts))
	for i, h := range hosts {
		name, _, _ := net.SplitHostPort(h)
		conf := r.conf
		if conf != nil && conf.ServerName == "" {
			conf = conf.Clone()
			conf.ServerName = name
		}
		out[i] = target{name: name, addr: h, lmtp: r.cfg.Protocol == "lmtp", tls: r.cfg.TLS, conf: conf,
			auth: r.auth, class: "relay"}
	}
	return out
}

// domainOf returns the domain of an address, lower case.
func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(addr[at+1:])
}
