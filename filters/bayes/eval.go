package bayes

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatmail/moat/filters"
)

// EvalOptions configures a cross-validation.
type EvalOptions struct {
	// Folds is k of k-fold cross-validation (at least 2).
	Folds int
	// Seed fixes the assignment of messages to folds.
	Seed uint64
	// Workers classify a test fold in parallel (default: the number of
	// CPUs), as a gateway classifies concurrent messages.
	Workers int
	// TempDir holds each fold's database (default: os.TempDir()).
	TempDir string
	// OnlyFolds, when not empty, runs only these folds (0-based), on the
	// same split: for a quick run.
	OnlyFolds []int
	// Progress, when not nil, is told after each fold.
	Progress func(fold int, m Metrics)
	// Assign, when not nil, gives each sample's fold (spam first, then
	// ham) instead of the seeded stratified deal of AssignFolds.
	Assign []int
	// Forward makes fold k learn only the folds before it, not every
	// other fold: with folds in date order, each message is judged by a
	// model of older mail only, as a deployed classifier is (its figures
	// show drift, which k-fold cross-validation hides). Fold 0 learns
	// nothing and is not run.
	Forward bool
}

// Scored is one test message's classification in a cross-validation.
type Scored struct {
	Fold        int
	Spam        bool // the true class
	Probability float64
	Name        string
}

// EvalReport is the outcome of a cross-validation.
type EvalReport struct {
	Folds    int
	RunFolds []int
	Scores   []Scored
	// Assign maps each sample, spam first then ham, to its fold.
	Assign []int
	// Classified messages per second (wall clock, Workers in parallel,
	// from raw bytes: parse, MIME walk, tokenise, look up, combine),
	// and learned messages per second (batch).
	ClassifyPerSec, TrainPerSec float64
	Workers                     int
}

// AssignFolds assigns n messages of one class to k folds: a fixed
// permutation (seeded) dealt round-robin, so that every fold holds the
// same share of each class (stratified cross-validation).
func AssignFolds(n, k int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 0x6d6f6174))
	perm := r.Perm(n)
	out := make([]int, n)
	for i, p := range perm {
		out[p] = i % k
	}
	return out
}

// CrossValidate runs k-fold cross-validation: for each fold, a fresh
// SQLite store learns every other fold (in one batch) and the fold's
// messages are classified through the full path. The features of every
// message are computed once, for learning.
func CrossValidate(ctx context.Context, cfg Config, spam, ham []Sample, opt EvalOptions) (*EvalReport, error) {
	if opt.Folds < 2 {
		return nil, fmt.Errorf("bayes eval: %d folds (want at least 2)", opt.Folds)
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bayes config: %w", err)
	}
	samples := append(append([]Sample(nil), spam...), ham...)
	isSpam := func(i int) bool { return i < len(spam) }
	assign := append(AssignFolds(len(spam), opt.Folds, opt.Seed), AssignFolds(len(ham), opt.Folds, opt.Seed+1)...)
	if opt.Assign != nil {
		if len(opt.Assign) != len(samples) {
			return nil, fmt.Errorf("bayes eval: %d fold assignments for %d samples", len(opt.Assign), len(samples))
		}
		assign = opt.Assign
	}
	feats := make([][]uint64, len(samples))
	digests := make([]Digest, len(samples))
	parallel(len(samples), opt.Workers, func(i int) {
		m := filters.ParseMessage(samples[i].Raw)
		feats[i] = Features(m, m.Content())
		digests[i] = MessageDigest(m)
	})
	run := opt.OnlyFolds
	if len(run) == 0 {
		for f := range opt.Folds {
			if f > 0 || !opt.Forward {
				run = append(run, f)
			}
		}
	}
	rep := &EvalReport{Folds: opt.Folds, RunFolds: run, Assign: assign, Workers: opt.Workers}
	var classifyTime, trainTime time.Duration
	var classified, trained int
	dir, err := os.MkdirTemp(opt.TempDir, "moat-bayes-eval-")
	if err != nil {
		return nil, fmt.Errorf("bayes eval: %w", err)
	}
	defer os.RemoveAll(dir)
	for _, fold := range run {
		if fold < 0 || fold >= opt.Folds {
			return nil, fmt.Errorf("bayes eval: fold %d out of range", fold)
		}
		st, err := openScratch(filepath.Join(dir, fmt.Sprintf("fold-%d.db", fold)))
		if err != nil {
			return nil, err
		}
		c, err := NewClassifier(cfg, st)
		if err != nil {
			st.Close()
			return nil, err
		}
		var events []Event
		var test []int
		now := time.Now()
		for i := range samples {
			if assign[i] == fold {
				test = append(test, i)
				continue
			}
			if opt.Forward && assign[i] > fold {
				continue // newer than the fold: not yet seen
			}
			class := Ham
			if isSpam(i) {
				class = Spam
			}
			events = append(events, Event{Digest: digests[i], Features: feats[i], Class: class, Time: now})
		}
		t0 := time.Now()
		if err := c.withSteps(ctx, events); err != nil {
			st.Close()
			return nil, err
		}
		if _, err := st.Train(ctx, events); err != nil {
			st.Close()
			return nil, err
		}
		// Bound the model as `moat bayes train` and the gateway do.
		if _, err := c.Prune(ctx); err != nil {
			st.Close()
			return nil, err
		}
		trainTime += time.Since(t0)
		// Load the model before the clock starts: a running gateway has.
		if _, err := c.ClassifyFeatures(ctx, "", nil); err != nil {
			st.Close()
			return nil, err
		}
		trained += len(events)
		scores := make([]Scored, len(test))
		var firstErr atomic.Value
		t0 = time.Now()
		parallel(len(test), opt.Workers, func(j int) {
			i := test[j]
			r, err := c.Classify(ctx, "", filters.ParseMessage(samples[i].Raw))
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
			scores[j] = Scored{Fold: fold, Spam: isSpam(i), Probability: r.Probability, Name: samples[i].Name}
		})
		classifyTime += time.Since(t0)
		classified += len(test)
		st.Close()
		os.Remove(filepath.Join(dir, fmt.Sprintf("fold-%d.db", fold)))
		if err, _ := firstErr.Load().(error); err != nil {
			return nil, err
		}
		rep.Scores = append(rep.Scores, scores...)
		if opt.Progress != nil {
			opt.Progress(fold, Measure(scores, cfg.SpamThreshold()))
		}
	}
	rep.ClassifyPerSec = float64(classified) / classifyTime.Seconds()
	rep.TrainPerSec = float64(trained) / trainTime.Seconds()
	return rep, nil
}

// parallel calls fn(0..n-1) on workers goroutines.
func parallel(n, workers int, fn func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// Metrics summarise classifications against the truth.
type Metrics struct {
	Spam, Ham int
	// Threshold: a probability at or above it calls a message spam.
	Threshold float64
	// TP: spam called spam; FN: spam missed; FP: ham called spam; TN.
	TP, FN, FP, TN int
	// Recall is TP/Spam, FPRate FP/Ham, Accuracy (TP+TN)/all.
	Recall, FPRate, Accuracy float64
	// AUC is the area under the ROC curve (ties count half).
	AUC float64
	// RecallAtFP gives, for each operating point (a ham false-positive
	// rate), the spam recall of the best threshold that keeps false
	// positives at or under it.
	RecallAtFP []OperatingPoint
}

// OperatingPoint is the recall at a bound on the false-positive rate.
type OperatingPoint struct {
	MaxFPRate, Recall, FPRate, Threshold float64
}

// OperatingPoints are the false-positive rates Measure reports recall at.
var OperatingPoints = []float64{0.003, 0.009}

// Measure computes Metrics over scores at a threshold.
func Measure(scores []Scored, threshold float64) Metrics {
	m := Metrics{Threshold: threshold}
	var spamP, hamP []float64
	for _, s := range scores {
		called := s.Probability >= threshold
		if s.Spam {
			m.Spam++
			spamP = append(spamP, s.Probability)
			if called {
				m.TP++
			} else {
				m.FN++
			}
		} else {
			m.Ham++
			hamP = append(hamP, s.Probability)
			if called {
				m.FP++
			} else {
				m.TN++
			}
		}
	}
	m.Recall = ratio(m.TP, m.Spam)
	m.FPRate = ratio(m.FP, m.Ham)
	m.Accuracy = ratio(m.TP+m.TN, m.Spam+m.Ham)
	sort.Float64s(spamP)
	sort.Float64s(hamP)
	m.AUC = auc(spamP, hamP)
	for _, rate := range OperatingPoints {
		m.RecallAtFP = append(m.RecallAtFP, operatingPoint(spamP, hamP, rate))
	}
	return m
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// auc is the Mann-Whitney statistic: the chance that a random spam scores
// above a random ham, ties counting half. Both slices are sorted.
func auc(spam, ham []float64) float64 {
	if len(spam) == 0 || len(ham) == 0 {
		return 0
	}
	var sum float64
	lo, hi := 0, 0 // ham[:lo] < p, ham[:hi] <= p
	for _, p := range spam {
		for lo < len(ham) && ham[lo] < p {
			lo++
		}
		if hi < lo {
			hi = lo
		}
		for hi < len(ham) && ham[hi] <= p {
			hi++
		}
		sum += float64(lo) + float64(hi-lo)/2
	}
	return sum / float64(len(spam)) / float64(len(ham))
}

// operatingPoint finds the lowest threshold whose false-positive rate is
// at most rate, and the recall there. Both slices are sorted.
func operatingPoint(spam, ham []float64, rate float64) OperatingPoint {
	op := OperatingPoint{MaxFPRate: rate, Threshold: 1}
	if len(ham) == 0 || len(spam) == 0 {
		return op
	}
	allowed := int(rate * float64(len(ham)))
	// Calling p >= t spam: the threshold must sit above the
	// (allowed+1)-th highest ham score.
	t := 0.0
	if allowed < len(ham) {
		t = nextAbove(ham[len(ham)-1-allowed])
	}
	op.Threshold = t
	i := sort.SearchFloat64s(spam, t)
	op.Recall = float64(len(spam)-i) / float64(len(spam))
	j := sort.SearchFloat64s(ham, t)
	op.FPRate = float64(len(ham)-j) / float64(len(ham))
	return op
}

func nextAbove(p float64) float64 {
	if p >= 1 {
		return 1.0000001 // nothing can be called spam
	}
	return math.Nextafter(p, 2)
}
