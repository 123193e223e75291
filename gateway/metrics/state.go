package metrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stateMetrics are the shared state's collectors (Redis, [state]).
type stateMetrics struct {
	redisSeconds *prometheus.HistogramVec
	redisErrors  *prometheus.CounterVec
}

func newStateMetrics() stateMetrics {
	return stateMetrics{
		redisSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "moat_state_redis_duration_seconds",
			Help:    "Time of Redis commands of the shared state, by command (evalsha, get, pipeline, dial, ...).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"command"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_state_redis_errors_total",
			Help: "Redis commands of the shared state that failed, by command and kind (timeout, connection, other).",
		}, []string{"command", "kind"}),
	}
}

func (s stateMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.redisSeconds, s.redisErrors}
}

// RedisCommand implements state.Observer.
func (m *Metrics) RedisCommand(name string, d time.Duration, err error) {
	name = strings.ToLower(name)
	m.state.redisSeconds.WithLabelValues(name).Observe(d.Seconds())
	if err != nil {
		m.state.redisErrors.WithLabelValues(name, errorKind(err)).Inc()
	}
}

// errorKind sorts a Redis error into a label value.
func errorKind(err error) string {
	if t, ok := err.(interface{ Timeout() bool }); ok && t.Timeout() {
		return "timeout"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline"):
		return "timeout"
	case strings.Contains(msg, "connect") || strings.Contains(msg, "closed") || strings.Contains(msg, "EOF") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "reset"):
		return "connection"
	}
	return "other"
}
