package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/queue"
)

// downstream is a go-smtp server on loopback standing for a relay
// route's server; it counts the messages it takes.
type downstream struct {
	mu   sync.Mutex
	msgs []string
}

func (d *downstream) NewSession(*smtp.Conn) (smtp.Session, error) { return &downSession{d: d}, nil }

type downSession struct{ d *downstream }

func (*downSession) Reset()                               {}
func (*downSession) Logout() error                        { return nil }
func (*downSession) Mail(string, *smtp.MailOptions) error { return nil }
func (*downSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *downSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.d.mu.Lock()
	s.d.msgs = append(s.d.msgs, string(b))
	s.d.mu.Unlock()
	return err
}

func (d *downstream) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.msgs)
}

// TestQueueServeAndCLI runs the outbound queue inside moat serve: a
// message for a relay route whose server is down waits in the queue,
// `moat queue list` shows it, the server comes up, `moat queue retry`
// (through the running moat) sends it, and the metrics count it.
func TestQueueServeAndCLI(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	text := testConfig(filepath.Join(dir, "data"), fmt.Sprintf(`
[queue]
min_backoff = "1h"
max_backoff = "2h"
[[route]]
domains = ["example.net"]
hosts = [%q]
tls = "none"
`, down))
	cfgPath := filepath.Join(dir, "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startConfig(t, text, startOptions{})
	defer a.Close(context.Background())
	var enq queue.Enqueuer = a.queue
	id, err := enq.Enqueue(context.Background(), &queue.Message{From: "someone@example.com", Rcpts: []string{"user@example.net"},
		Body: []byte("Subject: onward\r\n\r\nHello.\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a first attempt", func() bool {
		code, out, _ := cli(t, "", "queue", "list", "-config", cfgPath)
		return code == 0 && strings.Contains(out, id) && strings.Contains(out, "pending") && strings.Contains(out, "4.4.1")
	})
	if code, out, errOut := cli(t, "", "queue", "show", "-config", cfgPath, id); code != 0 || !strings.Contains(out, "Subject: onward") ||
		!strings.Contains(out, "attempts=1") {
		t.Errorf("queue show: %d\n%s%s", code, out, errOut)
	}

	d := &downstream{}
	srv := smtp.NewServer(d)
	srv.Domain = "down.test"
	l, err := net.Listen("tcp", down)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	if code, out, errOut := cli(t, "", "queue", "retry", "-config", cfgPath, id); code != 0 {
		t.Fatalf("queue retry: %d %s%s", code, out, errOut)
	}
	waitUntil(t, "the delivery", func() bool { return d.count() == 1 })
	waitUntil(t, "the queue to empty", func() bool {
		_, out, _ := cli(t, "", "queue", "list", "-config", cfgPath)
		return strings.Contains(out, "0 message(s)")
	})
	if v := metricValue(t, a, `moat_queue_deliveries_total{class="relay",result="sent"}`); v != "1" {
		t.Errorf("sent deliveries metric %q, want 1", v)
	}
	if v := metricValue(t, a, `moat_queue_deliveries_total{class="relay",result="deferred"}`); v != "1" {
		t.Errorf("deferred deliveries metric %q, want 1", v)
	}
	if v := metricValue(t, a, "moat_queue_messages"); v != "0" {
		t.Errorf("queue size metric %q, want 0", v)
	}
	if code, _, errOut := cli(t, "", "queue", "delete", "-config", cfgPath, "nonsense"); code == 0 || !strings.Contains(errOut, "not a queue id") {
		t.Errorf("queue delete nonsense: %d %s", code, errOut)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRelayDomainServe drives a relay domain through moat serve: the
// route's recipient list answers at RCPT (unknown → 550, no backscatter),
// accepted mail goes through the outbound queue to the downstream, and
// suspect mail is held in the quarantine of smtp.quarantine_owner until
// `moat quarantine release` (a separate process) sends it on through the
// running moat's queue.
func TestRelayDomainServe(t *testing.T) {
	d := &downstream{}
	srv := smtp.NewServer(d)
	srv.Domain = "down.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	text := testConfig(data, fmt.Sprintf(`
[filters.gtube]
score = 15.0
[[route]]
domains = ["corp.example"]
type = "relay"
hosts = [%q]
tls = "none"
verify = "list"
verify_list = ["known@corp.example"]
`, l.Addr().String()))
	// testConfig has its own [smtp] table: the relay keys go into it.
	text = strings.Replace(text, "[smtp]\n", "[smtp]\nrelay_domains = [\"corp.example\"]\nquarantine_owner = \"postmaster@example.com\"\n", 1)
	cfgPath := filepath.Join(dir, "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, "pw-admin\npw-admin\n", "user", "add", "-admin", "-config", cfgPath, "postmaster@example.com"); code != 0 {
		t.Fatalf("user add: %d %s%s", code, out, errOut)
	}
	a := startConfig(t, text, startOptions{})
	defer a.Close(context.Background())
	tc := clientTLS(t, data)
	addr := a.Addr("smtp")

	if r := send(t, addr, tc, "sender@example.net", []string{"nobody@corp.example"}, message("sender@example.net", "nobody@corp.example", "x", "x")); r.code != 550 || r.ecode != "5.1.1" {
		t.Errorf("unknown relay recipient: %s, want 550 5.1.1 at RCPT", r)
	}
	if r := send(t, addr, tc, "sender@example.net", []string{"known@corp.example"}, message("sender@example.net", "known@corp.example", "Quarterly figures", "Hello, here they are.")); r.code != 250 {
		t.Fatalf("relay recipient: %s", r)
	}
	waitUntil(t, "the relayed message", func() bool { return d.count() == 1 })
	d.mu.Lock()
	got := d.msgs[0]
	d.mu.Unlock()
	if !strings.Contains(got, "Subject: Quarterly figures") || !strings.Contains(got, "by mx.example.com") {
		t.Errorf("relayed message lacks its subject or moat's Received field:\n%s", got)
	}

	gtube := message("sender@example.net", "known@corp.example", "held", "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X")
	if r := send(t, addr, tc, "sender@example.net", []string{"known@corp.example"}, gtube); r.code != 250 {
		t.Fatalf("suspect relay message: %s", r)
	}
	entries, err := a.quar.List(context.Background(), "")
	if err != nil || len(entries) != 1 {
		t.Fatalf("quarantine: %d entries, %v; want the held message", len(entries), err)
	}
	if d.count() != 1 {
		t.Errorf("the held message went on before its release")
	}
	id := fmt.Sprint(entries[0].ID)
	if code, out, errOut := cli(t, "", "quarantine", "release", "-config", cfgPath, id); code != 0 {
		t.Fatalf("quarantine release: %d %s%s", code, out, errOut)
	}
	waitUntil(t, "the released message downstream", func() bool { return d.count() == 2 })
	d.mu.Lock()
	got = d.msgs[1]
	d.mu.Unlock()
	if !strings.Contains(got, "Subject: held") {
		t.Errorf("released message:\n%s", got)
	}
	if v := metricValue(t, a, `moat_queue_deliveries_total{class="relay",result="sent"}`); v != "2" {
		t.Errorf("sent deliveries metric %q, want 2", v)
	}
}
