package policies

import (
	"math"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// decode decodes a [policies] document strictly, as cmd/moat does.
func decode(t *testing.T, doc string) Config {
	t.Helper()
	var f struct {
		Policies Config `toml:"policies"`
	}
	md, err := toml.Decode(doc, &f)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("undecoded keys: %v", u)
	}
	return f.Policies
}

func TestParseAction(t *testing.T) {
	for a := ActionAccept; a <= ActionReject; a++ {
		got, err := ParseAction(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
	}
	for _, bad := range []string{"", "Reject", "drop", "action(9)"} {
		if _, err := ParseAction(bad); err == nil {
			t.Errorf("ParseAction(%q) succeeded", bad)
		}
	}
	if !(ActionAccept < ActionTag && ActionTag < ActionQuarantine &&
		ActionQuarantine < ActionTempfail && ActionTempfail < ActionReject) {
		t.Error("actions are not in increasing severity")
	}
	if got := Action(42).String(); got != "action(42)" {
		t.Errorf("Action(42).String() = %q", got)
	}
}

func TestActionForScore(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name           string
		tag, quar, rej float64
		score          float64
		want           Action
	}{
		{"below tag", 5, 10, 20, 4.99, ActionAccept},
		{"negative", 5, 10, 20, -3, ActionAccept},
		{"at tag", 5, 10, 20, 5, ActionTag},
		{"at quarantine", 5, 10, 20, 10, ActionQuarantine},
		{"between", 5, 10, 20, 19.9, ActionQuarantine},
		{"at reject", 5, 10, 20, 20, ActionReject},
		{"reject off", 5, 10, inf, 1000, ActionQuarantine},
		{"quarantine off", 5, inf, 20, 15, ActionTag},
		{"all off", inf, inf, inf, 1e9, ActionAccept},
		{"equal thresholds", 5, 5, 5, 5, ActionReject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Policy{TagScore: tt.tag, QuarantineScore: tt.quar, RejectScore: tt.rej}
			if got := p.ActionForScore(tt.score); got != tt.want {
				t.Errorf("ActionForScore(%v) = %v, want %v", tt.score, got, tt.want)
			}
		})
	}
}

func TestThresholdDecode(t *testing.T) {
	tests := []struct {
		value   string
		want    float64
		wantErr string
	}{
		{"7", 7, ""},
		{"7.5", 7.5, ""},
		{"-2", -2, ""},
		{`"off"`, math.Inf(1), ""},
		{"inf", math.Inf(1), ""},
		{`"7"`, 0, "want a number"},
		{`"OFF"`, 0, "want a number"},
		{"true", 0, "want a number"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			var f struct {
				Policies Config `toml:"policies"`
			}
			_, err := toml.Decode("[policies.default]\nreject = "+tt.value+"\n", &f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Policies.Default.Reject == nil || float64(*f.Policies.Default.Reject) != tt.want {
				t.Fatalf("reject = %v, want %v", f.Policies.Default.Reject, tt.want)
			}
		})
	}
}

const resolutionDoc = `
[policies.default]
tag = 4
subject_prefix = "[SPAM]"
allow_senders = ["@partner.example"]
block_senders = [".spammer.example"]
disable_filters = ["headers"]

[policies.domains."Example.COM"]
quarantine = 6.0
block_senders = []

[policies.domains."other.example"]
reject = "off"
disable_filters = ["bayes", "greylist"]

[policies.recipients."CEO@example.com"]
reject = 12.0
allow_senders = ["boss@home.example"]

[policies.recipients."postmaster@nodomain.example"]
tag = "off"
subject_prefix = ""
`

func TestResolution(t *testing.T) {
	s, err := New(decode(t, resolutionDoc))
	if err != nil {
		t.Fatal(err)
	}
	inf := math.Inf(1)
	tests := []struct {
		rcpt           string
		name           string
		tag, quar, rej float64
		prefix         string
		allow, block   []string
		disabled       []string
	}{
		{"someone@elsewhere.example", "default", 4, 10, 20, "[SPAM]",
			[]string{"@partner.example"}, []string{".spammer.example"}, []string{"headers"}},
		{"", "default", 4, 10, 20, "[SPAM]",
			[]string{"@partner.example"}, []string{".spammer.example"}, []string{"headers"}},
		{"no-at-sign", "default", 4, 10, 20, "[SPAM]",
			[]string{"@partner.example"}, []string{".spammer.example"}, []string{"headers"}},
		{"bob@example.com", "domain:example.com", 4, 6, 20, "[SPAM]",
			[]string{"@partner.example"}, nil, []string{"headers"}},
		{"Bob@EXAMPLE.com", "domain:example.com", 4, 6, 20, "[SPAM]",
			[]string{"@partner.example"}, nil, []string{"headers"}},
		{"bob@sub.example.com", "default", 4, 10, 20, "[SPAM]",
			[]string{"@partner.example"}, []string{".spammer.example"}, []string{"headers"}},
		{"x@other.example", "domain:other.example", 4, 10, inf, "[SPAM]",
			[]string{"@partner.example"}, []string{".spammer.example"}, []string{"bayes", "greylist"}},
		{"ceo@example.com", "recipient:ceo@example.com", 4, 6, 12, "[SPAM]",
			[]string{"boss@home.example"}, nil, []string{"headers"}},
		{"CEO@Example.Com", "recipient:ceo@example.com", 4, 6, 12, "[SPAM]",
			[]string{"boss@home.example"}, nil, []string{"headers"}},
		{"postmaster@nodomain.example", "recipient:postmaster@nodomain.example", inf, 10, 20, "",
			[]string{"@partner.example"}, []string{".spammer.example"}, []string{"headers"}},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			p := s.For(tt.rcpt)
			if p.Name != tt.name {
				t.Errorf("Name = %q, want %q", p.Name, tt.name)
			}
			if p.TagScore != tt.tag || p.QuarantineScore != tt.quar || p.RejectScore != tt.rej {
				t.Errorf("thresholds = %v/%v/%v, want %v/%v/%v",
					p.TagScore, p.QuarantineScore, p.RejectScore, tt.tag, tt.quar, tt.rej)
			}
			if p.SubjectPrefix != tt.prefix {
				t.Errorf("SubjectPrefix = %q, want %q", p.SubjectPrefix, tt.prefix)
			}
			if got := p.AllowSenders.Patterns(); !equal(got, tt.allow) {
				t.Errorf("AllowSenders = %q, want %q", got, tt.allow)
			}
			if got := p.BlockSenders.Patterns(); !equal(got, tt.block) {
				t.Errorf("BlockSenders = %q, want %q", got, tt.block)
			}
			if got := p.DisabledFilters(); !equal(got, tt.disabled) {
				t.Errorf("DisabledFilters = %q, want %q", got, tt.disabled)
			}
			for _, f := range tt.disabled {
				if p.Runs(f) {
					t.Errorf("Runs(%q) = true, want false", f)
				}
			}
			if !p.Runs("spf") {
				t.Error(`Runs("spf") = false, want true`)
			}
		})
	}
}

func TestSharedPointers(t *testing.T) {
	s, err := New(decode(t, resolutionDoc))
	if err != nil {
		t.Fatal(err)
	}
	pairs := []struct {
		a, b string
		same bool
	}{
		{"alice@example.com", "bob@EXAMPLE.COM", true},
		{"alice@elsewhere.example", "bob@third.example", true},
		{"alice@elsewhere.example", "", true},
		{"alice@example.com", "ceo@example.com", false},
		{"alice@example.com", "alice@other.example", false},
		{"ceo@example.com", "CEO@example.com", true},
	}
	for _, tt := range pairs {
		if got := s.For(tt.a) == s.For(tt.b); got != tt.same {
			t.Errorf("For(%q) == For(%q) is %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
	if s.Default() != s.For("x@unknown.example") {
		t.Error("Default() is not the pointer For returns for an unknown domain")
	}
	if got := s.DisabledFilters(); !equal(got, []string{"bayes", "greylist", "headers"}) {
		t.Errorf("Set.DisabledFilters = %q", got)
	}
	if got := len(s.Policies()); got != 6 { // default, 2 domains, 2 recipients, submission
		t.Errorf("len(Policies()) = %d, want 6", got)
	}
}

func TestSubmissionPolicy(t *testing.T) {
	s, err := New(Config{
		Default: PolicyConfig{Reject: ThresholdAt(15), DisableFilters: []string{"bayes"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := s.Submission()
	if p.Name != "submission" || !math.IsInf(p.TagScore, 1) || !math.IsInf(p.QuarantineScore, 1) ||
		p.RejectScore != 15 || p.SubjectPrefix != "" || p.Runs("bayes") {
		t.Errorf("default submission policy = %+v", p)
	}
	s, err = New(Config{Submission: PolicyConfig{Quarantine: ThresholdAt(8), DisableFilters: []string{"attachments"}}})
	if err != nil {
		t.Fatal(err)
	}
	p = s.Submission()
	if p.QuarantineScore != 8 || p.RejectScore != DefaultRejectScore || p.Runs("attachments") || !p.Runs("bayes") {
		t.Errorf("configured submission policy = %+v", p)
	}
	if p == s.Default() || p == s.For("a@b.example") {
		t.Error("the submission policy is shared with a recipient policy")
	}
	_, err = New(Config{Submission: PolicyConfig{Reject: ThresholdAt(1), Quarantine: ThresholdAt(3)}})
	if err == nil || !strings.Contains(err.Error(), "policies.submission.") {
		t.Errorf("bad submission thresholds: err = %v, want one naming policies.submission", err)
	}
}

func TestEmptyConfigIsBuiltin(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := s.For("a@b.example")
	b := Builtin()
	if p.Name != "default" || p.TagScore != b.TagScore || p.QuarantineScore != b.QuarantineScore ||
		p.RejectScore != b.RejectScore || p.SubjectPrefix != "" {
		t.Errorf("empty config policy = %+v, want the built-in defaults %+v", p, b)
	}
	if p.TagScore != 5 || p.QuarantineScore != 10 || p.RejectScore != 20 {
		t.Errorf("built-in thresholds = %v/%v/%v, want 5/10/20", p.TagScore, p.QuarantineScore, p.RejectScore)
	}
	if p.SenderAllowed("a@b.example") || p.SenderBlocked("a@b.example") || !p.Runs("dkim") {
		t.Error("empty config has lists or disabled filters")
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // each must appear in the error
	}{
		{"domain quarantine below inherited tag", `
[policies.domains."example.com"]
quarantine = 3`, []string{`policies.domains."example.com".quarantine: 3 is below tag (5)`}},
		{"default tag above quarantine", `
[policies.default]
tag = 11`, []string{`policies.default.tag: 11 is above quarantine (10)`}},
		{"both set, blame the higher key", `
[policies.default]
tag = 8
quarantine = 7`, []string{`policies.default.quarantine: 7 is below tag (8)`}},
		{"reject below tag with quarantine off", `
[policies.recipients."ceo@example.com"]
quarantine = "off"
reject = 4`, []string{`policies.recipients."ceo@example.com".reject: 4 is below tag (5)`}},
		{"recipient against its domain", `
[policies.domains."example.com"]
reject = 12
[policies.recipients."ceo@example.com"]
quarantine = 13`, []string{`policies.recipients."ceo@example.com".quarantine: 13 is above reject (12)`}},
		{"nan", `
[policies.default]
tag = nan`, []string{`policies.default.tag: NaN is not a threshold`}},
		{"minus inf", `
[policies.default]
tag = -inf`, []string{`policies.default.tag: -Inf is not a threshold`}},
		{"bad domain key", `
[policies.domains."exa mple.com"]
tag = 1`, []string{`policies.domains."exa mple.com": domain "exa mple.com" holds ' '`}},
		{"duplicate domain key", `
[policies.domains."example.com"]
tag = 1
[policies.domains."EXAMPLE.com"]
tag = 2`, []string{`policies.domains."example.com": domain "example.com" is configured twice`}},
		{"recipient without local part", `
[policies.recipients."@example.com"]
tag = 1`, []string{`policies.recipients."@example.com": empty local part`}},
		{"recipient with bad domain", `
[policies.recipients."ceo@-example.com"]
tag = 1`, []string{`policies.recipients."ceo@-example.com": domain "-example.com" has a label that starts or ends with a hyphen`}},
		{"recipient without domain", `
[policies.recipients."ceo"]
tag = 1`, []string{`policies.recipients."ceo": want "user@domain"`}},
		{"bad sender patterns", `
[policies.default]
allow_senders = ["@ok.example", "nodomain", ""]
block_senders = [".a..b"]`, []string{
			`policies.default.allow_senders[1] "nodomain": want "user@domain", "@domain" or ".domain"`,
			`policies.default.allow_senders[2] "": empty pattern`,
			`policies.default.block_senders[0] ".a..b": domain "a..b" has an empty label`,
		}},
		{"bad filter name", `
[policies.domains."example.com"]
disable_filters = ["dkim", "Bayes"]`, []string{`policies.domains."example.com".disable_filters[1] "Bayes": want a lower-case filter name`}},
		{"subject prefix with line break", `
[policies.default]
subject_prefix = "[SPAM]\r\nBcc: x@y.example"`, []string{`policies.default.subject_prefix: holds a line break`}},
		{"long label", `
[policies.domains."` + strings.Repeat("a", 64) + `.example"]
tag = 1`, []string{`has a label longer than 63 octets`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := decode(t, tt.doc)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\ndoes not contain\n  %s", err, w)
				}
			}
			if _, nerr := New(cfg); nerr == nil {
				t.Error("New succeeded where Validate failed")
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	docs := []string{
		resolutionDoc,
		"[policies.default]\ntag = \"off\"\nquarantine = \"off\"\nreject = \"off\"\n",
		"[policies.default]\ntag = 5\nquarantine = 5\nreject = 5\n",
		"[policies.default]\ntag = -5\nquarantine = 0\n",
		"[policies.default]\nquarantine = \"off\"\n[policies.domains.\"xn--bcher-kva.example\"]\ntag = 15\n",
	}
	for i, doc := range docs {
		if err := decode(t, doc).Validate(); err != nil {
			t.Errorf("doc %d: %v", i, err)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWithSenderAllowed(t *testing.T) {
	set, err := New(Config{Default: PolicyConfig{AllowSenders: []string{"@partner.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := set.For("alice@example.com")
	q := p.WithSenderAllowed()
	if q == p || q.Name != p.Name || q.TagScore != p.TagScore || q.RejectScore != p.RejectScore {
		t.Fatalf("derived policy %+v from %+v: want a distinct copy with the same name and thresholds", q, p)
	}
	for _, s := range []string{"bob@elsewhere.example", "a@partner.example"} {
		if !q.SenderAllowed(s) {
			t.Errorf("derived policy: %s not allowed", s)
		}
	}
	if p.SenderAllowed("bob@elsewhere.example") || !p.SenderAllowed("a@partner.example") {
		t.Error("the original policy changed")
	}
}
