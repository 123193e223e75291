package pop3d

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/gateway/throttle"
)

// fakeConn is a connection from loopback whose client sends input and then
// closes its side; what the server writes is kept.
type fakeConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *fakeConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *fakeConn) Close() error                { return nil }
func (c *fakeConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 110} }
func (c *fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *fakeConn) SetDeadline(t time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzCommand throws arbitrary client input at a whole session (parser,
// both states, AUTH, STLS, RETR of real stored messages) with plaintext
// login allowed, so that logged-in commands are reached. The server must
// never panic, must answer in CRLF lines, and must release the maildrop
// at the end.
func FuzzCommand(f *testing.F) {
	login := "USER " + aliceAddr + "\r\nPASS " + alicePass + "\r\n"
	for _, seed := range []string{
		"CAPA\r\nQUIT\r\n",
		login + "STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 0\r\nDELE 1\r\nRSET\r\nNOOP\r\nQUIT\r\n",
		login + "LIST 2\r\nUIDL 3\r\nTOP 3 1\r\nRETR 9\r\nDELE 3\r\nDELE 3\r\nRETR 3\r\n",
		"AUTH PLAIN " + plain("", aliceAddr, alicePass) + "\r\nRETR 2\r\nTOP 1 99999999999\r\n",
		"AUTH PLAIN\r\n" + plain(aliceAddr, aliceAddr, alicePass) + "\r\nLIST\r\n",
		"AUTH PLAIN\r\n*\r\nAUTH\r\nAUTH X\r\nAUTH PLAIN =\r\n",
		"STLS\r\n\x16\x03\x01\x00\x05hello",
		"USER a\nPASS b\nstat\nlist -1\n",
		"APOP x y\r\nXYZZY\r\n\r\n\x00\r\n" + strings.Repeat("x", 1100) + "\r\n",
	} {
		f.Add(seed)
	}
	store, alice, _ := newStore(f)
	serverTLS, _, _ := testCertificates(f)
	// A discarding logger: f.Log may not be called from the fuzz target.
	srv := New(Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true}}, store, serverTLS, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv.gate.SetSleep(func(time.Duration) bool { return true })
	// argon2id under the fuzzer's instrumentation takes most of a second
	// per check; a plain comparison keeps the fuzzer exploring commands.
	srv.authenticate = func(ctx context.Context, address, password string) (mailstore.User, error) {
		u, err := store.LookupUser(ctx, address)
		if err != nil || password != alicePass {
			return mailstore.User{}, mailstore.ErrAuthFailed
		}
		return u, nil
	}
	ctx := context.Background()
	bodies := []string{"Subject: a\r\n\r\nbody\r\n.dot\r\n", "Subject: b\n\nbare\nlf", ".\r\n"}
	f.Fuzz(func(t *testing.T, input string) {
		// Keep a few messages there for DELE and QUIT to remove.
		status, err := store.Status(ctx, alice.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		for i := int(status.Messages); i < len(bodies); i++ {
			deliverRaw(t, store, alice, bodies[i]+strconv.Itoa(i))
		}
		c := &fakeConn{in: bytes.NewReader([]byte(input))}
		if !srv.track(c) {
			t.Fatal("server closed")
		}
		srv.handle(c)
		if n := srv.panics.Load(); n != 0 {
			t.Fatalf("session panicked on %q", input)
		}
		out := c.out.String()
		if !strings.HasPrefix(out, "+OK moat POP3 server ready\r\n") {
			t.Fatalf("output does not start with the greeting: %q", out)
		}
		// A TLS handshake started by STLS writes binary records; up to
		// there, the server writes whole CRLF lines.
		if i := strings.Index(out, "+OK Begin TLS negotiation\r\n"); i >= 0 {
			out = out[:i]
		}
		if !strings.HasSuffix(out, "\r\n") {
			t.Fatalf("output ends in a partial line: %q", out)
		}
		if strings.Contains(strings.ReplaceAll(out, "\r\n", ""), "\n") {
			t.Fatalf("bare LF in output: %q", out)
		}
		if !srv.lockMaildrop(alice.ID) {
			t.Fatalf("maildrop still locked after the session of %q", input)
		}
		srv.unlockMaildrop(alice.ID)
		// The parser alone: no panic, and a parsed argument is a suffix
		// of its line.
		for _, line := range strings.Split(input, "\n") {
			line = strings.TrimSuffix(line, "\r")
			if cmd, err := parseCommand([]byte(line)); err == nil && !strings.HasSuffix(line, cmd.arg) {
				t.Fatalf("parseCommand(%q) = %+v", line, cmd)
			}
		}
	})
}

func deliverRaw(t *testing.T, st *mailstore.Store, u mailstore.User, raw string) {
	t.Helper()
	if _, err := st.Deliver(context.Background(), &mailstore.Delivery{
		Body:    []byte(raw),
		Targets: []mailstore.Target{{UserID: u.ID, Mailbox: "INBOX"}},
	}); err != nil {
		t.Fatal(err)
	}
}
