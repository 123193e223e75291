package imapd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/moatmail/moat/delivery/mailstore"
)

const (
	alicePass = "alice-secret"
	bobPass   = "bob-secret"
)

// env is a store with two users and a server listening on loopback, plain
// (STARTTLS) and IMAPS.
type env struct {
	store      *mailstore.Store
	srv        *Server
	addr       string
	tlsAddr    string
	clientTLS  *tls.Config
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

// storeInlineMax is the store's inline_max for this run of the tests:
// TestMain runs them with messages inline in the index, then in files.
var storeInlineMax int

func TestMain(m *testing.M) {
	if code := m.Run(); code != 0 {
		os.Exit(code)
	}
	storeInlineMax = -1
	os.Exit(m.Run())
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	return newEnvWith(t, cfg, nil)
}

// newEnvWith is newEnv with a setup step that runs before the server
// starts serving (more users, a Reviewer).
func newEnvWith(t testing.TB, cfg Config, setup func(*env)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := mailstore.Open(mailstore.Config{Dir: t.TempDir(), InlineMax: storeInlineMax})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{store: st, observed: &recorder{}}
	if e.alice, err = st.AddUser(ctx, "alice@example.com", alicePass, mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	if e.bob, err = st.AddUser(ctx, "bob@example.com", bobPass, mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	serverTLS, clientTLS := testCertificates(t)
	e.clientTLS = clientTLS
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.srv = New(cfg, st, serverTLS, nil, log)
	e.srv.Observer = e.observed
	if setup != nil {
		setup(e)
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
		if err := e.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for i := 0; i < 2; i++ {
			if err := <-errs; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	})
	return e
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// testCertificates makes a self-signed certificate for 127.0.0.1.
func testCertificates(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "moat test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
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
	return server, client
}

func (e *env) options(h *imapclient.UnilateralDataHandler) *imapclient.Options {
	return &imapclient.Options{TLSConfig: e.clientTLS, UnilateralDataHandler: h}
}

// dial connects with STARTTLS and logs in.
func (e *env) dial(t testing.TB, user, pass string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialStartTLS(e.addr, e.options(h))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func (e *env) dialAlice(t testing.TB) *imapclient.Client {
	return e.dial(t, "alice@example.com", alicePass, nil)
}

// deliver stores raw in one of a user's mailboxes and returns its UID.
func (e *env) deliver(t testing.TB, u mailstore.User, mailbox, raw string, flags ...string) uint32 {
	t.Helper()
	placed, err := e.store.Deliver(context.Background(), &mailstore.Delivery{
		Body:    []byte(raw),
		Targets: []mailstore.Target{{UserID: u.ID, Mailbox: mailbox}},
		Flags:   flags,
	})
	if err != nil {
		t.Fatal(err)
	}
	return placed[0].UID
}

// imapCode returns the response code of an IMAP error, or "".
func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func imapType(err error) imap.StatusResponseType {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Type
	}
	return ""
}

// message builds a small RFC 5322 message.
func message(from, to, subject, date, body string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nDate: " + date +
		"\r\nMessage-ID: <" + subject + "@example.com>\r\n\r\n" + body
}

func uidList(uids []imap.UID) []uint32 {
	out := make([]uint32, len(uids))
	for i, u := range uids {
		out[i] = uint32(u)
	}
	return out
}

func equalUIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// events records unilateral data in order.
type events struct {
	mu  sync.Mutex
	log []string
	ch  chan string
}

func newEvents() *events { return &events{ch: make(chan string, 100)} }

func (ev *events) add(s string) {
	ev.mu.Lock()
	ev.log = append(ev.log, s)
	ev.mu.Unlock()
	select {
	case ev.ch <- s:
	default:
	}
}

func (ev *events) take() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	out := ev.log
	ev.log = nil
	return out
}

func (ev *events) handler() *imapclient.UnilateralDataHandler {
	return &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { ev.add("EXPUNGE " + itoa(seq)) },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				ev.add("EXISTS " + itoa(*d.NumMessages))
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err != nil {
				ev.add("FETCH error")
				return
			}
			s := "FETCH " + itoa(buf.SeqNum)
			for _, f := range buf.Flags {
				s += " " + string(f)
			}
			ev.add(s)
		},
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
