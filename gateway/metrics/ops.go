package metrics

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// What operators watch beside the mail flow: which build runs, when the
// certificates expire, how much mail waits in quarantine. docs/operations.md
// names the alerts built on them.

// opsMetrics are the collectors of this file.
type opsMetrics struct {
	buildInfo  *prometheus.GaugeVec
	certExpiry *prometheus.GaugeVec
	// filterTimeout is each filter's deadline.
	filterTimeout *prometheus.GaugeVec
	quarantine    *quarantineCollector
}

func newOpsMetrics() opsMetrics {
	return opsMetrics{
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "moat_build_info",
			Help: "Always 1; its labels name the running build (version, goversion).",
		}, []string{"version", "goversion"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "moat_tls_certificate_expiry_timestamp_seconds",
			Help: "When the certificate each TLS listener presents expires (its NotAfter), as a Unix time, by listener.",
		}, []string{"listener"}),
		filterTimeout: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "moat_filter_timeout_seconds",
			Help: "The deadline of each filter in the configuration in force (rules.filter_timeout, rules.filters.NAME.timeout), by filter.",
		}, []string{"filter"}),
		quarantine: &quarantineCollector{
			messages: prometheus.NewDesc("moat_quarantine_messages",
				"Messages held in quarantine now (one per message, however many recipients).", nil, nil),
			oldest: prometheus.NewDesc("moat_quarantine_oldest_timestamp_seconds",
				"When the oldest message still in quarantine was put there, as a Unix time (0 when it is empty).", nil, nil),
		},
	}
}

func (o opsMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.buildInfo, o.certExpiry, o.filterTimeout, o.quarantine}
}

// SetBuildInfo sets moat_build_info to 1 with the build's labels.
func (m *Metrics) SetBuildInfo(version, goVersion string) {
	m.ops.buildInfo.Reset()
	m.ops.buildInfo.WithLabelValues(version, goVersion).Set(1)
}

// SetCertificate exports when the leaf certificate a listener presents
// expires. A configuration without a parsable certificate removes the
// listener's value rather than report a wrong one.
func (m *Metrics) SetCertificate(listener string, c *tls.Config) {
	if c == nil || len(c.Certificates) == 0 {
		m.ops.certExpiry.DeleteLabelValues(listener)
		return
	}
	cert := c.Certificates[0]
	leaf := cert.Leaf
	if leaf == nil && len(cert.Certificate) > 0 {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			m.ops.certExpiry.DeleteLabelValues(listener)
			return
		}
	}
	if leaf == nil {
		m.ops.certExpiry.DeleteLabelValues(listener)
		return
	}
	m.ops.certExpiry.WithLabelValues(listener).Set(float64(leaf.NotAfter.Unix()))
}

// QuarantineStats is what the quarantine holds, read at each scrape.
type QuarantineStats struct {
	Messages int
	// Oldest is when the oldest held message came (zero: none).
	Oldest time.Time
}

// WatchQuarantine makes every scrape read the quarantine's size through
// stats, bounded by a short deadline. A failing read exports nothing for
// the scrape (the series go stale) and counts a store error (op
// "quarantine_stats").
func (m *Metrics) WatchQuarantine(stats func(ctx context.Context) (QuarantineStats, error)) {
	m.ops.quarantine.stats = stats
	m.ops.quarantine.failed = func() { m.StoreError("quarantine_stats") }
}

// quarantineCollector reads the quarantine's size when scraped, so that
// the value is that of the index, whoever changed it (a release with the
// command line included).
type quarantineCollector struct {
	messages, oldest *prometheus.Desc
	stats            func(ctx context.Context) (QuarantineStats, error)
	failed           func()
}

// quarantineScrapeTimeout bounds the quarantine's count at each scrape.
const quarantineScrapeTimeout = 2 * time.Second

func (c *quarantineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.oldest
}

func (c *quarantineCollector) Collect(ch chan<- prometheus.Metric) {
	if c.stats == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), quarantineScrapeTimeout)
	defer cancel()
	st, err := c.stats(ctx)
	if err != nil {
		c.failed()
		return
	}
	var oldest float64
	if !st.Oldest.IsZero() {
		oldest = float64(st.Oldest.Unix())
	}
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest)
}

// initLabels creates the series of the label values known in advance at 0,
// so that a rate over them is 0 rather than nothing before the first event
// (an alert on increase() then sees its first event, and a dashboard panel
// shows a flat line instead of "no data").
func (m *Metrics) initLabels() {
	for _, op := range []string{"lookup", "deliver", "quarantine", "quarantine_stats", "queue"} {
		m.storeErrors.WithLabelValues(op)
	}
	for _, p := range []string{"imap", "pop3", "submission"} {
		for _, r := range []string{"credentials", "plaintext", "identity", "in-use"} {
			m.loginFailures.WithLabelValues(p, r)
		}
	}
	for _, k := range []string{"ham", "spam", "dropped", "unlearned", "autolearn", "allowlisted", "released"} {
		m.reviews.WithLabelValues(k)
	}
	for _, phase := range []string{"connect", "helo", "mail", "rcpt", "data"} {
		for _, class := range []string{"2xx", "4xx", "5xx"} {
			m.replies.WithLabelValues(phase, class)
		}
	}
	for _, a := range []string{"accept", "tag", "quarantine", "tempfail", "reject"} {
		m.messages.WithLabelValues(a)
	}
}

// SetFilters exports the deadline of every filter of the configuration in
// force (moat_filter_timeout_seconds), so that an alert compares each
// filter's latency with its own deadline, and creates its failure series
// at 0. A reload calls it again; filters that are gone lose their series.
func (m *Metrics) SetFilters(timeouts map[string]time.Duration) {
	m.ops.filterTimeout.Reset()
	for name, d := range timeouts {
		m.ops.filterTimeout.WithLabelValues(name).Set(d.Seconds())
		for _, outcome := range []string{"error", "timeout"} {
			m.filterErrors.WithLabelValues(name, outcome)
		}
	}
}
