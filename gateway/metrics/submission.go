package metrics

import "github.com/prometheus/client_golang/prometheus"

// submissionMetrics count message submission (gateway.SubmissionObserver).
type submissionMetrics struct {
	logins   *prometheus.CounterVec
	messages *prometheus.CounterVec
}

func newSubmissionMetrics(reg *prometheus.Registry) submissionMetrics {
	s := submissionMetrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_submission_logins_total",
			Help: "Submission AUTH attempts by result (ok, credentials, plaintext, identity, internal).",
		}, []string{"result"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_submission_messages_total",
			Help: "Submitted messages by result (accepted, quarantined, rejected, tempfail, sender_refused).",
		}, []string{"result"}),
	}
	reg.MustRegister(s.logins, s.messages)
	for _, r := range []string{"ok", "credentials", "plaintext", "identity", "internal"} {
		s.logins.WithLabelValues(r)
	}
	for _, r := range []string{"accepted", "quarantined", "rejected", "tempfail", "sender_refused"} {
		s.messages.WithLabelValues(r)
	}
	return s
}

// SubmissionLogin implements gateway.SubmissionObserver. A failed one
// counts among the failed logins too (protocol "submission"), so that the
// failed-login alert sees password guessing on submission as on IMAP.
func (m *Metrics) SubmissionLogin(result string) {
	m.submission.logins.WithLabelValues(result).Inc()
	if result != "ok" {
		m.loginFailures.WithLabelValues("submission", result).Inc()
	}
}

// Submitted implements gateway.SubmissionObserver.
func (m *Metrics) Submitted(result string) { m.submission.messages.WithLabelValues(result).Inc() }
