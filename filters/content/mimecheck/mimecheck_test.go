package mimecheck

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

const fixtures = "../../../testdata/messages/mime"

// TestCheck runs the filter on fixtures and built messages.
func TestCheck(t *testing.T) {
	cfg := DefaultConfig()
	cfg.UnknownCharset = 0.25 // a configured score, not the default, comes out
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		raw, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name string
		raw  []byte
		lim  content.Limits
		want map[string]float64
	}{
		{"plain", read("plain.eml"), content.Limits{}, nil},
		{"nested", read("nested-rfc822.eml"), content.Limits{}, nil},
		{"broken base64", read("broken-base64.eml"), content.Limits{}, map[string]float64{"MIME_BAD_ENCODING": 1}},
		{"unknown charset", read("unknown-charset.eml"), content.Limits{}, map[string]float64{"MIME_UNKNOWN_CHARSET": 0.25}},
		{"missing boundary", read("missing-boundary.eml"), content.Limits{}, map[string]float64{"MIME_MISSING_BOUNDARY": 2}},
		{"no close delimiter", read("no-close-delimiter.eml"), content.Limits{}, map[string]float64{"MIME_MALFORMED": 2.9}},
		{"too deep for the message's limits", read("nested-rfc822.eml"), content.Limits{MaxDepth: 2}, map[string]float64{"MIME_TOO_DEEP": 3}},
		{"too many parts", read("rfc2231-filename.eml"), content.Limits{MaxParts: 2}, map[string]float64{"MIME_TOO_MANY_PARTS": 3}},
		{"too large", read("rfc2231-filename.eml"), content.Limits{MaxDecodedBytes: 20},
			map[string]float64{"MIME_TOO_LARGE": 1, "MIME_ATTACHMENT_CUT": 4}},
		{"text truncated scores 0 but is reported", read("plain.eml"), content.Limits{MaxTextBytes: 10}, map[string]float64{"MIME_TEXT_TRUNCATED": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := filters.ParseMessage(tt.raw)
			msg.Limits = tt.lim
			res, err := f.Check(context.Background(), &filters.Input{Msg: msg})
			syms := res.Symbols
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, s := range syms {
				if _, dup := got[s.Name]; dup {
					t.Errorf("%s twice", s.Name)
				}
				got[s.Name] = s.Score
				if s.Reason == "" {
					t.Errorf("%s without a reason", s.Name)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("symbols %+v, want %v", syms, tt.want)
			}
			for name, score := range tt.want {
				if s, ok := got[name]; !ok || s != score {
					t.Errorf("%s = %v (present %v), want %v", name, s, ok, score)
				}
			}
		})
	}
	if _, err := f.Check(context.Background(), &filters.Input{}); err == nil {
		t.Error("no error without a message")
	}
}

// TestConfig checks the defaults, Validate and the declared symbols.
func TestConfig(t *testing.T) {
	d := DefaultConfig()
	want := map[content.AnomalyKind]float64{
		content.TooDeep: 3, content.TooManyParts: 3, content.TooLarge: 1, content.BadEncoding: 1,
		content.UnknownCharset: 0.5, content.MalformedMIME: 2.9, content.MissingBoundary: 2,
		content.TextTruncated: 0, content.AttachmentCutOff: 4,
	}
	for k, s := range want {
		if got := d.score(k); got != s {
			t.Errorf("default %s = %v, want %v", k, got, s)
		}
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	bad := d
	bad.MissingBoundary = math.Inf(1)
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "mime_missing_boundary") {
		t.Errorf("Validate(+Inf) = %v", err)
	}
	if _, err := New(bad); err == nil {
		t.Error("New accepted +Inf")
	}
	f, _ := New(d)
	if f.Name() != "mime" || f.Stage() != filters.StageData {
		t.Errorf("name %q stage %v", f.Name(), f.Stage())
	}
	var names []string
	for _, k := range content.AnomalyKinds {
		names = append(names, string(k))
	}
	if !slices.Equal(f.Symbols(), names) || len(names) != len(want) {
		t.Errorf("Symbols() = %v", f.Symbols())
	}
}

// TestContentOnce checks that concurrent filters share one walk.
func TestContentOnce(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fixtures, "alternative.eml"))
	if err != nil {
		t.Fatal(err)
	}
	msg := filters.ParseMessage(raw)
	const n = 16
	got := make([]*content.Content, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i] = msg.Content() })
	}
	wg.Wait()
	for i := range n {
		if got[i] == nil || got[i] != got[0] {
			t.Fatalf("call %d returned %p, call 0 %p", i, got[i], got[0])
		}
	}
	if !got[0].HTML || len(got[0].URLs) != 2 {
		t.Errorf("content %+v", got[0])
	}
}
