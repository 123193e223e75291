package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
)

const (
	aliceAddr = "alice@example.com"
	alicePass = "alice secret" // a space: PASS takes the rest of the line
	bobAddr   = "bob@example.com"
	bobPass   = "bob-secret"
)

// storeInlineMax is the store's inline_max for this run of the tests:
// TestMain runs them with messages inline in the index, then in files.
var storeInlineMax int

func TestMain(m *testing.M) {
	if code := m.Run(); code != 0 {
		os.Exit(code)
	}
	// The second pass, with messages in files, is skipped in -short
	// runs, while fuzzing and while benchmarking (BenchmarkRetr1000 runs
	// both storages itself).
	if testing.Short() || flag.Lookup("test.fuzz").Value.String() != "" ||
		flag.Lookup("test.bench").Value.String() != "" {
		os.Exit(0)
	}
	storeInlineMax = -1
	os.Exit(m.Run())
}

// env is a store with two users and a server listening on loopback, plain
// (with STLS) and POP3S.
type env struct {
	store      *mailstore.Store
	srv        *Server
	addr       string
	tlsAddr    string
	serverTLS  *tls.Config
	clientTLS  *tls.Config
	certFile   string // PEM of the server certificate, for external clients
	alice, bob mailstore.User
	observed   *recorder
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu      sync.Mutex
	reasons []string
}

func (r *recorder) LoginFailed(reason string) {
	r.mu.Lock()
	r.reasons = append(r.reasons, reason)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reasons...)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newStore opens a store with alice and bob.
func newStore(t testing.TB) (st *mailstore.Store, alice, bob mailstore.User) {
	t.Helper()
	ctx := context.Background()
	st, err := mailstore.Open(mailstore.Config{Dir: t.TempDir(), InlineMax: storeInlineMax})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if alice, err = st.AddUser(ctx, aliceAddr, alicePass, mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	if bob, err = st.AddUser(ctx, bobAddr, bobPass, mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	return st, alice, bob
}

// newEnv starts a server; adjust, when given, changes it before it serves
// (tests shorten the idle timeout below what Validate allows).
func newEnv(t testing.TB, cfg Config, adjust ...func(*Server)) *env {
	t.Helper()
	e := &env{observed: &recorder{}}
	e.store, e.alice, e.bob = newStore(t)
	e.serverTLS, e.clientTLS, e.certFile = testCertificates(t)
	serverTLS := e.serverTLS
	e.srv = New(cfg, e.store, serverTLS, nil, testLogger(t))
	e.srv.Observer = e.observed
	for _, f := range adjust {
		f(e.srv)
	}

	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr, e.tlsAddr = plain.Addr().String(), tlsL.Addr().String()
	errs := make(chan error, 2)
	go func() { errs <- e.srv.Serve(plain) }()
	go func() { errs <- e.srv.Serve(tls.NewListener(tlsL, serverTLS)) }()
	t.Cleanup(func() {
		if err := e.srv.Close(); err != nil && err != ErrServerClosed {
			t.Errorf("Close: %v", err)
		}
		for i := 0; i < 2; i++ {
			if err := <-errs; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
		if n := e.srv.panics.Load(); n != 0 {
			t.Errorf("%d sessions panicked", n)
		}
	})
	return e
}

// testCertificates makes a self-signed certificate for 127.0.0.1 and
// localhost, and writes it as PEM for external clients.
func testCertificates(t testing.TB) (server, client *tls.Config, certFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	certFile = filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return server, client, certFile
}

// deliver stores raw in a user's INBOX and returns its UID.
func (e *env) deliver(t testing.TB, u mailstore.User, raw string) uint32 {
	t.Helper()
	placed, err := e.store.Deliver(context.Background(), &mailstore.Delivery{
		Body:    []byte(raw),
		Targets: []mailstore.Target{{UserID: u.ID, Mailbox: "INBOX"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return placed[0].UID
}

// inbox returns the UIDs in a user's INBOX and the mailbox.
func (e *env) inbox(t testing.TB, u mailstore.User) ([]uint32, mailstore.Mailbox) {
	t.Helper()
	ctx := context.Background()
	mb, err := e.store.Mailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := e.store.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	uids := []uint32{}
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	return uids, mb
}

// message builds a small RFC 5322 message.
func message(subject, body string) string {
	return "From: carol@example.net\r\nTo: alice@example.com\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.net>\r\n\r\n" + body
}

// client is a hand-driven POP3 connection, for asserting exact responses.
type client struct {
	t        testing.TB
	c        net.Conn
	r        *bufio.Reader
	greeting string
}

func newClient(t testing.TB, c net.Conn) *client {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	cl.greeting = cl.line()
	return cl
}

// dial connects in plaintext.
func (e *env) dial(t testing.TB) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, c)
}

// dialTLS connects to the POP3S listener.
func (e *env) dialTLS(t testing.TB) *client {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.tlsAddr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, c)
}

// dialSTLS connects in plaintext and upgrades with STLS.
func (e *env) dialSTLS(t testing.TB) *client {
	t.Helper()
	cl := e.dial(t)
	cl.stls(e.clientTLS)
	return cl
}

// login logs in with USER/PASS on a new STLS connection.
func (e *env) login(t testing.TB, user, pass string) *client {
	t.Helper()
	cl := e.dialSTLS(t)
	cl.mustLogin(user, pass)
	return cl
}

func (cl *client) stls(cfg *tls.Config) {
	cl.t.Helper()
	if got := cl.cmd("STLS"); !strings.HasPrefix(got, "+OK") {
		cl.t.Fatalf("STLS: %q", got)
	}
	cl.stlsHandshake(cfg)
}

// stlsHandshake runs the client side of the TLS handshake after STLS.
func (cl *client) stlsHandshake(cfg *tls.Config) {
	cl.t.Helper()
	tc := tls.Client(cl.c, cfg)
	if err := tc.Handshake(); err != nil {
		cl.t.Fatalf("STLS handshake: %v", err)
	}
	cl.c, cl.r = tc, bufio.NewReader(tc)
}

func (cl *client) mustLogin(user, pass string) {
	cl.t.Helper()
	if got := cl.cmd("USER " + user); !strings.HasPrefix(got, "+OK") {
		cl.t.Fatalf("USER %s: %q", user, got)
	}
	if got := cl.cmd("PASS " + pass); !strings.HasPrefix(got, "+OK") {
		cl.t.Fatalf("PASS for %s: %q", user, got)
	}
}

func (cl *client) send(s string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, s); err != nil {
		cl.t.Fatal(err)
	}
}

// line reads one response line without its CRLF.
func (cl *client) line() string {
	cl.t.Helper()
	l, err := cl.r.ReadString('\n')
	if err != nil {
		cl.t.Fatalf("read: %v (after %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		cl.t.Fatalf("response line %q does not end in CRLF", l)
	}
	return l[:len(l)-2]
}

// cmd sends a command and returns its one-line response.
func (cl *client) cmd(line string) string {
	cl.t.Helper()
	cl.send(line + "\r\n")
	return cl.line()
}

// body reads a multi-line body up to its terminator, undoing the
// dot-stuffing; lines keep their CRLF.
func (cl *client) body() string {
	cl.t.Helper()
	var b strings.Builder
	for {
		l, err := cl.r.ReadString('\n')
		if err != nil {
			cl.t.Fatalf("read body: %v (after %q)", err, b.String())
		}
		if !strings.HasSuffix(l, "\r\n") {
			cl.t.Fatalf("body line %q does not end in CRLF", l)
		}
		if l == ".\r\n" {
			return b.String()
		}
		if strings.HasPrefix(l, ".") {
			l = l[1:]
		}
		b.WriteString(l)
	}
}

// multi sends a command with a multi-line answer and returns its status
// line and, when that is +OK, its body lines.
func (cl *client) multi(line string) (status string, lines []string) {
	cl.t.Helper()
	status = cl.cmd(line)
	if !strings.HasPrefix(status, "+OK") {
		return status, nil
	}
	b := cl.body()
	if b == "" {
		return status, nil
	}
	return status, strings.Split(strings.TrimSuffix(b, "\r\n"), "\r\n")
}

// closed reports whether the server has closed the connection (after
// reading whatever it still sent).
func (cl *client) closed() bool {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, cl.r)
	return err == nil
}

// plain encodes a SASL PLAIN response.
func plain(authz, authc, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + pass))
}

// crlf converts bare LFs to CRLF, as the server sends a message, and ends
// the text with CRLF when it does not already.
func crlf(s string) string {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(s[i])
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		if bytes.HasSuffix(b.Bytes(), []byte("\r")) {
			b.WriteByte('\n')
		} else {
			b.WriteString("\r\n")
		}
	}
	return b.String()
}

func uidString(validity, uid uint32) string { return fmt.Sprintf("%d.%d", validity, uid) }

func hasLine(lines []string, want string) bool { return slices.Contains(lines, want) }

// closedAfter sends line and reports whether the server had closed the
// connection (no answer comes, the read ends in EOF or a reset).
func (cl *client) closedAfter(line string) bool {
	cl.t.Helper()
	io.WriteString(cl.c, line+"\r\n")
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := cl.r.ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		cl.t.Fatal("no answer and no close within 10s")
	}
	return err != nil
}

// listenLoopback opens a loopback listener.
func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
