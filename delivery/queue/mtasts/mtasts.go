// Package mtasts is MTA-STS (RFC 8461) for moat's outbound queue: the
// _mta-sts TXT record, the policy fetched over HTTPS and cached, and the
// match of an MX name against it. Failures carry the result types of
// TLS-RPT (RFC 8460 §4.3) so that the logs can feed a report.
package mtasts

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moatmail/moat/filters/resolver"
)

// The policy modes (RFC 8461 §3.2).
const (
	ModeEnforce = "enforce"
	ModeTesting = "testing"
	ModeNone    = "none"
)

// Policy is a domain's MTA-STS policy.
type Policy struct {
	ID     string
	Mode   string
	MX     []string
	MaxAge time.Duration
	// Expires is when the cached policy must be fetched again.
	Expires time.Time
}

// Match reports whether an MX host name matches the policy's mx patterns
// (RFC 8461 §4.1: "*." matches exactly one leftmost label).
func (p *Policy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		pat = strings.ToLower(strings.TrimSuffix(pat, "."))
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if dot := strings.IndexByte(host, '.'); dot > 0 && host[dot+1:] == rest {
				return true
			}
		} else if host == pat {
			return true
		}
	}
	return false
}

// Errors by RFC 8460 result type.
var (
	ErrFetch   = errors.New("sts-policy-fetch-error")
	ErrInvalid = errors.New("sts-policy-invalid")
	ErrWebPKI  = errors.New("sts-webpki-invalid")
)

// ResultType returns the RFC 8460 result type of a Get error.
func ResultType(err error) string {
	for _, e := range []error{ErrWebPKI, ErrInvalid, ErrFetch} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "sts-policy-fetch-error"
}

// maxPolicy bounds a policy's size (RFC 8461 §3.3 suggests 64 KB).
const maxPolicy = 64 << 10

// maxMaxAge is RFC 8461 §3.2's upper bound of max_age (one year).
const maxMaxAge = 31557600 * time.Second

// Cache fetches and keeps policies. It is safe for concurrent use. With
// SetFile the policies survive restarts (RFC 8461 §5.1: a sender that
// forgot them would deliver in the clear to whoever blocks the next fetch).
type Cache struct {
	r      resolver.Resolver
	client *http.Client
	now    func() time.Time

	mu       sync.Mutex
	policies map[string]*Policy
	file     string
	saving   sync.Mutex // one writer of file at a time
}

// SetFile keeps the cache in path: the policies there that have not
// expired are loaded now, and the file is rewritten (atomically, fsync'd)
// whenever a policy is fetched. A file that cannot be read is an error;
// the cache stays empty and still writes to path.
func (c *Cache) SetFile(path string) error {
	c.mu.Lock()
	c.file = path
	c.mu.Unlock()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mta-sts cache: %w", err)
	}
	var stored map[string]*Policy
	if err := json.Unmarshal(b, &stored); err != nil {
		return fmt.Errorf("mta-sts cache %s: %w", path, err)
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for d, p := range stored {
		if p != nil && now.Before(p.Expires) && p.ID != "" {
			c.policies[d] = p
		}
	}
	return nil
}

// save writes the policies to the cache's file, if it has one.
func (c *Cache) save() error {
	c.saving.Lock()
	defer c.saving.Unlock()
	c.mu.Lock()
	path := c.file
	b, err := json.MarshalIndent(c.policies, "", "  ")
	c.mu.Unlock()
	if path == "" || err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// NewCache returns a cache asking r for the TXT records and client for the
// policies (nil: a client that dials through r, verifies against roots, or
// the system's when roots is nil, and follows no redirect).
func NewCache(r resolver.Resolver, client *http.Client, roots *x509.CertPool, now func() time.Time) *Cache {
	if client == nil {
		dialer := &net.Dialer{Timeout: 10 * time.Second}
		client = &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					host, port, err := net.SplitHostPort(addr)
					if err != nil {
						return nil, err
					}
					ips, err := r.LookupIP(ctx, host)
					if err != nil {
						return nil, err
					}
					var last error
					for _, ip := range ips {
						c, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
						if err == nil {
							return c, nil
						}
						last = err
					}
					return nil, last
				},
				ForceAttemptHTTP2: true,
			},
			// RFC 8461 §3.3: HTTP redirects MUST NOT be followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{r: r, client: client, now: now, policies: map[string]*Policy{}}
}

// Get returns domain's policy, nil when it has none. With an error, the
// returned policy is the cached one still valid, or nil: RFC 8461 §5.1, a
// failed fetch without a cached policy means no policy.
func (c *Cache) Get(ctx context.Context, domain string) (*Policy, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := c.now()
	c.mu.Lock()
	cached := c.policies[domain]
	c.mu.Unlock()
	if cached != nil && !now.Before(cached.Expires) {
		cached = nil
	}
	id, err := c.recordID(ctx, domain)
	if err != nil {
		return cached, err
	}
	if id == "" {
		return cached, nil // RFC 8461 §3.1: no record; a cached policy stands
	}
	if cached != nil && cached.ID == id {
		return cached, nil
	}
	p, err := c.fetch(ctx, domain)
	if err != nil {
		return cached, err
	}
	p.ID = id
	p.Expires = now.Add(p.MaxAge)
	c.mu.Lock()
	c.policies[domain] = p
	c.mu.Unlock()
	// A policy kept only in memory would still protect this run: a
	// failed write costs the next restart's protection, not this delivery.
	c.save()
	return p, nil
}

// recordID returns the id of the domain's "v=STSv1" TXT record, "" when
// there is none (RFC 8461 §3.1).
func (c *Cache) recordID(ctx context.Context, domain string) (string, error) {
	txts, err := c.r.LookupTXT(ctx, "_mta-sts."+domain)
	if resolver.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: TXT _mta-sts.%s: %w", ErrFetch, domain, err)
	}
	var ids []string
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1") {
			continue
		}
		id := ""
		for f := range strings.SplitSeq(t, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(f), "="); ok && k == "id" {
				id = v
			}
		}
		ids = append(ids, id)
	}
	switch {
	case len(ids) == 0:
		return "", nil
	case len(ids) > 1 || ids[0] == "":
		// RFC 8461 §3.1: several records, or no id: as if none.
		return "", fmt.Errorf("%w: _mta-sts.%s: %d STSv1 records", ErrInvalid, domain, len(ids))
	}
	return ids[0], nil
}

// fetch gets and parses the policy (RFC 8461 §3.3).
func (c *Cache) fetch(ctx context.Context, domain string) (*Policy, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://mta-sts."+domain+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: %w", ErrWebPKI, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %d", ErrFetch, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "text/plain") {
		return nil, fmt.Errorf("%w: content type %q", ErrInvalid, ct)
	}
	return Parse(io.LimitReader(resp.Body, maxPolicy))
}

// Parse reads a policy file (RFC 8461 §3.2).
func Parse(r io.Reader) (*Policy, error) {
	p := &Policy{}
	version := ""
	age := -1
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %q", ErrInvalid, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "version":
			version = v
		case "mode":
			p.Mode = v
		case "mx":
			p.MX = append(p.MX, v)
		case "max_age":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: max_age %q", ErrInvalid, v)
			}
			age = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	switch {
	case version != "STSv1":
		return nil, fmt.Errorf("%w: version %q", ErrInvalid, version)
	case p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone:
		return nil, fmt.Errorf("%w: mode %q", ErrInvalid, p.Mode)
	case age < 0:
		return nil, fmt.Errorf("%w: no max_age", ErrInvalid)
	case p.Mode != ModeNone && len(p.MX) == 0:
		return nil, fmt.Errorf("%w: no mx", ErrInvalid)
	}
	p.MaxAge = min(time.Duration(age)*time.Second, maxMaxAge)
	return p, nil
}
