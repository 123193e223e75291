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

// Result is what the filters of one stage found.
type Result struct {
	// Symbols are the findings, in pipeline order and then in each
	// filter's own order, with a <NAME>_TEMPFAIL or <NAME>_ERROR symbol of
	// score 0 in place of each filter that failed.
	Symbols []filters.Symbol
	// Tempfail is true when a filter whose on_error is "tempfail" failed.
	Tempfail bool
	// Failed names the filters that failed (error, timeout or panic), in
	// pipeline order.
	Failed []string
}

// Pipeline runs filters and decides verdicts. It is immutable once built
// and safe for concurrent use by every session.
type Pipeline struct {
	stages      [][]*stageFilter // by stage, in pipeline order
	rules       [][]*rule        // by stage, in configuration order
	usesSymbols []bool           // by stage: some rule reads the symbols map
	usesIP      []bool           // by stage: some rule reads ip
	forcing     map[string]*rule // rules that force an action, by name
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
		rules:       make([][]*rule, n),
		usesSymbols: make([]bool, n),
		usesIP:      make([]bool, n),
		forcing:     make(map[string]*rule),
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
		p.stages[st] = append(p.stages[st], sf)
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

// Run runs every filter of stage for which runs(name) is true (every
// filter when runs is nil), concurrently, each under its own deadline: its
// timeout from the configuration or the global filter_timeout, or ctx's
// deadline when that comes first.
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
	if stage < 0 || int(stage) >= len(p.stages) {
		return Result{}
	}
	list := p.stages[stage]
	var selBuf [32]bool
	sel := selBuf[:0]
	if len(list) > len(selBuf) {
		sel = make([]bool, 0, len(list))
	}
	n, only := 0, -1
	for i, sf := range list {
		on := runs == nil || runs(sf.name)
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
			return Result{Symbols: slices.Clip(o.syms)}
		}
		var r Result
		r.addFailure(sf, o)
		return r
	}
	return p.runConcurrently(ctx, list, sel, n, in)
}

// outcome is how one filter run went.
type outcome struct {
	idx      int
	done     bool
	syms     []filters.Symbol
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
		total += len(outs[i].syms)
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
			r.Symbols = append(r.Symbols, o.syms...)
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
	syms, err := sf.f.Check(fctx, in)
	cerr := fctx.Err()
	switch {
	case errors.Is(cerr, context.DeadlineExceeded):
		// Late, whether it noticed (err) or not (findings after the
		// deadline are not waited for on the concurrent path either).
		return outcome{outcome: OutcomeTimeout, reason: "timeout"}
	case err != nil:
		return outcome{outcome: OutcomeError, reason: err.Error()}
	}
	return outcome{outcome: OutcomeOK, syms: syms}
}
