package pop3d

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/gateway/throttle"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{}, ""},
		{"explicit", Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true, AuthConcurrency: 2}, IdleTimeout: 15 * time.Minute}, ""},
		{"idle timeout below RFC 1939", Config{IdleTimeout: 9 * time.Minute}, "idle_timeout"},
		{"negative idle timeout", Config{IdleTimeout: -time.Second}, "idle_timeout"},
		{"negative auth concurrency", Config{LoginConfig: throttle.LoginConfig{AuthConcurrency: -1}}, "auth_concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if cfg.IdleTimeout < 10*time.Minute || cfg.AuthConcurrency < 1 {
					t.Errorf("defaults not filled: %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate error = %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
	cfg := Config{}
	if err := cfg.Validate(); err != nil || cfg.IdleTimeout != 10*time.Minute || cfg.AuthConcurrency != 4 {
		t.Errorf("defaults = %+v (%v), want 10m and 4", cfg, err)
	}
}

func TestInvalidConfigFailsServe(t *testing.T) {
	srv := New(Config{IdleTimeout: time.Second}, nil, nil, nil, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := srv.Serve(l); err == nil || !strings.Contains(err.Error(), "idle_timeout") {
		t.Errorf("Serve = %v, want the config error", err)
	}
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line     string
		wantName string
		wantArg  string
		wantErr  error
	}{
		{"STAT", cmdSTAT, "", nil},
		{"stat", cmdSTAT, "", nil},
		{"rEtR 1", cmdRETR, "1", nil},
		{"TOP 1 10", cmdTOP, "1 10", nil},
		{"PASS two words ", cmdPASS, "two words ", nil},
		{"USER alice@example.com", cmdUSER, "alice@example.com", nil},
		{"AUTH PLAIN AGEAYg==", cmdAUTH, "PLAIN AGEAYg==", nil},
		{"CAPA", cmdCAPA, "", nil},
		{"PASS p\u00e4ss", cmdPASS, "p\u00e4ss", nil},
		{"", "", "", errEmptyLine},
		{" STAT", "", "", errBadKeyword},
		{"STATS", "", "", errBadKeyword},
		{"ST", "", "", errBadKeyword},
		{"XYZZY 1", "", "", errBadKeyword},
		{"STAT\x00", "", "", errControlChar},
		{"PASS a\rb", "", "", errControlChar},
		{"PASS a\x7fb", "", "", errControlChar},
	} {
		got, err := parseCommand([]byte(tc.line))
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("parseCommand(%q) error = %v, want %v", tc.line, err, tc.wantErr)
			continue
		}
		if got.name != tc.wantName || got.arg != tc.wantArg {
			t.Errorf("parseCommand(%q) = %q %q, want %q %q", tc.line, got.name, got.arg, tc.wantName, tc.wantArg)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   int
		wantOK bool
		count  int // parseCount's answer when it differs; -1: same
	}{
		{"1", 1, true, -1},
		{"0", 0, true, -1},
		{"007", 7, true, -1},
		{"999999999", 999999999, true, -1},
		{"1000000000", 0, false, maxTopLines},
		{"99999999999999999999999", 0, false, maxTopLines},
		{"", 0, false, -1},
		{"-1", 0, false, -1},
		{"+1", 0, false, -1},
		{"1a", 0, false, -1},
		{" 1", 0, false, -1},
		{"0x10", 0, false, -1},
		{"12345678901x", 0, false, -1},
	} {
		n, ok := parseNumber(tc.in)
		if n != tc.want || ok != tc.wantOK {
			t.Errorf("parseNumber(%q) = %d %v, want %d %v", tc.in, n, ok, tc.want, tc.wantOK)
		}
		wantCount, wantCountOK := tc.want, tc.wantOK
		if tc.count >= 0 {
			wantCount, wantCountOK = tc.count, true
		}
		if n, ok := parseCount(tc.in); n != wantCount || ok != wantCountOK {
			t.Errorf("parseCount(%q) = %d %v, want %d %v", tc.in, n, ok, wantCount, wantCountOK)
		}
	}
}

func TestNextArg(t *testing.T) {
	for _, tc := range []struct{ in, word, rest string }{
		{"", "", ""},
		{"1", "1", ""},
		{"1 2", "1", "2"},
		{"  1   2  3", "1", "2  3"},
		{"PLAIN =", "PLAIN", "="},
	} {
		if w, r := nextArg(tc.in); w != tc.word || r != tc.rest {
			t.Errorf("nextArg(%q) = %q %q, want %q %q", tc.in, w, r, tc.word, tc.rest)
		}
	}
}

func TestSplitPlain(t *testing.T) {
	for _, tc := range []struct {
		in                string
		authz, authc, pwd string
		ok                bool
	}{
		{"\x00alice\x00secret", "", "alice", "secret", true},
		{"alice\x00alice\x00se cret", "alice", "alice", "se cret", true},
		{"\x00alice\x00", "", "", "", false},
		{"\x00\x00secret", "", "", "", false},
		{"alice\x00secret", "", "", "", false},
		{"a\x00b\x00c\x00d", "", "", "", false},
		{"", "", "", "", false},
	} {
		authz, authc, pwd, ok := splitPlain([]byte(tc.in))
		if authz != tc.authz || authc != tc.authc || pwd != tc.pwd || ok != tc.ok {
			t.Errorf("splitPlain(%q) = %q %q %q %v, want %q %q %q %v", tc.in, authz, authc, pwd, ok,
				tc.authz, tc.authc, tc.pwd, tc.ok)
		}
	}
}

// runDot feeds in through a dotWriter in chunks of the given size.
func runDot(in string, chunk int, top int) string {
	var out bytes.Buffer
	w := bufio.NewWriterSize(&out, 16) // small, to exercise the writer's own flushes
	d := newDotWriter(w)
	if top >= 0 {
		d = newTopWriter(w, top)
	}
	for i := 0; i < len(in) && !d.done; i += chunk {
		d.write([]byte(in[i:min(i+chunk, len(in))]))
	}
	d.finish()
	w.Flush()
	return out.String()
}

func TestDotWriter(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		top  int // -1: RETR
		want string
	}{
		{"empty", "", -1, ".\r\n"},
		{"crlf lines", "a\r\nb\r\n", -1, "a\r\nb\r\n.\r\n"},
		{"bare lf", "a\nb\n", -1, "a\r\nb\r\n.\r\n"},
		{"mixed line ends", "a\r\nb\nc\r\n\n", -1, "a\r\nb\r\nc\r\n\r\n.\r\n"},
		{"no final newline", "a\r\nb", -1, "a\r\nb\r\n.\r\n"},
		{"final bare cr", "a\r", -1, "a\r\n.\r\n"},
		{"bare cr inside", "a\rb\r\n", -1, "a\rb\r\n.\r\n"},
		{"leading dots", ".\r\n..\r\n.a\r\nb.\r\n", -1, "..\r\n...\r\n..a\r\nb.\r\n.\r\n"},
		{"dot first line, bare lf", ".x\n.\n", -1, "..x\r\n..\r\n.\r\n"},
		{"dot without newline", ".", -1, "..\r\n.\r\n"},
		{"blank lines", "\r\n\r\n", -1, "\r\n\r\n.\r\n"},
		{"top 0", "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\n", 0, "H: 1\r\nH: 2\r\n\r\n.\r\n"},
		{"top 1", "H: 1\r\n\r\nb1\r\nb2\r\n", 1, "H: 1\r\n\r\nb1\r\n.\r\n"},
		{"top all", "H: 1\r\n\r\nb1\r\nb2\r\n", 10, "H: 1\r\n\r\nb1\r\nb2\r\n.\r\n"},
		{"top bare lf", "H: 1\n\nb1\nb2\n", 1, "H: 1\r\n\r\nb1\r\n.\r\n"},
		{"top dot-stuffed body", "H: 1\r\n\r\n.b1\r\nb2\r\n", 1, "H: 1\r\n\r\n..b1\r\n.\r\n"},
		{"top no body", "H: 1\r\nH: 2\r\n", 0, "H: 1\r\nH: 2\r\n.\r\n"},
		{"top no body unterminated", "H: 1", 0, "H: 1\r\n.\r\n"},
		{"top body without final newline", "H: 1\r\n\r\nb1", 5, "H: 1\r\n\r\nb1\r\n.\r\n"},
		{"top empty message", "", 3, ".\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for chunk := 1; chunk <= len(tc.in)+1; chunk++ {
				if got := runDot(tc.in, chunk, tc.top); got != tc.want {
					t.Fatalf("chunks of %d: got %q, want %q", chunk, got, tc.want)
				}
			}
		})
	}
}

// TestDotWriterAllocations: RETR's conversion allocates nothing per line.
func TestDotWriterAllocations(t *testing.T) {
	msg := []byte(strings.Repeat("a line of text\r\n.dot\nbare\r\n", 400))
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	allocs := testing.AllocsPerRun(20, func() {
		d := newDotWriter(w)
		d.write(msg)
		d.finish()
	})
	if allocs != 0 {
		t.Errorf("dotWriter: %v allocations per message, want 0", allocs)
	}
}

func TestCloseStopsServe(t *testing.T) {
	srv := New(Config{}, nil, nil, nil, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	// A connection accepted before Close is closed by it.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	greeting, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || greeting != "+OK moat POP3 server ready\r\n" {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("connection still open after Close: %d, %v", n, err)
	}
	if err := srv.Close(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("second Close = %v, want ErrServerClosed", err)
	}
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := srv.Serve(l2); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close = %v, want ErrServerClosed", err)
	}
}
