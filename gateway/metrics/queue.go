package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moatmail/moat/delivery/queue"
)

// QueueMetrics are the outbound queue's collectors; it implements
// queue.Observer.
type QueueMetrics struct {
	enqueued   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	bounces    *prometheus.CounterVec
	corrupt    prometheus.Counter
}

var _ queue.Observer = (*QueueMetrics)(nil)

// Queue registers the queue's collectors and returns its observer; stats
// reports the queue's size at each scrape.
func (m *Metrics) Queue(stats func() queue.Stats) *QueueMetrics {
	q := &QueueMetrics{
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_queue_enqueued_total",
			Help: "Messages taken into the outbound queue, by origin (inbound, submission, release, bounce).",
		}, []string{"origin"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_queue_deliveries_total",
			Help: "Recipient delivery attempts of the outbound queue, by result (sent, deferred, bounced, expired) and destination class (mx, relay, local).",
		}, []string{"result", "class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "moat_queue_delivery_seconds",
			Help:    "Time from queueing to a recipient's final result (sent, bounced, expired), by destination class.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 5 * 24 * 3600},
		}, []string{"class"}),
		bounces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_queue_bounces_total",
			Help: "Delivery status notifications, by kind: bounce and delay (queued to the sender), dropped (a bounce that bounced: not sent).",
		}, []string{"kind"}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moat_queue_corrupt_files_total",
			Help: "Queue files that could not be read back, moved aside to queue/corrupt.",
		}),
	}
	m.reg.MustRegister(q.enqueued, q.deliveries, q.latency, q.bounces, q.corrupt, queueSize{stats})
	// The known label values at 0 (as initLabels does for the others).
	for _, o := range []string{"inbound", "submission", "release", "bounce"} {
		q.enqueued.WithLabelValues(o)
	}
	for _, r := range []string{"sent", "deferred", "bounced", "expired"} {
		for _, c := range []string{"mx", "relay", "local"} {
			q.deliveries.WithLabelValues(r, c)
		}
	}
	for _, k := range []string{"bounce", "delay", "dropped"} {
		q.bounces.WithLabelValues(k)
	}
	return q
}

// Queued implements queue.Observer.
func (q *QueueMetrics) Queued(origin string) { q.enqueued.WithLabelValues(origin).Inc() }

// Delivery implements queue.Observer.
func (q *QueueMetrics) Delivery(result, class string, latency time.Duration) {
	q.deliveries.WithLabelValues(result, class).Inc()
	if result != "deferred" {
		q.latency.WithLabelValues(class).Observe(latency.Seconds())
	}
}

// Bounce implements queue.Observer.
func (q *QueueMetrics) Bounce(kind string) { q.bounces.WithLabelValues(kind).Inc() }

// Corrupt implements queue.Observer.
func (q *QueueMetrics) Corrupt() { q.corrupt.Inc() }

// queueSize reports the queue's gauges from one Stats call per scrape.
type queueSize struct{ stats func() queue.Stats }

var (
	queueMessagesDesc   = prometheus.NewDesc("moat_queue_messages", "Messages in the outbound queue with a recipient still to deliver.", nil, nil)
	queueRecipientsDesc = prometheus.NewDesc("moat_queue_recipients", "Recipients still to deliver in the outbound queue.", nil, nil)
	queueOldestDesc     = prometheus.NewDesc("moat_queue_oldest_seconds", "Age of the oldest message in the outbound queue (0 when empty).", nil, nil)
)

func (queueSize) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueMessagesDesc
	ch <- queueRecipientsDesc
	ch <- queueOldestDesc
}

func (s queueSize) Collect(ch chan<- prometheus.Metric) {
	st := s.stats()
	age := 0.0
	if !st.Oldest.IsZero() {
		age = time.Since(st.Oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(queueRecipientsDesc, prometheus.GaugeValue, float64(st.Recipients))
	ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, age)
}
