package gtube

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

// fixtures is the message folder shared by the whole module.
const fixtures = "../../testdata/messages"

// header is a plain header for built messages.
const header = "From: a@example.test\r\nSubject: test\r\n\r\n"

func TestCheck(t *testing.T) {
	gtubeFile, err := os.ReadFile(filepath.Join(fixtures, "gtube.eml"))
	if err != nil {
		t.Fatal(err)
	}
	cleanFile, err := os.ReadFile(filepath.Join(fixtures, "clean.eml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		raw  []byte
		want bool
	}{
		{"fixture gtube.eml", gtubeFile, true},
		{"fixture clean.eml", cleanFile, false},
		{"alone", []byte(header + String + "\r\n"), true},
		{"inside a line", []byte(header + "see: " + String + " (test)\r\n"), true},
		{"no trailing newline", []byte(header + String), true},
		{"LF body", []byte("Subject: x\n\n" + String + "\n"), true},
		{"empty body", []byte(header), false},
		{"no header", []byte("\r\n" + String + "\r\n"), true},
		// The string must sit on one line, as in SpamAssassin.
		{"wrapped", []byte(header + String[:30] + "\r\n" + String[30:] + "\r\n"), false},
		{"one byte short", []byte(header + String[:len(String)-1] + "\r\n"), false},
		{"lower case", []byte(header + strings.ToLower(String) + "\r\n"), false},
		// Only the body counts.
		{"in the header", []byte("Subject: " + String + "\r\n\r\nhello\r\n"), false},
		// The body is not decoded.
		{"base64", []byte("Content-Transfer-Encoding: base64\r\n\r\nWEpTKkM0SkRCUUFETjEuTlNCTjMqMklETkVOKkdUVUJFLVNUQU5EQVJELUFOVEktVUJFLVRFU1QtRU1BSUwqQy4zNFg=\r\n"), false},
	}
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage(tt.raw)})
			syms := res.Symbols
			if err != nil {
				t.Fatal(err)
			}
			if got := len(syms) == 1; got != tt.want || len(syms) > 1 {
				t.Fatalf("symbols %v, want found=%v", syms, tt.want)
			}
			if tt.want {
				want := filters.Symbol{Name: "GTUBE", Score: 1000, Reason: "GTUBE test string"}
				if syms[0] != want {
					t.Errorf("symbol %+v, want %+v", syms[0], want)
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	f, err := New(Config{Score: 42})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage([]byte(header + String))})
	syms := res.Symbols
	if err != nil || len(syms) != 1 || syms[0].Score != 42 {
		t.Errorf("got %v, %v; want score 42", syms, err)
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := New(Config{Score: bad}); err == nil {
			t.Errorf("score %v accepted", bad)
		}
	}
	if f.Name() != "gtube" || f.Stage() != filters.StageData {
		t.Errorf("Name %q, Stage %v", f.Name(), f.Stage())
	}
	if _, err := f.Check(context.Background(), &filters.Input{}); err == nil {
		t.Error("no error without a message")
	}
}

// BenchmarkCheck scans a 10 KB body without the string: the common case,
// and the worst (the whole body is read).
func BenchmarkCheck(b *testing.B) {
	body := strings.Repeat("The quick brown fox jumps over the lazy dog; XJS* is a red herring.\r\n", 10*1024/70)
	in := &filters.Input{Msg: filters.ParseMessage([]byte(header + body))}
	f, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := f.Check(context.Background(), in); !res.IsZero() {
			b.Fatal(res)
		}
	}
}
