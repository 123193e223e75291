package gateway

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/gtube"
	"github.com/moatmail/moat/filters/headers"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/quarantine"
	"github.com/moatmail/moat/rules"
)

// startGateway serves the SMTP front on a loopback port, without TLS, over
// a real store, and returns its address. extra filters run after the
// headers and gtube filters.
func startGateway(t testing.TB, cfg Config, extra ...filters.Filter) (string, *mailstore.Store) {
	t.Helper()
	st, err := mailstore.Open(mailstore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	q, err := quarantine.New(quarantine.Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := headers.New(headers.DefaultConfig())
	g, _ := gtube.New(gtube.DefaultConfig())
	p, err := rules.NewPipeline(rules.Config{}, append([]filters.Filter{h, g}, extra...), nil)
	if err != nil {
		t.Fatal(err)
	}
	pols, err := policies.New(policies.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalDomains = []string{"example.com"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, nil, Deps{
		Judge: &Judge{Pipeline: p, Policies: pols}, Store: st, Quarantine: q,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l, ListenOptions{Name: "mx"})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l.Addr().String(), st
}

// dialogue sends the parts of its input, a moment apart, and returns every
// reply line until the server closes the connection or stays silent.
func dialogue(t testing.TB, addr string, parts ...string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	go func() {
		for i, p := range parts {
			if i > 0 {
				time.Sleep(100 * time.Millisecond)
			}
			io.WriteString(c, p)
		}
	}()
	var out strings.Builder
	r := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		line, err := r.ReadString('\n')
		out.WriteString(line)
		if err != nil {
			return out.String()
		}
	}
}

func TestConnectionLimitPerIP(t *testing.T) {
	addr, _ := startGateway(t, Config{MaxConnectionsPerIP: 2})
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		if !strings.HasPrefix(line, "220 ") {
			t.Fatalf("connection %d greeted with %q", i, line)
		}
		conns = append(conns, c)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "421 4.7.0") {
		t.Fatalf("third connection got %q, want 421 4.7.0", line)
	}
	// A closed connection frees its slot.
	conns[0].Close()
	time.Sleep(100 * time.Millisecond)
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, _ := bufio.NewReader(c2).ReadString('\n'); !strings.HasPrefix(line, "220 ") {
		t.Fatalf("after a close, a new connection got %q", line)
	}
}

func TestMalformedDialogues(t *testing.T) {
	addr, st := startGateway(t, Config{})
	cases := []struct {
		name  string
		input []string
		want  string
	}{
		{"MAIL before EHLO", []string{"MAIL FROM:<a@example.net>\r\n"}, "502 5.5.1"},
		{"bad sender syntax", []string{"EHLO x\r\nMAIL FROM:<a b@c>\r\n"}, "501"},
		{"bad recipient syntax", []string{"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<@@>\r\n"}, "501"},
		{"DATA without RCPT", []string{"EHLO x\r\nMAIL FROM:<a@example.net>\r\nDATA\r\n"}, "502 5.5.1"},
		{"unknown command", []string{"EHLO x\r\nFROB\r\n"}, "500"},
		{"SIZE over the limit", []string{"EHLO x\r\nMAIL FROM:<a@example.net> SIZE=999999999\r\n"}, "552"},
		{"over-long EHLO", []string{"EHLO " + strings.Repeat("x", 3000) + "\r\n"}, "500 5.5.2"},
		{"over-long MAIL", []string{"EHLO x\r\nMAIL FROM:<" + strings.Repeat("x", 3000) + "@example.net>\r\n"}, "500 5.5.2"},
		{"over-long RCPT", []string{"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<" + strings.Repeat("x", 3000) + "@example.com>\r\n"}, "500 5.5.2"},
		{"null sender is fine", []string{"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\n"}, "250 2.0.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := dialogue(t, addr, tc.input...)
			if !strings.Contains(out, tc.want) {
				t.Fatalf("replies lack %q:\n%s", tc.want, out)
			}
		})
	}
	// None of it stored anything.
	u, _ := st.LookupUser(context.Background(), "alice@example.com")
	mb, _ := st.Mailbox(context.Background(), u.ID, "INBOX")
	if msgs, _ := st.Messages(context.Background(), mb.ID); len(msgs) != 0 {
		t.Errorf("malformed dialogues stored %d messages", len(msgs))
	}
}

// FuzzSession throws arbitrary client input at the SMTP front: it must
// never crash, and must keep serving.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"HELO x\r\nMAIL FROM:<> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<alice+tag@example.com>\r\nBDAT 5 LAST\r\nhello",
		"EHLO x\r\nRSET\r\nNOOP\r\nVRFY alice\r\nMAIL FROM:<a@example.net> SIZE=10\r\nRCPT TO:<x@elsewhere>\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n\xff\xfe\x00\r\n..\r\n.\r\n",
		"STARTTLS\r\nAUTH PLAIN AGFAYg==\r\n",
	} {
		f.Add(seed)
	}
	addr, _ := startGateway(f, Config{})
	f.Fuzz(func(t *testing.T, input string) {
		dialogue(t, addr, input)
		if out := dialogue(t, addr, "EHLO ok\r\nQUIT\r\n"); !strings.Contains(out, "250") {
			t.Fatalf("server stopped answering after %q: %q", input, out)
		}
	})
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "unknown",
		"mail.example.net":    "mail.example.net",
		"evil)\r\nX-Spam: no": "evil???X-Spam:?no",
		"[1.2.3.4]":           "?1.2.3.4?",
		"h\u00e9llo":          "h?llo",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
