// Package metrics exposes moat's counters to Prometheus. It implements the
// small observer interfaces of the other packages, so that none of them
// imports Prometheus itself.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/dnsxl"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/rules"
)

// Metrics holds moat's collectors in a registry of its own.
type Metrics struct {
	reg           *prometheus.Registry
	connections   *prometheus.CounterVec
	replies       *prometheus.CounterVec
	messages      *prometheus.CounterVec
	symbols       *prometheus.CounterVec
	filterSeconds *prometheus.HistogramVec
	filterErrors  *prometheus.CounterVec
	score         prometheus.Histogram
	storeErrors   *prometheus.CounterVec
	loginFailures *prometheus.CounterVec
	reviews       *prometheus.CounterVec
	authResults   *prometheus.CounterVec
	demands       *prometheus.CounterVec
	dnsLookups    *prometheus.CounterVec
	greylist      *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	listLookups   *prometheus.CounterVec
	listUsable    *prometheus.GaugeVec
	ops           opsMetrics
	state         stateMetrics
	submission    submissionMetrics // submission.go
}

// New registers every collector, plus the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_smtp_connections_total",
			Help: "SMTP connections by listener and outcome (accepted, refused_total, refused_per_ip).",
		}, []string{"listener", "outcome"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_smtp_replies_total",
			Help: "SMTP replies chosen by moat, by phase and class (2xx, 4xx, 5xx).",
		}, []string{"phase", "class"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_messages_total",
			Help: "Messages judged at DATA, by verdict action.",
		}, []string{"action"}),
		symbols: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_symbol_hits_total",
			Help: "Symbols in data-stage verdicts, by symbol name.",
		}, []string{"symbol"}),
		filterSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "moat_filter_duration_seconds",
			Help:    "Time each filter took, by filter and stage.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"filter", "stage"}),
		filterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_filter_failures_total",
			Help: "Filters that failed, by filter and outcome (error, timeout).",
		}, []string{"filter", "outcome"}),
		score: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "moat_message_score",
			Help:    "Score of messages judged at DATA.",
			Buckets: []float64{-10, -5, -1, 0, 1, 2, 3, 5, 7.5, 10, 15, 20, 50, 100},
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_store_errors_total",
			Help: "Failed writes or lookups in the store, by operation.",
		}, []string{"op"}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_login_failures_total",
			Help: "Failed logins by protocol and reason.",
		}, []string{"protocol", "reason"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_review_events_total",
			Help: "Events of users' reviews and of learning, by kind: training (ham, spam, dropped, unlearned, autolearn), allowlisted, released (moved out of Quarantine).",
		}, []string{"kind"}),
		authResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_auth_results_total",
			Help: "Authentication results of messages judged at DATA (RFC 8601), by method (spf, dkim, dmarc, iprev) and result.",
		}, []string{"method", "result"}),
		demands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_check_demands_total",
			Help: "Actions checks demanded whatever the score (DMARC's disposition, greylisting), by check, action and whether the policy honoured them.",
		}, []string{"check", "action", "honoured"}),
		dnsLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_dns_lookups_total",
			Help: "DNS lookups asked by each check (cache hits included), by check and record type.",
		}, []string{"check", "type"}),
		greylist: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_greylist_checks_total",
			Help: "Greylisting checks by outcome (new, early, passed, known, allowed, skip_*).",
		}, []string{"outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_ratelimit_hits_total",
			Help: "Checks held back by a rate limit, by limit (its configuration key).",
		}, []string{"limit"}),
		listLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_dnsbl_lookups_total",
			Help: "Lookups in the configured DNS lists (dnsbl, uribl), by zone and status (listed, not_listed, error, refused, malformed, unusable).",
		}, []string{"zone", "status"}),
		listUsable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "moat_dnsbl_zone_usable",
			Help: "1 when a DNS list answered as it should at its last probe, 0 when it answers everything or refuses us and is ignored.",
		}, []string{"zone"}),
		ops: newOpsMetrics(),
	}
	m.reg.MustRegister(m.ops.collectors()...)
	m.initLabels()
	m.reg.MustRegister(m.connections, m.replies, m.messages, m.symbols, m.filterSeconds, m.filterErrors,
		m.score, m.storeErrors, m.loginFailures, m.reviews, m.authResults, m.demands, m.dnsLookups,
		m.greylist, m.rateLimited, m.listLookups, m.listUsable,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.state = newStateMetrics()
	m.reg.MustRegister(m.state.collectors()...)
	m.submission = newSubmissionMetrics(m.reg)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, for tests that read values.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Connection implements gateway.Observer.
func (m *Metrics) Connection(listener, outcome string) {
	m.connections.WithLabelValues(listener, outcome).Inc()
}

// Reply implements gateway.Observer.
func (m *Metrics) Reply(phase string, code int) {
	m.replies.WithLabelValues(phase, strconv.Itoa(code/100)+"xx").Inc()
}

// Verdict implements gateway.Observer.
func (m *Metrics) Verdict(v rules.Verdict, auth []filters.AuthResult) {
	m.messages.WithLabelValues(v.Action.String()).Inc()
	m.score.Observe(v.Score)
	for _, s := range v.Symbols {
		m.symbols.WithLabelValues(s.Name).Inc()
	}
	for _, a := range auth {
		m.authResults.WithLabelValues(a.Method, string(a.Value)).Inc()
	}
}

// ObserveDemand implements rules.DemandObserver.
func (m *Metrics) ObserveDemand(check string, action policies.Action, honoured bool) {
	m.demands.WithLabelValues(check, action.String(), strconv.FormatBool(honoured)).Inc()
}

// Greylist counts a greylisting check by its outcome.
func (m *Metrics) Greylist(outcome string) { m.greylist.WithLabelValues(outcome).Inc() }

// Limited implements ratelimit.Observer.
func (m *Metrics) Limited(limit string) { m.rateLimited.WithLabelValues(limit).Inc() }

// ObserveLookup implements dnsxl.Observer.
func (m *Metrics) ObserveLookup(zone string, st dnsxl.Status) {
	m.listLookups.WithLabelValues(zone, st.String()).Inc()
}

// ObserveUsable implements dnsxl.Observer.
func (m *Metrics) ObserveUsable(zone string, usable bool) {
	v := 0.0
	if usable {
		v = 1
	}
	m.listUsable.WithLabelValues(zone).Set(v)
}

// DNSLookup counts a lookup a check asked the resolver for.
func (m *Metrics) DNSLookup(check, qtype string) {
	m.dnsLookups.WithLabelValues(check, qtype).Inc()
}

// StoreError implements gateway.Observer.
func (m *Metrics) StoreError(op string) {
	m.storeErrors.WithLabelValues(op).Inc()
}

// ObserveFilter implements rules.Observer.
func (m *Metrics) ObserveFilter(filter string, stage filters.Stage, d time.Duration, outcome string) {
	m.filterSeconds.WithLabelValues(filter, stage.String()).Observe(d.Seconds())
	if outcome != "ok" {
		m.filterErrors.WithLabelValues(filter, outcome).Inc()
	}
}

// LoginFailed counts a failed login.
func (m *Metrics) LoginFailed(protocol, reason string) {
	m.loginFailures.WithLabelValues(protocol, reason).Inc()
}

// Review counts a training event from a user's review.
func (m *Metrics) Review(kind string) {
	m.reviews.WithLabelValues(kind).Inc()
}
