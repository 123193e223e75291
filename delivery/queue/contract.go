// Package queue is moat's outbound side: a durable spool of messages that
// moat sends on (to a relay domain's downstream servers, or to the
// Internet by MX), per-recipient state, retries with backoff, bounces (RFC
// 3464), and the recipient callout for relay domains.
//
// This file is the contract the gateway and the quarantine code against;
// the rest of the package implements it.
package queue

import (
	"context"
	"errors"
	"fmt"
)

// Message is one message handed to the queue.
type Message struct {
	// From is the envelope sender; "" is the null sender (a bounce), which
	// never gets a bounce back.
	From string
	// Rcpts are the envelope recipients, normalised.
	Rcpts []string
	// Header holds fields moat prepends (trace fields, a DKIM-Signature);
	// it is written before Body.
	Header []byte
	// Body is the message as received, or as a verdict rewrote it.
	Body []byte
	// Origin says why moat sends it on: "inbound" (accepted for a relay
	// domain), "submission" (a user's outgoing mail), "release" (released
	// from the quarantine) or "bounce". It labels logs and metrics.
	Origin string
}

// Enqueuer takes messages into the queue. Enqueue returns only once the
// message and its recipients' state are durable (fsync'd): the caller may
// then answer 250. The id names the message in logs and in `moat queue`.
type Enqueuer interface {
	Enqueue(ctx context.Context, m *Message) (id string, err error)
}

// ErrNoRecipient is what a RecipientVerifier returns for a recipient the
// downstream server (or the static list) does not know: the gateway
// refuses it with 550 5.1.1.
var ErrNoRecipient = errors.New("queue: no such recipient")

// ReplyError is a downstream server's own reply, passed through: a 4xx at
// callout becomes the gateway's 4xx (never a permanent refusal).
type ReplyError struct {
	Code     int
	Enhanced [3]int
	Text     string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Text)
}

// Temporary reports whether the reply is a 4xx.
func (e *ReplyError) Temporary() bool { return e.Code >= 400 && e.Code < 500 }

// RecipientVerifier tells whether a relay domain's recipient exists, so
// that moat never accepts mail it would have to bounce (backscatter).
// VerifyRecipient returns nil when the recipient exists, ErrNoRecipient
// when it does not, a *ReplyError with a 4xx when the downstream deferred,
// and any other error for a fault of its own (the gateway answers 451).
type RecipientVerifier interface {
	VerifyRecipient(ctx context.Context, addr string) error
}
