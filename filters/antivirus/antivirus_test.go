package antivirus

import (
	"context"
	"errors"
	"math"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	want := Config{Address: "unix:/run/clamav/clamd.ctl", MaxScanBytes: 25 << 20, VirusScore: 0}
	if c != want {
		t.Fatalf("DefaultConfig() = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr []string // substrings; nil for a valid config
	}{
		{name: "default", edit: func(*Config) {}},
		{name: "tcp", edit: func(c *Config) { c.Address = "tcp:127.0.0.1:3310" }},
		{name: "zero score", edit: func(c *Config) { c.VirusScore = 0 }},
		{name: "one byte", edit: func(c *Config) { c.MaxScanBytes = 1 }},
		{name: "empty address", edit: func(c *Config) { c.Address = "" }, wantErr: []string{"address: "}},
		{name: "bare path", edit: func(c *Config) { c.Address = "/run/clamav/clamd.ctl" }, wantErr: []string{"address: ", "unix:/path"}},
		{name: "bad port", edit: func(c *Config) { c.Address = "tcp:localhost:x" }, wantErr: []string{"address: "}},
		{name: "zero max", edit: func(c *Config) { c.MaxScanBytes = 0 }, wantErr: []string{"max_scan_bytes: 0"}},
		{name: "negative max", edit: func(c *Config) { c.MaxScanBytes = -1 }, wantErr: []string{"max_scan_bytes: -1"}},
		{name: "NaN score", edit: func(c *Config) { c.VirusScore = math.NaN() }, wantErr: []string{"virus_score: NaN"}},
		{name: "infinite score", edit: func(c *Config) { c.VirusScore = math.Inf(1) }, wantErr: []string{"virus_score: +Inf"}},
		{name: "negative score", edit: func(c *Config) { c.VirusScore = -5 }, wantErr: []string{"virus_score: -5 is negative"}},
		{name: "all wrong", edit: func(c *Config) { *c = Config{VirusScore: -1} },
			wantErr: []string{"address: ", "max_scan_bytes: 0", "virus_score: -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			before := c
			err := c.Validate()
			if c != before && !math.IsNaN(c.VirusScore) {
				t.Errorf("Validate changed the config: %+v, was %+v", c, before)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := New(c); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if _, nerr := New(c); nerr == nil || !strings.HasPrefix(nerr.Error(), "antivirus config: ") {
				t.Errorf("New() error = %v, want the Validate error prefixed", nerr)
			}
		})
	}
}

func TestFilterIdentity(t *testing.T) {
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "antivirus" || f.Stage() != filters.StageData {
		t.Fatalf("Name, Stage = %q, %v; want antivirus, data", f.Name(), f.Stage())
	}
	if !slices.Equal(f.Symbols(), []string{"VIRUS", "AV_SKIPPED_SIZE"}) {
		t.Fatalf("Symbols() = %q", f.Symbols())
	}
}

// TestCheck runs the filter against a fake clamd giving each kind of
// answer.
func TestCheck(t *testing.T) {
	raw := []byte("From: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n")
	tests := []struct {
		name    string
		reply   string
		want    []filters.Symbol
		wantErr bool
	}{
		{name: "clean", reply: "stream: OK\x00"},
		{name: "virus", reply: "stream: Win.Test.EICAR_HDB-1 FOUND\x00",
			want: []filters.Symbol{{Name: SymVirus, Score: 42, Reason: "Win.Test.EICAR_HDB-1"}}},
		{name: "virus name sanitised", reply: "stream: Evil\x1b[0m <b>x</b> FOUND\x00",
			want: []filters.Symbol{{Name: SymVirus, Score: 42, Reason: "Evil__0m__b_x_/b_"}}},
		{name: "clamd size limit", reply: "INSTREAM size limit exceeded. ERROR\x00",
			want: []filters.Symbol{{Name: SymSkippedSize, Score: 0, Reason: "not scanned: 43 bytes, over clamd's StreamMaxLength"}}},
		{name: "clamd error", reply: "stream: Can't allocate memory ERROR\x00", wantErr: true},
		{name: "hang up", reply: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, "unix", replying(t, raw, tt.reply))
			cfg := DefaultConfig()
			cfg.Address = fake.address
			cfg.VirusScore = 42
			f, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.Check(scanCtx(t), &filters.Input{Msg: filters.ParseMessage(raw)})
			syms := res.Symbols
			if tt.wantErr {
				if err == nil || syms != nil {
					t.Fatalf("Check: %+v, %v; want an error and no symbols", syms, err)
				}
				if !strings.HasPrefix(err.Error(), "antivirus: clamd ") {
					t.Errorf("error %q, want it to start with \"antivirus: clamd \"", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !slices.Equal(syms, tt.want) {
				t.Fatalf("Check: %+v, want %+v", syms, tt.want)
			}
		})
	}
}

// TestCheckSkipsBigMessage: a message over max_scan_bytes is not sent;
// one of exactly max_scan_bytes is.
func TestCheckSkipsBigMessage(t *testing.T) {
	const max = 64
	small := []byte("Subject: x\r\n\r\n" + strings.Repeat("a", max-14))
	big := append(small[:max:max], 'b')
	if len(small) != max || len(big) != max+1 {
		t.Fatalf("fixture sizes %d, %d", len(small), len(big))
	}
	fake := startFake(t, "unix", func(_ *fakeClamd, conn net.Conn) {
		if _, err := readInstream(conn); err != nil {
			t.Errorf("server: %v", err)
		}
		_, _ = conn.Write([]byte("stream: OK\x00"))
	})
	cfg := DefaultConfig()
	cfg.Address = fake.address
	cfg.MaxScanBytes = max
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	res, err := f.Check(scanCtx(t), &filters.Input{Msg: filters.ParseMessage(big)})

	syms := res.Symbols
	want := []filters.Symbol{{Name: SymSkippedSize, Score: 0, Reason: "not scanned: 65 bytes, over max_scan_bytes 64"}}
	if err != nil || !slices.Equal(syms, want) {
		t.Fatalf("Check(%d bytes): %+v, %v; want %+v", len(big), syms, err, want)
	}
	if n := fake.accepts.Load(); n != 0 {
		t.Fatalf("clamd got %d connections for a message over max_scan_bytes, want 0", n)
	}

	res, err = f.Check(scanCtx(t), &filters.Input{Msg: filters.ParseMessage(small)})

	syms = res.Symbols
	if err != nil || syms != nil {
		t.Fatalf("Check(%d bytes): %+v, %v; want clean", len(small), syms, err)
	}
	if n := fake.accepts.Load(); n != 1 {
		t.Fatalf("clamd got %d connections for a message of max_scan_bytes, want 1", n)
	}
}

func TestCheckNoMessage(t *testing.T) {
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []*filters.Input{nil, {}} {
		if res, err := f.Check(context.Background(), in); !errors.Is(err, errNoMessage) || !res.IsZero() {
			t.Errorf("Check(%+v) = %+v, %v; want errNoMessage", in, res, err)
		}
	}
}

func TestSignatureReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Win.Test.EICAR_HDB-1", "Win.Test.EICAR_HDB-1"},
		{"eicar.txt.UNOFFICIAL", "eicar.txt.UNOFFICIAL"},
		{"Heuristics.Phishing.Email.SpoofedDomain", "Heuristics.Phishing.Email.SpoofedDomain"},
		{"Sig(44d88612fea8a8f36de82e1278abb02f:68)", "Sig(44d88612fea8a8f36de82e1278abb02f:68)"},
		{"with space", "with_space"},
		{"new\r\nline", "new__line"},
		{"ünïcode", "__n__code"},
		{"", "unnamed signature"},
		{strings.Repeat("A", 300), strings.Repeat("A", maxSignatureLen)},
	}
	for _, tt := range tests {
		if got := SignatureReason(tt.in); got != tt.want {
			t.Errorf("SignatureReason(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
