package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/moatmail/moat/delivery/dkimsign"
	"github.com/moatmail/moat/delivery/imapd"
	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/pop3d"
	"github.com/moatmail/moat/delivery/queue"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/antivirus"
	"github.com/moatmail/moat/filters/attachments"
	"github.com/moatmail/moat/filters/bayes"
	"github.com/moatmail/moat/filters/content/mimecheck"
	"github.com/moatmail/moat/filters/dkim"
	"github.com/moatmail/moat/filters/dmarc"
	"github.com/moatmail/moat/filters/dnsbl"
	"github.com/moatmail/moat/filters/dnsxl"
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
	"github.com/moatmail/moat/filters/uribl"
	"github.com/moatmail/moat/gateway"
	"github.com/moatmail/moat/gateway/metrics"
	"github.com/moatmail/moat/gateway/throttle"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/quarantine"
	"github.com/moatmail/moat/rules"
)

// app is a running moat: every part wired together.
type app struct {
	cfg   *Config
	log   *slog.Logger
	store *mailstore.Store
	quar  *quarantine.Quarantine
	bayes *bayes.Classifier // owns the token store
	// dns is the one resolver of the process: every check asks it, and
	// its cache survives reloads.
	dns *resolver.DNS
	// greylist and rates are the state of greylisting and rate limits,
	// kept across reloads; now is their clock (nil: time.Now).
	greylist greylist.Store
	rates    ratelimit.Store
	now      func() time.Time
	// state opened those stores (and the classifier's) where [state]
	// says; it holds the Redis client.
	state *sharedState
	// filters are those of the configuration in force, to close when a
	// reload replaces them.
	filtersMu sync.Mutex
	filters   builtFilters
	learner   *bayes.Autolearner
	review    *quarantine.Review
	smtp      *gateway.Server
	imap      *imapd.Server
	pop3      *pop3d.Server
	metrics   *metrics.Metrics
	// queue is the outbound queue (delivery/queue), its workers running
	// until Close; verifier checks relay domains' recipients. Both are
	// for the gateway to use (gateway.Deps).
	queue     *queue.Queue
	verifier  *queue.Verifier
	http      *http.Server
	listeners map[string]net.Listener
	health    readiness
	wg        sync.WaitGroup
	stop      chan struct{}
	errc      chan error
}

// builtOnce are the parts built once per process and shared by every
// configuration a reload brings.
type builtOnce struct {
	// dns is the resolver every check asks (its cache outlives reloads).
	dns resolver.Resolver
	// bayes is the classifier over its token store; nil in check-config,
	// where the bayes filter is checked but not built.
	bayes *bayes.Classifier
	// obs observes the pipeline (metrics); may be nil.
	obs rules.Observer
	// dnsLookup, when set, counts the lookups of each check.
	dnsLookup func(check, qtype string)
	// greylist holds the greylisting state (nil in check-config: the
	// filter is checked but not built); rates the rate-limit buckets,
	// which a reload keeps.
	greylist greylist.Store
	rates    ratelimit.Store
	// now is the clock of the stateful checks (nil: time.Now).
	now func() time.Time
	// log is where checks that watch files or lists report (nil:
	// slog.Default).
	log *slog.Logger
	// listObs counts the DNS lists' lookups and health; may be nil.
	listObs dnsxl.Observer
	// greylistObs and rateObs count what those checks do; may be nil.
	greylistObs greylist.Observer
	rateObs     ratelimit.Observer
}

// resolverFor returns the resolver the named check asks: the shared one,
// counted per check when metrics are on.
func (o builtOnce) resolverFor(check string) resolver.Resolver {
	if o.dnsLookup == nil {
		return o.dns
	}
	return resolver.Counted(o.dns, func(qtype string) { o.dnsLookup(check, qtype) })
}

// builtFilters are the enabled filters of a configuration in pipeline
// order, with the parts of them the rest of moat talks to.
type builtFilters struct {
	list []filters.Filter
	// limiter is the rate limiter when ratelimit-rcpt is on: the session
	// tells it of unknown recipients.
	limiter *ratelimit.Limiter
	// geoip is the GeoIP filter when it is on; its databases are closed
	// once a reload has replaced it.
	geoip *geoip.Filter
}

// close releases what the filters hold open.
func (b builtFilters) close() {
	if b.geoip != nil {
		b.geoip.Close()
	}
}

// buildFilters returns the enabled filters. cls is the Bayes classifier of
// cfg, or nil.
func buildFilters(cfg *Config, once builtOnce, cls *bayes.Classifier) (_ builtFilters, err error) {
	var fs []filters.Filter
	var built builtFilters
	defer func() {
		if err != nil {
			built.close()
		}
	}()
	enabled := func(name string) bool { return !contains(cfg.Filters.Disabled, name) }
	if enabled("rdns") {
		f, err := rdns.New(cfg.Filters.RDNS, once.resolverFor("rdns"))
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("geoip") {
		f, err := geoip.New(cfg.Filters.GeoIP, geoip.Options{Log: once.log})
		if err != nil {
			return builtFilters{}, err
		}
		built.geoip = f
		fs = append(fs, f)
	}
	if enabled("earlytalker") {
		f, err := earlytalker.New(cfg.Filters.EarlyTalker)
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	var limiter *ratelimit.Limiter
	if enabled("ratelimit-connect") || enabled("ratelimit-mail") || enabled("ratelimit-rcpt") {
		rates := once.rates
		if rates == nil { // check-config
			rates = ratelimit.NewMemoryStore(cfg.Filters.RateLimit.MaxKeys)
		}
		l, err := ratelimit.New(cfg.Filters.RateLimit, rates, ratelimit.Options{Now: once.now, Observer: once.rateObs})
		if err != nil {
			return builtFilters{}, err
		}
		for _, f := range l.Filters() {
			if enabled(f.Name()) {
				fs = append(fs, f)
			}
		}
		if enabled("ratelimit-rcpt") {
			limiter = l // the session's unknown-recipient count
		}
	}
	if enabled("dnsbl") {
		f, err := dnsbl.New(cfg.Filters.DNSBL, once.resolverFor("dnsbl"), once.listObs, once.log)
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("greylist") && once.greylist != nil {
		f, err := greylist.New(cfg.Filters.Greylist, once.greylist, greylist.Options{Now: once.now, Observer: once.greylistObs})
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("spf") {
		f, err := spf.New(cfg.Filters.SPF, once.resolverFor("spf"))
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("headers") {
		f, err := headers.New(cfg.Filters.Headers)
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("mime") {
		f, err := mimecheck.New(cfg.Filters.MIME)
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("heuristics") {
		f, err := heuristics.New(cfg.Filters.Heuristics)
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("gtube") {
		f, err := gtube.New(cfg.Filters.GTUBE)
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("attachments") {
		f, err := attachments.New(cfg.Filters.Attachments)
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("dkim") {
		f, err := dkim.New(cfg.Filters.DKIM, once.resolverFor("dkim"))
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("dmarc") {
		f, err := dmarc.New(cfg.Filters.DMARC, once.resolverFor("dmarc"))
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("uribl") {
		f, err := uribl.New(cfg.Filters.URIBL, once.resolverFor("uribl"), once.listObs, once.log)
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	if enabled("bayes") && cls != nil {
		fs = append(fs, bayes.NewFilter(cls))
	}
	if enabled("antivirus") {
		f, err := antivirus.New(cfg.Filters.Antivirus)
		if err != nil {
			return builtFilters{}, err
		}
		fs = append(fs, f)
	}
	built.list, built.limiter = fs, limiter
	return built, nil
}

// judged is what buildJudge builds from a configuration.
type judged struct {
	judge *gateway.Judge
	// cls is the classifier reconfigured by the configuration (a reload
	// brings new bands and thresholds over the same store), nil when the
	// bayes filter is off.
	cls     *bayes.Classifier
	filters builtFilters
}

// buildJudge builds the filters, the pipeline with its rules, and the
// policies of a configuration over the parts built once.
func buildJudge(cfg *Config, once builtOnce) (_ judged, err error) {
	var j judged
	if once.bayes != nil && !contains(cfg.Filters.Disabled, "bayes") {
		if j.cls, err = once.bayes.WithConfig(cfg.Filters.Bayes); err != nil {
			return judged{}, err
		}
	}
	if j.filters, err = buildFilters(cfg, once, j.cls); err != nil {
		return judged{}, err
	}
	defer func() {
		if err != nil {
			j.filters.close()
		}
	}()
	pipeline, err := rules.NewPipeline(cfg.Rules, j.filters.list, once.obs)
	if err != nil {
		return judged{}, err
	}
	pols, err := policies.New(cfg.Policies)
	if err != nil {
		return judged{}, err
	}
	j.judge = &gateway.Judge{Pipeline: pipeline, Policies: pols, Content: cfg.Filters.Content}
	if j.filters.limiter != nil {
		j.judge.Recipients = j.filters.limiter
	}
	return j, nil
}

// reload applies a new configuration file to a running moat: filters,
// rules and policies change at once (for the next transaction). Other
// sections need a restart; reload says which. A configuration that does
// not load leaves the running one untouched.
func (a *app) reload(path string) error {
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	j, err := buildJudge(cfg, a.builtOnce())
	if err != nil {
		return err
	}
	a.smtp.SetJudge(j.judge)
	a.metrics.SetFilters(j.judge.Pipeline.Timeouts())
	a.learner.SetClassifier(j.cls)
	a.swapFilters(j.filters)
	old := a.cfg
	for _, sec := range []struct {
		key      string
		old, new any
	}{
		{"data_dir", old.DataDir, cfg.DataDir}, {"listen", old.Listen, cfg.Listen}, {"tls", old.TLS, cfg.TLS},
		{"dns", old.DNS, cfg.DNS}, {"state", old.State, cfg.State},
		{"smtp", old.SMTP, cfg.SMTP}, {"imap", old.IMAP, cfg.IMAP}, {"auth_throttle", old.Auth, cfg.Auth},
		{"quarantine", old.Quarantine, cfg.Quarantine}, {"log", old.Log, cfg.Log},
		{"queue", old.Queue, cfg.Queue}, {"route", old.Routes, cfg.Routes},
		{"dkim_signing", old.DKIMSigning, cfg.DKIMSigning},
	} {
		if !reflect.DeepEqual(sec.old, sec.new) {
			a.log.Warn("configuration section changed; it takes effect at the next restart", "section", sec.key)
		}
	}
	a.log.Info("configuration reloaded: filters, rules and policies are in effect", "config", path)
	return nil
}

// start opens the store, binds every listener and starts serving. The
// addresses actually bound are in app.listeners (tests listen on port 0).
func start(cfg *Config, log *slog.Logger, out io.Writer) (*app, error) {
	return startWith(cfg, log, out, startOptions{})
}

// startOptions are what tests change in a started moat.
type startOptions struct {
	// now is the clock of greylisting and rate limits (nil: time.Now),
	// so that a test can pass a greylisting delay without waiting.
	now func() time.Time
	// outbound and verifier stand for the outbound queue and its
	// recipient callout (delivery/queue) in tests.
	outbound queue.Enqueuer
	verifier queue.RecipientVerifier
}

// startWith is start with options.
func startWith(cfg *Config, log *slog.Logger, out io.Writer, opts startOptions) (*app, error) {
	a := &app{cfg: cfg, log: log, listeners: make(map[string]net.Listener), stop: make(chan struct{}),
		errc: make(chan error, 8), now: opts.now}
	ok := false
	defer func() {
		if !ok {
			a.Close(context.Background())
		}
	}()
	var err error
	if a.store, err = mailstore.Open(cfg.Store); err != nil {
		return nil, err
	}
	if a.quar, err = quarantine.New(cfg.Quarantine, a.store); err != nil {
		return nil, err
	}
	if err := a.ensureDemoUser(out); err != nil {
		return nil, err
	}
	tlsConfig, generated, err := gateway.LoadTLS(cfg.TLS, cfg.DataDir, cfg.SMTP.Hostname)
	if err != nil {
		return nil, err
	}
	if generated {
		log.Info("generated a self-signed certificate", "dir", filepath.Join(cfg.DataDir, "tls"))
	}
	a.metrics = metrics.New()
	if a.state, err = openState(cfg.State, a.metrics); err != nil {
		return nil, err
	}
	if a.bayes, err = a.state.classifier(cfg.Filters.Bayes, cfg.DataDir); err != nil {
		return nil, err
	}
	if a.dns, err = resolver.New(cfg.DNS); err != nil {
		return nil, err
	}
	// The greylisting state is opened whether or not the filter is on, so
	// that a reload can switch it on.
	if a.greylist, err = a.state.greylist(cfg.Filters.Greylist, cfg.DataDir); err != nil {
		return nil, err
	}
	a.rates = a.state.rates(cfg.Filters.RateLimit)
	if err := a.openQueue(); err != nil {
		return nil, err
	}
	j, err := buildJudge(cfg, a.builtOnce())
	if err != nil {
		return nil, err
	}
	a.swapFilters(j.filters)
	a.metrics.SetFilters(j.judge.Pipeline.Timeouts())
	if j.filters.geoip != nil && len(j.filters.geoip.Databases()) == 0 {
		log.Info("no GeoIP database configured: the geoip filter finds nothing (filters.geoip.country_db, asn_db)")
	}
	judge, cls := j.judge, j.cls
	// At most two messages learn at once, beside the sessions.
	a.learner = bayes.NewAutolearner(cls, 2, log, func(bayes.Class) { a.metrics.Review("autolearn") })
	th, err := throttle.New(cfg.Auth)
	if err != nil {
		return nil, err
	}
	deps := gateway.Deps{
		Judge: judge, Store: a.store, Quarantine: a.quar, Observer: a.metrics, Logger: log,
		Learn:    func(msg *filters.Message, v rules.Verdict) { a.learner.Learn(msg, v.Score, v.Symbols) },
		Outbound: a.queue, Verifier: a.verifier, Throttle: th,
	}
	// A test may stand in for the queue or the callout.
	if opts.outbound != nil {
		deps.Outbound = opts.outbound
	}
	if opts.verifier != nil {
		deps.Verifier = opts.verifier
	}
	if err := a.checkRelay(cfg, deps); err != nil {
		return nil, err
	}
	if len(cfg.DKIMSigning.Domains) > 0 {
		signer, err := dkimsign.New(cfg.DKIMSigning)
		if err != nil {
			return nil, err
		}
		deps.Signer = signer
	}
	// Released mail of relay domains goes on through the same queue.
	a.quar.SetOnward(deps.Outbound)
	if a.smtp, err = gateway.New(cfg.SMTP, tlsConfig, deps); err != nil {
		return nil, err
	}
	a.imap = imapd.New(cfg.IMAP, a.store, tlsConfig, th, log)
	a.imap.Observer = loginObserver{a.metrics, "imap"}
	a.pop3 = pop3d.New(cfg.POP3, a.store, tlsConfig, th, log)
	a.pop3.Observer = loginObserver{a.metrics, "pop3"}
	a.review = quarantine.NewReview(a.quar, a.bayes, log, a.metrics.Review)
	a.imap.Reviewer = a.review
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.metrics.Handler())
	a.health.ping = a.store.Ping
	a.health.handle(mux)
	a.watchOps(tlsConfig)
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	for _, l := range []struct {
		name, addr string
		serve      func(net.Listener) error
	}{
		{"smtp", cfg.Listen.SMTP, func(l net.Listener) error { return a.smtp.Serve(l, gateway.ListenOptions{Name: "mx"}) }},
		{"smtps", cfg.Listen.SMTPS, func(l net.Listener) error {
			return a.smtp.Serve(l, gateway.ListenOptions{Name: "mxs", ImplicitTLS: true})
		}},
		{"submission", cfg.Listen.Submission, func(l net.Listener) error {
			return a.smtp.Serve(l, gateway.ListenOptions{Name: "submission", Submission: true})
		}},
		{"submissions", cfg.Listen.Submissions, func(l net.Listener) error {
			return a.smtp.Serve(l, gateway.ListenOptions{Name: "submissions", ImplicitTLS: true, Submission: true})
		}},
		{"imap", cfg.Listen.IMAP, a.imap.Serve},
		{"imaps", cfg.Listen.IMAPS, func(l net.Listener) error { return a.imap.Serve(tlsListener(l, tlsConfig)) }},
		{"pop3", cfg.Listen.POP3, a.pop3.Serve},
		{"pop3s", cfg.Listen.POP3S, func(l net.Listener) error { return a.pop3.Serve(tlsListener(l, tlsConfig)) }},
		{"metrics", cfg.Listen.Metrics, a.serveMetrics},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return nil, fmt.Errorf("listen.%s: %w", l.name, err)
		}
		a.listeners[l.name] = ln
		serve := l.serve
		name := l.name
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
				a.errc <- fmt.Errorf("%s listener: %w", name, err)
			}
		}()
		log.Info("listening", "listener", name, "addr", ln.Addr().String())
	}
	a.wg.Add(1)
	go func() { // the quarantine's upkeep, hourly until Close
		defer a.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-a.stop; cancel() }()
		a.quar.Maintain(ctx, time.Hour, "postmaster@"+cfg.SMTP.Hostname, log)
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-a.stop; cancel() }()
		greylist.RunExpiry(ctx, a.greylist, cfg.Filters.Greylist.ExpireInterval,
			greylist.Options{Now: a.now, Observer: greylistObserver{a.metrics, log}})
	}()
	if cls != nil {
		a.wg.Add(1)
		go func() { // the classifier's model read ahead of the first message
			defer a.wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-a.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			start := time.Now()
			t, err := cls.Warm(ctx)
			if err != nil {
				log.Info("bayes model not read ahead; the first message reads it", "err", err)
				return
			}
			log.Info("bayes model read", "spam", t.Spam, "ham", t.Ham, "duration", time.Since(start).Round(time.Millisecond))
		}()
	}
	a.queue.Start()
	ok = true
	a.health.ready.Store(true)
	return a, nil
}

// openQueue opens the outbound queue over <data_dir>/queue, with its
// routes, the recipient verifier of the relay routes, and its metrics.
func (a *app) openQueue() error {
	routes, err := queue.NewRoutes(a.cfg.Routes)
	if err != nil {
		return err
	}
	if a.verifier, err = queue.NewVerifier(routes, queue.VerifierOptions{Hostname: a.cfg.SMTP.Hostname, Log: a.log}); err != nil {
		return err
	}
	for _, r := range a.cfg.Routes {
		if r.Type == queue.RouteRelay && (r.Verify == "" || r.Verify == "none") {
			for _, d := range r.Domains {
				if contains(a.cfg.SMTP.RelayDomains, d) {
					a.log.Warn("relay domain without recipient verification: every recipient is accepted, and the downstream's refusals become bounces (backscatter); set verify on its [[route]]", "domain", d)
				}
			}
		}
	}
	obs := a.metrics.Queue(func() queue.Stats {
		if a.queue == nil {
			return queue.Stats{}
		}
		return a.queue.Stats()
	})
	a.queue, err = queue.Open(a.cfg.Queue, queue.Options{
		Dir: filepath.Join(a.cfg.DataDir, "queue"), Hostname: a.cfg.SMTP.Hostname, Routes: routes,
		Resolver: resolver.Counted(a.dns, func(qtype string) { a.metrics.DNSLookup("queue", qtype) }),
		Local:    a.deliverLocal, Observer: obs, Log: a.log, Now: a.now,
	})
	if errors.Is(err, queue.ErrLocked) {
		return fmt.Errorf("queue: %w (is another moat running on %s?)", err, a.cfg.DataDir)
	}
	return err
}

// deliverLocal delivers a queued message (a bounce to a local sender, a
// local recipient of a submission) into a user's INBOX.
func (a *app) deliverLocal(ctx context.Context, m *queue.Message) error {
	targets := make([]mailstore.Target, 0, len(m.Rcpts))
	for _, r := range m.Rcpts {
		u, err := a.store.LookupUser(ctx, r)
		if errors.Is(err, mailstore.ErrNoUser) {
			return queue.ErrNoRecipient
		}
		if err != nil {
			return err
		}
		targets = append(targets, mailstore.Target{UserID: u.ID, Mailbox: "INBOX"})
	}
	_, err := a.store.Deliver(ctx, &mailstore.Delivery{Header: m.Header, Body: m.Body, Targets: targets})
	return err
}

// checkRelay checks at start what relay domains need beyond the file: an
// outbound queue, and a quarantine owner who is an admin of the store.
func (a *app) checkRelay(cfg *Config, deps gateway.Deps) error {
	if len(cfg.SMTP.RelayDomains) > 0 && deps.Outbound == nil {
		return errors.New("smtp.relay_domains: no outbound queue to send relay domains' mail on to")
	}
	if owner := cfg.SMTP.QuarantineOwner; owner != "" {
		u, err := a.store.LookupUser(context.Background(), owner)
		if errors.Is(err, mailstore.ErrNoUser) {
			return fmt.Errorf("smtp.quarantine_owner: no user %s (create it: moat user add -admin %s)", owner, owner)
		}
		if err != nil {
			return err
		}
		if !u.Admin {
			return fmt.Errorf("smtp.quarantine_owner: %s is not an admin (moat user add -admin)", owner)
		}
	}
	return nil
}

func (a *app) serveMetrics(l net.Listener) error {
	return a.http.Serve(l)
}

// Addr returns the bound address of a listener ("smtp", "imap", ...).
func (a *app) Addr(name string) string {
	if l, ok := a.listeners[name]; ok {
		return l.Addr().String()
	}
	return ""
}

// Close stops listening, lets open SMTP sessions finish within ctx, and
// closes the store.
func (a *app) Close(ctx context.Context) error {
	select {
	case <-a.stop:
		return nil
	default:
		close(a.stop)
	}
	a.health.ready.Store(false)
	var errs []error
	if a.smtp != nil {
		errs = append(errs, a.smtp.Shutdown(ctx))
	}
	if a.imap != nil {
		errs = append(errs, a.imap.Close())
	}
	if a.pop3 != nil {
		if err := a.pop3.Close(); !errors.Is(err, pop3d.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if a.http != nil {
		errs = append(errs, a.http.Shutdown(ctx))
	}
	for _, l := range a.listeners {
		l.Close()
	}
	a.wg.Wait()
	if a.queue != nil {
		// Deliveries in progress finish within ctx, or are cancelled
		// and retried at the next start.
		errs = append(errs, a.queue.Close(ctx))
	}
	if a.learner != nil {
		a.learner.Close()
	}
	if a.review != nil {
		a.review.Close()
	}
	if a.bayes != nil {
		errs = append(errs, a.bayes.Close())
	}
	if a.greylist != nil {
		errs = append(errs, a.greylist.Close())
	}
	errs = append(errs, a.state.Close())
	a.swapFilters(builtFilters{})
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	return errors.Join(errs...)
}

// ensureDemoUser creates the demo user on a store without users and prints
// its password.
func (a *app) ensureDemoUser(out io.Writer) error {
	addr := a.cfg.Demo.User
	if addr == "" {
		return nil
	}
	pwFile := filepath.Join(a.cfg.DataDir, "demo-password")
	ctx := context.Background()
	if _, err := a.store.LookupUser(ctx, addr); err == nil {
		if pw, err := os.ReadFile(pwFile); err == nil {
			fmt.Fprintf(out, "demo user: %s  password: %s\n", addr, strings.TrimSpace(string(pw)))
		}
		return nil
	}
	users, err := a.store.Users(ctx)
	if err != nil || len(users) > 0 {
		return err
	}
	raw := make([]byte, 12)
	rand.Read(raw)
	pw := base64.RawURLEncoding.EncodeToString(raw)
	if _, err := a.store.AddUser(ctx, addr, pw, mailstore.RoleUser); err != nil {
		return fmt.Errorf("demo user: %w", err)
	}
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("demo user: %w", err)
	}
	fmt.Fprintf(out, "created demo user: %s  password: %s\n", addr, pw)
	return nil
}

// swapFilters keeps the filters of the configuration in force and closes
// those of the one before.
func (a *app) swapFilters(b builtFilters) {
	a.filtersMu.Lock()
	old := a.filters
	a.filters = b
	a.filtersMu.Unlock()
	old.close()
}

// builtOnce returns the parts of a that every configuration shares.
func (a *app) builtOnce() builtOnce {
	return builtOnce{dns: a.dns, bayes: a.bayes, obs: a.metrics, dnsLookup: a.metrics.DNSLookup, log: a.log,
		greylist: a.greylist, rates: a.rates, now: a.now, listObs: a.metrics,
		greylistObs: greylistObserver{a.metrics, a.log}, rateObs: a.metrics}
}

// greylistObserver counts greylisting outcomes and logs failed expiry
// runs.
type greylistObserver struct {
	m   *metrics.Metrics
	log *slog.Logger
}

func (o greylistObserver) Checked(outcome string) { o.m.Greylist(outcome) }

func (o greylistObserver) Expired(removed int, err error) {
	if err != nil {
		o.log.Error("greylist expiry failed", "err", err)
	} else if removed > 0 {
		o.log.Info("greylist records expired", "records", removed)
	}
}

// loginObserver tells metrics which protocol a failed login came by.
type loginObserver struct {
	m        *metrics.Metrics
	protocol string
}

func (o loginObserver) LoginFailed(reason string) { o.m.LoginFailed(o.protocol, reason) }
