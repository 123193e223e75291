package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters/antivirus/clamdtest"
	"github.com/moatmail/moat/filters/resolver/dnstest"
	"github.com/moatmail/moat/filters/state/redistest"
	"github.com/moatmail/moat/ops"
)

// TestDashboardAgainstPrometheus starts Debian's prometheus scraping a
// moat that receives a short mixed load (clean mail, GTUBE spam
// quarantined and refused, a virus found by a real clamd, an attachment
// refused by policy, a DMARC p=reject forgery, refused recipients, a
// failed login, a release from quarantine), with the recording rules of
// ops/prometheus loaded. Then every query of every dashboard panel and
// every recording rule must return data through Prometheus' HTTP API: a
// panel that shows nothing on real metrics is a defect.
func TestDashboardAgainstPrometheus(t *testing.T) {
	promBin := needTool(t, "prometheus")
	clamd := clamdtest.Start(t)
	soa := "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
	dns := dnstest.Start(t, map[string]string{
		"example.net.":    soa + `@ IN TXT "v=spf1 ip4:127.0.0.1 -all"` + "\n",
		"reject.example.": soa + `@ IN TXT "v=spf1 ip4:192.0.2.1 -all"` + "\n" + `_dmarc IN TXT "v=DMARC1; p=reject"` + "\n",
		// A DNS list: the RFC 5782 test entry, the moat client not listed.
		"bl.test.": soa + "2.0.0.127 IN A 127.0.0.2\n",
	})
	// The shared state on a real Redis, and a relay domain whose
	// downstream takes mail: the queue's and Redis's panels need data.
	redis := redistest.Start(t)
	down := &downstream{}
	downSrv := smtp.NewServer(down)
	downSrv.Domain = "down.test"
	downLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go downSrv.Serve(downLn)
	defer downSrv.Close()
	dir := t.TempDir()
	text := testConfigWith(dir, `"rdns"`, fmt.Sprintf(`
[[route]]
domains = ["corp.example"]
hosts = [%q]
tls = "none"
verify = "list"
verify_list = ["known@corp.example"]
%s
[dns]
upstream = %q
timeout = "500ms"
[filters.antivirus]
address = %q
[filters.dnsbl]
threshold = 3
skip_networks = []
[[filters.dnsbl.list]]
zone = "bl.test"
weight = 3
%s`, downLn.Addr().String(), stateConfig(redis, "tempfail"), dns.Addr(), clamd.Unix, e2ePolicies))
	text = strings.Replace(text, "[smtp]\n", "[smtp]\nrelay_domains = [\"corp.example\"]\nquarantine_owner = \"postmaster@example.com\"\n", 1)
	cfgPath := filepath.Join(t.TempDir(), "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, "pw\npw\n", "user", "add", "-admin", "-config", cfgPath, "postmaster@example.com"); code != 0 {
		t.Fatalf("user add: %d %s%s", code, out, errOut)
	}
	a := startConfig(t, text, startOptions{})
	defer a.Close(t.Context())
	for _, u := range []string{"alice@example.com", "quarantine@example.com"} {
		if _, err := a.store.AddUser(t.Context(), u, "pw", mailstore.RoleUser); err != nil {
			t.Fatal(err)
		}
	}
	prom := startPrometheus(t, promBin, a.Addr("metrics"))
	prom.waitUp(t)

	// The load, each part with the reply it must get.
	tc := clientTLS(t, dir)
	smtpAddr := a.Addr("smtp")
	alice, quar := []string{"alice@example.com"}, []string{"quarantine@example.com"}
	exe := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), make([]byte, 200)...)
	for _, c := range []struct {
		name, from string
		to         []string
		msg        string
		code       int
	}{
		{"clean", "bob@example.net", alice, message("bob@example.net", "alice@example.com", "hello", "clean mail"), 250},
		{"clean 2", "bob@example.net", alice, message("bob@example.net", "alice@example.com", "again", "more clean mail"), 250},
		{"GTUBE quarantined", "bob@example.net", quar, message("bob@example.net", "quarantine@example.com", "spam", gtubeString), 250},
		{"GTUBE refused", "bob@example.net", alice, message("bob@example.net", "alice@example.com", "spam", gtubeString), 550},
		{"virus", "bob@example.net", alice, withAttachment("eicar", []byte(clamdtest.EICAR)), 554},
		{"attachment policy", "bob@example.net", alice, strings.Replace(withAttachment("invoice", exe),
			`filename="file.bin"`, `filename="invoice.pdf.exe"`, 1), 550},
		{"DMARC p=reject", "ceo@reject.example", alice, message("ceo@reject.example", "alice@example.com", "wire", "pay now"), 550},
		{"unknown user", "bob@example.net", []string{"nobody@example.com"}, "", 550},
		{"relay", "bob@example.net", []string{"someone@elsewhere.test"}, "", 554},
		{"relay domain", "bob@example.net", []string{"known@corp.example"}, message("bob@example.net", "known@corp.example", "onward", "for the downstream"), 250},
	} {
		if r := send(t, smtpAddr, tc, c.from, c.to, c.msg); r.code != c.code {
			t.Fatalf("%s: %v, want %d", c.name, r, c.code)
		}
	}
	// A failed login, then a user releases the quarantined message.
	if err := imapLoginErr(a.Addr("imap"), tc, "alice@example.com", "wrong"); err == nil {
		t.Fatal("IMAP login with a wrong password succeeded")
	}
	c := imapLogin(t, a.Addr("imap"), tc, "quarantine@example.com", "pw")
	if _, err := c.Select(mailstore.QuarantineMailbox, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(allMessages(1), "INBOX").Wait(); err != nil {
		t.Fatalf("release from Quarantine: %v", err)
	}
	c.Close()
	// Another stays in quarantine, for its size and age.
	if r := send(t, smtpAddr, tc, "bob@example.net", quar, message("bob@example.net", "quarantine@example.com", "spam", gtubeString)); r.code != 250 {
		t.Fatalf("GTUBE quarantined: %v", r)
	}

	var queries []string
	board, err := ops.ParseDashboard(ops.Dashboard)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range board.Queries() {
		queries = append(queries, ops.Expand(q.Expr, "1m"))
	}
	// The recording rules as Prometheus loaded them, and the series they
	// record.
	rules := prom.recordingRules(t)
	if want := ops.RecordNames(ops.Rules); len(rules) != len(want) {
		t.Fatalf("prometheus loaded %d recording rules, the file has %d (%v)", len(rules), len(want), want)
	}
	for name, query := range rules {
		queries = append(queries, query, name)
	}
	// What the load must have counted, once scraped.
	counted := map[string]float64{
		`sum(moat_messages_total{action="accept"})`:          2,
		`sum(moat_messages_total{action="quarantine"})`:      2,
		`sum(moat_messages_total{action="reject"})`:          4,
		`sum(moat_review_events_total{kind="released"})`:     1,
		`sum(moat_login_failures_total{protocol="imap"})`:    1,
		`sum(moat_check_demands_total{check="dmarc"})`:       1,
		`sum(moat_dnsbl_lookups_total{zone="bl.test"})`:      1,
		`moat_quarantine_messages`:                           1,
		`sum(moat_queue_deliveries_total{result="sent"})`:    1,
		`min(moat_tls_certificate_expiry_timestamp_seconds)`: float64(time.Now().Unix()),
	}
	// Poll until every query has data and the counts are scraped; rates
	// need two scrapes after the load, the recording rules an evaluation
	// after that.
	deadline := time.Now().Add(2 * time.Minute)
	var empty, short []string
	for {
		empty, short = empty[:0], short[:0]
		for _, q := range queries {
			if n := prom.query(t, q); n == 0 {
				empty = append(empty, q)
			}
		}
		for q, min := range counted {
			if v := prom.value(t, q); v < min {
				short = append(short, fmt.Sprintf("%s = %v, want at least %v", q, v, min))
			}
		}
		if len(empty)+len(short) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	sort.Strings(empty)
	for _, q := range empty {
		t.Errorf("no data: %s", q)
	}
	for _, s := range short {
		t.Error(s)
	}
	t.Logf("%d queries (%d of the dashboard, %d recording rules and their series) returned data",
		len(queries)-len(empty), len(board.Queries()), 2*len(rules))
}

// imapLoginErr tries an IMAP login over STARTTLS and returns its error.
func imapLoginErr(addr string, tc *tls.Config, user, pass string) error {
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: tc})
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Login(user, pass).Wait()
}

// syncBuf is a buffer a process writes to while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// promServer is a prometheus started by a test.
type promServer struct {
	base string
}

// startPrometheus starts Debian's prometheus scraping moat's metrics
// listener every second as job "moat", with ops/prometheus/moat.rules.yml
// evaluated every second; it is stopped (by its pid) when the test ends.
func startPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(filepath.Join("..", "..", "ops", "prometheus", "moat.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: moat
    static_configs:
      - targets: [%q]
`, rules, target)
	confFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--config.file="+confFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	p := &promServer{base: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitUp waits until prometheus has scraped moat.
func (p *promServer) waitUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.value(t, `up{job="moat"}`) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("prometheus never scraped moat")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type promResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
		Groups     []struct {
			Rules []struct {
				Type   string `json:"type"`
				Name   string `json:"name"`
				Query  string `json:"query"`
				Health string `json:"health"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"data"`
}

func (p *promServer) get(t *testing.T, path string) promResponse {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r promResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%s: %v: %s", path, err, body)
	}
	if r.Status != "success" {
		t.Fatalf("%s: %s %s", path, r.Status, r.Error)
	}
	return r
}

// query runs an instant query and returns the number of series in its
// result (a query Prometheus refuses fails the test).
func (p *promServer) query(t *testing.T, q string) int {
	t.Helper()
	r := p.get(t, "/api/v1/query?query="+url.QueryEscape(q))
	if r.Data.ResultType == "scalar" {
		return 1
	}
	return len(r.Data.Result)
}

// value returns the value of a query with one series (or -1).
func (p *promServer) value(t *testing.T, q string) float64 {
	t.Helper()
	r := p.get(t, "/api/v1/query?query="+url.QueryEscape(q))
	if len(r.Data.Result) != 1 {
		return -1
	}
	var s struct {
		Value [2]any `json:"value"`
	}
	if err := json.Unmarshal(r.Data.Result[0], &s); err != nil {
		t.Fatal(err)
	}
	var v float64
	fmt.Sscan(fmt.Sprint(s.Value[1]), &v)
	return v
}

// recordingRules returns the recording rules prometheus loaded, name to
// query; each must be healthy.
func (p *promServer) recordingRules(t *testing.T) map[string]string {
	t.Helper()
	rules := map[string]string{}
	for _, g := range p.get(t, "/api/v1/rules").Data.Groups {
		for _, r := range g.Rules {
			if r.Type != "recording" {
				continue
			}
			if r.Health == "err" {
				t.Errorf("recording rule %s is unhealthy", r.Name)
			}
			rules[r.Name] = r.Query
		}
	}
	return rules
}
