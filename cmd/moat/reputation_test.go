package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters/dnsxl/rbldnstest"
	"github.com/moatmail/moat/filters/geoip/geoiptest"
)

// testClock is a clock a test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startClocked starts moat over dataDir with the filters disabled, config
// extra and clock.
func startClocked(t *testing.T, dataDir, disabled, extra string, clock *testClock) *app {
	t.Helper()
	return startConfig(t, testConfigWith(dataDir, disabled, extra), startOptions{now: clock.Now})
}

// sendFrom runs one transaction without TLS from the loopback address
// local (127.0.0.0/8 is all loopback, so each test client can have its
// own) and reports where it stopped.
func sendFrom(t *testing.T, addr, local, from string, to []string) smtpResult {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	fail := func(at string, err error) smtpResult {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			t.Fatalf("%s: %v", at, err)
		}
		return smtpResult{code: se.Code, ecode: fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2]), text: se.Message, at: at}
	}
	if err := c.Hello("client.example.net"); err != nil {
		return fail("EHLO", err)
	}
	if err := c.Mail(from, nil); err != nil {
		return fail("MAIL", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return fail("RCPT "+r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fail("DATA", err)
	}
	fmt.Fprint(w, message(from, to[0], "hello", "Lunch at noon?"))
	if err := w.Close(); err != nil {
		return fail("DATA end", err)
	}
	c.Quit()
	return smtpResult{code: 250, at: "DATA end"}
}

// TestGreylisting drives greylisting through SMTP with a clock the test
// moves: a new triplet and a too-early retry get 451 4.7.1 at RCPT, a
// retry in the window passes (sent by swaks, a foreign client), passes
// survive a restart, a network is allowed after two passes, and
// `moat greylist` lists, allows and deletes.
func TestGreylisting(t *testing.T) {
	swaks := needTool(t, "swaks")
	dir := t.TempDir()
	clock := &testClock{now: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}
	extra := `
[filters.greylist]
allow_networks = []
auto_allow_after = 2
`
	a := startClocked(t, dir, testDisabled, extra, clock)
	closed := false
	defer func() {
		if !closed {
			a.Close(t.Context())
		}
	}()
	for _, u := range []string{"alice@example.com", "dave@example.com"} {
		if _, err := a.store.AddUser(t.Context(), u, "pw", mailstore.RoleUser); err != nil {
			t.Fatal(err)
		}
	}
	try := func(a *app, local, from, rcpt string) smtpResult {
		return sendFrom(t, a.Addr("smtp"), local, from, []string{rcpt})
	}
	want := func(r smtpResult, code int, what string) {
		t.Helper()
		if r.code != code || (code == 451 && (r.ecode != "4.7.1" || !strings.HasPrefix(r.at, "RCPT"))) {
			t.Fatalf("%s: %v, want %d (451 4.7.1 at RCPT)", what, r, code)
		}
	}
	want(try(a, "127.0.0.2", "bob@example.net", "alice@example.com"), 451, "first attempt")
	clock.Advance(time.Minute)
	want(try(a, "127.0.0.2", "bob@example.net", "alice@example.com"), 451, "retry before the delay")
	clock.Advance(5 * time.Minute)
	// The retry that passes comes from swaks, from another address of
	// the same /24: greylisting keys on the client network.
	out, err := exec.Command(swaks, "--server", a.Addr("smtp"), "--local-interface", "127.0.0.3",
		"--from", "bob@example.net", "--to", "alice@example.com", "--helo", "client.example.net",
		"--header", "Subject: retry", "--body", "Lunch at noon?").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "<-  250 2.0.0 OK queued") {
		t.Fatalf("swaks retry after the delay: %v\n%s", err, out)
	}
	want(try(a, "127.0.0.2", "bob@example.net", "alice@example.com"), 250, "a passed triplet")
	want(try(a, "127.0.0.2", "carol@example.net", "alice@example.com"), 451, "another sender")

	// Passes survive a restart.
	a.Close(t.Context())
	closed = true
	a = startClocked(t, dir, testDisabled, extra, clock)
	defer a.Close(t.Context())
	want(try(a, "127.0.0.2", "bob@example.net", "alice@example.com"), 250, "a passed triplet after a restart")
	want(try(a, "127.0.0.2", "bob@example.net", "dave@example.com"), 451, "a new triplet after a restart")

	// A second pass an hour later (passes count once an hour) allows the
	// network: a new triplet from it goes through at once.
	clock.Advance(time.Hour)
	want(try(a, "127.0.0.2", "carol@example.net", "alice@example.com"), 250, "carol's retry in the window")
	want(try(a, "127.0.0.2", "erin@example.net", "dave@example.com"), 250, "a new triplet from an auto-allowed network")
	want(try(a, "127.0.1.2", "erin@example.net", "dave@example.com"), 451, "the same triplet from another network")

	// The command line, beside the running moat.
	cfgPath := filepath.Join(t.TempDir(), "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(testConfig(dir, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out2, errOut := cli(t, "", "greylist", "list", "-config", cfgPath)
	if code != 0 || !strings.Contains(out2, "127.0.0.0/24") || !strings.Contains(out2, "bob@example.net") ||
		!strings.Contains(out2, "127.0.1.0/24") || !strings.Contains(out2, "waiting (1 refused)") {
		t.Errorf("greylist list: exit %d\n%s%s", code, out2, errOut)
	}
	if code, out2, errOut := cli(t, "", "greylist", "allow", "-config", cfgPath, "127.0.1.9"); code != 0 || !strings.Contains(out2, "127.0.1.0/24 is no longer greylisted") {
		t.Errorf("greylist allow: exit %d\n%s%s", code, out2, errOut)
	}
	want(try(a, "127.0.1.2", "frank@example.net", "dave@example.com"), 250, "a network the operator allowed")
	if code, out2, errOut := cli(t, "", "greylist", "delete", "-config", cfgPath, "127.0.1.0/24"); code != 0 || !strings.Contains(out2, "deleted") {
		t.Errorf("greylist delete: exit %d\n%s%s", code, out2, errOut)
	}
	want(try(a, "127.0.1.2", "frank@example.net", "dave@example.com"), 451, "a network whose records were deleted")
	if got := metricValue(t, a, `moat_greylist_checks_total{outcome="allowed"}`); got == "" {
		t.Errorf("greylisting outcomes are not counted")
	}
}

// TestRateLimitFlood: one client over its limits is held back with 451
// while a well-behaved client beside it keeps getting 250s, and a client
// guessing user names is deferred for real users too once it has used up
// its allowance of unknown ones.
func TestRateLimitFlood(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}
	a := startClocked(t, t.TempDir(), testDisabled+`, "greylist"`, `
[filters.ratelimit]
exempt_networks = []
connections = { limit = 5, per = "1m" }
bad_recipients = { limit = 3, per = "1h" }
`, clock)
	defer a.Close(t.Context())
	if _, err := a.store.AddUser(t.Context(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	rcpt := []string{"alice@example.com"}
	for i := range 12 {
		flood := sendFrom(t, a.Addr("smtp"), "127.0.0.2", "spam@example.net", rcpt)
		if i < 5 && flood.code != 250 || i >= 5 && (flood.code != 451 || flood.at != "MAIL") {
			t.Fatalf("flooding client, message %d: %v; want 250 for the first 5, then 451 at MAIL", i+1, flood)
		}
		if i%3 == 0 {
			if good := sendFrom(t, a.Addr("smtp"), "127.0.0.3", "bob@example.net", rcpt); good.code != 250 {
				t.Fatalf("well-behaved client beside the flood: %v", good)
			}
		}
	}
	clock.Advance(time.Minute) // the bucket refills
	if r := sendFrom(t, a.Addr("smtp"), "127.0.0.2", "spam@example.net", rcpt); r.code != 250 {
		t.Errorf("the flooding client a minute later: %v, want 250", r)
	}

	// A dictionary attack: after three unknown users, a real one is
	// deferred too, so the attacker cannot tell them apart.
	guesses := []string{"adam@example.com", "anna@example.com", "alex@example.com"}
	for _, g := range guesses {
		if r := sendFrom(t, a.Addr("smtp"), "127.0.0.4", "x@example.net", []string{g}); r.code != 550 {
			t.Fatalf("guess %s: %v, want 550", g, r)
		}
	}
	if r := sendFrom(t, a.Addr("smtp"), "127.0.0.4", "x@example.net", rcpt); r.code != 451 || r.at != "RCPT alice@example.com" {
		t.Errorf("a real user after the guesses: %v, want 451 at RCPT", r)
	}
	if r := sendFrom(t, a.Addr("smtp"), "127.0.0.3", "bob@example.net", rcpt); r.code != 250 {
		t.Errorf("another client: %v, want 250", r)
	}
	if got := metricValue(t, a, `moat_ratelimit_hits_total{limit="connections"}`); got != "7" {
		t.Errorf("connection limit hits = %q, want 7", got)
	}
}

// TestGeoIPRule: a rule blocking a country refuses a client the GeoIP
// database (written by the test with mmdbwriter) maps to it, and lets
// another through; the country and AS reach the rules.
func TestGeoIPRule(t *testing.T) {
	dbDir := t.TempDir()
	country, asn := filepath.Join(dbDir, "country.mmdb"), filepath.Join(dbDir, "asn.mmdb")
	geoiptest.WriteCountryDB(t, country, map[string]string{"127.0.0.0/8": "XX", "127.0.0.3/32": "DE"})
	geoiptest.WriteASNDB(t, asn, map[string]geoiptest.ASN{"127.0.0.0/8": {Number: 64496, Organization: "Example Net"}})
	clock := &testClock{now: time.Now()}
	a := startClocked(t, t.TempDir(), testDisabled, fmt.Sprintf(`
[filters.geoip]
country_db = %q
asn_db = %q
[[rules.rule]]
name = "BLOCKED_COUNTRY"
stage = "connect"
expr = 'country == "XX" && asn == "64496" && asn_org == "Example Net"'
action = "reject"
`, country, asn), clock)
	defer a.Close(t.Context())
	if _, err := a.store.AddUser(t.Context(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	if r := sendFrom(t, a.Addr("smtp"), "127.0.0.2", "bob@example.net", []string{"alice@example.com"}); r.code != 550 || r.at != "MAIL" {
		t.Errorf("a client in XX: %v, want 550 at MAIL", r)
	}
	if r := sendFrom(t, a.Addr("smtp"), "127.0.0.3", "bob@example.net", []string{"alice@example.com"}); r.code != 250 {
		t.Errorf("a client in DE: %v, want 250", r)
	}
}

// TestDNSLists drives the DNS lists through SMTP against Debian's rbldnsd
// serving zones the test writes: a client whose weights pass the
// threshold is refused at RCPT, an allow list offsets a block list, and a
// message linking to a listed domain gets URIBL_LISTED.
func TestDNSLists(t *testing.T) {
	lists := rbldnstest.Start(t,
		// 127.0.0.2 is the RFC 5782 §5 test entry every list lists.
		rbldnstest.Dataset{Zone: "bl.test", Type: "ip4set", Data: ":127.0.0.2:\n127.0.0.2\n127.0.0.5\n127.0.0.6\n127.0.0.7\n"},
		rbldnstest.Dataset{Zone: "wl.test", Type: "ip4set", Data: ":127.0.0.2:\n127.0.0.2\n127.0.0.6\n"},
		rbldnstest.Dataset{Zone: "dbl.test", Type: "dnset", Data: "test :127.0.1.2:\nevil.example :127.0.1.2:\n"},
	)
	clock := &testClock{now: time.Now()}
	a := startClocked(t, t.TempDir(), testDisabled, fmt.Sprintf(`
[dns]
upstream = %q
[filters.dnsbl]
threshold = 3
skip_networks = []
[[filters.dnsbl.list]]
zone = "bl.test"
weight = 3
[[filters.dnsbl.list]]
zone = "wl.test"
weight = -2
[[filters.uribl.list]]
zone = "dbl.test"
weight = 4
sources = ["url"]
`, lists.Addr()), clock)
	defer a.Close(t.Context())
	if _, err := a.store.AddUser(t.Context(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	rcpt := []string{"alice@example.com"}
	if r := sendFrom(t, a.Addr("smtp"), "127.0.0.5", "bob@example.net", rcpt); r.code != 550 || r.ecode != "5.7.1" || r.at != "RCPT alice@example.com" {
		t.Errorf("a listed client: %v, want 550 5.7.1 at RCPT", r)
	}
	if r := sendFrom(t, a.Addr("smtp"), "127.0.0.6", "bob@example.net", rcpt); r.code != 250 {
		t.Errorf("a client on the block list and the allow list (3-2 < 3): %v, want 250", r)
	}
	if r := sendFrom(t, a.Addr("smtp"), "127.0.0.8", "bob@example.net", rcpt); r.code != 250 {
		t.Errorf("a client on no list: %v, want 250", r)
	}

	tc := clientTLS(t, a.cfg.DataDir)
	link := message("bob@example.net", "alice@example.com", "offer", "See https://www.evil.example/win and https://ok.example/")
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", rcpt, link); r.code != 250 {
		t.Fatalf("a message with a listed link: %v", r)
	}
	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	defer c.Close()
	inbox := fetchAll(t, c, "INBOX")
	last := inbox[len(inbox)-1]
	if !strings.Contains(last, "URIBL_LISTED") {
		t.Errorf("the stored message lacks URIBL_LISTED:\n%s", last)
	}
	if got := metricValue(t, a, `moat_dnsbl_lookups_total{status="listed",zone="bl.test"}`); got == "" || got == "0" {
		t.Errorf("listed lookups in bl.test are not counted: %q", got)
	}
}
