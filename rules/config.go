package rules

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

// DefaultFilterTimeout is the deadline of a filter that has no timeout of
// its own, when Config.FilterTimeout is zero.
const DefaultFilterTimeout = 10 * time.Second

// On-error modes of a filter (FilterConfig.OnError).
const (
	// OnErrorIgnore scores the failure as a <NAME>_TEMPFAIL symbol of score
	// 0 and lets the verdict go on without the filter. It is the default.
	OnErrorIgnore = "ignore"
	// OnErrorTempfail also makes the verdict at least tempfail, so that the
	// client retries later (RFC 5321 §4.2.1, 4yz replies). Use it for checks
	// that must not be skipped (an antivirus, say).
	OnErrorTempfail = "tempfail"
)

// Config is the pipeline configuration as it sits under [rules]:
//
//	[rules]
//	filter_timeout = "10s"          # default 10s
//
//	[rules.filters.rdns]
//	timeout = "5s"                  # default: filter_timeout
//	on_error = "tempfail"           # "ignore" (default) or "tempfail"
//
//	[[rules.rule]]
//	name = "GTUBE_QUARANTINE"       # upper-case symbol-like name, unique
//	stage = "data"                  # connect|helo|mail|rcpt|data, default data
//	expr = 'has("GTUBE")'           # boolean expression, see [Env]
//	score = 0.0                     # non-zero: a match adds symbol NAME with this score
//	action = "quarantine"           # optional: tag|quarantine|tempfail|reject
//	reason = "GTUBE test string"    # for logs and the quarantine, never sent to the client
//
// Zero values mean the documented defaults; NewPipeline applies them.
type Config struct {
	// FilterTimeout is the deadline of every filter that has no timeout
	// of its own (default 10s).
	FilterTimeout Duration `toml:"filter_timeout"`
	// Filters holds per-filter settings, by filter name.
	Filters map[string]FilterConfig `toml:"filters"`
	// Rules are the rule expressions, evaluated in this order.
	Rules []RuleConfig `toml:"rule"`
	// Scores replaces the score of every symbol of this name that a
	// filter reports (SpamAssassin's "score SYMBOL n"): a table fitted
	// by `moat rules fit`, or an operator's own. Not for the BAYES_*
	// symbols, whose score depends on the probability band
	// ([filters.bayes] spam_bands, ham_bands).
	Scores map[string]float64 `toml:"scores"`
	// ScoresFile is a TOML file of such a table ([scores], and
	// [bayes] spam_bands/ham_bands), as `moat rules fit` writes it;
	// [rules.scores] and [filters.bayes] in the configuration win over it.
	ScoresFile string `toml:"scores_file"`
}

// FilterConfig is the configuration of one filter in the pipeline.
type FilterConfig struct {
	// Timeout is the filter's deadline; zero means Config.FilterTimeout.
	Timeout Duration `toml:"timeout"`
	// OnError is OnErrorIgnore (the default, also for "") or
	// OnErrorTempfail.
	OnError string `toml:"on_error"`
}

// RuleConfig is one [[rules.rule]] table.
type RuleConfig struct {
	// Name is an upper-case symbol-like name ("GTUBE_QUARANTINE"), unique
	// among rules. A matching rule adds a symbol of this name.
	Name string `toml:"name"`
	// Stage is when the rule is evaluated (default "data").
	Stage string `toml:"stage"`
	// Expr is a boolean expression over the environment described at
	// [Env].
	Expr string `toml:"expr"`
	// Score is the score of the symbol a match adds.
	Score float64 `toml:"score"`
	// Action, when set, is the least action a match forces: "tag",
	// "quarantine", "tempfail" or "reject" ("accept" would force nothing).
	Action string `toml:"action"`
	// Reason explains the rule in logs and the quarantine. It is never
	// sent to the SMTP client.
	Reason string `toml:"reason"`
	// Reply, for a reject or tempfail rule, is the SMTP reply code and
	// enhanced status code the client gets instead of the generic
	// "550 5.7.1" / "451 4.7.1", e.g. "554 5.7.0" for a virus (RFC 3463).
	// The text stays generic.
	Reply string `toml:"reply"`
}

// Validate checks the configuration without changing it: durations,
// on_error modes, and every rule, whose expression is compiled exactly as
// NewPipeline compiles it. Errors name the key, e.g.
// `rules.rule[2] "FOO".expr: ...` (rule indexes count from 0); several
// errors are joined.
func (c Config) Validate() error {
	var errs []error
	if c.FilterTimeout < 0 {
		errs = append(errs, fmt.Errorf("rules.filter_timeout: %v is negative", c.FilterTimeout))
	}
	for _, name := range sortedKeys(c.Scores) {
		if sc := c.Scores[name]; math.IsNaN(sc) || math.IsInf(sc, 0) {
			errs = append(errs, fmt.Errorf("rules.scores.%s: %v is not a finite number", name, sc))
		}
	}
	for _, name := range sortedKeys(c.Filters) {
		fc := c.Filters[name]
		key := fmt.Sprintf("rules.filters.%q", name)
		if fc.Timeout < 0 {
			errs = append(errs, fmt.Errorf("%s.timeout: %v is negative", key, fc.Timeout))
		}
		switch fc.OnError {
		case "", OnErrorIgnore, OnErrorTempfail:
		default:
			errs = append(errs, fmt.Errorf("%s.on_error: unknown mode %q (want %q or %q)",
				key, fc.OnError, OnErrorIgnore, OnErrorTempfail))
		}
	}
	_, err := compileRules(c.Rules)
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// rule is a compiled RuleConfig.
type rule struct {
	name   string
	stage  filters.Stage
	prog   *program
	score  float64
	action policies.Action // ActionAccept when the rule forces nothing
	reason string
	reply  Reply
}

// compileRules compiles every rule, in order.
func compileRules(rcs []RuleConfig) ([]*rule, error) {
	var errs []error
	out := make([]*rule, 0, len(rcs))
	seen := make(map[string]int, len(rcs))
	for i, rc := range rcs {
		r, err := compileRule(i, rc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if j, dup := seen[rc.Name]; dup {
			errs = append(errs, fmt.Errorf("rules.rule[%d] %q.name: already used by rules.rule[%d]", i, rc.Name, j))
			continue
		}
		seen[rc.Name] = i
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func compileRule(i int, rc RuleConfig) (*rule, error) {
	key := fmt.Sprintf("rules.rule[%d] %q", i, rc.Name)
	if err := checkRuleName(rc.Name); err != nil {
		return nil, fmt.Errorf("rules.rule[%d].name: %w", i, err)
	}
	r := &rule{name: rc.Name, stage: filters.StageData, score: rc.Score, reason: rc.Reason}
	if rc.Stage != "" {
		st, err := filters.ParseStage(rc.Stage)
		if err != nil {
			return nil, fmt.Errorf("%s.stage: %w", key, err)
		}
		r.stage = st
	}
	if math.IsNaN(rc.Score) || math.IsInf(rc.Score, 0) {
		return nil, fmt.Errorf("%s.score: %v is not a finite number", key, rc.Score)
	}
	if rc.Action != "" {
		a, err := policies.ParseAction(rc.Action)
		if err != nil {
			return nil, fmt.Errorf("%s.action: %w", key, err)
		}
		if a == policies.ActionAccept {
			return nil, fmt.Errorf("%s.action: %q forces nothing (want tag, quarantine, tempfail or reject)", key, rc.Action)
		}
		r.action = a
	}
	if rc.Reply != "" {
		rep, err := ParseReply(rc.Reply)
		if err != nil {
			return nil, fmt.Errorf("%s.reply: %w", key, err)
		}
		want := map[policies.Action]int{policies.ActionReject: 5, policies.ActionTempfail: 4}[r.action]
		if want == 0 {
			return nil, fmt.Errorf("%s.reply: only a reject or tempfail rule sets a reply", key)
		}
		if rep.Code/100 != want {
			return nil, fmt.Errorf("%s.reply: %q does not fit action %s (want a %dxx code)", key, rc.Reply, r.action, want)
		}
		r.reply = rep
	}
	if rc.Score == 0 && r.action == policies.ActionAccept {
		return nil, fmt.Errorf("%s: sets neither score nor action, so it can have no effect", key)
	}
	if rc.Expr == "" {
		return nil, fmt.Errorf("%s.expr: empty expression", key)
	}
	p, err := compileExpr(rc.Expr)
	if err != nil {
		return nil, fmt.Errorf("%s.expr: %w", key, err)
	}
	r.prog = p
	return r, nil
}

// checkRuleName checks that n looks like a symbol: an upper-case letter,
// then upper-case letters, digits and underscores, at most 64 of them.
func checkRuleName(n string) error {
	if n == "" {
		return errors.New("empty rule name")
	}
	if len(n) > 64 {
		return fmt.Errorf("%q is longer than 64 characters", n)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := ('A' <= c && c <= 'Z') || (i > 0 && (('0' <= c && c <= '9') || c == '_'))
		if !ok {
			return fmt.Errorf("%q is not a symbol-like name (want A-Z, then A-Z, 0-9 or _)", n)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// Duration is a time.Duration decoded from text such as "10s" or "1m30s"
// (time.ParseDuration). A bare TOML integer is refused rather than read as
// nanoseconds. Other packages may use it for their own durations.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalText parses a duration such as "10s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats d as "10s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Reply is an SMTP reply code with its enhanced status code (RFC 3463).
type Reply struct {
	Code     int
	Enhanced [3]int
}

// IsZero reports whether no reply is set.
func (r Reply) IsZero() bool { return r.Code == 0 }

// ParseReply parses "554 5.7.0": a 4yz or 5yz code and an enhanced code
// of the same class.
func ParseReply(s string) (Reply, error) {
	var r Reply
	n, err := fmt.Sscanf(s, "%d %d.%d.%d", &r.Code, &r.Enhanced[0], &r.Enhanced[1], &r.Enhanced[2])
	if err != nil || n != 4 || fmt.Sprintf("%d %d.%d.%d", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2]) != s {
		return Reply{}, fmt.Errorf("%q is not like \"554 5.7.0\"", s)
	}
	if r.Code < 400 || r.Code > 599 || r.Enhanced[0] != r.Code/100 || r.Enhanced[1] > 999 || r.Enhanced[2] > 999 ||
		r.Enhanced[1] < 0 || r.Enhanced[2] < 0 {
		return Reply{}, fmt.Errorf("%q: want a 4yz or 5yz code with an enhanced code of the same class", s)
	}
	return r, nil
}
