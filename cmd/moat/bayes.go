package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moatmail/moat/filters/bayes"
	"github.com/moatmail/moat/filters/state"
	"github.com/moatmail/moat/policies"
)

// cmdBayes runs `moat bayes train|eval|stats|report`.
//
//	moat bayes train --spam PATH --ham PATH [--user U] [-config FILE]
//	moat bayes eval --spam PATH --ham PATH [--folds 10] [--only-folds 0,1]
//	                [--train-spam PATH --train-ham PATH]
//	                [--scores FILE] [--workers N] [-config FILE]
//	moat bayes stats [-config FILE]
//	moat bayes report --scores FILE [--name NAME] [--threshold P] [--per-sec R]
//
// PATH is an mbox file, a Maildir or a folder of message files.
func cmdBayes(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"bayes: want train, eval, stats or report"}
	}
	sub := args[0]
	var (
		spam, ham, user, scores, only, name string
		trainSpam, trainHam                 string
		folds, workers                      int
		threshold, perSec                   float64
	)
	path, rest, err := flags("bayes "+sub, args[1:], func(fs *flag.FlagSet) {
		switch sub {
		case "train", "eval":
			fs.StringVar(&spam, "spam", "", "spam: an mbox file, a Maildir or a folder of messages")
			fs.StringVar(&ham, "ham", "", "ham: an mbox file, a Maildir or a folder of messages")
		}
		switch sub {
		case "train":
			fs.StringVar(&user, "user", "", "learn into this user's model (and the global one)")
		case "eval":
			fs.IntVar(&folds, "folds", 10, "k of k-fold cross-validation")
			fs.StringVar(&only, "only-folds", "", "run only these folds of the same split (0-based, comma separated)")
			fs.StringVar(&scores, "scores", "", "write each test message's score to this file (TSV)")
			fs.IntVar(&workers, "workers", 0, "classify with this many goroutines (default: CPUs)")
			fs.StringVar(&trainSpam, "train-spam", "", "holdout: learn this spam (and --train-ham), judge --spam and --ham (no cross-validation)")
			fs.StringVar(&trainHam, "train-ham", "", "holdout: learn this ham (with --train-spam)")
		case "report":
			fs.StringVar(&scores, "scores", "", "a TSV of scores: fold, spam|ham, probability, name")
			fs.StringVar(&name, "name", "", "the system's name in the table")
			fs.Float64Var(&perSec, "per-sec", 0, "the system's measured messages/s, for the table")
		}
		if sub == "eval" || sub == "report" {
			fs.Float64Var(&threshold, "threshold", 0, "call spam at or above this probability (default: the band whose score reaches the default policy's tag threshold)")
		}
	})
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usageError{fmt.Sprintf("bayes %s: unexpected argument %q", sub, rest[0])}
	}
	dataDir, bcfg, scfg, tag, err := bayesConfig(path)
	if err != nil {
		return err
	}
	if threshold == 0 {
		threshold = actingThreshold(bcfg, tag)
	}
	if sub == "report" {
		if scores == "" {
			return usageError{"bayes report: --scores is required"}
		}
		return bayesReport(stdout, scores, name, threshold, bcfg.SpamBands, perSec)
	}
	ctx := context.Background()
	switch sub {
	case "train":
		if spam == "" && ham == "" {
			return usageError{"bayes train: want --spam and/or --ham"}
		}
		return bayesTrain(ctx, stdout, scfg, bcfg, dataDir, spam, ham, user)
	case "eval":
		if spam == "" || ham == "" {
			return usageError{"bayes eval: --spam and --ham are required"}
		}
		opt := bayes.EvalOptions{Folds: folds, Workers: workers}
		for _, f := range strings.FieldsFunc(only, func(r rune) bool { return r == ',' }) {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return usageError{fmt.Sprintf("bayes eval: --only-folds: %q is not a number", f)}
			}
			opt.OnlyFolds = append(opt.OnlyFolds, n)
		}
		if (trainSpam == "") != (trainHam == "") {
			return usageError{"bayes eval: --train-spam and --train-ham go together"}
		}
		return bayesEval(ctx, stdout, bcfg, evalSets{spam, ham, trainSpam, trainHam}, opt, scores, threshold)
	case "stats":
		return bayesStats(ctx, stdout, scfg, bcfg, dataDir)
	}
	return usageError{fmt.Sprintf("bayes: unknown subcommand %q", sub)}
}

// bayesConfig returns the data folder, the [filters.bayes] section and the
// default policy's tag threshold of a configuration file (the embedded
// default when path is empty).
func bayesConfig(path string) (string, bayes.Config, state.Config, float64, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return "", bayes.Config{}, state.Config{}, 0, err
	}
	pols, err := policies.New(cfg.Policies)
	if err != nil {
		return "", bayes.Config{}, state.Config{}, 0, err
	}
	return cfg.DataDir, cfg.Filters.Bayes, cfg.State, pols.For("").TagScore, nil
}

// openClassifier opens the classifier where [state] keeps its tokens;
// closing it closes the Redis client too.
func openClassifier(scfg state.Config, cfg bayes.Config, dataDir string) (*bayes.Classifier, func(), error) {
	shared, err := openState(scfg, nil)
	if err != nil {
		return nil, nil, err
	}
	c, err := shared.classifier(cfg, dataDir)
	if err != nil {
		shared.Close()
		return nil, nil, err
	}
	return c, func() { c.Close(); shared.Close() }, nil
}

// actingThreshold is the probability the figures are reported at: from it
// on the classifier alone tags a message under the default policy (its
// band's score reaches the tag threshold), or, when no band does, the
// weakest band's.
func actingThreshold(cfg bayes.Config, tag float64) float64 {
	if p, ok := cfg.ProbabilityForScore(tag); ok {
		return p
	}
	return cfg.SpamThreshold()
}

func bayesTrain(ctx context.Context, w io.Writer, scfg state.Config, cfg bayes.Config, dataDir, spam, ham, user string) error {
	c, closeAll, err := openClassifier(scfg, cfg, dataDir)
	if err != nil {
		return err
	}
	defer closeAll()
	t0 := time.Now()
	var sets [2][]bayes.Sample
	for i, path := range []string{spam, ham} {
		if path == "" {
			continue
		}
		if sets[i], err = bayes.ReadCorpus(path); err != nil {
			return err
		}
	}
	n, err := c.LearnBatch(ctx, user, sets[0], sets[1])
	if err != nil {
		return err
	}
	read := len(sets[0]) + len(sets[1])
	fmt.Fprintf(w, "%d spam and %d ham messages read, %d learned in %.1fs", len(sets[0]), len(sets[1]), n, time.Since(t0).Seconds())
	if n < read {
		fmt.Fprint(w, " (the others were learned as the same class before)")
	}
	fmt.Fprintln(w)
	if _, err := c.Prune(ctx); err != nil {
		return err
	}
	return bayesStats(ctx, w, scfg, cfg, dataDir)
}

func bayesStats(ctx context.Context, w io.Writer, scfg state.Config, cfg bayes.Config, dataDir string) error {
	c, closeAll, err := openClassifier(scfg, cfg, dataDir)
	if err != nil {
		return err
	}
	defer closeAll()
	st, err := c.Store().Stats(ctx)
	if err != nil {
		return err
	}
	if scfg.Redis() {
		fmt.Fprintf(w, "redis %s (keys %sbayes:), used_memory %.1f MB\n", scfg.Address, scfg.KeyPrefix, float64(st.Bytes)/1e6)
	} else {
		fmt.Fprintf(w, "database %s, %.1f MB\n", bayes.DatabasePath(cfg, dataDir), float64(st.Bytes)/1e6)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tSPAM\tHAM\tFEATURES\tTRAINED\tLOGISTIC")
	for _, m := range st.Models {
		model := m.User
		if model == "" {
			model = "(global)"
		}
		logistic := "off"
		if cfg.Logistic {
			logistic = fmt.Sprint(cfg.LogisticTrained(m.Totals))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%v\t%s\n", model, m.Spam, m.Ham, m.Features, cfg.Trained(m.Totals), logistic)
	}
	return tw.Flush()
}

// evalSets names the corpora of `moat bayes eval`: the messages judged
// and, for a holdout evaluation, the messages learned.
type evalSets struct{ spam, ham, trainSpam, trainHam string }

func bayesEval(ctx context.Context, w io.Writer, cfg bayes.Config, sets evalSets, opt bayes.EvalOptions, scoresPath string, threshold float64) error {
	var corpora [4][]bayes.Sample
	for i, p := range []string{sets.spam, sets.ham, sets.trainSpam, sets.trainHam} {
		if p == "" {
			continue
		}
		var err error
		if corpora[i], err = bayes.ReadCorpus(p); err != nil {
			return err
		}
	}
	spam, ham := corpora[0], corpora[1]
	if sets.trainSpam != "" {
		// A holdout: fold 0 is the training mail, fold 1 the judged mail,
		// and fold 1 learns only fold 0 (Forward), as a date split does.
		trainSpam, trainHam := corpora[2], corpora[3]
		opt.Folds, opt.Forward, opt.OnlyFolds = 2, true, nil
		opt.Assign = make([]int, 0, len(spam)+len(ham)+len(trainSpam)+len(trainHam))
		for _, part := range [][2]int{{len(trainSpam), 0}, {len(spam), 1}, {len(trainHam), 0}, {len(ham), 1}} {
			for range part[0] {
				opt.Assign = append(opt.Assign, part[1])
			}
		}
		spam = append(append([]bayes.Sample(nil), trainSpam...), spam...)
		ham = append(append([]bayes.Sample(nil), trainHam...), ham...)
		fmt.Fprintf(w, "moat bayes eval: learn %d spam, %d ham; judge %d spam, %d ham (holdout)\n",
			len(trainSpam), len(trainHam), len(corpora[0]), len(corpora[1]))
	} else {
		fmt.Fprintf(w, "moat bayes eval: %d spam, %d ham, %d-fold cross-validation\n", len(spam), len(ham), opt.Folds)
	}
	t0 := time.Now()
	opt.Progress = func(fold int, m bayes.Metrics) {
		fmt.Fprintf(w, "  fold %d: spam recall %.2f %%, ham FP %d/%d, AUC %.5f (%.0fs)\n",
			fold, 100*m.Recall, m.FP, m.Ham, m.AUC, time.Since(t0).Seconds())
	}
	rep, err := bayes.CrossValidate(ctx, cfg, spam, ham, opt)
	if err != nil {
		return err
	}
	if scoresPath != "" {
		if err := writeScores(scoresPath, rep.Scores); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "folds run: %v of %d; classification with %d workers\n", rep.RunFolds, rep.Folds, rep.Workers)
	printMetrics(w, "moat", rep.Scores, threshold, cfg.SpamBands, rep.ClassifyPerSec)
	fmt.Fprintf(w, "learning: %.0f msg/s (batch, features precomputed)\n", rep.TrainPerSec)
	return nil
}

// printMetrics prints one system's figures as a small table: called spam
// at threshold, at bounds of the false-positive rate, and at each spam
// band's probability.
func printMetrics(w io.Writer, name string, scores []bayes.Scored, threshold float64, bands []bayes.Band, perSec float64) {
	m := bayes.Measure(scores, threshold)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SYSTEM\tSPAM RECALL\tHAM FP RATE\tACCURACY\tROC AUC\tMSG/S\n")
	rate := "-"
	if perSec > 0 {
		rate = fmt.Sprintf("%.0f", perSec)
	}
	fmt.Fprintf(tw, "%s\t%.2f %% (%d/%d)\t%.2f %% (%d/%d)\t%.2f %%\t%.5f\t%s\n", name,
		100*m.Recall, m.TP, m.Spam, 100*m.FPRate, m.FP, m.Ham, 100*m.Accuracy, m.AUC, rate)
	tw.Flush()
	fmt.Fprintf(w, "  spam called at probability >= %.2f\n", m.Threshold)
	for _, op := range m.RecallAtFP {
		fmt.Fprintf(w, "  at ham FP <= %.1f %%: spam recall %.2f %% (FP %.2f %%, probability >= %.6g)\n",
			100*op.MaxFPRate, 100*op.Recall, 100*op.FPRate, op.Threshold)
	}
	for _, b := range bands {
		bm := bayes.Measure(scores, b.Probability)
		fmt.Fprintf(w, "  at the spam band %.2f (score %.1f): spam recall %.2f %%, ham FP %.2f %% (%d/%d)\n",
			b.Probability, b.Score, 100*bm.Recall, 100*bm.FPRate, bm.FP, bm.Ham)
	}
}

// writeScores writes one line per test message: fold, spam|ham,
// probability, name. `moat bayes report` reads the same format, so that
// the peers' scores are measured by the same code.
func writeScores(path string, scores []bayes.Scored) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("scores: %w", err)
	}
	bw := bufio.NewWriter(f)
	for _, s := range scores {
		class := "ham"
		if s.Spam {
			class = "spam"
		}
		fmt.Fprintf(bw, "%d\t%s\t%.9f\t%s\n", s.Fold, class, s.Probability, s.Name)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("scores: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("scores: %w", err)
	}
	return nil
}

func readScores(path string) ([]bayes.Scored, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("scores: %w", err)
	}
	defer f.Close()
	var out []bayes.Scored
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		fs := strings.Split(t, "\t")
		if len(fs) < 3 {
			return nil, fmt.Errorf("scores %s:%d: want fold, class, probability", path, line)
		}
		fold, err1 := strconv.Atoi(fs[0])
		p, err2 := strconv.ParseFloat(fs[2], 64)
		if err1 != nil || err2 != nil || (fs[1] != "spam" && fs[1] != "ham") {
			return nil, fmt.Errorf("scores %s:%d: malformed line", path, line)
		}
		s := bayes.Scored{Fold: fold, Spam: fs[1] == "spam", Probability: p}
		if len(fs) > 3 {
			s.Name = fs[3]
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scores: %w", err)
	}
	return out, nil
}

func bayesReport(w io.Writer, path, name string, threshold float64, bands []bayes.Band, perSec float64) error {
	scores, err := readScores(path)
	if err != nil {
		return err
	}
	if name == "" {
		name = path
	}
	printMetrics(w, name, scores, threshold, bands, perSec)
	return nil
}
