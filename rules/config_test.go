package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/moatmail/moat/filters"
)

// decodeRules decodes a [rules] document strictly, as cmd/moat does.
func decodeRules(t *testing.T, doc string) (Config, error) {
	t.Helper()
	var f struct {
		Rules Config `toml:"rules"`
	}
	md, err := toml.Decode(doc, &f)
	if err != nil {
		return Config{}, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("undecoded keys: %v", u)
	}
	return f.Rules, nil
}

func TestDecodeConfig(t *testing.T) {
	cfg, err := decodeRules(t, `
[rules]
filter_timeout = "2s"
[rules.filters.antivirus]
timeout = "1m30s"
on_error = "tempfail"
[[rules.rule]]
name = "GTUBE_QUARANTINE"
expr = 'has("GTUBE")'
action = "quarantine"
reason = "GTUBE test string"
[[rules.rule]]
name = "LATE_HELO"
stage = "helo"
expr = 'helo == "localhost"'
score = 2.5
`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FilterTimeout.Std() != 2*time.Second {
		t.Errorf("filter_timeout = %v, want 2s", cfg.FilterTimeout)
	}
	av := cfg.Filters["antivirus"]
	if av.Timeout.Std() != 90*time.Second || av.OnError != OnErrorTempfail {
		t.Errorf("antivirus = %+v", av)
	}
	if len(cfg.Rules) != 2 || cfg.Rules[1].Stage != "helo" || cfg.Rules[1].Score != 2.5 || cfg.Rules[0].Action != "quarantine" {
		t.Errorf("rules = %+v", cfg.Rules)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	for _, bad := range []string{`filter_timeout = 10`, `filter_timeout = "10"`, `filter_timeout = "soon"`} {
		if _, err := decodeRules(t, "[rules]\n"+bad+"\n"); err == nil {
			t.Errorf("%s decoded without error", bad)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	ok := RuleConfig{Name: "OK", Expr: "true", Score: 1}
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"negative filter_timeout", Config{FilterTimeout: Duration(-time.Second)},
			[]string{"rules.filter_timeout: -1s is negative"}},
		{"negative filter timeout", Config{Filters: map[string]FilterConfig{"dkim": {Timeout: Duration(-1)}}},
			[]string{`rules.filters."dkim".timeout: -1ns is negative`}},
		{"bad on_error", Config{Filters: map[string]FilterConfig{"dkim": {OnError: "reject"}}},
			[]string{`rules.filters."dkim".on_error: unknown mode "reject"`}},
		{"syntax error", Config{Rules: []RuleConfig{ok, ok, {Name: "FOO", Expr: `has("X"`, Score: 1}}},
			[]string{`rules.rule[2] "FOO".expr: compile:`, `rules.rule[1] "OK".name: already used by rules.rule[0]`}},
		{"not boolean", Config{Rules: []RuleConfig{{Name: "FOO", Expr: `score + 1`, Score: 1}}},
			[]string{`rules.rule[0] "FOO".expr: compile: expected bool, but got float64`}},
		{"unknown variable", Config{Rules: []RuleConfig{{Name: "FOO", Expr: `subject == "x"`, Score: 1}}},
			[]string{`rules.rule[0] "FOO".expr: compile: unknown name subject`}},
		{"wrong argument type", Config{Rules: []RuleConfig{{Name: "FOO", Expr: `has(1)`, Score: 1}}},
			[]string{`rules.rule[0] "FOO".expr: compile:`}},
		{"empty expr", Config{Rules: []RuleConfig{{Name: "FOO", Score: 1}}},
			[]string{`rules.rule[0] "FOO".expr: empty expression`}},
		{"lower-case name", Config{Rules: []RuleConfig{{Name: "foo", Expr: "true", Score: 1}}},
			[]string{`rules.rule[0].name: "foo" is not a symbol-like name`}},
		{"empty name", Config{Rules: []RuleConfig{{Expr: "true", Score: 1}}},
			[]string{`rules.rule[0].name: empty rule name`}},
		{"unknown stage", Config{Rules: []RuleConfig{{Name: "FOO", Stage: "body", Expr: "true", Score: 1}}},
			[]string{`rules.rule[0] "FOO".stage: unknown stage "body"`}},
		{"unknown action", Config{Rules: []RuleConfig{{Name: "FOO", Expr: "true", Action: "drop"}}},
			[]string{`rules.rule[0] "FOO".action: unknown action "drop"`}},
		{"accept action", Config{Rules: []RuleConfig{{Name: "FOO", Expr: "true", Action: "accept"}}},
			[]string{`rules.rule[0] "FOO".action: "accept" forces nothing`}},
		{"no effect", Config{Rules: []RuleConfig{{Name: "FOO", Expr: "true"}}},
			[]string{`rules.rule[0] "FOO": sets neither score nor action`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\ndoes not contain\n  %s", err, w)
				}
			}
			if _, nerr := NewPipeline(tt.cfg, nil, nil); nerr == nil {
				t.Error("NewPipeline succeeded where Validate failed")
			}
		})
	}
}

func TestNewPipelineErrors(t *testing.T) {
	a := &fakeFilter{name: "a", stage: filters.StageData}
	tests := []struct {
		name string
		cfg  Config
		fs   []filters.Filter
		want string
	}{
		{"duplicate names", Config{}, []filters.Filter{a, &fakeFilter{name: "a", stage: filters.StageConnect}},
			`two filters are named "a"`},
		{"unknown filter in config", Config{Filters: map[string]FilterConfig{"dkim": {}}}, []filters.Filter{a},
			`rules.filters."dkim": no such filter in the pipeline`},
		{"nil filter", Config{}, []filters.Filter{a, nil}, "filter 1 is nil"},
		{"empty name", Config{}, []filters.Filter{&fakeFilter{stage: filters.StageData}}, "has an empty name"},
		{"bad stage", Config{}, []filters.Filter{&fakeFilter{name: "x", stage: filters.Stage(9)}}, "unknown stage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPipeline(tt.cfg, tt.fs, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestFilterTimeouts(t *testing.T) {
	fs := []filters.Filter{
		&fakeFilter{name: "fast", stage: filters.StageData},
		&fakeFilter{name: "slow", stage: filters.StageData},
	}
	p, err := NewPipeline(Config{
		FilterTimeout: Duration(3 * time.Second),
		Filters:       map[string]FilterConfig{"slow": {Timeout: Duration(time.Minute)}},
	}, fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Duration{}
	for _, sf := range p.stages[filters.StageData] {
		got[sf.name] = sf.timeout
	}
	if got["fast"] != 3*time.Second || got["slow"] != time.Minute {
		t.Errorf("timeouts = %v", got)
	}
	p, err = NewPipeline(Config{}, fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.stages[filters.StageData][0].timeout; d != DefaultFilterTimeout {
		t.Errorf("default timeout = %v, want %v", d, DefaultFilterTimeout)
	}
	if names := p.Filters(filters.StageData); len(names) != 2 || names[0] != "fast" || names[1] != "slow" {
		t.Errorf("Filters(data) = %v", names)
	}
}
