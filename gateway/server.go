package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/queue"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
	"github.com/moatmail/moat/gateway/throttle"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/quarantine"
	"github.com/moatmail/moat/rules"
)

// Observer receives the counts the SMTP front exposes as metrics. Label
// values come from small fixed sets.
type Observer interface {
	// Connection counts a connection by listener and outcome ("accepted",
	// "refused_total", "refused_per_ip").
	Connection(listener, outcome string)
	// Reply counts a reply moat chose, by SMTP phase and code.
	Reply(phase string, code int)
	// Verdict counts a message decision and the authentication results
	// found for the message.
	Verdict(v rules.Verdict, auth []filters.AuthResult)
	// StoreError counts a failed write to the store or the quarantine.
	StoreError(op string)
}

type nopObserver struct{}

func (nopObserver) Connection(string, string)                   {}
func (nopObserver) Reply(string, int)                           {}
func (nopObserver) Verdict(rules.Verdict, []filters.AuthResult) {}
func (nopObserver) StoreError(string)                           {}

// Judge is what decides about mail: the filter pipeline with its rules, and
// the policies. It is replaced as a whole when the configuration is
// reloaded.
type Judge struct {
	Pipeline *rules.Pipeline
	Policies *policies.Set
	// Content bounds the MIME walk of each message (zero: defaults).
	Content content.Limits
	// Recipients, when set, is told of every recipient refused as
	// unknown, and defers every recipient of a client that has had too
	// many (a dictionary attack on user names must not learn which
	// exist).
	Recipients RecipientGuard
}

// RecipientGuard counts the recipients refused as unknown per client
// (filters/ratelimit's Limiter is one).
type RecipientGuard interface {
	// RefusalsOver reports whether ip has had too many recipients refused.
	RefusalsOver(ctx context.Context, ip netip.Addr) (bool, error)
	// RecipientRefused counts a refusal for ip and reports whether ip is
	// now over its allowance.
	RecipientRefused(ctx context.Context, ip netip.Addr) (bool, error)
}

// Deps are the parts the SMTP front hands messages to.
type Deps struct {
	Judge      *Judge
	Store      *mailstore.Store
	Quarantine *quarantine.Quarantine
	// Observer and Logger may be nil.
	Observer Observer
	Logger   *slog.Logger
	// Learn, when set, is told of every data-stage verdict with its
	// message (the classifier's autolearning). It must not block.
	Learn func(msg *filters.Message, v rules.Verdict)
	// Outbound takes the mail moat sends on: to relay domains'
	// recipients, submitted mail to other domains, and (through the
	// quarantine) released mail of both. Required with relay domains;
	// without it, submission refuses remote recipients.
	Outbound queue.Enqueuer
	// Verifier tells at RCPT whether a relay domain's recipient exists
	// downstream (one verifier for every relay domain: the caller routes
	// by domain). Nil accepts every recipient of a relay domain.
	Verifier queue.RecipientVerifier
	// Throttle slows failed submission logins per client and per
	// account; share the one of IMAP and POP3 so that a guesser gains
	// nothing by switching protocols. Nil: a throttle of defaults.
	Throttle *throttle.Throttle
	// Signer DKIM-signs submitted mail; nil signs nothing.
	Signer Signer
}

// Server is the SMTP front. One Server serves any number of listeners.
type Server struct {
	cfg     Config
	tls     *tls.Config
	deps    Deps
	obs     Observer
	log     *slog.Logger
	domains map[string]bool
	relays  map[string]bool
	judge   atomic.Pointer[Judge]
	// gate is the path of every submission password check; done closes
	// at Shutdown, ending its waits.
	gate      *throttle.Gate
	done      chan struct{}
	closeOnce sync.Once
	// submitFilters are the filters that run on submission.
	submitFilters map[string]bool

	connMu    sync.Mutex
	connTotal int
	connPerIP map[netip.Addr]int

	mu      sync.Mutex
	servers []*smtp.Server
}

// New returns an SMTP front. cfg must have been validated.
func New(cfg Config, tlsConfig *tls.Config, deps Deps) (*Server, error) {
	if deps.Judge == nil || deps.Judge.Pipeline == nil || deps.Judge.Policies == nil || deps.Store == nil || deps.Quarantine == nil {
		return nil, errors.New("gateway: pipeline, policies, store and quarantine are required")
	}
	if len(cfg.RelayDomains) > 0 && deps.Outbound == nil {
		return nil, errors.New("gateway: relay domains need an outbound queue")
	}
	s := &Server{
		cfg:       cfg,
		tls:       tlsConfig,
		deps:      deps,
		obs:       deps.Observer,
		log:       deps.Logger,
		domains:   make(map[string]bool),
		relays:    make(map[string]bool),
		connPerIP: make(map[netip.Addr]int),
		done:      make(chan struct{}),
	}
	s.gate = throttle.NewGate(deps.Throttle, cfg.Submission.AuthConcurrency, s.done)
	s.submitFilters = make(map[string]bool)
	for _, f := range cfg.Submission.Filters {
		s.submitFilters[f] = true
	}
	for _, d := range cfg.RelayDomains {
		s.relays[d] = true
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	for _, d := range cfg.LocalDomains {
		s.domains[d] = true
	}
	s.judge.Store(deps.Judge)
	return s, nil
}

// SetJudge replaces the pipeline and policies; transactions that start
// afterwards use the new ones, those under way finish with the old.
func (s *Server) SetJudge(j *Judge) {
	s.judge.Store(j)
}

// ListenOptions say how one listener speaks.
type ListenOptions struct {
	// Name labels the listener in logs and metrics ("mx", "mxs").
	Name string
	// ImplicitTLS makes the listener speak TLS from the first byte (RFC
	// 8314 §3.3); otherwise STARTTLS (RFC 3207) is offered when a
	// certificate is configured.
	ImplicitTLS bool
	// Submission makes it a message submission listener (RFC 6409, RFC
	// 8314): AUTH required before MAIL, only after TLS (unless
	// smtp.submission.allow_plaintext_loopback, for loopback clients),
	// any recipient, and only the checks of smtp.submission.filters.
	Submission bool
}

// Serve accepts SMTP connections on l until Close.
func (s *Server) Serve(l net.Listener, opts ListenOptions) error {
	name, implicitTLS := opts.Name, opts.ImplicitTLS
	var ln net.Listener = &limitListener{Listener: l, srv: s, name: name, implicit: implicitTLS, submission: opts.Submission}
	if implicitTLS {
		if s.tls == nil {
			return fmt.Errorf("listener %s: implicit TLS needs a certificate", name)
		}
		ln = tls.NewListener(ln, s.tls)
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = s.cfg.Hostname
	srv.MaxMessageBytes = s.cfg.MaxMessageBytes
	srv.MaxRecipients = s.cfg.MaxRecipients
	// go-smtp's line limit applies to commands and to DATA alike. Text
	// lines longer than max_line_length are accepted up to the message
	// size (Postfix takes them too, splitting at line_length_limit), so
	// go-smtp's limit is the message size and the session refuses
	// commands longer than max_line_length itself (commandTooLong).
	srv.MaxLineLength = int(s.cfg.MaxMessageBytes) + 2
	srv.ReadTimeout = s.cfg.CommandTimeout
	srv.WriteTimeout = s.cfg.CommandTimeout
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = log.New(slogWriter{s.log.With("listener", name)}, "", 0)
	if !implicitTLS {
		srv.TLSConfig = s.tls
	}
	// On submission the session decides when AUTH is allowed (after TLS,
	// or from loopback when configured) and answers 538 before; go-smtp's
	// own check would refuse the loopback case and answer 523.
	srv.AllowInsecureAuth = opts.Submission
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for open sessions to end
// until ctx is done, then closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	servers := s.servers
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			errs = append(errs, err)
			srv.Close()
		}
	}
	return errors.Join(errs...)
}

// isLocalDomain reports whether moat receives mail for domain.
func (s *Server) isLocalDomain(domain string) bool {
	return s.domains[domain]
}

// slogWriter sends go-smtp's internal error log to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("smtp", "error", string(p))
	return len(p), nil
}
