package queue

import "time"

// Observer is told what the queue does, for metrics; gateway/metrics
// implements it. Labels are bounded: result is "sent", "deferred",
// "bounced" or "expired"; class is "mx", "relay" or "local"; kind is
// "bounce", "delay" or "dropped" (a bounce of a bounce, not sent).
type Observer interface {
	// Queued counts a message taken in, by origin ("inbound",
	// "submission", "release", "bounce").
	Queued(origin string)
	// Delivery counts one recipient's attempt; latency is the time since
	// the message was queued, for a final result (0 for "deferred").
	Delivery(result, class string, latency time.Duration)
	// Bounce counts a DSN queued (or dropped).
	Bounce(kind string)
	// Corrupt counts a queue file moved aside.
	Corrupt()
}

type nopObserver struct{}

func (nopObserver) Queued(string)                          {}
func (nopObserver) Delivery(string, string, time.Duration) {}
func (nopObserver) Bounce(string)                          {}
func (nopObserver) Corrupt()                               {}

// Stats is the queue's size, for gauges.
type Stats struct {
	// Messages and Recipients are those with a recipient still pending.
	Messages, Recipients int
	// Oldest is the arrival of the oldest message (zero when empty).
	Oldest time.Time
}

// Stats returns the queue's size now.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	entries := make([]*entry, 0, len(q.entries))
	for _, e := range q.entries {
		entries = append(entries, e)
	}
	q.mu.Unlock()
	var s Stats
	for _, e := range entries {
		s.Messages++
		e.mu.Lock()
		for _, r := range e.st {
			if r.Status == statusPending {
				s.Recipients++
			}
		}
		e.mu.Unlock()
		if s.Oldest.IsZero() || e.env.Created.Before(s.Oldest) {
			s.Oldest = e.env.Created
		}
	}
	return s
}
