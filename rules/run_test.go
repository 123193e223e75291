package rules

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
)

// fakeFilter is a Filter whose Check is a function.
type fakeFilter struct {
	name  string
	stage filters.Stage
	check func(ctx context.Context, in *filters.Input) ([]filters.Symbol, error)
	// result, when set, is used instead of check.
	result func(ctx context.Context, in *filters.Input) (filters.Result, error)
	after  []string
}

func (f *fakeFilter) Name() string         { return f.name }
func (f *fakeFilter) Stage() filters.Stage { return f.stage }
func (f *fakeFilter) After() []string      { return f.after }
func (f *fakeFilter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if f.result != nil {
		return f.result(ctx, in)
	}
	if f.check == nil {
		return filters.Result{}, nil
	}
	syms, err := f.check(ctx, in)
	return filters.Result{Symbols: syms}, err
}

// returns is a filter at the data stage that finds syms.
func returns(name string, syms ...filters.Symbol) *fakeFilter {
	return &fakeFilter{name: name, stage: filters.StageData,
		check: func(context.Context, *filters.Input) ([]filters.Symbol, error) { return syms, nil }}
}

func sym(name string, score float64) filters.Symbol { return filters.Symbol{Name: name, Score: score} }

// found is a Result of syms, as Decide takes it.
func found(syms ...filters.Symbol) Result { return Result{Result: filters.Result{Symbols: syms}} }

// observation is one ObserveFilter call.
type observation struct {
	filter  string
	stage   filters.Stage
	outcome string
}

type recorder struct {
	mu  sync.Mutex
	obs []observation
}

func (r *recorder) ObserveFilter(filter string, stage filters.Stage, d time.Duration, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs = append(r.obs, observation{filter, stage, outcome})
}

func TestRun(t *testing.T) {
	failing := func(name string) *fakeFilter {
		return &fakeFilter{name: name, stage: filters.StageData,
			check: func(context.Context, *filters.Input) ([]filters.Symbol, error) {
				return nil, errors.New("dns: server failure")
			}}
	}
	honestSlow := func(name string) *fakeFilter { // waits for its context
		return &fakeFilter{name: name, stage: filters.StageData,
			check: func(ctx context.Context, _ *filters.Input) ([]filters.Symbol, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}}
	}
	rudeSlow := func(name string) *fakeFilter { // ignores its context
		return &fakeFilter{name: name, stage: filters.StageData,
			check: func(context.Context, *filters.Input) ([]filters.Symbol, error) {
				time.Sleep(400 * time.Millisecond)
				return []filters.Symbol{sym("TOO_LATE", 9)}, nil
			}}
	}
	panicky := func(name string) *fakeFilter {
		return &fakeFilter{name: name, stage: filters.StageData,
			check: func(context.Context, *filters.Input) ([]filters.Symbol, error) {
				var m map[string]int
				m["boom"]++ // a real runtime panic
				return nil, nil
			}}
	}
	// delayed finds its symbol after a pause, to shuffle completion order.
	delayed := func(name string, d time.Duration, syms ...filters.Symbol) *fakeFilter {
		return &fakeFilter{name: name, stage: filters.StageData,
			check: func(context.Context, *filters.Input) ([]filters.Symbol, error) {
				time.Sleep(d)
				return syms, nil
			}}
	}
	short := Duration(20 * time.Millisecond)

	tests := []struct {
		name       string
		cfg        Config
		fs         []filters.Filter
		runs       func(string) bool
		want       []filters.Symbol // Name and Reason compared; Reason only when set
		tempfail   bool
		failed     []string
		outcomes   []string
		wantReason map[string]string
	}{
		{
			name: "pipeline order, not completion order",
			fs: []filters.Filter{
				delayed("first", 30*time.Millisecond, sym("A1", 1), sym("A2", 2)),
				returns("second", sym("B1", 3)),
				delayed("third", 10*time.Millisecond, sym("C1", -1)),
			},
			want:     []filters.Symbol{sym("A1", 1), sym("A2", 2), sym("B1", 3), sym("C1", -1)},
			outcomes: []string{"ok", "ok", "ok"},
		},
		{
			name:       "error yields TEMPFAIL with the error text",
			fs:         []filters.Filter{returns("spf", sym("SPF_PASS", -1)), failing("dkim")},
			want:       []filters.Symbol{sym("SPF_PASS", -1), sym("DKIM_TEMPFAIL", 0)},
			wantReason: map[string]string{"DKIM_TEMPFAIL": "dns: server failure"},
			failed:     []string{"dkim"},
			outcomes:   []string{"ok", "error"},
		},
		{
			name:       "error with on_error tempfail",
			cfg:        Config{Filters: map[string]FilterConfig{"antivirus": {OnError: OnErrorTempfail}}},
			fs:         []filters.Filter{returns("spf"), failing("antivirus")},
			want:       []filters.Symbol{sym("ANTIVIRUS_TEMPFAIL", 0)},
			tempfail:   true,
			failed:     []string{"antivirus"},
			outcomes:   []string{"ok", "error"},
			wantReason: map[string]string{"ANTIVIRUS_TEMPFAIL": "dns: server failure"},
		},
		{
			name:       "on_error ignore does not tempfail",
			cfg:        Config{Filters: map[string]FilterConfig{"antivirus": {OnError: OnErrorIgnore}}},
			fs:         []filters.Filter{failing("antivirus")},
			want:       []filters.Symbol{sym("ANTIVIRUS_TEMPFAIL", 0)},
			failed:     []string{"antivirus"},
			outcomes:   []string{"error"},
			wantReason: map[string]string{"ANTIVIRUS_TEMPFAIL": "dns: server failure"},
		},
		{
			name:       "deadline, filter honours its context",
			cfg:        Config{Filters: map[string]FilterConfig{"dnsbl": {Timeout: short}}},
			fs:         []filters.Filter{returns("geoip", sym("GEO_XX", 0.5)), honestSlow("dnsbl")},
			want:       []filters.Symbol{sym("GEO_XX", 0.5), sym("DNSBL_TEMPFAIL", 0)},
			wantReason: map[string]string{"DNSBL_TEMPFAIL": "timeout"},
			failed:     []string{"dnsbl"},
			outcomes:   []string{"ok", "timeout"},
		},
		{
			name:       "deadline, filter ignores its context and is abandoned",
			cfg:        Config{FilterTimeout: short},
			fs:         []filters.Filter{rudeSlow("early-talker"), returns("geoip", sym("GEO_XX", 0.5))},
			want:       []filters.Symbol{sym("EARLY_TALKER_TEMPFAIL", 0), sym("GEO_XX", 0.5)},
			wantReason: map[string]string{"EARLY_TALKER_TEMPFAIL": "timeout"},
			failed:     []string{"early-talker"},
			outcomes:   []string{"timeout", "ok"},
		},
		{
			name:       "deadline on the single-filter path",
			cfg:        Config{FilterTimeout: short},
			fs:         []filters.Filter{honestSlow("dnsbl")},
			want:       []filters.Symbol{sym("DNSBL_TEMPFAIL", 0)},
			wantReason: map[string]string{"DNSBL_TEMPFAIL": "timeout"},
			failed:     []string{"dnsbl"},
			outcomes:   []string{"timeout"},
		},
		{
			name:       "late result on the single-filter path is a timeout",
			cfg:        Config{FilterTimeout: short},
			fs:         []filters.Filter{rudeSlow("slow")},
			want:       []filters.Symbol{sym("SLOW_TEMPFAIL", 0)},
			wantReason: map[string]string{"SLOW_TEMPFAIL": "timeout"},
			failed:     []string{"slow"},
			outcomes:   []string{"timeout"},
		},
		{
			name:       "panic recovered, concurrent path",
			cfg:        Config{Filters: map[string]FilterConfig{"bayes": {OnError: OnErrorTempfail}}},
			fs:         []filters.Filter{panicky("bayes"), returns("headers", sym("MISSING_DATE", 1))},
			want:       []filters.Symbol{sym("BAYES_ERROR", 0), sym("MISSING_DATE", 1)},
			tempfail:   true,
			failed:     []string{"bayes"},
			outcomes:   []string{"error", "ok"},
			wantReason: map[string]string{"BAYES_ERROR": "panic: assignment to entry in nil map"},
		},
		{
			name:       "panic recovered, single-filter path",
			fs:         []filters.Filter{panicky("bayes")},
			want:       []filters.Symbol{sym("BAYES_ERROR", 0)},
			failed:     []string{"bayes"},
			outcomes:   []string{"error"},
			wantReason: map[string]string{"BAYES_ERROR": "panic: assignment to entry in nil map"},
		},
		{
			name:     "runs selects filters",
			fs:       []filters.Filter{returns("a", sym("A", 1)), returns("b", sym("B", 1)), returns("c", sym("C", 1))},
			runs:     func(n string) bool { return n != "b" },
			want:     []filters.Symbol{sym("A", 1), sym("C", 1)},
			outcomes: []string{"ok", "ok"},
		},
		{
			name:     "runs leaves one filter",
			fs:       []filters.Filter{returns("a", sym("A", 1)), failing("b")},
			runs:     func(n string) bool { return n == "a" },
			want:     []filters.Symbol{sym("A", 1)},
			outcomes: []string{"ok"},
		},
		{
			name: "runs leaves none",
			fs:   []filters.Filter{returns("a", sym("A", 1))},
			runs: func(string) bool { return false },
		},
		{
			name: "other stages do not run",
			fs: []filters.Filter{
				&fakeFilter{name: "spf", stage: filters.StageMail, check: func(context.Context, *filters.Input) ([]filters.Symbol, error) {
					return []filters.Symbol{sym("SPF_FAIL", 5)}, nil
				}},
				returns("a", sym("A", 1)),
			},
			want:     []filters.Symbol{sym("A", 1)},
			outcomes: []string{"ok"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			p, err := NewPipeline(tt.cfg, tt.fs, rec)
			if err != nil {
				t.Fatal(err)
			}
			r := p.Run(context.Background(), filters.StageData, &filters.Input{}, tt.runs)
			if len(r.Symbols) != len(tt.want) {
				t.Fatalf("symbols = %v, want %v", r.Symbols, tt.want)
			}
			for i, w := range tt.want {
				g := r.Symbols[i]
				if g.Name != w.Name || g.Score != w.Score {
					t.Errorf("symbol %d = %v, want %v", i, g, w)
				}
				if want, ok := tt.wantReason[w.Name]; ok && g.Reason != want {
					t.Errorf("symbol %s reason = %q, want %q", g.Name, g.Reason, want)
				}
			}
			if r.Tempfail != tt.tempfail {
				t.Errorf("Tempfail = %v, want %v", r.Tempfail, tt.tempfail)
			}
			if strings.Join(r.Failed, ",") != strings.Join(tt.failed, ",") {
				t.Errorf("Failed = %v, want %v", r.Failed, tt.failed)
			}
			var outcomes []string
			for _, o := range rec.obs {
				if o.stage != filters.StageData {
					t.Errorf("observed stage %v", o.stage)
				}
				outcomes = append(outcomes, o.outcome)
			}
			if strings.Join(outcomes, ",") != strings.Join(tt.outcomes, ",") {
				t.Errorf("outcomes = %v, want %v", outcomes, tt.outcomes)
			}
		})
	}
}

// TestRunConcurrent proves the filters of a stage run at the same time:
// each waits for the other to start, which sequential runs never see.
func TestRunConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(3)
	meet := func(name string) *fakeFilter {
		return &fakeFilter{name: name, stage: filters.StageConnect,
			check: func(ctx context.Context, _ *filters.Input) ([]filters.Symbol, error) {
				wg.Done()
				all := make(chan struct{})
				go func() { wg.Wait(); close(all) }()
				select {
				case <-all:
					return []filters.Symbol{sym(strings.ToUpper(name)+"_MET", 0)}, nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}}
	}
	p, err := NewPipeline(Config{FilterTimeout: Duration(5 * time.Second)},
		[]filters.Filter{meet("a"), meet("b"), meet("c")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := p.Run(context.Background(), filters.StageConnect, &filters.Input{}, nil)
	var names []string
	for _, s := range r.Symbols {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "A_MET,B_MET,C_MET" {
		t.Fatalf("symbols = %s, want A_MET,B_MET,C_MET (filters did not run concurrently)", got)
	}
}

func TestRunParentCanceled(t *testing.T) {
	waits := func(name string) *fakeFilter {
		return &fakeFilter{name: name, stage: filters.StageData,
			check: func(ctx context.Context, _ *filters.Input) ([]filters.Symbol, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}}
	}
	p, err := NewPipeline(Config{}, []filters.Filter{waits("a"), waits("b")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := p.Run(ctx, filters.StageData, nil, nil)
	if len(r.Symbols) != 2 || r.Symbols[0].Name != "A_TEMPFAIL" || r.Symbols[0].Reason != "context canceled" {
		t.Fatalf("symbols = %v", r.Symbols)
	}

	// A parent deadline shorter than the filter timeout is a timeout.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	r = p.Run(ctx, filters.StageData, nil, nil)
	if len(r.Symbols) != 2 || r.Symbols[1].Name != "B_TEMPFAIL" || r.Symbols[1].Reason != "timeout" {
		t.Fatalf("symbols = %v", r.Symbols)
	}
}

func TestRunNoneAllocatesNothing(t *testing.T) {
	p, err := NewPipeline(Config{}, []filters.Filter{returns("a", sym("A", 1))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := &filters.Input{}
	ctx := context.Background()
	none := func(string) bool { return false }
	allocs := testing.AllocsPerRun(100, func() {
		if r := p.Run(ctx, filters.StageConnect, in, nil); r.Symbols != nil {
			t.Fatal("symbols at an empty stage")
		}
		if r := p.Run(ctx, filters.StageData, in, none); r.Symbols != nil {
			t.Fatal("symbols with every filter switched off")
		}
		if r := p.Run(ctx, filters.Stage(-1), in, nil); r.Symbols != nil {
			t.Fatal("symbols at an invalid stage")
		}
	})
	if allocs != 0 {
		t.Errorf("Run with nothing to run allocates %v times", allocs)
	}
}
