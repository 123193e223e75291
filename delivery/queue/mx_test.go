package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// mxZones are the Internet of the MX tests: every host on loopback, the
// MX port overridden to the sinks' port.
var mxZones = map[string]string{
	"mx.test.":   "@ MX 10 primary\n@ MX 20 backup\nprimary A 127.0.0.2\nbackup A 127.0.0.1\n",
	"amx.test.":  "@ A 127.0.0.1\n",
	"null.test.": "@ MX 0 .\n",
	"sts.test.": "@ MX 10 mx\nmx A 127.0.0.1\n_mta-sts TXT \"v=STSv1; id=20261205\"\nmta-sts A 127.0.0.1\n" +
		"other MX 10 mx\nother A 127.0.0.1\n",
}

func newResolver(t testing.TB, zones map[string]string) *resolver.DNS {
	t.Helper()
	srv := dnstest.Start(t, zones)
	cfg := resolver.DefaultConfig()
	cfg.Upstream = srv.Addr()
	d, err := resolver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func portOf(t testing.TB, addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMXPreferenceAndFallback(t *testing.T) {
	backup := startSink(t, sinkOptions{})
	port := portOf(t, backup.addr)
	primary := startSink(t, sinkOptions{addr: "127.0.0.2:" + strconv.Itoa(port)})
	senders := startSink(t, sinkOptions{})
	rs, err := NewRoutes(mustRoutes(t, RouteConfig{Domains: []string{"origin.test"}, Hosts: []string{senders.addr}, TLS: TLSNone}))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	q := testQueue(t, dir, func(c *Config, o *Options) {
		c.MXPort = port
		o.Routes, o.Resolver = rs, newResolver(t, mxZones)
	})
	q.Start()
	send := func(to string) string {
		t.Helper()
		id, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{to}, Body: testMessage("mx")})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	send("u@mx.test")
	waitFor(t, "delivery to the preferred MX", func() bool { return len(primary.received()) == 1 })
	if n := len(backup.received()); n != 0 {
		t.Errorf("the backup MX got %d messages", n)
	}
	// The preferred MX goes away: the backup takes the mail.
	primary.srv.Close()
	send("u@mx.test")
	waitFor(t, "delivery to the backup MX", func() bool { return len(backup.received()) == 1 })
	// No MX: the domain's address (RFC 5321 §5.1).
	send("u@amx.test")
	waitFor(t, "delivery to the implicit MX", func() bool { return len(backup.received()) == 2 })
	// A null MX bounces at the first attempt, without a connection.
	id := send("u@null.test")
	waitFor(t, "the null MX bounce", func() bool { return len(senders.received()) == 1 })
	_, perRcpt, _ := parseDSN(t, senders.received()[0].data)
	if len(perRcpt) != 1 || perRcpt[0].Get("Status") != "5.1.10" || perRcpt[0].Get("Final-Recipient") != "rfc822; u@null.test" {
		t.Errorf("null MX DSN %v", perRcpt)
	}
	if _, _, err := Show(dir, id); err == nil {
		t.Error("the null MX message is still queued")
	}
	if n := len(backup.received()) + len(primary.received()); n != 3 {
		t.Errorf("%d deliveries, want 3 (none to the null MX)", n)
	}
}

// stsSetup serves sts.test's MTA-STS policy over HTTPS on loopback, with
// a certificate for mta-sts.sts.test from ca, and returns the HTTP client
// that reaches it.
func stsSetup(t *testing.T, ca *testCA, policy string) *http.Client {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "mta-sts.sts.test" || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(policy))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "mta-sts.sts.test")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

func TestMTASTS(t *testing.T) {
	ca := newCA(t)
	const enforce = "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n"
	tests := []struct {
		name     string
		policy   string
		certName string // of the MX's certificate
		to       string
		wantSent bool
		wantLast string
	}{
		{"enforce, certificate matches", enforce, "mx.sts.test", "u@sts.test", true, ""},
		{"enforce, certificate for another name", enforce, "wrong.test", "u@sts.test", false, "certificate is valid for wrong.test"},
		{"enforce, MX not in the policy", "version: STSv1\nmode: enforce\nmx: mail.sts.test\nmax_age: 86400\n", "mx.sts.test", "u@sts.test", false, "matches its MTA-STS policy"},
		{"testing mode delivers anyway", "version: STSv1\nmode: testing\nmx: mx.sts.test\nmax_age: 86400\n", "wrong.test", "u@sts.test", true, ""},
		{"no policy record: opportunistic", enforce, "wrong.test", "u@other.sts.test", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mx := startSink(t, sinkOptions{tls: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, tt.certName)}}})
			client := stsSetup(t, ca, tt.policy)
			dir := t.TempDir()
			q := testQueue(t, dir, func(c *Config, o *Options) {
				c.MXPort, c.MTASTS = portOf(t, mx.addr), true
				o.Resolver, o.HTTPClient, o.RootCAs = newResolver(t, mxZones), client, ca.pool
			})
			q.Start()
			id, err := q.Enqueue(context.Background(), &Message{From: "", Rcpts: []string{tt.to}, Body: testMessage("sts")})
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantSent {
				waitFor(t, "delivery", func() bool { return len(mx.received()) == 1 })
				if !mx.received()[0].tls {
					t.Error("delivered without TLS")
				}
				return
			}
			waitFor(t, "a first attempt", func() bool {
				info, _, _ := Show(dir, id)
				return len(info.Rcpts) == 1 && info.Rcpts[0].Attempts >= 1
			})
			info, _, _ := Show(dir, id)
			if !strings.Contains(info.Rcpts[0].Last, tt.wantLast) || !strings.HasPrefix(info.Rcpts[0].Last, "451 4.") {
				t.Errorf("last reply %q, want a 4xx with %q", info.Rcpts[0].Last, tt.wantLast)
			}
			if n := len(mx.received()); n != 0 {
				t.Errorf("%d messages delivered despite the policy", n)
			}
		})
	}
}

// TestMTASTSPolicySurvivesRestart: a policy learned before a restart
// still holds after it when the attacker blocks its discovery (the TXT
// record gone, the HTTPS server unreachable): the MX whose certificate
// does not match is refused, not used in the clear or unverified.
func TestMTASTSPolicySurvivesRestart(t *testing.T) {
	ca := newCA(t)
	mx := startSink(t, sinkOptions{tls: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "mx.sts.test")}}})
	client := stsSetup(t, ca, "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n")
	dir := t.TempDir()
	q := testQueue(t, dir, func(c *Config, o *Options) {
		c.MXPort, c.MTASTS = portOf(t, mx.addr), true
		o.Resolver, o.HTTPClient, o.RootCAs = newResolver(t, mxZones), client, ca.pool
	})
	q.Start()
	if _, err := q.Enqueue(context.Background(), &Message{Rcpts: []string{"u@sts.test"}, Body: testMessage("first")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery under the policy", func() bool { return len(mx.received()) == 1 })
	q.Close(context.Background())
	if b, err := os.ReadFile(filepath.Join(dir, "mta-sts.json")); err != nil || !strings.Contains(string(b), "mx.sts.test") {
		t.Fatalf("the policy was not kept on disk: %v\n%s", err, b)
	}

	// After the restart: no TXT record, no policy server, and an MX that
	// shows a certificate for another name.
	blocked := map[string]string{}
	for k, v := range mxZones {
		blocked[k] = v
	}
	blocked["sts.test."] = "@ MX 10 mx\nmx A 127.0.0.1\n"
	wrong := startSink(t, sinkOptions{tls: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "wrong.test")}}})
	dead := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return nil, errors.New("blocked")
	}}}
	q2 := testQueue(t, dir, func(c *Config, o *Options) {
		c.MXPort, c.MTASTS = portOf(t, wrong.addr), true
		o.Resolver, o.HTTPClient, o.RootCAs = newResolver(t, blocked), dead, ca.pool
	})
	q2.Start()
	id, err := q2.Enqueue(context.Background(), &Message{Rcpts: []string{"u@sts.test"}, Body: testMessage("second")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a first attempt", func() bool {
		info, _, _ := Show(dir, id)
		return len(info.Rcpts) == 1 && info.Rcpts[0].Attempts >= 1
	})
	info, _, _ := Show(dir, id)
	if n := len(wrong.received()); n != 0 || !strings.HasPrefix(info.Rcpts[0].Last, "451 4.") {
		t.Errorf("after a restart with discovery blocked: %d delivered to the wrong host, last reply %q; want none and a 4xx", n, info.Rcpts[0].Last)
	}
}
