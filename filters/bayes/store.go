package bayes

import (
	"context"
	"time"
)

// Class is what a training event says of a message.
type Class int8

// The training classes.
const (
	// Forget removes what was learned from the message (Unlearn).
	Forget Class = iota
	// Spam learns the message as spam.
	Spam
	// Ham learns the message as ham.
	Ham
)

// String returns "forget", "spam" or "ham".
func (c Class) String() string {
	switch c {
	case Spam:
		return "spam"
	case Ham:
		return "ham"
	}
	return "forget"
}

// Digest identifies a learned message (see MessageDigest).
type Digest [32]byte

// Event is one training event for one model.
type Event struct {
	// User names the model: "" is the global model.
	User string
	// Digest identifies the message, so that learning is idempotent.
	Digest Digest
	// Features are the message's feature hashes, without duplicates.
	Features []uint64
	// Class is what to learn.
	Class Class
	// Time is when the event happened; it becomes the features' last-seen
	// time.
	Time time.Time
	// Step is the logistic model's correction for this message (see
	// Classifier.Learn): it is added to the weight of each of Features.
	// Unlike the counts, it applies whether or not the model already
	// holds the digest: the classifier computes it from the current
	// weights, and it is zero when they already score the message right.
	Step float64
}

// Counts are how many learned spam and ham messages held a feature, and
// the feature's weight in the model's logistic regression.
type Counts struct {
	Spam, Ham uint32
	Weight    float32
}

// Totals are the learned messages of a model. Logistic counts those of
// them the logistic model learned too: a model learned before the
// logistic model existed has none, and only its counts speak until it has
// learned enough (Config.MinSpam + Config.MinHam messages) anew.
type Totals struct {
	Spam, Ham int64
	Logistic  int64
}

// ModelStats describes one model in Stats.
type ModelStats struct {
	// User names the model ("" is the global model).
	User string
	Totals
	// Features is the number of feature rows of the model.
	Features int64
}

// Stats describes a store.
type Stats struct {
	Models []ModelStats
	// Bytes is the size of the database, 0 when not known.
	Bytes int64
}

// Store keeps the feature counts of every model. The embedded default is
// SQLiteStore; a shared backend (Redis) can implement the same interface
// for several gateway nodes. Implementations are safe for concurrent use.
type Store interface {
	// Totals returns how many messages of each class a model has learned;
	// zero for a model that does not exist.
	Totals(ctx context.Context, user string) (Totals, error)
	// Lookup fills out[i] with the counts of features[i] in the model
	// (zero when unknown). len(out) must equal len(features).
	Lookup(ctx context.Context, user string, features []uint64, out []Counts) error
	// Train applies the events in order, atomically. An event whose
	// digest the model already holds with the same class does nothing;
	// with the other class it moves the message's counts; Forget removes
	// them. It returns how many events changed the model.
	Train(ctx context.Context, events []Event) (changed int, err error)
	// Prune bounds the store to maxRows feature rows: features seen in at
	// most one message and not learned since olderThan go first, then the
	// rarest and oldest. It also keeps the records of learned messages
	// to maxRows/4, the newest. It returns the feature rows removed.
	Prune(ctx context.Context, maxRows int, olderThan time.Time) (removed int, err error)
	// Stats describes every model.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the store.
	Close() error
}
