package antivirus

// Integration tests against Debian's clamav-daemon, started by each test
// through clamdtest.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/antivirus/clamdtest"
)

const (
	eicar          = clamdtest.EICAR
	eicarSigName   = clamdtest.EICARSignature
	marker         = clamdtest.Marker
	markerSigName  = clamdtest.MarkerSignature
	clamdStreamMax = clamdtest.StreamMax
)

// mimeMessage builds a multipart message with a text part and one base64
// attachment holding payload.
func mimeMessage(payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: Sender <sender@example.net>\r\n" +
		"To: rcpt@example.com\r\n" +
		"Subject: the file you asked for\r\n" +
		"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n" +
		"Message-ID: <av-test@example.net>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_moat_boundary\"\r\n" +
		"\r\n" +
		"--=_moat_boundary\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n" +
		"\r\n" +
		"Please find the file attached.\r\n" +
		"--=_moat_boundary\r\n" +
		"Content-Type: application/octet-stream; name=\"file.com\"\r\n" +
		"Content-Disposition: attachment; filename=\"file.com\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"\r\n")
	enc := base64.StdEncoding.EncodeToString(payload)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--=_moat_boundary--\r\n")
	return b.Bytes()
}

// readClean reads a clean message, testdata/messages/clean.eml.
func readClean(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/messages/clean.eml")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestClamdScan(t *testing.T) {
	c := clamdtest.Start(t)
	clean := readClean(t)
	eicarMsg := mimeMessage([]byte(eicar))
	markerMsg := mimeMessage([]byte("header bytes " + marker + " trailer bytes"))
	if bytes.Contains(eicarMsg, []byte("EICAR")) || bytes.Contains(markerMsg, []byte(marker)) {
		t.Fatal("test messages must hide their payload in base64, so that clamd has to decode MIME")
	}
	big := mimeMessage(bytes.Repeat([]byte("0123456789abcdef"), 2*clamdStreamMax/16))

	tests := []struct {
		name     string
		raw      []byte
		wantSym  string // "" for no symbol
		wantSig  string // prefix of the reason, for VIRUS
		wantSize bool
	}{
		{name: "clean", raw: clean},
		{name: "clean multipart", raw: mimeMessage([]byte("just a harmless attachment"))},
		{name: "eicar base64 attachment", raw: eicarMsg, wantSym: SymVirus, wantSig: eicarSigName},
		{name: "eicar bare", raw: []byte(eicar), wantSym: SymVirus, wantSig: eicarSigName},
		{name: "custom signature in attachment", raw: markerMsg, wantSym: SymVirus, wantSig: markerSigName},
		{name: "custom signature in text", raw: append(bytes.Clone(clean), []byte(marker+"\r\n")...), wantSym: SymVirus, wantSig: markerSigName},
		{name: "over clamd StreamMaxLength", raw: big, wantSym: SymSkippedSize, wantSize: true},
	}
	for _, addr := range []string{c.Unix, c.TCP} {
		cfg := DefaultConfig()
		cfg.Address = addr
		cfg.VirusScore = 777
		f, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(addr[:strings.IndexByte(addr, ':')]+"/"+tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				res, err := f.Check(ctx, &filters.Input{Msg: filters.ParseMessage(tt.raw)})
				syms := res.Symbols
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if tt.wantSym == "" {
					if len(syms) != 0 {
						t.Fatalf("symbols %+v, want none", syms)
					}
					return
				}
				if len(syms) != 1 || syms[0].Name != tt.wantSym {
					t.Fatalf("symbols %+v, want one %s", syms, tt.wantSym)
				}
				s := syms[0]
				switch tt.wantSym {
				case SymVirus:
					if s.Score != 777 {
						t.Errorf("score %v, want virus_score 777", s.Score)
					}
					if !strings.HasPrefix(s.Reason, tt.wantSig) {
						t.Errorf("reason %q, want the signature name %s...", s.Reason, tt.wantSig)
					}
				case SymSkippedSize:
					if s.Score != 0 || !strings.Contains(s.Reason, "StreamMaxLength") {
						t.Errorf("got %+v, want score 0 and a reason naming StreamMaxLength", s)
					}
				}
			})
		}
	}
}

// TestClamdConcurrent scans from many goroutines at once, as sessions do.
func TestClamdConcurrent(t *testing.T) {
	c := clamdtest.Start(t)
	cfg := DefaultConfig()
	cfg.Address = c.Unix
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clean := filters.ParseMessage(readClean(t))
	virus := filters.ParseMessage(mimeMessage([]byte(eicar)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			msg, want := clean, 0
			if i%2 == 1 {
				msg, want = virus, 1
			}
			res, err := f.Check(ctx, &filters.Input{Msg: msg})
			syms := res.Symbols
			if err != nil {
				errs <- err
				return
			}
			if len(syms) != want {
				errs <- fmt.Errorf("scan %d: symbols %+v, want %d", i, syms, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestClamdKilled kills clamd between two scans: the second is an error,
// neither a clean verdict nor a symbol.
func TestClamdKilled(t *testing.T) {
	c := clamdtest.Start(t)
	in := &filters.Input{Msg: filters.ParseMessage(mimeMessage([]byte(eicar)))}
	var fs []*Filter
	for _, addr := range []string{c.Unix, c.TCP} {
		cfg := DefaultConfig()
		cfg.Address = addr
		f, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	scan := func(f *Filter) ([]filters.Symbol, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := f.Check(ctx, in)
		return res.Symbols, err
	}
	for _, f := range fs {
		if syms, err := scan(f); err != nil || len(syms) != 1 || syms[0].Name != SymVirus {
			t.Fatalf("%s before the kill: %+v, %v; want VIRUS", f.clamd, syms, err)
		}
	}
	c.Kill(t)
	for _, f := range fs {
		syms, err := scan(f)
		if err == nil || syms != nil {
			t.Errorf("%s after the kill: symbols %+v, error %v; want an error and no symbols", f.clamd, syms, err)
		}
		if err != nil && !strings.Contains(err.Error(), "connect") {
			t.Errorf("%s after the kill: error %q, want a connect error", f.clamd, err)
		}
	}
}

func BenchmarkScan10KB(b *testing.B) {
	c := clamdtest.Start(b)
	cl, err := NewClamd(c.Unix)
	if err != nil {
		b.Fatal(err)
	}
	raw := append(readClean(b), bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog, again and again.\r\n"), 10_000/64)...)
	ctx := context.Background()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := cl.Scan(ctx, raw)
		if err != nil {
			b.Fatal(err)
		}
		if res.Status != StatusClean {
			b.Fatalf("status %v, want clean", res.Status)
		}
	}
}
