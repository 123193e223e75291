package queue

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestCalloutAndCache(t *testing.T) {
	down := startSink(t, sinkOptions{})
	down.rcptReply = func(to string) error {
		switch {
		case strings.HasPrefix(to, "known@"):
			return nil
		case strings.HasPrefix(to, "busy@"):
			return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "unknown user"}
	}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rs := relayRoutes(t, down.addr, func(r *RouteConfig) {
		r.Verify, r.CalloutPositiveTTL, r.CalloutNegativeTTL = "callout", time.Hour, 10*time.Minute
	}, "relay.test")
	v, err := NewVerifier(rs, VerifierOptions{Hostname: "moat.test", Now: clock, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(addr string, want error, wantCallouts int) {
		t.Helper()
		err := v.VerifyRecipient(ctx, addr)
		var re *ReplyError
		switch {
		case want == nil && err != nil, want == ErrNoRecipient && !errors.Is(err, ErrNoRecipient):
			t.Errorf("%s: %v, want %v", addr, err, want)
		case want == errTemp && (!errors.As(err, &re) || !re.Temporary() || re.Code != 450 || re.Enhanced != [3]int{4, 2, 1}):
			t.Errorf("%s: %v, want the downstream's 450 4.2.1", addr, err)
		}
		if n := v.Callouts(); n != wantCallouts {
			t.Errorf("after %s: %d callouts, want %d", addr, n, wantCallouts)
		}
	}
	check("known@relay.test", nil, 1)
	check("Known@Relay.test", nil, 1) // cached, case-insensitively
	check("nobody@relay.test", ErrNoRecipient, 2)
	check("nobody@relay.test", ErrNoRecipient, 2) // negative answer cached
	check("busy@relay.test", errTemp, 3)
	check("busy@relay.test", errTemp, 4) // a 4xx is never cached
	check("someone@elsewhere.test", nil, 4)
	mu.Lock()
	now = now.Add(15 * time.Minute) // past the negative TTL, within the positive
	mu.Unlock()
	check("nobody@relay.test", ErrNoRecipient, 5)
	check("known@relay.test", nil, 5)
	// Each callout was MAIL FROM:<>, RCPT, QUIT: nothing was delivered.
	if n := len(down.received()); n != 0 {
		t.Errorf("%d messages delivered by callouts", n)
	}
}

// errTemp stands for "a downstream 4xx" in the table above.
var errTemp = errors.New("temporary")

func TestCalloutDownstreamDown(t *testing.T) {
	rs := relayRoutes(t, freeAddr(t), func(r *RouteConfig) { r.Verify = "callout" }, "relay.test")
	v, err := NewVerifier(rs, VerifierOptions{Hostname: "moat.test", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = v.VerifyRecipient(context.Background(), "u@relay.test")
	var re *ReplyError
	if err == nil || errors.Is(err, ErrNoRecipient) || errors.As(err, &re) {
		t.Errorf("downstream down: %v, want a fault of moat's own (451)", err)
	}
}

func TestVerifyList(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users")
	os.WriteFile(file, []byte("# staff@relay.test\nbob@relay.test\n  carol@relay.test # on leave\n"), 0o600)
	rs := relayRoutes(t, "127.0.0.1:25", func(r *RouteConfig) {
		r.Verify, r.VerifyList, r.VerifyFile = "list", []string{"Alice@relay.test"}, file
	}, "relay.test")
	v, err := NewVerifier(rs, VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]error{
		"alice@relay.test": nil, "bob@relay.test": nil, "CAROL@relay.test": nil,
		"dave@relay.test": ErrNoRecipient, "staff@relay.test": ErrNoRecipient, "x@other.test": nil,
	} {
		if err := v.VerifyRecipient(context.Background(), addr); !errors.Is(err, want) && err != want {
			t.Errorf("%s: %v, want %v", addr, err, want)
		}
	}
}

func TestRelayTLSAndAuth(t *testing.T) {
	ca, otherCA := newCA(t), newCA(t)
	cert := ca.issue(t, "127.0.0.1")
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	dir := t.TempDir()
	caFile, otherCAFile, pwFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem"), filepath.Join(dir, "pw")
	os.WriteFile(caFile, ca.pem, 0o600)
	os.WriteFile(otherCAFile, otherCA.pem, 0o600)
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	tests := []struct {
		name     string
		sink     sinkOptions
		route    func(*RouteConfig)
		wantSent bool
		wantTLS  bool
		wantUser string
	}{
		{"required, CA file", sinkOptions{tls: tlsConf}, func(r *RouteConfig) { r.TLS, r.CAFile = TLSRequired, caFile }, true, true, ""},
		{"required, another CA", sinkOptions{tls: tlsConf}, func(r *RouteConfig) { r.TLS, r.CAFile = TLSRequired, otherCAFile }, false, false, ""},
		{"required, pinned key", sinkOptions{tls: tlsConf}, func(r *RouteConfig) {
			r.TLS, r.PinSHA256 = TLSRequired, []string{hex.EncodeToString(spki[:])}
		}, true, true, ""},
		{"required, other pin", sinkOptions{tls: tlsConf}, func(r *RouteConfig) {
			r.TLS, r.PinSHA256 = TLSRequired, []string{strings.Repeat("ab", 32)}
		}, false, false, ""},
		{"required, no STARTTLS offered", sinkOptions{}, func(r *RouteConfig) { r.TLS, r.CAFile = TLSRequired, caFile }, false, false, ""},
		{"opportunistic, unverified", sinkOptions{tls: &tls.Config{Certificates: []tls.Certificate{otherCA.issue(t, "x.test")}}},
			func(r *RouteConfig) { r.TLS = TLSOpportunistic }, true, true, ""},
		{"opportunistic, no STARTTLS", sinkOptions{}, func(r *RouteConfig) { r.TLS = TLSOpportunistic }, true, false, ""},
		{"AUTH PLAIN after TLS", sinkOptions{tls: tlsConf, password: "s3cret"}, func(r *RouteConfig) {
			r.TLS, r.CAFile, r.AuthUser, r.AuthPasswordFile = TLSRequired, caFile, "moat", pwFile
		}, true, true, "moat"},
		{"LMTP", sinkOptions{lmtp: true}, func(r *RouteConfig) { r.Protocol = "lmtp" }, true, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			down := startSink(t, tt.sink)
			qdir := t.TempDir()
			q := testQueue(t, qdir, func(_ *Config, o *Options) {
				o.Routes = relayRoutes(t, down.addr, func(r *RouteConfig) { r.TLS = TLSNone; tt.route(r) }, "relay.test")
			})
			q.Start()
			id, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{"u@relay.test"}, Body: testMessage("tls")})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.wantSent {
				waitFor(t, "a first attempt", func() bool { info, _, _ := Show(qdir, id); return len(info.Rcpts) == 1 && info.Rcpts[0].Attempts >= 1 })
				info, _, _ := Show(qdir, id)
				if n := len(down.received()); n != 0 || !strings.HasPrefix(info.Rcpts[0].Last, "451 4.") {
					t.Errorf("%d delivered, last %q; want none and a 4xx", n, info.Rcpts[0].Last)
				}
				return
			}
			waitFor(t, "delivery", func() bool { return len(down.received()) == 1 })
			got := down.received()[0]
			if got.tls != tt.wantTLS || got.user != tt.wantUser {
				t.Errorf("TLS %v user %q, want %v %q", got.tls, got.user, tt.wantTLS, tt.wantUser)
			}
		})
	}
}

func TestRouteValidation(t *testing.T) {
	tests := []struct {
		name string
		rc   RouteConfig
		want string
	}{
		{"no domains", RouteConfig{Hosts: []string{"a"}}, "domains"},
		{"no hosts", RouteConfig{Domains: []string{"a.test"}}, "hosts"},
		{"bad tls", RouteConfig{Domains: []string{"a.test"}, Hosts: []string{"h"}, TLS: "maybe"}, "tls"},
		{"ca_file without required", RouteConfig{Domains: []string{"a.test"}, Hosts: []string{"h"}, CAFile: "/x"}, "ca_file"},
		{"bad pin", RouteConfig{Domains: []string{"a.test"}, Hosts: []string{"h"}, TLS: TLSRequired, PinSHA256: []string{"zz"}}, "pin_sha256[0]"},
		{"auth without password", RouteConfig{Domains: []string{"a.test"}, Hosts: []string{"h"}, TLS: TLSRequired, AuthUser: "u"}, "auth_user"},
		{"list without addresses", RouteConfig{Domains: []string{"a.test"}, Hosts: []string{"h"}, Verify: "list"}, "verify_list"},
		{"bad port", RouteConfig{Domains: []string{"a.test"}, Hosts: []string{"h:99999"}}, "hosts[0]"},
		{"bad type", RouteConfig{Domains: []string{"a.test"}, Type: "pipe"}, "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRoutes([]RouteConfig{tt.rc})
			if err == nil || !strings.Contains(err.Error(), "route[0]."+tt.want) {
				t.Errorf("error %v, want one naming route[0].%s", err, tt.want)
			}
		})
	}
	dup := []RouteConfig{{Domains: []string{"a.test"}, Type: RouteLocal}, {Domains: []string{"A.test"}, Hosts: []string{"h"}}}
	if err := ValidateRoutes(dup); err == nil || !strings.Contains(err.Error(), "route[1].domains") {
		t.Errorf("a domain in two routes: %v", err)
	}
	good := []RouteConfig{{Domains: []string{"a.test"}, Hosts: []string{"h", "h2:2525"}, Protocol: "lmtp", Verify: "callout"}}
	if err := ValidateRoutes(good); err != nil {
		t.Errorf("good route: %v", err)
	}
	if good[0].TLS != TLSOpportunistic || good[0].Balance != "ordered" || good[0].CalloutPositiveTTL != 24*time.Hour {
		t.Errorf("defaults not filled: %+v", good[0])
	}
}

func TestRouteBalance(t *testing.T) {
	hosts := []string{"a.test", "b.test:2525", "c.test"}
	order := func(balance string) [][]string {
		rs, err := NewRoutes(mustRoutes(t, RouteConfig{Domains: []string{"relay.test"}, Hosts: hosts, Balance: balance}))
		if err != nil {
			t.Fatal(err)
		}
		var out [][]string
		for range 4 {
			var names []string
			for _, tg := range rs.Lookup("relay.test").targets() {
				names = append(names, tg.addr)
			}
			out = append(out, names)
		}
		return out
	}
	ordered := "a.test:25 b.test:2525 c.test:25"
	for i, o := range order("ordered") {
		if strings.Join(o, " ") != ordered {
			t.Errorf("ordered, delivery %d: %v", i, o)
		}
	}
	want := []string{ordered, "b.test:2525 c.test:25 a.test:25", "c.test:25 a.test:25 b.test:2525", ordered}
	for i, o := range order("balanced") {
		if strings.Join(o, " ") != want[i] {
			t.Errorf("balanced, delivery %d: %v, want %s", i, o, want[i])
		}
	}
}
