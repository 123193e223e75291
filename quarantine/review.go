package quarantine

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/queue"
)

// Learner is taught by what users do with their mail: a message moved out
// of Quarantine or out of Junk is ham, one moved to Junk or deleted from
// Quarantine is spam.
type Learner interface {
	// LearnSpam learns raw as spam for user and the global model.
	LearnSpam(ctx context.Context, user string, raw []byte) error
	// LearnHam learns raw as ham for user and the global model.
	LearnHam(ctx context.Context, user string, raw []byte) error
}

// Review turns users' IMAP moves into quarantine bookkeeping and training.
// It implements imapd.Reviewer.
//
//   - out of Quarantine to any folder but Junk or Trash: the message is
//     released (it is there once, the move put it there) and learned as
//     ham, and with Config.AllowSenderOnRelease its envelope sender goes
//     on the user's allow list; the verdict record goes once no
//     recipient holds it in Quarantine any more; when the user is the
//     holder of a message's Onward recipients (relay-domain mail), it is
//     sent on to them through the outbound queue, as Release does;
//   - out of Quarantine to Junk or Trash, or expunged from Quarantine:
//     learned as spam;
//   - into Junk from elsewhere: spam; out of Junk to a folder other than
//     Trash: ham.
//
// Learning runs on a background worker with a bounded queue, so that a
// bulk move in a mail client is not held up by the classifier.
type Review struct {
	q       *Quarantine
	learner Learner
	log     *slog.Logger
	jobs    chan learnJob
	wg      sync.WaitGroup
	counts  func(kind string)
}

type learnJob struct {
	user string
	raw  []byte
	spam bool
}

// NewReview starts a review worker. learner may be nil (nothing is
// learned, the quarantine bookkeeping still happens); count, when not nil,
// is told of every training event by kind: "ham", "spam", "dropped" (the
// queue was full) or "unlearned" (no learner), and of every sender
// allow-listed on release ("allowlisted"), of every message a user
// released from Quarantine ("released"), and of every held message its
// holder released that went on to its Onward recipients ("sent_on").
func NewReview(q *Quarantine, learner Learner, log *slog.Logger, count func(kind string)) *Review {
	if count == nil {
		count = func(string) {}
	}
	r := &Review{q: q, learner: learner, log: log, jobs: make(chan learnJob, 1024), counts: count}
	r.wg.Add(1)
	go r.work()
	return r
}

// Close finishes the queued training and stops the worker.
func (r *Review) Close() {
	close(r.jobs)
	r.wg.Wait()
}

func (r *Review) work() {
	defer r.wg.Done()
	for j := range r.jobs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		learn := r.learner.LearnHam
		if j.spam {
			learn = r.learner.LearnSpam
		}
		if err := learn(ctx, j.user, j.raw); err != nil {
			r.log.Warn("learning from a user's review failed", "user", j.user, "spam", j.spam, "err", err)
		}
		cancel()
	}
}

func isJunk(mb mailstore.Mailbox) bool {
	return mb.SpecialUse == `\Junk` || mb.Name == "Junk"
}

func isTrash(mb mailstore.Mailbox) bool {
	return mb.SpecialUse == `\Trash` || mb.Name == "Trash"
}

func isQuarantine(mb mailstore.Mailbox) bool { return mb.Name == mailstore.QuarantineMailbox }

// Moved implements imapd.Reviewer.
func (r *Review) Moved(user mailstore.User, from, to mailstore.Mailbox, msgs []mailstore.Message, move bool) {
	var spam, ham bool
	switch {
	case isQuarantine(from):
		spam = isJunk(to) || isTrash(to)
		ham = !spam
		if ham {
			for range msgs {
				r.counts("released")
			}
		}
		if ham && r.q.cfg.AllowSenderOnRelease {
			r.allowSenders(user, msgs)
		}
		if ham && move {
			r.sendOn(user, msgs)
		}
		if move {
			r.forget(msgs)
		}
	case isJunk(to) && !isJunk(from):
		spam = true
	case isJunk(from) && !isTrash(to) && !isQuarantine(to):
		ham = true
	}
	if spam || ham {
		r.learn(user, msgs, spam)
	}
}

// Expunging implements imapd.Reviewer: mail deleted from Quarantine is
// spam. Its verdict records go at the next Tidy.
func (r *Review) Expunging(user mailstore.User, mb mailstore.Mailbox, msgs []mailstore.Message) {
	if isQuarantine(mb) {
		r.learn(user, msgs, true)
	}
}

// learn reads the messages now (an expunge may follow at once) and queues
// their training.
func (r *Review) learn(user mailstore.User, msgs []mailstore.Message, spam bool) {
	kind := "ham"
	if spam {
		kind = "spam"
	}
	for _, m := range msgs {
		if r.learner == nil {
			r.counts("unlearned")
			continue
		}
		raw, err := r.q.store.ReadMessage(m)
		if err != nil {
			r.log.Warn("review: reading a message failed", "user", user.Address, "err", err)
			continue
		}
		select {
		case r.jobs <- learnJob{user: user.Address, raw: raw, spam: spam}:
			r.counts(kind)
		default:
			r.counts("dropped")
			r.log.Warn("review: training queue full; a user's verdict is not learned", "user", user.Address)
		}
	}
}

// allowSenders puts the envelope senders of released messages on the
// user's allow list, before their verdict records go.
func (r *Review) allowSenders(user mailstore.User, msgs []mailstore.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, m := range msgs {
		sender, err := r.q.senderOf(ctx, m.BlobID)
		if err == nil && sender != "" {
			err = r.q.store.AllowSender(ctx, user.ID, sender)
			if err == nil {
				r.counts("allowlisted")
				r.log.Info("review: sender allow-listed on release", "user", user.Address, "sender", sender)
			}
		}
		if err != nil {
			r.log.Warn("review: allow-listing a released message's sender failed", "user", user.Address, "err", err)
		}
	}
}

// forget removes the verdict records of released messages that no
// recipient holds in Quarantine any more.
func (r *Review) forget(msgs []mailstore.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, m := range msgs {
		if err := r.q.forgetBlob(ctx, m.BlobID); err != nil {
			r.log.Warn("review: dropping a released message's record failed", "err", err)
		}
	}
}

// sendOn sends on to their Onward recipients the messages that their
// holder released by moving them out of Quarantine, before their verdict
// records go.
func (r *Review) sendOn(user mailstore.User, msgs []mailstore.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, m := range msgs {
		var sender, onward string
		err := r.q.store.DB().QueryRowContext(ctx, `SELECT sender, onward FROM quarantine
			WHERE blob_id = ? AND holder = ? AND onward != '' LIMIT 1`, m.BlobID, user.ID).Scan(&sender, &onward)
		if errors.Is(err, sql.ErrNoRows) {
			continue // not held for anyone else
		}
		var raw []byte
		if err == nil {
			raw, err = r.q.store.ReadMessage(m)
		}
		if err == nil && r.q.onward == nil {
			err = errors.New("the outbound queue is not running")
		}
		var id string
		if err == nil {
			id, err = r.q.onward.Enqueue(ctx, &queue.Message{From: sender, Rcpts: strings.Fields(onward), Body: raw, Origin: "release"})
		}
		if err != nil {
			r.log.Error("review: sending on a released message failed; it stays in the holder's mailbox", "user", user.Address,
				"rcpts", onward, "err", err)
			continue
		}
		r.counts("sent_on")
		r.log.Info("review: released message sent on", "user", user.Address, "rcpts", onward, "queue", id)
	}
}
