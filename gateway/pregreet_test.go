package gateway

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/filters/earlytalker"
)

// TestPregreet: with greet_pause, the greeting has a first line, a pause
// and a last line; a client that waits for the last line (go-smtp's
// client) is served, one that speaks before it is refused at MAIL by the
// earlytalker filter, and what it said still reaches the SMTP server.
func TestPregreet(t *testing.T) {
	et, err := earlytalker.New(earlytalker.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := startGateway(t, Config{GreetPause: 150 * time.Millisecond, Hostname: "mx.example.com"}, et)

	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("bob@example.net", nil); err != nil {
		t.Errorf("a client that waited: MAIL: %v", err)
	}

	// A robot that speaks at once.
	out := dialogue(t, addr, "EHLO bot.example\r\nMAIL FROM:<a@example.net>\r\n")
	lines := strings.Split(strings.TrimSpace(out), "\r\n")
	if len(lines) < 3 || lines[0] != "220-mx.example.com ESMTP" || !strings.HasPrefix(lines[1], "220 mx.example.com") {
		t.Fatalf("greeting: %q", out)
	}
	if !strings.Contains(out, "250-") || !strings.Contains(out, "550 5.7.1") {
		t.Errorf("a client that spoke first: EHLO answered and MAIL refused 550 5.7.1, got:\n%s", out)
	}

	// Without a pause there is one greeting line, as before.
	plain, _ := startGateway(t, Config{Hostname: "mx.example.com"}, et)
	conn, err := net.Dial("tcp", plain)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 256)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "220 mx.example.com") {
		t.Errorf("greeting without a pause: %q", buf[:n])
	}
}
