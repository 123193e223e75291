package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/address"
	"github.com/moatmail/moat/filters/bayes"
	"github.com/moatmail/moat/rules"
)

// scoresFile is what `moat rules fit` writes and [rules] scores_file
// reads.
type scoresFile struct {
	Scores map[string]float64 `toml:"scores"`
	Bayes  struct {
		SpamBands []bayes.Band `toml:"spam_bands"`
		HamBands  []bayes.Band `toml:"ham_bands"`
	} `toml:"bayes"`
}

// applyScoresFile merges [rules] scores_file into cfg: its [scores] under
// [rules.scores], its Bayes bands where [filters.bayes] sets none. A
// relative path is relative to the configuration file's folder.
func applyScoresFile(cfg *Config, md toml.MetaData, name string) error {
	path := cfg.Rules.ScoresFile
	if path == "" {
		return nil
	}
	if !filepath.IsAbs(path) && name != "embedded default" && name != "test" {
		path = filepath.Join(filepath.Dir(name), path)
	}
	var sf scoresFile
	md2, err := toml.DecodeFile(path, &sf)
	if err != nil {
		return fmt.Errorf("rules.scores_file: %w", err)
	}
	if und := md2.Undecoded(); len(und) > 0 {
		return fmt.Errorf("rules.scores_file: %s: unknown key %s", path, und[0].String())
	}
	if cfg.Rules.Scores == nil {
		cfg.Rules.Scores = map[string]float64{}
	}
	for k, v := range sf.Scores {
		if _, set := cfg.Rules.Scores[k]; !set {
			cfg.Rules.Scores[k] = v
		}
	}
	if len(sf.Bayes.SpamBands) > 0 && !md.IsDefined("filters", "bayes", "spam_bands") {
		cfg.Filters.Bayes.SpamBands = sf.Bayes.SpamBands
	}
	if len(sf.Bayes.HamBands) > 0 && !md.IsDefined("filters", "bayes", "ham_bands") {
		cfg.Filters.Bayes.HamBands = sf.Bayes.HamBands
	}
	return nil
}

// fitOff are the filters `moat rules fit` switches off: those that ask
// the DNS or keep state between messages (a corpus has no live DNS, and
// greylisting or rate limits judge the sending, not the message), and
// the classifier, whose out-of-fold probability is measured apart.
var fitOff = []string{"rdns", "spf", "dkim", "dmarc", "dnsbl", "uribl", "antivirus", "greylist",
	"ratelimit-connect", "ratelimit-mail", "ratelimit-rcpt", "earlytalker", "bayes"}

// fitSpamEdges and fitHamEdges are the Bayes bands the fit scores: finer
// than the default bands, so that it can tell strong evidence from weak.
var (
	fitSpamEdges = []float64{0.999, 0.99, 0.95, 0.80, 0.55}
	fitHamEdges  = []float64{0.001, 0.01, 0.05}
)

// cmdRules runs `moat rules fit`.
//
//	moat rules fit --spam PATH --ham PATH [--out FILE] [--folds 5] [--by-date]
//	               [--ham-weight 2] [--l2 0.001] [--max-fp 0.005]
//	               [--bayes-alone 0.99] [--dump FILE] [-config FILE]
func cmdRules(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "fit" {
		return usageError{"rules: want fit"}
	}
	var (
		spamPath, hamPath, out, dump string
		folds                        int
		byDate                       bool
		hamWeight, l2, maxFP, alone  float64
	)
	path, rest, err := flags("rules fit", args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&spamPath, "spam", "", "spam: an mbox file, a Maildir or a folder of messages")
		fs.StringVar(&hamPath, "ham", "", "ham: an mbox file, a Maildir or a folder of messages")
		fs.StringVar(&out, "out", "", "write the score table (TOML) here (default: standard output)")
		fs.IntVar(&folds, "folds", 5, "the classifier's probabilities come from this many folds")
		fs.BoolVar(&byDate, "by-date", false, "folds in date order, each judged by a model of the older folds only (the oldest fold is left out of the fit)")
		fs.StringVar(&dump, "dump", "", "write each message's class, classifier probability and symbols here (TSV)")
		fs.Float64Var(&hamWeight, "ham-weight", 2, "cost of a ham scored as spam, against 1 for a spam missed")
		fs.Float64Var(&l2, "l2", 0.001, "L2 pull of each score towards its filter's own, per message")
		fs.Float64Var(&maxFP, "max-fp", 0.005, "the ham share the fit may flag; the ham weight doubles until it holds")
		fs.Float64Var(&alone, "bayes-alone", 0.99, "Bayes bands below this probability score at most the tag score less 1: the classifier alone tags only from it (0: no bound)")
	})
	if err != nil {
		return err
	}
	if len(rest) != 0 || spamPath == "" || hamPath == "" {
		return usageError{"rules fit: want --spam PATH --ham PATH"}
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	for _, n := range fitOff {
		if !contains(cfg.Filters.Disabled, n) {
			cfg.Filters.Disabled = append(cfg.Filters.Disabled, n)
		}
		delete(cfg.Rules.Filters, n) // the on_error settings added for them
	}
	cfg.Rules.Scores = nil // fit the filters' own scores, not an earlier table's
	j, err := buildJudge(cfg, builtOnce{log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer j.filters.close()
	spam, err := bayes.ReadCorpus(spamPath)
	if err != nil {
		return err
	}
	ham, err := bayes.ReadCorpus(hamPath)
	if err != nil {
		return err
	}
	ctx := context.Background()
	opt := bayes.EvalOptions{Folds: folds}
	bcfg := cfg.Filters.Bayes
	if byDate {
		fmt.Fprintf(stdout, "moat rules fit: %d spam, %d ham; classifier probabilities from %d folds in date order, each judged by the older ones\n", len(spam), len(ham), folds)
		opt.Forward = true
		opt.Assign = append(dateFolds(spam, folds), dateFolds(ham, folds)...)
		// The second fold is judged by a model of the oldest alone.
		bcfg.MinSpam = min(bcfg.MinSpam, len(spam)/folds)
		bcfg.MinHam = min(bcfg.MinHam, len(ham)/folds)
	} else {
		fmt.Fprintf(stdout, "moat rules fit: %d spam, %d ham; classifier probabilities from %d-fold cross-validation\n", len(spam), len(ham), folds)
	}
	rep, err := bayes.CrossValidate(ctx, bcfg, spam, ham, opt)
	if err != nil {
		return err
	}
	prob := map[string]float64{}
	for _, s := range rep.Scores {
		prob[fmt.Sprintf("%v/%s", s.Spam, s.Name)] = s.Probability
	}
	var samples []fitSample
	defaults := map[string]float64{}
	pol := j.judge.Policies.Default()
	var dumped bytes.Buffer
	collect := func(set []bayes.Sample, isSpam bool) {
		for _, s := range set {
			p, judged := prob[fmt.Sprintf("%v/%s", isSpam, s.Name)]
			if !judged {
				continue // the oldest fold of --by-date
			}
			syms := pipelineSymbols(ctx, j.judge.Pipeline, pol.Runs, cfg, s.Raw)
			fs := fitSample{spam: isSpam}
			var line []string
			for _, sym := range syms {
				if _, seen := defaults[sym.Name]; !seen {
					defaults[sym.Name] = sym.Score
				}
				if !slices.Contains(fs.feats, sym.Name) {
					fs.feats = append(fs.feats, sym.Name)
					line = append(line, fmt.Sprintf("%s=%g", sym.Name, sym.Score))
				}
			}
			if b := bayesBand(p); b != "" {
				fs.feats = append(fs.feats, b)
			}
			samples = append(samples, fs)
			fmt.Fprintf(&dumped, "%s\t%s\t%.6f\t%s\n", map[bool]string{true: "spam", false: "ham"}[isSpam], s.Name, p, strings.Join(line, " "))
		}
	}
	collect(spam, true)
	collect(ham, false)
	if dump != "" {
		if err := os.WriteFile(dump, dumped.Bytes(), 0o644); err != nil {
			return err
		}
	}
	tag := pol.TagScore
	for _, b := range fitSpamEdges {
		defaults[bandName("BAYES_SPAM", b)] = defaultBandScore(cfg.Filters.Bayes.SpamBands, b, true)
	}
	for _, b := range fitHamEdges {
		defaults[bandName("BAYES_HAM", b)] = defaultBandScore(cfg.Filters.Bayes.HamBands, b, false)
	}
	fmt.Fprintf(stdout, "before: %s\n", fitFigures(samples, defaults, tag))
	var scores map[string]float64
	w := hamWeight
	for range 8 {
		scores = fitScores(samples, defaults, tag, w, l2, bandCaps(alone, tag))
		_, hamShare := fitRates(samples, scores, tag)
		fmt.Fprintf(stdout, "fit (ham weight %g): %s\n", w, fitFigures(samples, scores, tag))
		if hamShare <= maxFP {
			break
		}
		w *= 2
	}
	var buf bytes.Buffer
	nSpam, nHam := 0, 0
	for _, x := range samples {
		if x.spam {
			nSpam++
		} else {
			nHam++
		}
	}
	writeScoresTOML(&buf, scores, defaults, samples, nSpam, nHam)
	if out == "" {
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "score table written to %s\n", out)
	return nil
}

// bandCaps bounds the score of every fitted spam band below alone at
// tag − 1, so that the classifier alone, on weak or drifting evidence,
// never tags: a message in such a band needs another symbol's word.
func bandCaps(alone, tag float64) map[string]float64 {
	caps := map[string]float64{}
	for _, e := range fitSpamEdges {
		if e < alone {
			caps[bandName("BAYES_SPAM", e)] = tag - 1
		}
	}
	return caps
}

// fitSample is one message's symbols (Bayes bands as BAYES_SPAM>=p
// features) and class.
type fitSample struct {
	feats []string
	spam  bool
}

func bandName(sym string, p float64) string {
	if sym == "BAYES_HAM" {
		return fmt.Sprintf("BAYES_HAM<=%g", p)
	}
	return fmt.Sprintf("BAYES_SPAM>=%g", p)
}

// bayesBand names the fit's band of a probability, "" between bands.
func bayesBand(p float64) string {
	for _, e := range fitSpamEdges {
		if p >= e {
			return bandName("BAYES_SPAM", e)
		}
	}
	for _, e := range fitHamEdges {
		if p <= e {
			return bandName("BAYES_HAM", e)
		}
	}
	return ""
}

// defaultBandScore is the score the configured bands give probability p.
func defaultBandScore(bands []bayes.Band, p float64, spam bool) float64 {
	best, bestP := 0.0, -1.0
	for _, b := range bands {
		if spam && p >= b.Probability && b.Probability > bestP {
			best, bestP = b.Score, b.Probability
		}
		if !spam && p <= b.Probability && (bestP < 0 || b.Probability < bestP) {
			best, bestP = b.Score, b.Probability
		}
	}
	return best
}

// pipelineSymbols runs a message through the data stage as the session
// does (filters, then the rules), with an envelope taken from its header.
func pipelineSymbols(ctx context.Context, p *rules.Pipeline, runs func(string) bool, cfg *Config, raw []byte) []filters.Symbol {
	msg := filters.ParseMessage(raw)
	msg.Limits = cfg.Filters.Content
	from := firstAddress(msg.Header.Get("Return-Path"))
	if from == "" {
		from = firstAddress(msg.Header.Get("From"))
	}
	rcpt := "user@" + cfg.SMTP.LocalDomains[0]
	conn := &filters.Connection{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "mail.sender.example", Listener: "smtp"}
	env := &filters.Envelope{From: from, Rcpts: []string{rcpt}, Body8Bit: bytes.ContainsFunc(raw, func(r rune) bool { return r > 127 })}
	in := &filters.Input{Conn: conn, Env: env, Msg: msg, Prior: &filters.Result{}}
	res := p.Run(ctx, filters.StageData, in, runs)
	return res.Symbols
}

// firstAddress is the first address-like word of a header field.
func firstAddress(v string) string {
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(" <>,;\"'()", r) }) {
		if strings.Contains(f, "@") && address.Valid(f) {
			return f
		}
	}
	return ""
}

// fitScores fits every feature's score by L2-regularised logistic
// regression with the threshold fixed at tag: P(spam) = σ(Σ score − tag),
// ham errors weighted hamWeight, each score pulled towards its filter's
// own (as SpamAssassin's rescorer starts from the hand-set scores), so
// that a symbol seen in few messages keeps about the score it had. A score keeps the sign its filter gave
// it (SpamAssassin's rescorer keeps a rule's sign too): a spam sign
// nobody can buy off with a negative weight, a ham sign never turns
// into spam evidence.
//
// A score named in caps is kept at or below its cap.
func fitScores(samples []fitSample, defaults map[string]float64, tag, hamWeight, l2 float64, caps map[string]float64) map[string]float64 {
	names := make([]string, 0, len(defaults))
	for n := range defaults {
		names = append(names, n)
	}
	sort.Strings(names)
	idx := map[string]int{}
	for i, n := range names {
		idx[n] = i
	}
	count := make([]int, len(names))
	for _, s := range samples {
		for _, f := range s.feats {
			count[idx[f]]++
		}
	}
	s := make([]float64, len(names))
	for i, n := range names {
		s[i] = defaults[n]
	}
	// Adam on the weighted log loss.
	m := make([]float64, len(s))
	v := make([]float64, len(s))
	const rate, b1, b2 = 0.05, 0.9, 0.999
	var total float64
	for _, x := range samples {
		if x.spam {
			total++
		} else {
			total += hamWeight
		}
	}
	for it := 1; it <= 3000; it++ {
		g := make([]float64, len(s))
		for _, x := range samples {
			z := -tag
			for _, f := range x.feats {
				z += s[idx[f]]
			}
			p := 1 / (1 + math.Exp(-z))
			var d float64
			if x.spam {
				d = p - 1
			} else {
				d = hamWeight * p
			}
			for _, f := range x.feats {
				g[idx[f]] += d / total
			}
		}
		for i := range s {
			g[i] += l2 * (s[i] - defaults[names[i]])
			m[i] = b1*m[i] + (1-b1)*g[i]
			v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
			mh := m[i] / (1 - math.Pow(b1, float64(it)))
			vh := v[i] / (1 - math.Pow(b2, float64(it)))
			if count[i] == 0 {
				continue // never seen: keeps its default
			}
			s[i] -= rate * mh / (math.Sqrt(vh) + 1e-8)
			if d := defaults[names[i]]; d > 0 && s[i] < 0 || d < 0 && s[i] > 0 || d == 0 && strings.HasPrefix(names[i], "BAYES_SPAM") && s[i] < 0 {
				s[i] = 0
			}
			if c, ok := caps[names[i]]; ok && s[i] > c {
				s[i] = c
			}
		}
	}
	for i, n := range names {
		if c, ok := caps[n]; ok && s[i] > c {
			s[i] = c // also a band no message fell in
		}
	}
	out := map[string]float64{}
	for i, n := range names {
		out[n] = math.Round(s[i]*100) / 100
	}
	return out
}

// fitRates are the spam recall and ham share flagged at tag.
func fitRates(samples []fitSample, scores map[string]float64, tag float64) (recall, hamShare float64) {
	var sp, sh, tp, fp float64
	for _, x := range samples {
		var z float64
		for _, f := range x.feats {
			z += scores[f]
		}
		if x.spam {
			sp++
			if z >= tag {
				tp++
			}
		} else {
			sh++
			if z >= tag {
				fp++
			}
		}
	}
	return tp / max(sp, 1), fp / max(sh, 1)
}

func fitFigures(samples []fitSample, scores map[string]float64, tag float64) string {
	r, h := fitRates(samples, scores, tag)
	return fmt.Sprintf("spam recall %.2f %%, ham flagged %.2f %% (at score >= %g, on the fitting corpus)", 100*r, 100*h, tag)
}

// writeScoresTOML writes the table: the symbols' scores and the Bayes
// bands, with the count of messages each was seen in.
func writeScoresTOML(w io.Writer, scores, defaults map[string]float64, samples []fitSample, nSpam, nHam int) {
	inSpam, inHam := map[string]int{}, map[string]int{}
	for _, s := range samples {
		for _, f := range s.feats {
			if s.spam {
				inSpam[f]++
			} else {
				inHam[f]++
			}
		}
	}
	fmt.Fprintf(w, "# Symbol scores fitted by `moat rules fit` on %d spam and %d ham\n", nSpam, nHam)
	fmt.Fprintf(w, "# (L2-regularised logistic regression, threshold fixed at the tag score).\n")
	fmt.Fprintf(w, "# Use it with [rules] scores_file = \"this file\".\n\n[scores]\n")
	var names []string
	for n := range scores {
		if !strings.HasPrefix(n, "BAYES_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if inSpam[n]+inHam[n] == 0 {
			continue
		}
		fmt.Fprintf(w, "%s = %.2f  # was %g; in %d spam, %d ham\n", n, scores[n], defaults[n], inSpam[n], inHam[n])
	}
	fmt.Fprintf(w, "\n[bayes]\nspam_bands = [\n")
	for _, e := range fitSpamEdges {
		n := bandName("BAYES_SPAM", e)
		fmt.Fprintf(w, "  {probability = %g, score = %.2f},  # was %g; in %d spam, %d ham\n", e, scores[n], defaults[n], inSpam[n], inHam[n])
	}
	fmt.Fprintf(w, "]\nham_bands = [\n")
	for _, e := range fitHamEdges {
		n := bandName("BAYES_HAM", e)
		fmt.Fprintf(w, "  {probability = %g, score = %.2f},  # was %g; in %d spam, %d ham\n", e, scores[n], defaults[n], inSpam[n], inHam[n])
	}
	fmt.Fprintf(w, "]\n")
}
