// Package queuetest has an in-memory queue.Enqueuer for the tests of what
// hands mail to the outbound queue (the gateway, the quarantine, cmd/moat).
package queuetest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/moatmail/moat/delivery/queue"
)

// Memory keeps what it is given; while Fail is set, Enqueue fails with it.
type Memory struct {
	mu   sync.Mutex
	msgs []*queue.Message
	fail error
}

var _ queue.Enqueuer = (*Memory)(nil)

// Enqueue implements queue.Enqueuer.
func (m *Memory) Enqueue(_ context.Context, msg *queue.Message) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return "", m.fail
	}
	m.msgs = append(m.msgs, msg)
	return fmt.Sprintf("Q%d", len(m.msgs)), nil
}

// Fail makes every Enqueue fail with err from now on (nil: succeed again).
func (m *Memory) Fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

// Taken returns the messages queued so far.
func (m *Memory) Taken() []*queue.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

// To returns the messages queued for rcpt, whole (header and body).
func (m *Memory) To(rcpt string) []string {
	var out []string
	for _, msg := range m.Taken() {
		if slices.Contains(msg.Rcpts, rcpt) {
			out = append(out, string(msg.Header)+string(msg.Body))
		}
	}
	return out
}
