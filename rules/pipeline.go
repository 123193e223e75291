// Package rules is moat's pipeline: it runs the filters of each stage
// concurrently under per-filter deadlines, sums the scores of their
// symbols, evaluates the operator's rule expressions, and turns symbols and
// the recipient's policy into a [Verdict]. It never speaks SMTP: mapping a
// verdict to a reply is the gateway's job.
package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

// Outcomes reported to an Observer.
const (
	OutcomeOK      = "ok"
	OutcomeError   = "error"
	OutcomeTimeout = "timeout"
)

// abandonGrace is how long Run waits past the latest filter deadline for a
// filter that ignores its context before it stops waiting for it.
const abandonGrace = 100 * time.Millisecond

// Observer is told how each filter run went, for metrics. outcome is one of
// OutcomeOK, OutcomeError (an error or a panic) and OutcomeTimeout. It is
// called on the goroutine that called Run and must be cheap.
type Observer interface {
	// ObserveFilter records that filter ran at stage for d with outcome.
	ObserveFilter(filter string, stage filters.Stage, d time.Duration, outcome string)
}

// DemandObserver may be implemented by an Observer to be told of every
// check's demand that Decide weighs (filters.Demand): honoured is false
// when the policy ignores the check's demands. Demands of tag or
// quarantine before the data stage wait and are told of there.
type DemandObserver interface {
	ObserveDemand(check string, action policies.Action, honoured bool)
}

// Result is what the filters of one stage found, or (added up with
// [Result.Add]) what the stages of a connection and a transaction found so
// far.
type Result struct {
	// Result holds the symbols, authentication results and facts, in wave
	// order (see [filters.Sequenced]), then in pipeline order, then in each
	// filter's own order, with a <NAME>_TEMPFAIL or <NAME>_ERROR symbol of
	// score 0 in place of each filter that failed.
	filters.Result
	// Tempfail is true when a filter whose on_error is "tempfail" failed.
	Tempfail bool
	// Failed names the filters that failed (error, timeout or panic).
	Failed []string
}

// Add appends what o found to r.
func (r *Result) Add(o Result) {
	r.Result.Add(o.Result)
	r.Tempfail = r.Tempfail || o.Tempfail
	r.Failed = append(r.Failed, o.Failed...)
}

// Clone returns a copy of r that appends to either cannot reach the other.
func (r Result) Clone() Result {
	return Result{Result: r.Result.Clone(), Tempfail: r.Tempfail, Failed: slices.Clone(r.Failed)}
}

// Pipeline runs filters and decides verdicts. It is immutable once built
// and safe for concurrent use by every session.
type Pipeline struct {
	stages      [][]*stageFilter   // by stage, in pipeline order
	waves       []int              // by stage: the number of waves (1 + the highest wave)
	rules       [][]*rule          // by stage, in configuration order
	usesSymbols []bool             // by stage: some rule reads the symbols map
	usesIP      []bool             // by stage: some rule reads ip
	usesAuth    []bool             // by stage: some rule reads the sender-authentication variables
	forcing     map[string]*rule   // rules that force an action, by name
	scores      map[string]float64 // [rules.scores]
	obs         Observer
}

// stageFilter is a filter with its resolved settings.
type stageFilter struct {
	f           filters.Filter
	name        string
	stage       filters.Stage
	timeout     time.Duration
	tempfail    bool   // on_error = "tempfail"
	tempfailSym string // <NAME>_TEMPFAIL
	errorSym    string // <NAME>_ERROR
	after       []string
	wave        int // 0 for a filter that runs after none of its stage
}

// NewPipeline builds a pipeline over fs, given explicitly in pipeline order
// (there is no registry). It fails if cfg does not validate, if two filters
// share a name, if a filter has an unknown stage, or if cfg.Filters names
// a filter that is not in fs. obs may be nil.
func NewPipeline(cfg Config, fs []filters.Filter, obs Observer) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rules config: %w", err)
	}
	global := cfg.FilterTimeout.Std()
	if global == 0 {
		global = DefaultFilterTimeout
	}
	n := len(filters.Stages)
	p := &Pipeline{
		stages:      make([][]*stageFilter, n),
		waves:       make([]int, n),
		rules:       make([][]*rule, n),
		usesSymbols: make([]bool, n),
		usesIP:      make([]bool, n),
		usesAuth:    make([]bool, n),
		forcing:     make(map[string]*rule),
		scores:      maps.Clone(cfg.Scores),
		obs:         obs,
	}
	seen := make(map[string]bool, len(fs))
	for i, f := range fs {
		if f == nil {
			return nil, fmt.Errorf("filter %d is nil", i)
		}
		name := f.Name()
		if name == "" {
			return nil, fmt.Errorf("filter %d (%T) has an empty name", i, f)
		}
		if seen[name] {
			return nil, fmt.Errorf("two filters are named %q", name)
		}
		seen[name] = true
		st := f.Stage()
		if st < 0 || int(st) >= n {
			return nil, fmt.Errorf("filter %q: unknown stage %v", name, st)
		}
		fc := cfg.Filters[name]
		sf := &stageFilter{
			f:           f,
			name:        name,
			stage:       st,
			timeout:     fc.Timeout.Std(),
			tempfail:    fc.OnError == OnErrorTempfail,
			tempfailSym: symbolName(name) + "_TEMPFAIL",
			errorSym:    symbolName(name) + "_ERROR",
		}
		if sf.timeout == 0 {
			sf.timeout = global
		}
		if sq, ok := f.(filters.Sequenced); ok {
			sf.after = sq.After()
		}
		p.stages[st] = append(p.stages[st], sf)
	}
	if err := p.orderWaves(); err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(cfg.Filters) {
		if !seen[name] {
			return nil, fmt.Errorf("rules.filters.%q: no such filter in the pipeline", name)
		}
	}
	rs, err := compileRules(cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("rules config: %w", err)
	}
	// A rule's symbol carries its forced action to later stages by name,
	// so a rule must not share a name with a filter's symbol.
	taken := make(map[string]string)
	for _, f := range fs {
		stem := symbolName(f.Name())
		taken[stem+"_TEMPFAIL"], taken[stem+"_ERROR"] = f.Name(), f.Name()
		if d, ok := f.(filters.SymbolDeclarer); ok {
			for _, s := range d.Symbols() {
				taken[s] = f.Name()
			}
		}
	}
	for i, r := range rs {
		if f, ok := taken[r.name]; ok {
			return nil, fmt.Errorf("rules.rule[%d] %q.name: filter %s already returns a symbol of that name", i, r.name, f)
		}
	}
	for _, r := range rs {
		p.rules[r.stage] = append(p.rules[r.stage], r)
		p.usesSymbols[r.stage] = p.usesSymbols[r.stage] || r.prog.usesSymbols
		p.usesIP[r.stage] = p.usesIP[r.stage] || r.prog.usesIP
		p.usesAuth[r.stage] = p.usesAuth[r.stage] || r.prog.usesAuth
		if r.action != policies.ActionAccept {
			p.forcing[r.name] = r
		}
	}
	return p, nil
}

// symbolName turns a filter name into the stem of its failure symbols:
// upper case, with every character other than A-Z and 0-9 turned into '_'
// ("early-talker" → "EARLY_TALKER").
func symbolName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
			return r
		}
		return '_'
	}, name)
}

// Filters returns the names of the filters of a stage, in pipeline order.
func (p *Pipeline) Filters(stage filters.Stage) []string {
	if stage < 0 || int(stage) >= len(p.stages) {
		return nil
	}
	names := make([]string, len(p.stages[stage]))
	for i, sf := range p.stages[stage] {
		names[i] = sf.name
	}
	return names
}

// Timeouts returns every filter's deadline by filter name.
func (p *Pipeline) Timeouts() map[string]time.Duration {
	t := make(map[string]time.Duration)
	for _, list := range p.stages {
		for _, sf := range list {
			t[sf.name] = sf.timeout
		}
	}
	return t
}

// orderWaves places every filter in the wave after the latest wave of the
// filters of its stage it runs after (filters.Sequenced).
func (p *Pipeline) orderWaves() error {
	stageOf := make(map[string]filters.Stage)
	for st, list := range p.stages {
		for _, sf := range list {
			stageOf[sf.name] = filters.Stage(st)
		}
	}
	for st, list := range p.stages {
		byName := make(map[string]*stageFilter, len(list))
		for _, sf := range list {
			byName[sf.name] = sf
			for _, dep := range sf.after {
				if ds, ok := stageOf[dep]; ok && ds > filters.Stage(st) {
					return fmt.Errorf("filter %q runs at %v and cannot run after %q, which runs at the later stage %v", sf.name, filters.Stage(st), dep, ds)
				}
			}
		}
		// wave(f) = 1 + max wave of its same-stage dependencies; a
		// filter on the current path twice is a cycle.
		const (
			unvisited = iota
			visiting
			done
		)
		state := make(map[string]int, len(list))
		var visit func(sf *stageFilter, path []string) error
		visit = func(sf *stageFilter, path []string) error {
			switch state[sf.name] {
			case done:
				return nil
			case visiting:
				return fmt.Errorf("filters run after each other in a cycle: %s", strings.Join(append(path, sf.name), " → "))
			}
			state[sf.name] = visiting
			for _, dep := range sf.after {
				d, ok := byName[dep]
				if !ok {
					continue // disabled or of an earlier stage
				}
				if err := visit(d, append(path, sf.name)); err != nil {
					return err
				}
				sf.wave = max(sf.wave, d.wave+1)
			}
			state[sf.name] = done
			p.waves[st] = max(p.waves[st], sf.wave+1)
			return nil
		}
		for _, sf := range list {
			if err := visit(sf, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Run runs every filter of stage for which runs(name) is true (every
// filter when runs is nil), concurrently, each under its own deadline: its
// timeout from the configuration or the global filter_timeout, or ctx's
// deadline when that comes first. A filter that runs after others of the
// stage ([filters.Sequenced]) runs in a later wave and finds their results
// in in.Prior, added to what in.Prior held.
//
// Run never panics and never fails: a filter that returns an error yields
// <NAME>_TEMPFAIL (score 0, the error text as reason), one that misses its
// deadline yields <NAME>_TEMPFAIL with reason "timeout", and one that
// panics is recovered, logged with its stack, and yields <NAME>_ERROR. A
// filter that ignores its context is abandoned shortly after its deadline
// (its goroutine is left to finish on its own).
//
// When only one filter is to run it runs on the calling goroutine (still
// under its deadline, but then a filter that ignores its context holds up
// Run until it returns); when none is, Run returns at once without
// allocating.
func (p *Pipeline) Run(ctx context.Context, stage filters.Stage, in *filters.Input, runs func(filter string) bool) Result {
	r := p.run(ctx, stage, in, runs)
	p.rescore(&r)
	return r
}

// rescore gives the symbols named in [rules.scores] their configured
// score. The symbols are copied first: a filter may hand out a slice it
// reuses.
func (p *Pipeline) rescore(r *Result) {
	if len(p.scores) == 0 {
		return
	}
	copied := false
	for i, sym := range r.Symbols {
		sc, ok := p.scores[sym.Name]
		if !ok || sc == sym.Score {
			continue
		}
		if !copied {
			r.Symbols = slices.Clone(r.Symbols)
			copied = true
		}
		r.Symbols[i].Score = sc
	}
}

func (p *Pipeline) run(ctx context.Context, stage filters.Stage, in *filters.Input, runs func(filter string) bool) Result {
	if stage < 0 || int(stage) >= len(p.stages) {
		return Result{}
	}
	list := p.stages[stage]
	if p.waves[stage] <= 1 {
		return p.runWave(ctx, list, 0, in, runs)
	}
	// Each wave sees, in Prior, what the earlier waves found.
	var win filters.Input
	if in != nil {
		win = *in
	}
	var r Result
	for w := range p.waves[stage] {
		if w > 0 && !r.Result.IsZero() {
			var prior filters.Result
			if in != nil && in.Prior != nil {
				prior = in.Prior.Clone()
			}
			prior.Add(r.Result)
			win.Prior = &prior
		}
		r.Add(p.runWave(ctx, list, w, &win, runs))
	}
	return r
}

// runWave runs the filters of one wave of list that runs selects.
func (p *Pipeline) runWave(ctx context.Context, list []*stageFilter, wave int, in *filters.Input, runs func(filter string) bool) Result {
	var selBuf [32]bool
	sel := selBuf[:0]
	if len(list) > len(selBuf) {
		sel = make([]bool, 0, len(list))
	}
	n, only := 0, -1
	for i, sf := range list {
		on := sf.wave == wave && (runs == nil || runs(sf.name))
		sel = append(sel, on)
		if on {
			n++
			only = i
		}
	}
	switch n {
	case 0:
		return Result{}
	case 1:
		sf := list[only]
		o := p.check(ctx, sf, in)
		p.observe(sf, o)
		if o.outcome == OutcomeOK {
			// Clipped: a caller's append must copy, never write into
			// spare capacity of a slice the filter may reuse.
			return Result{Result: clip(o.res)}
		}
		var r Result
		r.addFailure(sf, o)
		return r
	}
	return p.runConcurrently(ctx, list, sel, n, in)
}

// clip clips each slice of r to its length.
func clip(r filters.Result) filters.Result {
	return filters.Result{Symbols: slices.Clip(r.Symbols), Auth: slices.Clip(r.Auth), Facts: slices.Clip(r.Facts),
		Demands: slices.Clip(r.Demands)}
}

// outcome is how one filter run went.
type outcome struct {
	idx      int
	done     bool
	res      filters.Result
	outcome  string // OutcomeOK, OutcomeError or OutcomeTimeout
	reason   string // for failures
	panicked bool
	d        time.Duration
}

func (p *Pipeline) runConcurrently(ctx context.Context, list []*stageFilter, sel []bool, n int, in *filters.Input) Result {
	start := time.Now()
	// Buffered for every filter, so that a filter abandoned after its
	// deadline can still send and end without anyone receiving.
	ch := make(chan outcome, n)
	var last time.Time
	parent, hasParent := ctx.Deadline()
	for i, sf := range list {
		if !sel[i] {
			continue
		}
		dl := start.Add(sf.timeout)
		if hasParent && parent.Before(dl) {
			dl = parent
		}
		if dl.After(last) {
			last = dl
		}
		go func() {
			o := p.check(ctx, sf, in)
			o.idx = i
			ch <- o
		}()
	}
	outs := make([]outcome, len(list))
	timer := time.NewTimer(time.Until(last) + abandonGrace)
	defer timer.Stop()
wait:
	for got := 0; got < n; got++ {
		select {
		case o := <-ch:
			o.done = true
			outs[o.idx] = o
		case <-timer.C:
			break wait
		}
	}

	var r Result
	total := 0
	for i := range outs {
		total += len(outs[i].res.Symbols)
	}
	r.Symbols = make([]filters.Symbol, 0, total+n)
	for i, sf := range list {
		if !sel[i] {
			continue
		}
		o := &outs[i]
		if !o.done {
			*o = outcome{outcome: OutcomeTimeout, reason: "timeout", d: time.Since(start)}
		}
		p.observe(sf, *o)
		if o.outcome == OutcomeOK {
			r.Result.Add(o.res)
			continue
		}
		r.addFailure(sf, *o)
	}
	return r
}

// addFailure records a failed filter run.
func (r *Result) addFailure(sf *stageFilter, o outcome) {
	name := sf.tempfailSym
	if o.panicked {
		name = sf.errorSym
	}
	r.Symbols = append(r.Symbols, filters.Symbol{Name: name, Score: 0, Reason: o.reason})
	r.Failed = append(r.Failed, sf.name)
	if sf.tempfail {
		r.Tempfail = true
	}
}

func (p *Pipeline) observe(sf *stageFilter, o outcome) {
	if p.obs != nil {
		p.obs.ObserveFilter(sf.name, sf.stage, o.d, o.outcome)
	}
}

// check runs one filter under its deadline and classifies the result. It
// recovers a panic of the filter.
func (p *Pipeline) check(ctx context.Context, sf *stageFilter, in *filters.Input) (o outcome) {
	fctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			o = outcome{outcome: OutcomeError, reason: fmt.Sprintf("panic: %v", v), panicked: true}
			conn := ""
			if in != nil && in.Conn != nil {
				conn = in.Conn.ID
			}
			slog.Error("filter panicked", "conn", conn, "filter", sf.name, "stage", sf.stage.String(),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		o.d = time.Since(start)
	}()
	res, err := sf.f.Check(fctx, in)
	cerr := fctx.Err()
	switch {
	case errors.Is(cerr, context.DeadlineExceeded):
		// Late, whether it noticed (err) or not (findings after the
		// deadline are not waited for on the concurrent path either).
		return outcome{outcome: OutcomeTimeout, reason: "timeout"}
	case err != nil:
		return outcome{outcome: OutcomeError, reason: err.Error()}
	}
	for i := range res.Demands {
		res.Demands[i].Check = sf.name
	}
	return outcome{outcome: OutcomeOK, res: res}
}
