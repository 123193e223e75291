package headers

import (
	"context"
	"math"
	"net/textproto"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

// fixtures is the message folder shared by the whole module.
const fixtures = "../../testdata/messages"

// check runs a default filter on raw and returns the sorted symbol names.
func check(t testing.TB, raw []byte, smtputf8 bool) []filters.Symbol {
	t.Helper()
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	in := &filters.Input{
		Conn: &filters.Connection{ID: "test"},
		Env:  &filters.Envelope{From: "alice@example.test", SMTPUTF8: smtputf8},
		Msg:  filters.ParseMessage(raw),
	}
	res, err := f.Check(context.Background(), in)
	syms := res.Symbols
	if err != nil {
		t.Fatal(err)
	}
	return syms
}

// names returns the sorted names of syms.
func names(syms []filters.Symbol) []string {
	out := []string{}
	for _, s := range syms {
		out = append(out, s.Name)
	}
	slices.Sort(out)
	return out
}

func TestFixtures(t *testing.T) {
	tests := []struct {
		file     string
		smtputf8 bool
		want     []string
	}{
		{"clean.eml", false, nil},
		{"gtube.eml", false, nil},
		{"no-date.eml", false, []string{SymMissingDate}},
		{"bad-date.eml", false, []string{SymInvalidDate}},
		{"obsolete-date.eml", false, nil},
		{"bad-msgid.eml", false, []string{SymInvalidMessageID}},
		{"dup-from.eml", false, []string{SymDuplicateHeader}},
		{"multi-from.eml", false, []string{SymMultiFromNoSender}},
		{"multi-from-sender.eml", false, nil},
		{"no-from.eml", false, []string{SymMissingFrom, SymMissingMessageID}},
		{"bad-from.eml", false, []string{SymInvalidFrom}},
		{"encoded-from.eml", false, nil},
		{"8bit-subject.eml", false, []string{Sym8BitNoSMTPUTF8}},
		{"8bit-subject.eml", true, nil},
		{"latin1-subject.eml", false, []string{Sym8BitNoSMTPUTF8}},
		{"latin1-subject.eml", true, []string{SymInvalidUTF8}},
		// The header breaks before Date and Message-ID: not "missing".
		{"malformed.eml", false, []string{SymMalformedHeader}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		name := tt.file
		if tt.smtputf8 {
			name += "/smtputf8"
		}
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(fixtures, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(raw), "\r\n") {
				t.Fatalf("%s lost its CRLF line endings", tt.file)
			}
			want := append([]string{}, tt.want...)
			slices.Sort(want)
			if got := names(check(t, raw, tt.smtputf8)); !slices.Equal(got, want) {
				t.Errorf("symbols %v, want %v", got, want)
			}
		})
	}
	all, _ := filepath.Glob(filepath.Join(fixtures, "*.eml"))
	for _, p := range all {
		if !seen[filepath.Base(p)] {
			t.Errorf("fixture %s has no expectation here", filepath.Base(p))
		}
	}
}

// message builds a CRLF message from header lines and a short body.
func message(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\nbody\r\n")
}

// base is a header that passes every check.
var base = []string{
	"From: Alice <alice@example.test>",
	"To: bob@example.net",
	"Date: Mon, 6 Oct 2025 11:14:01 +0200",
	"Message-ID: <1@example.test>",
	"Subject: hi",
}

// with returns base with the fields named in drop removed and extra
// appended.
func with(drop []string, extra ...string) []byte {
	var lines []string
	for _, l := range base {
		if !slices.ContainsFunc(drop, func(d string) bool { return strings.EqualFold(d, l[:strings.IndexByte(l, ':')]) }) {
			lines = append(lines, l)
		}
	}
	return message(append(lines, extra...)...)
}

func TestCases(t *testing.T) {
	tests := []struct {
		name   string
		raw    []byte
		want   []string
		reason string // substring of the first symbol's reason
	}{
		{"base", with(nil), nil, ""},
		{"LF line endings", []byte(strings.Join(base, "\n") + "\n\nbody\n"), nil, ""},
		{"no header at all", []byte("\r\nbody\r\n"), []string{SymMissingDate, SymMissingFrom, SymMissingMessageID}, ""},
		{"empty input", nil, []string{SymMissingDate, SymMissingFrom, SymMissingMessageID}, ""},
		{"empty Date", with([]string{"Date"}, "Date:"), []string{SymInvalidDate}, "date-time"},
		{"ISO date", with([]string{"Date"}, "Date: 2025-10-06T11:14:01Z"), []string{SymInvalidDate}, ""},
		{"date folded", with([]string{"Date"}, "Date: Mon, 6 Oct 2025", " 11:14:01 +0200"), nil, ""},
		{"two Dates, Subjects, Message-IDs", with(nil, "Date: Mon, 6 Oct 2025 11:14:01 +0200", "Subject: again", "Message-ID: <2@example.test>"),
			[]string{SymDuplicateHeader}, "more than one Date, Message-ID, Subject"},
		{"Received and Comments repeat freely", with(nil, "Received: a", "Received: b", "Comments: x", "Comments: y"), nil, ""},
		{"two Ccs", with(nil, "Cc: a@x.test", "CC: b@x.test"), []string{SymDuplicateHeader}, "Cc"},
		{"msgid without brackets", with([]string{"Message-Id"}, "Message-ID: 1@example.test"), []string{SymInvalidMessageID}, ""},
		{"msgid without @", with([]string{"Message-Id"}, "Message-ID: <12345>"), []string{SymInvalidMessageID}, ""},
		{"two msgids", with([]string{"Message-Id"}, "Message-ID: <1@a.test> <2@a.test>"), []string{SymInvalidMessageID}, ""},
		{"msgid literal", with([]string{"Message-Id"}, "Message-ID: <1.2@[192.0.2.1]>"), nil, ""},
		{"msgid quoted left", with([]string{"Message-Id"}, `Message-ID: <"a b"@example.test>`), nil, ""},
		{"From empty", with([]string{"From"}, "From:"), []string{SymInvalidFrom}, "mailbox"},
		{"From empty group", with([]string{"From"}, "From: undisclosed-recipients:;"), []string{SymInvalidFrom}, "no mailbox"},
		{"From two, Sender", with(nil, "Sender: alice@example.test") /* base has one From */, nil, ""},
		{"From UTF-8 name, SMTPUTF8", with([]string{"From"}, "From: Zoë <zoe@example.test>"), []string{Sym8BitNoSMTPUTF8}, ""},
		{"From encoded-word", with([]string{"From"}, "From: =?utf-8?q?Zo=C3=AB?= <zoe@example.test>"), nil, ""},
		{"header key with space", message("From: a@b.test", "Bad Key: x"), []string{SymMalformedHeader}, "cannot be parsed"},
		{"continuation first", []byte(" folded\r\nFrom: a@b.test\r\n\r\n"), []string{SymMalformedHeader}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			syms := check(t, tt.raw, false)
			want := append([]string{}, tt.want...)
			slices.Sort(want)
			if got := names(syms); !slices.Equal(got, want) {
				t.Fatalf("symbols %v, want %v (%v)", got, want, syms)
			}
			if tt.reason != "" && !strings.Contains(syms[0].Reason, tt.reason) {
				t.Errorf("reason %q, want it to say %q", syms[0].Reason, tt.reason)
			}
		})
	}
}

func TestScoresFromConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MissingDate = 7.5
	cfg.DuplicateHeader = 0 // reported, scored nothing
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := &filters.Input{Env: &filters.Envelope{}, Msg: filters.ParseMessage(with([]string{"Date"}, "Subject: again"))}
	res, err := f.Check(context.Background(), in)
	syms := res.Symbols
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range syms {
		got[s.Name] = s.Score
	}
	want := map[string]float64{SymMissingDate: 7.5, SymDuplicateHeader: 0}
	if len(got) != len(want) || got[SymMissingDate] != 7.5 || got[SymDuplicateHeader] != 0 {
		t.Errorf("scores %v, want %v", got, want)
	}
}

func TestErrors(t *testing.T) {
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "headers" || f.Stage() != filters.StageData {
		t.Errorf("Name %q Stage %v", f.Name(), f.Stage())
	}
	if _, err := f.Check(context.Background(), &filters.Input{}); err == nil {
		t.Error("no error without a message")
	}
	// No envelope: 8-bit counts as without SMTPUTF8.
	res, err := f.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage(with(nil, "X-Name: é"))})
	syms := res.Symbols
	if err != nil || !slices.Equal(names(syms), []string{Sym8BitNoSMTPUTF8}) {
		t.Errorf("no envelope: %v, %v", syms, err)
	}
	cfg := DefaultConfig()
	cfg.InvalidFrom = math.NaN()
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "invalid_from") {
		t.Errorf("NaN score: %v", err)
	}
}

func TestSingletonTable(t *testing.T) {
	for i, k := range singletons {
		if singleton(textproto.CanonicalMIMEHeaderKey(k)) != i {
			t.Errorf("singleton(%q) = %d, want %d", k, singleton(k), i)
		}
	}
	if singleton("Received") != -1 {
		t.Error("Received is not a singleton")
	}
	// Every Config field has a symbol of the same name, and back.
	syms := map[string]bool{}
	for _, s := range Symbols {
		syms[strings.ToLower(s)] = true
	}
	if len(syms) != len(Symbols) {
		t.Error("Symbols has duplicates")
	}
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		tag := ct.Field(i).Tag.Get("toml")
		if !syms[tag] {
			t.Errorf("Config key %q names no symbol", tag)
		}
		delete(syms, tag)
	}
	for s := range syms {
		t.Errorf("symbol %q has no Config key", s)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}
