package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
)

// lockedBuffer collects log lines written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged starts moat on the configuration text with its log, at
// level and above, in the returned buffer; the test's end stops it.
func startLogged(t *testing.T, text string, level slog.Level) (*app, *lockedBuffer) {
	t.Helper()
	cfg, err := parseConfig(text, "test")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	a, err := startWith(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level})), io.Discard, startOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(t.Context()) })
	return a, logs
}

// TestLongLineDelivered: a text line far over max_line_length (2000) is
// accepted and stored as received, as Postfix accepts it (issue 16); a
// line that passes the message size is refused for the size, and every
// refusal, in DATA as at RCPT, leaves its decision line in the log.
func TestLongLineDelivered(t *testing.T) {
	a, logs := startLogged(t, testConfig(t.TempDir(), ""), slog.LevelInfo)
	ctx := context.Background()
	if _, err := a.store.AddUser(ctx, "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)

	long := "<p>" + strings.Repeat("newsletter text ", 250) + "</p>" // 4,007 bytes
	msg := message("news@example.net", "alice@example.com", "long line", "first\r\n"+long+"\r\nlast")
	if got := send(t, a.Addr("smtp"), tc, "news@example.net", []string{"alice@example.com"}, msg); got.code != 250 {
		t.Fatalf("a 4,000-byte line: %v, want 250", got)
	}
	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	defer c.Close()
	msgs := fetchAll(t, c, "INBOX")
	if len(msgs) != 1 {
		t.Fatalf("INBOX holds %d messages, want 1", len(msgs))
	}
	if !strings.Contains(msgs[0], "\r\nfirst\r\n"+long+"\r\nlast\r\n") {
		t.Errorf("the stored message lost its long line intact:\n%.300s", msgs[0])
	}

	// One line longer than max_message_bytes (64 KiB here): refused for
	// its size, with a decision line.
	huge := message("news@example.net", "alice@example.com", "huge line", strings.Repeat("x", 70000))
	if got := send(t, a.Addr("smtp"), tc, "news@example.net", []string{"alice@example.com"}, huge); got.code != 552 || got.ecode != "5.3.4" {
		t.Fatalf("a 70,000-byte line: %v, want 552 5.3.4", got)
	}
	// An unknown recipient: refused at RCPT, with a decision line.
	if got := send(t, a.Addr("smtp"), tc, "news@example.net", []string{"nobody@example.com"}, msg); got.code != 550 {
		t.Fatalf("unknown recipient: %v, want 550", got)
	}
	out := logs.String()
	for _, want := range []string{
		`msg=message`,
		`action=reject reply=552`,
		`from=news@example.net rcpt=nobody@example.com reply=550 reason="no such user"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestSymbolsLogLine: at debug level each decision is followed by a
// "message symbols" line that names the queue id of the 250 reply and
// every symbol with its score and its filter's reason (docs/
// operations.md), so that an operator can see why a message scored what
// it did.
func TestSymbolsLogLine(t *testing.T) {
	a, logs := startLogged(t, testConfig(t.TempDir(), ""), slog.LevelDebug)
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	msg := message("deals@example.net", "alice@example.com", "WIN A FREE CRUISE TODAY",
		"To be taken off our list, reply with REMOVE in the subject line.")
	got := send(t, a.Addr("smtp"), tc, "deals@example.net", []string{"alice@example.com"}, msg)
	if got.code != 250 {
		t.Fatalf("send: %v", got)
	}
	f := strings.Fields(got.text)
	queue := f[len(f)-1]
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="message symbols"`) && strings.Contains(l, "queue="+queue) {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no symbols line for queue %s in:\n%s", queue, logs.String())
	}
	for _, want := range []string{"SUBJ_ALL_CAPS(1.6): subject in capitals", "BODY_OPTOUT_BY_REPLY(2): opt-out by reply: reply with REMOVE in the subject"} {
		if !strings.Contains(line, want) {
			t.Errorf("symbols line lacks %q:\n%s", want, line)
		}
	}
}
