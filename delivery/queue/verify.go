package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Verifier implements RecipientVerifier for the relay routes: by a list
// of known addresses, or by a callout to the route's downstream (RFC 5321
// has no VRFY worth relying on; like Postfix's reject_unverified_recipient,
// moat asks MAIL FROM:<> and RCPT TO, then QUITs).
type Verifier struct {
	routes *Routes
	cl     *client
	now    func() time.Time
	lists  map[*Route]map[string]bool
	cache  *calloutCache
	// Callouts counts the callouts made (cache misses); for tests and
	// logs.
	mu       sync.Mutex
	callouts int
}

var _ RecipientVerifier = (*Verifier)(nil)

// VerifierOptions are what a Verifier is built over.
type VerifierOptions struct {
	// Hostname is moat's name in EHLO.
	Hostname string
	// ConnectTimeout and CommandTimeout bound a callout (default 10s
	// each: the client waits at RCPT meanwhile).
	ConnectTimeout, CommandTimeout time.Duration
	Log                            *slog.Logger
	Now                            func() time.Time
	// CacheSize bounds the remembered answers (default 100000).
	CacheSize int
}

// NewVerifier builds the verifier of routes, reading their verify_file.
func NewVerifier(routes *Routes, opts VerifierOptions) (*Verifier, error) {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100000
	}
	v := &Verifier{routes: routes, now: opts.Now, lists: map[*Route]map[string]bool{},
		cl:    &client{hostname: opts.Hostname, connectTimeout: opts.ConnectTimeout, commandTimeout: opts.CommandTimeout, log: opts.Log},
		cache: &calloutCache{max: opts.CacheSize, m: map[string]calloutEntry{}}}
	if routes != nil {
		for _, r := range routes.byDomain {
			if r.cfg.Verify != "list" || v.lists[r] != nil {
				continue
			}
			set := map[string]bool{}
			for _, a := range r.cfg.VerifyList {
				set[strings.ToLower(a)] = true
			}
			if r.cfg.VerifyFile != "" {
				if err := readList(r.cfg.VerifyFile, set); err != nil {
					return nil, fmt.Errorf("route %s: verify_file: %w", r.Name(), err)
				}
			}
			v.lists[r] = set
		}
	}
	return v, nil
}

// readList adds the addresses of a file, one a line, to set.
func readList(path string, set map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			set[strings.ToLower(line)] = true
		}
	}
	return sc.Err()
}

// VerifyRecipient implements RecipientVerifier. A recipient of a domain
// without a relay route, or of a route with verify = "none", is not this
// verifier's to refuse: nil.
func (v *Verifier) VerifyRecipient(ctx context.Context, addr string) error {
	r := v.routes.Lookup(domainOf(addr))
	if r == nil || r.Type() != RouteRelay {
		return nil
	}
	key := strings.ToLower(addr)
	switch r.cfg.Verify {
	case "list":
		if v.lists[r][key] {
			return nil
		}
		return ErrNoRecipient
	case "callout":
		now := v.now()
		if exists, ok := v.cache.get(key, now); ok {
			if exists {
				return nil
			}
			return ErrNoRecipient
		}
		exists, err := v.callout(ctx, r, addr)
		if err != nil {
			return err
		}
		ttl := r.cfg.CalloutPositiveTTL
		if !exists {
			ttl = r.cfg.CalloutNegativeTTL
		}
		v.cache.put(key, exists, now.Add(ttl))
		if !exists {
			return ErrNoRecipient
		}
		return nil
	}
	return nil
}

// Callouts returns how many callouts were made.
func (v *Verifier) Callouts() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.callouts
}

// callout asks the route's hosts, in order, whether addr exists. Only
// definite answers are returned as (exists, nil); a 4xx is a *ReplyError;
// no host answering is another error (the gateway defers).
func (v *Verifier) callout(ctx context.Context, r *Route, addr string) (bool, error) {
	v.mu.Lock()
	v.callouts++
	v.mu.Unlock()
	var last error
	for _, t := range r.targets() {
		c, done, err := v.cl.connect(ctx, t, t.tls)
		if err != nil {
			last = err
			continue
		}
		exists, err := func() (bool, error) {
			defer done()
			if err := c.Mail("", nil); err != nil {
				return false, replyError(err)
			}
			err := c.Rcpt(addr, nil)
			c.Quit()
			if err == nil {
				return true, nil
			}
			var se *smtp.SMTPError
			if errors.As(err, &se) && se.Code >= 500 {
				v.cl.log.Info("queue: callout: no such recipient", "rcpt", addr, "host", t.name, "reply", oneLine(se.Error()))
				return false, nil
			}
			return false, replyError(err)
		}()
		if err == nil {
			return exists, nil
		}
		var re *ReplyError
		if errors.As(err, &re) {
			return false, err // the downstream's own answer: passed through
		}
		last = err
	}
	return false, fmt.Errorf("queue: callout for %s: no downstream host answered: %w", addr, last)
}

// replyError turns a go-smtp error into a *ReplyError when it is a 4xx,
// and any 5xx before RCPT (MAIL FROM:<> refused) into a 4xx: a
// downstream that refuses the null sender must not make moat refuse mail
// for good.
func replyError(err error) error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return err
	}
	re := &ReplyError{Code: se.Code, Enhanced: [3]int(se.EnhancedCode), Text: oneLine(se.Message)}
	if se.EnhancedCode == smtp.NoEnhancedCode || se.EnhancedCode == (smtp.EnhancedCode{}) {
		re.Enhanced = [3]int{4, 0, 0}
	}
	if re.Code >= 500 {
		re.Code = 451
		re.Enhanced[0] = 4
	}
	return re
}

// calloutCache remembers callout answers until they expire.
type calloutCache struct {
	mu  sync.Mutex
	max int
	m   map[string]calloutEntry
}

type calloutEntry struct {
	exists  bool
	expires time.Time
}

func (c *calloutCache) get(key string, now time.Time) (exists, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !now.Before(e.expires) {
		return false, false
	}
	return e.exists, true
}

func (c *calloutCache) put(key string, exists bool, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Full: drop the expired, then whatever map order gives first.
		now := time.Now()
		for k, e := range c.m {
			if !now.Before(e.expires) || len(c.m) >= c.max {
				delete(c.m, k)
			}
			if len(c.m) < c.max*9/10 {
				break
			}
		}
	}
	c.m[key] = calloutEntry{exists: exists, expires: expires}
}
