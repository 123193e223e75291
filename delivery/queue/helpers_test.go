package queue

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// received is one message a sink took.
type received struct {
	from  string
	rcpts []string
	data  []byte
	tls   bool
	user  string
}

// sink is a real SMTP (or LMTP) server on loopback (go-smtp's), recording
// what it receives; rcptReply, when set, answers RCPT.
type sink struct {
	addr string
	srv  *smtp.Server
	ln   net.Listener

	mu        sync.Mutex
	msgs      []received
	rcptReply func(rcpt string) error
	dataReply func() error
	password  string // AUTH PLAIN password; "" offers no AUTH
	sessions  int
}

type sinkOptions struct {
	tls      *tls.Config
	lmtp     bool
	addr     string // "" : a random loopback port
	password string
}

func startSink(t testing.TB, o sinkOptions) *sink {
	t.Helper()
	s := &sink{password: o.password}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		return &sinkSession{s: s, c: c}, nil
	}))
	s.srv.Domain = "sink.test"
	s.srv.TLSConfig = o.tls
	s.srv.LMTP = o.lmtp
	s.srv.AllowInsecureAuth = false
	s.srv.ErrorLog = log0{}
	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.addr = ln, ln.Addr().String()
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

type log0 struct{}

func (log0) Printf(string, ...any) {}
func (log0) Println(...any)        {}

func (s *sink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

type sinkSession struct {
	s     *sink
	c     *smtp.Conn
	from  string
	rcpts []string
	user  string
}

func (ss *sinkSession) Reset()        { ss.from, ss.rcpts = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	f := ss.s.rcptReply
	ss.s.mu.Unlock()
	if f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.dataReply != nil {
		if err := ss.s.dataReply(); err != nil {
			return err
		}
	}
	_, isTLS := ss.c.TLSConnectionState()
	ss.s.msgs = append(ss.s.msgs, received{from: ss.from, rcpts: append([]string(nil), ss.rcpts...), data: b, tls: isTLS, user: ss.user})
	return nil
}

func (ss *sinkSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	if err := ss.Data(r); err != nil {
		return err
	}
	for _, rc := range ss.rcpts {
		status.SetStatus(rc, nil)
	}
	return nil
}

func (ss *sinkSession) AuthMechanisms() []string {
	if ss.s.password == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if pass != ss.s.password {
			return errors.New("bad password")
		}
		ss.user = user
		return nil
	}), nil
}

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "moat test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pemBlock("CERTIFICATE", der)}
}

// issue returns a server certificate for names, signed by the CA.
func (ca *testCA) issue(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// testQueue opens a queue in a temporary folder with short timings.
func testQueue(t testing.TB, dir string, change func(*Config, *Options)) *Queue {
	t.Helper()
	cfg := DefaultConfig()
	cfg.MinBackoff = 50 * time.Millisecond
	cfg.MaxBackoff = 200 * time.Millisecond
	cfg.ConnectTimeout = 5 * time.Second
	cfg.CommandTimeout = 10 * time.Second
	cfg.MTASTS = false
	opts := Options{Dir: dir, Hostname: "moat.test", Log: testLogger(t)}
	if change != nil {
		change(&cfg, &opts)
	}
	q, err := Open(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	return q
}

// testLogger logs to the test when -v, and keeps quiet otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// relayRoutes returns routes sending domains to host over SMTP.
func relayRoutes(t testing.TB, host string, change func(*RouteConfig), domains ...string) *Routes {
	t.Helper()
	rc := RouteConfig{Domains: domains, Type: RouteRelay, Hosts: []string{host}, TLS: TLSNone}
	if change != nil {
		change(&rc)
	}
	if err := ValidateRoutes([]RouteConfig{rc}); err != nil {
		t.Fatal(err)
	}
	rs, err := NewRoutes([]RouteConfig{rc})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// waitFor polls cond until it holds or 90 s pass (a loaded machine is
// slow; the limit only bounds a failing test).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// needTool returns the path of an external program, or skips the test
// (fails it under CI=true, where every tool must be installed).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; CI must install it (.ci/run)", name)
		}
		t.Skipf("%s is not installed: skipping (apt-get install %s)", name, name)
	}
	return p
}

func testMessage(subject string) []byte {
	return []byte("From: a@origin.test\r\nTo: user@relay.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@origin.test>\r\n\r\nHello.\r\n")
}

// freeAddr returns a loopback address nobody listens on (a port just
// freed).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
