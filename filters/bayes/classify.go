package bayes

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

// robinsonX is the probability assumed for a feature never seen; its
// strength is Config.RobinsonS (Robinson, "A Statistical Approach to the
// Spam Problem", 2003).
const robinsonX = 0.5

// pruneEvery is how many learned messages pass between two checks of the
// store's size.
const pruneEvery = 256

// fisherLogitBound bounds the log-odds of the Robinson-Fisher probability
// when it is combined with the logistic model's (p within [1e-6,
// 1 - 1e-6]): Fisher's method says 1 - 1e-16 of a message it is merely
// very sure of, which would drown the other opinion.
var fisherLogitBound = math.Log(1e6)

// Classifier scores messages against a Store and learns into it. It is
// safe for concurrent use.
type Classifier struct {
	cfg    Config
	store  Store
	owned  bool // Close closes the store
	now    func() time.Time
	learns atomic.Int64
	pool   sync.Pool // []Counts scratch slices
}

// Result is the classification of one message.
type Result struct {
	// Probability is the spam probability in [0, 1]; 0.5 when the model
	// is untrained or the message has no known feature.
	Probability float64
	// Trained is false when the model used has learned fewer than
	// Config.MinSpam spam or Config.MinHam ham messages: then Probability
	// means nothing and the filter gives no verdict.
	Trained bool
	// User is the model used: "" for the global model.
	User string
	// Features is the number of distinct features of the message, and
	// Significant how many of them Fisher's method combined.
	Features, Significant int
	// Language is the message's language (content.Language, "" when
	// unknown), LanguageHam how many of the model's ham messages were
	// in it, and HamWithLanguage how many were in any language (ham too
	// short to tell has none; a model learned before languages were
	// counted has none at all).
	Language                     string
	LanguageHam, HamWithLanguage int
	// Fisher is the Robinson-Fisher probability from the counts, and
	// Logistic the logistic model's (0.5 while the model has not learned
	// enough with it). Probability combines them (Config.Logistic).
	Fisher, Logistic float64
}

// NewClassifier returns a classifier over store. The caller keeps
// ownership of store.
func NewClassifier(cfg Config, store Store) (*Classifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bayes config: %w", err)
	}
	if store == nil {
		return nil, errors.New("bayes: nil store")
	}
	return &Classifier{cfg: cfg, store: store, now: time.Now}, nil
}

// Open returns a classifier over the SQLite store at cfg.Path. An empty
// Path means <dataDir>/bayes.db, a relative one is taken from dataDir.
// Close closes the store.
func Open(cfg Config, dataDir string) (*Classifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bayes config: %w", err)
	}
	path := DatabasePath(cfg, dataDir)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bayes: %w", err)
	}
	st, err := OpenSQLite(path)
	if err != nil {
		return nil, err
	}
	c, err := NewClassifier(cfg, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	c.owned = true
	return c, nil
}

// WithConfig returns a classifier over the same store with another
// configuration (a reloaded [filters.bayes] section: bands, scores,
// thresholds). The new classifier does not own the store; Path changes
// need a restart. The receiver stays usable.
func (c *Classifier) WithConfig(cfg Config) (*Classifier, error) {
	return NewClassifier(cfg, c.store)
}

// DatabasePath is the token database Open uses.
func DatabasePath(cfg Config, dataDir string) string {
	switch {
	case cfg.Path == "":
		return filepath.Join(dataDir, "bayes.db")
	case filepath.IsAbs(cfg.Path):
		return cfg.Path
	}
	return filepath.Join(dataDir, cfg.Path)
}

// Store returns the classifier's store.
func (c *Classifier) Store() Store { return c.store }

// Close closes the store when Open opened it.
func (c *Classifier) Close() error {
	if c.owned {
		return c.store.Close()
	}
	return nil
}

// Classify scores a message for a recipient. With user not empty and
// that user's model trained, the user's model decides; otherwise the
// global one does.
func (c *Classifier) Classify(ctx context.Context, user string, msg *filters.Message) (Result, error) {
	// Without a trained model the features would be worked out for
	// nothing: on a fresh install that was a fifth of the CPU of
	// accepting a message.
	model, tot, err := c.model(ctx, UserKey(user))
	if err != nil || !c.trained(tot) {
		return Result{Probability: 0.5, Fisher: 0.5, Logistic: 0.5, User: model}, err
	}
	cont := msg.Content()
	r, err := c.ClassifyFeatures(ctx, user, Features(msg, cont))
	if err != nil || !r.Trained {
		return r, err
	}
	if lang := cont.Language(); lang != "" {
		k := make([]Counts, len(langHashes))
		if err := c.store.Lookup(ctx, r.User, langHashes, k); err != nil {
			return r, err
		}
		r.Language = lang
		for i, l := range content.Languages {
			r.HamWithLanguage += int(k[i].Ham)
			if l == lang {
				r.LanguageHam = int(k[i].Ham)
			}
		}
	}
	return r, nil
}

// model picks the model for a user: the user's own once trained, else
// the global one.
func (c *Classifier) model(ctx context.Context, user string) (string, Totals, error) {
	if user != "" {
		t, err := c.store.Totals(ctx, user)
		if err != nil {
			return "", t, err
		}
		if c.trained(t) {
			return user, t, nil
		}
	}
	t, err := c.store.Totals(ctx, "")
	return "", t, err
}

// Warm loads the global model into the store's mirror, so that the
// first messages after a start do not wait for it (a model of 900,000
// features takes a second or two to read); it returns the model's
// totals.
func (c *Classifier) Warm(ctx context.Context) (Totals, error) {
	return c.store.Totals(ctx, "")
}

func (c *Classifier) trained(t Totals) bool { return c.cfg.Trained(t) }

// ClassifyFeatures scores a message given by its features (Features).
func (c *Classifier) ClassifyFeatures(ctx context.Context, user string, feats []uint64) (Result, error) {
	r := Result{Probability: 0.5, Fisher: 0.5, Logistic: 0.5, Features: len(feats)}
	model, tot, err := c.model(ctx, UserKey(user))
	if err != nil {
		return r, err
	}
	r.User = model
	if !c.trained(tot) {
		return r, nil
	}
	r.Trained = true
	counts, _ := c.pool.Get().(*[]Counts)
	if counts == nil {
		counts = new([]Counts)
	}
	defer c.pool.Put(counts)
	*counts = slices.Grow((*counts)[:0], len(feats))[:len(feats)]
	if err := c.store.Lookup(ctx, model, feats, *counts); err != nil {
		return r, err
	}
	// The language feature is learned for LANG_UNFAMILIAR, not weighed:
	// a whole language as evidence drowned the words in small models.
	for _, h := range langHashes {
		if i, ok := slices.BinarySearch(feats, h); ok {
			(*counts)[i] = Counts{}
		}
	}
	r.Fisher, r.Significant = c.combine(*counts, tot)
	r.Probability = r.Fisher
	if c.cfg.LogisticTrained(tot) {
		var z float64
		for _, k := range *counts {
			z += float64(k.Weight)
		}
		r.Logistic = sigmoid(z)
		if c.cfg.Logistic {
			// The mean of the two log-odds: each model corrects the
			// other's surest mistakes (docs/bayes.md measures it).
			fl := math.Log(r.Fisher / (1 - r.Fisher))
			fl = math.Max(-fisherLogitBound, math.Min(fisherLogitBound, fl))
			r.Probability = sigmoid((fl + z) / 2)
		}
	}
	return r, nil
}

// combine turns the features' counts into a spam probability: Robinson's
// f(w) for each (strength Config.RobinsonS), then Fisher's method over the MaxSignificant features
// furthest from 0.5 (at least MinStrength away), as SpamBayes does.
func (c *Classifier) combine(counts []Counts, tot Totals) (float64, int) {
	nspam, nham := float64(tot.Spam), float64(tot.Ham)
	rs := c.cfg.RobinsonS
	probs := make([]float64, 0, 256)
	for _, k := range counts {
		n := float64(k.Spam) + float64(k.Ham)
		if n == 0 {
			continue
		}
		// Robinson's p(w): the share of spam among the messages holding
		// w, each class scaled by its size so that an unbalanced training
		// set does not tilt every word.
		ps := math.Min(float64(k.Spam)/nspam, 1)
		ph := math.Min(float64(k.Ham)/nham, 1)
		pw := ps / (ps + ph)
		f := (rs*robinsonX + n*pw) / (rs + n)
		if math.Abs(f-0.5) >= c.cfg.MinStrength {
			probs = append(probs, f)
		}
	}
	if len(probs) > c.cfg.MaxSignificant {
		probs = strongest(probs, c.cfg.MaxSignificant)
	}
	return fisher(probs), len(probs)
}

// strongest returns the k probabilities furthest from 0.5 (k < len(p)),
// in linear time: a histogram of the distances finds the cut, and only the
// probabilities at the cut are sorted. Sorting them all was a third of
// the time of a classification.
func strongest(p []float64, k int) []float64 {
	const buckets = 1024
	bucket := func(f float64) int { return min(int(math.Abs(f-0.5)*2*buckets), buckets-1) }
	var hist [buckets]int
	for _, f := range p {
		hist[bucket(f)]++
	}
	cut, above := buckets-1, 0
	for ; cut > 0 && above+hist[cut] < k; cut-- {
		above += hist[cut]
	}
	out := make([]float64, 0, k)
	var edge []float64
	for _, f := range p {
		switch b := bucket(f); {
		case b > cut:
			out = append(out, f)
		case b == cut:
			edge = append(edge, f)
		}
	}
	slices.SortFunc(edge, func(a, b float64) int {
		return cmp.Compare(math.Abs(b-0.5), math.Abs(a-0.5))
	})
	return append(out, edge[:k-len(out)]...)
}

// fisher combines probabilities with Fisher's inverse chi-square method:
// S is the evidence that the features are spammy, H that they are hammy,
// and the result (1 + S - H) / 2 is near 0.5 when both or neither hold.
func fisher(probs []float64) float64 {
	if len(probs) == 0 {
		return 0.5
	}
	var lnSpam, lnHam float64
	for _, f := range probs {
		f = math.Min(math.Max(f, 1e-200), 1-1e-16)
		lnHam += math.Log(f)
		lnSpam += math.Log1p(-f)
	}
	n := 2 * len(probs)
	s := 1 - chi2Q(-2*lnSpam, n)
	h := 1 - chi2Q(-2*lnHam, n)
	return (1 + s - h) / 2
}

// chi2Q is the probability that a chi-square variable with v (even)
// degrees of freedom exceeds x2, summed in log space so that large
// arguments neither underflow nor overflow.
func chi2Q(x2 float64, v int) float64 {
	m := x2 / 2
	if m <= 0 {
		return 1
	}
	// Q = e^-m Σ_{i<v/2} m^i / i!
	logTerm := -m
	logSum := logTerm
	lm := math.Log(m)
	for i := 1; i < v/2; i++ {
		logTerm += lm - math.Log(float64(i))
		hi, lo := math.Max(logSum, logTerm), math.Min(logSum, logTerm)
		logSum = hi + math.Log1p(math.Exp(lo-hi))
	}
	return math.Min(math.Exp(logSum), 1)
}

// MessageDigest identifies a message for idempotent learning: the
// Message-ID and the body, line endings normalised. The header fields
// moat adds on delivery (Received, X-Spam-*) do not change it, so a
// message learned at the gateway and later moved by its user is the same
// message.
func MessageDigest(msg *filters.Message) Digest {
	h := sha256.New()
	h.Write([]byte(strings.ToLower(strings.TrimSpace(msg.Header.Get("Message-Id")))))
	h.Write([]byte{0})
	h.Write(bytes.ReplaceAll(msg.Body(), []byte("\r\n"), []byte("\n")))
	var d Digest
	h.Sum(d[:0])
	return d
}

// LearnSpam learns a raw message as spam into a user's model and the
// global one (user "" learns the global model only). Learning the same
// message again does nothing; learning it as the other class moves it.
// With LearnHam, it implements quarantine.Learner.
func (c *Classifier) LearnSpam(ctx context.Context, user string, raw []byte) error {
	_, err := c.LearnMessage(ctx, user, filters.ParseMessage(raw), Spam)
	return err
}

// LearnHam learns a raw message as ham, as LearnSpam does spam.
func (c *Classifier) LearnHam(ctx context.Context, user string, raw []byte) error {
	_, err := c.LearnMessage(ctx, user, filters.ParseMessage(raw), Ham)
	return err
}

// Unlearn forgets a raw message from a user's model and the global one,
// if it was learned.
func (c *Classifier) Unlearn(ctx context.Context, user string, raw []byte) error {
	_, err := c.LearnMessage(ctx, user, filters.ParseMessage(raw), Forget)
	return err
}

// LearnMessage applies one training event for a parsed message (Forget
// unlearns) and reports whether a model changed.
func (c *Classifier) LearnMessage(ctx context.Context, user string, msg *filters.Message, class Class) (bool, error) {
	user = UserKey(user)
	ev := Event{
		User:     user,
		Digest:   MessageDigest(msg),
		Features: Features(msg, msg.Content()),
		Class:    class,
		Time:     c.now(),
	}
	evs := []Event{ev}
	if user != "" {
		g := ev
		g.User = ""
		evs = append(evs, g)
	}
	if err := c.withSteps(ctx, evs); err != nil {
		return false, err
	}
	n, err := c.store.Train(ctx, evs)
	if err != nil {
		return false, err
	}
	if n > 0 && c.learns.Add(1)%pruneEvery == 0 {
		if _, err := c.Prune(ctx); err != nil {
			return true, err
		}
	}
	return n > 0, nil
}

// UserKey is the model name of a user: the address in lower case, so that
// a recipient and a login name find the same model.
func UserKey(user string) string { return strings.ToLower(strings.TrimSpace(user)) }

// Prune bounds the store to Config.MaxTokens feature rows.
func (c *Classifier) Prune(ctx context.Context) (int, error) {
	return c.store.Prune(ctx, c.cfg.MaxTokens, c.now().Add(-c.cfg.PruneAge))
}

// Autolearn learns a message into the global model when the rest of the
// pipeline is sure of it: a verdict score at or above
// Config.AutolearnSpamScore learns spam, at or below
// Config.AutolearnHamScore learns ham. The classifier's own symbols are
// taken out of score first (as SpamAssassin does), so that Bayes never
// confirms itself. It does nothing unless Config.Autolearn is set, and
// returns the class learned (Forget: nothing).
func (c *Classifier) Autolearn(ctx context.Context, msg *filters.Message, score float64, syms []filters.Symbol) (Class, error) {
	if !c.cfg.Autolearn || msg == nil {
		return Forget, nil
	}
	for _, s := range syms {
		if s.Name == SymSpam || s.Name == SymHam || s.Name == SymUntrained || s.Name == SymLangUnfamiliar {
			score -= s.Score
		}
	}
	class := Forget
	switch {
	case score >= c.cfg.AutolearnSpamScore:
		class = Spam
	case score <= c.cfg.AutolearnHamScore:
		class = Ham
	default:
		return Forget, nil
	}
	if _, err := c.LearnMessage(ctx, "", msg, class); err != nil {
		return Forget, fmt.Errorf("bayes autolearn: %w", err)
	}
	return class, nil
}

// LearnBatch learns spam and ham messages in one store transaction per
// model (`moat bayes train`), tokenising them on every CPU; the logistic
// model learns them together, in several shuffled passes. It returns how
// many messages changed the user's model (the global one when user is
// "").
func (c *Classifier) LearnBatch(ctx context.Context, user string, spam, ham []Sample) (int, error) {
	user = UserKey(user)
	samples := append(append([]Sample(nil), spam...), ham...)
	n := len(samples)
	events := make([]Event, n)
	now := c.now()
	parallel(n, runtime.NumCPU(), func(i int) {
		class := Spam
		if i >= len(spam) {
			class = Ham
		}
		m := filters.ParseMessage(samples[i].Raw)
		events[i] = Event{User: user, Digest: MessageDigest(m), Features: Features(m, m.Content()), Class: class, Time: now}
	})
	if user != "" {
		for _, ev := range events[:n] {
			ev.User = ""
			events = append(events, ev)
		}
	}
	if err := c.withSteps(ctx, events); err != nil {
		return 0, err
	}
	// The user's events come first, so the count of changes up to n is
	// theirs; count them apart.
	changed, err := c.store.Train(ctx, events[:n])
	if err != nil {
		return 0, err
	}
	if len(events) > n {
		if _, err := c.store.Train(ctx, events[n:]); err != nil {
			return changed, err
		}
	}
	return changed, nil
}
