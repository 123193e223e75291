package bayes

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatmail/moat/filters"
)

// autolearnTimeout bounds one autolearning write.
const autolearnTimeout = time.Minute

// Autolearner runs [Classifier.Autolearn] off the SMTP session's path: a
// session hands it a message and its verdict and goes on. It is best
// effort, as SpamAssassin's and rspamd's autolearning are: at most a few
// messages learn at once, and a message that arrives while they are busy
// is not learned (a queue would only grow under load, when the classifier
// is slowest). It is safe for concurrent use.
type Autolearner struct {
	cls   atomic.Pointer[Classifier]
	slots chan struct{}
	log   *slog.Logger
	// learned, when set, is told of every class learned (for metrics).
	learned func(Class)

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewAutolearner returns an Autolearner over c (nil: learn nothing until
// SetClassifier) that learns at most inFlight messages at once (at least
// one). learned, when not nil, is told of every class learned.
func NewAutolearner(c *Classifier, inFlight int, log *slog.Logger, learned func(Class)) *Autolearner {
	if log == nil {
		log = slog.Default()
	}
	a := &Autolearner{slots: make(chan struct{}, max(inFlight, 1)), log: log, learned: learned}
	a.cls.Store(c)
	return a
}

// SetClassifier makes later messages learn through c, the classifier of
// the configuration in force (a reload may change the autolearn
// thresholds); nil stops learning (the bayes filter is disabled).
func (a *Autolearner) SetClassifier(c *Classifier) { a.cls.Store(c) }

// Learn learns msg in the background if a slot is free, given the score
// and symbols of its verdict. It never blocks.
func (a *Autolearner) Learn(msg *filters.Message, score float64, syms []filters.Symbol) {
	cls := a.cls.Load()
	if cls == nil || !cls.cfg.Autolearn {
		return
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	select {
	case a.slots <- struct{}{}:
	default:
		a.mu.Unlock()
		return // busy: skip
	}
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		defer func() { <-a.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), autolearnTimeout)
		defer cancel()
		class, err := cls.Autolearn(ctx, msg, score, syms)
		if err != nil {
			a.log.Warn("autolearn failed", "err", err)
			return
		}
		if class != Forget && a.learned != nil {
			a.learned(class)
		}
	}()
}

// Close stops taking messages and waits for those learning to finish.
func (a *Autolearner) Close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
}
