package headers

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moatmail/moat/filters"
)

// FuzzHeaders runs ParseMessage and Check on arbitrary input: no panic, no
// error, and only symbols of the fixed set, each at most once, each with
// its configured score.
func FuzzHeaders(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(fixtures, "*.eml"))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, false)
		f.Add(raw, true)
	}
	f.Add([]byte("From: a@b\r\nDate: (x) 1 Jan 70 0 : 0 Z\r\nMessage-ID: <\"q\\\"\"@[x]>\r\n\r\n"), false)
	f.Add([]byte(" \r\n\r\n"), false)

	cfg := DefaultConfig()
	filter, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	scores := map[string]float64{
		SymMissingDate: cfg.MissingDate, SymInvalidDate: cfg.InvalidDate,
		SymMissingMessageID: cfg.MissingMessageID, SymInvalidMessageID: cfg.InvalidMessageID,
		SymMissingFrom: cfg.MissingFrom, SymInvalidFrom: cfg.InvalidFrom,
		SymMultiFromNoSender: cfg.MultiFromNoSender, SymDuplicateHeader: cfg.DuplicateHeader,
		Sym8BitNoSMTPUTF8: cfg.EightBitNoUTF8, SymInvalidUTF8: cfg.InvalidUTF8,
		SymMalformedHeader: cfg.MalformedHeader,
	}
	f.Fuzz(func(t *testing.T, raw []byte, smtputf8 bool) {
		in := &filters.Input{Env: &filters.Envelope{SMTPUTF8: smtputf8}, Msg: filters.ParseMessage(raw)}
		res, err := filter.Check(context.Background(), in)
		syms := res.Symbols
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, s := range syms {
			want, ok := scores[s.Name]
			if !ok {
				t.Fatalf("symbol %q is not in the fixed set", s.Name)
			}
			if s.Score != want {
				t.Errorf("%s scored %v, want %v", s.Name, s.Score, want)
			}
			if slices.Contains(seen, s.Name) {
				t.Errorf("%s reported twice", s.Name)
			}
			seen = append(seen, s.Name)
			for _, c := range []byte(s.Reason) {
				if c < 0x20 || c == 0x7f {
					t.Errorf("%s reason %q holds a control byte", s.Name, s.Reason)
				}
			}
		}
		if in.Msg.HeaderErr != nil && !slices.Contains(seen, SymMalformedHeader) {
			t.Error("header error without MALFORMED_HEADER")
		}
	})
}
