package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
)

// countObserver records what the queue reports.
type countObserver struct {
	mu        sync.Mutex
	queued    map[string]int
	delivery  map[string]int // "result/class"
	bounces   map[string]int
	corrupted int
}

func newCountObserver() *countObserver {
	return &countObserver{queued: map[string]int{}, delivery: map[string]int{}, bounces: map[string]int{}}
}

func (o *countObserver) Queued(origin string) { o.mu.Lock(); o.queued[origin]++; o.mu.Unlock() }
func (o *countObserver) Delivery(result, class string, _ time.Duration) {
	o.mu.Lock()
	o.delivery[result+"/"+class]++
	o.mu.Unlock()
}
func (o *countObserver) Bounce(kind string) { o.mu.Lock(); o.bounces[kind]++; o.mu.Unlock() }
func (o *countObserver) Corrupt()           { o.mu.Lock(); o.corrupted++; o.mu.Unlock() }
func (o *countObserver) get(m map[string]int, k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return m[k]
}

// spoolEmpty reports whether no message is left in the spool.
func spoolEmpty(t testing.TB, dir string) bool {
	infos, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(infos) == 0
}

func TestRelayDelivery(t *testing.T) {
	down := startSink(t, sinkOptions{})
	dir := t.TempDir()
	obs := newCountObserver()
	q := testQueue(t, dir, func(_ *Config, o *Options) {
		o.Routes = relayRoutes(t, down.addr, nil, "relay.test")
		o.Observer = obs
	})
	q.Start()
	msg := testMessage("relay")
	id, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{"user@relay.test", "two@relay.test"},
		Header: []byte("Received: by moat.test\r\n"), Body: msg})
	if err != nil {
		t.Fatal(err)
	}
	if !validID(id) {
		t.Errorf("id %q", id)
	}
	waitFor(t, "delivery", func() bool { return len(down.received()) == 1 })
	got := down.received()[0]
	if got.from != "a@origin.test" || strings.Join(got.rcpts, ",") != "user@relay.test,two@relay.test" {
		t.Errorf("envelope %q %q", got.from, got.rcpts)
	}
	if want := "Received: by moat.test\r\n" + string(msg); string(got.data) != want {
		t.Errorf("data %q, want %q", got.data, want)
	}
	waitFor(t, "the spool to empty", func() bool { return spoolEmpty(t, dir) })
	if n := obs.get(obs.delivery, "sent/relay"); n != 2 {
		t.Errorf("%d sent/relay, want 2", n)
	}
}

func TestEnqueueRefusesLocalWithoutDeliverer(t *testing.T) {
	rs, err := NewRoutes([]RouteConfig{{Domains: []string{"local.test"}, Type: RouteLocal}})
	if err != nil {
		t.Fatal(err)
	}
	q := testQueue(t, t.TempDir(), func(_ *Config, o *Options) { o.Routes = rs })
	if _, err := q.Enqueue(context.Background(), &Message{From: "a@b.test", Rcpts: []string{"u@local.test"}, Body: []byte("x")}); err == nil {
		t.Error("a local recipient was queued without a local deliverer")
	}
}

func TestRetryAfter4xx(t *testing.T) {
	down := startSink(t, sinkOptions{})
	var tries int
	down.rcptReply = func(string) error {
		tries++
		if tries == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "try later"}
		}
		return nil
	}
	dir := t.TempDir()
	q := testQueue(t, dir, func(_ *Config, o *Options) { o.Routes = relayRoutes(t, down.addr, nil, "relay.test") })
	q.Start()
	if _, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{"user@relay.test"}, Body: testMessage("retry")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after a 4xx", func() bool { return len(down.received()) == 1 })
	waitFor(t, "the spool to empty", func() bool { return spoolEmpty(t, dir) })
	down.mu.Lock()
	defer down.mu.Unlock()
	if tries != 2 || len(down.msgs) != 1 {
		t.Errorf("%d RCPT tries, %d messages; want 2 and 1", tries, len(down.msgs))
	}
}

// parseDSN parses a DSN and returns its per-message fields, its
// per-recipient fields, and the returned header section.
func parseDSN(t *testing.T, raw []byte) (textproto.Header, []textproto.Header, string) {
	t.Helper()
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := ent.Header.ContentType()
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %s %v", mt, params)
	}
	if ent.Header.Get("Auto-Submitted") != "auto-replied" {
		t.Errorf("Auto-Submitted %q", ent.Header.Get("Auto-Submitted"))
	}
	mr := ent.MultipartReader()
	var types []string
	var perMsg textproto.Header
	var perRcpt []textproto.Header
	var headers string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := p.Header.ContentType()
		types = append(types, ct)
		body, _ := io.ReadAll(p.Body)
		switch ct {
		case "message/delivery-status":
			// RFC 3464 §2.1: groups of fields separated by empty lines.
			groups := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(body), "\r\n", "\n")), "\n\n")
			for i, g := range groups {
				h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(g + "\n\n")))
				if err != nil {
					t.Fatalf("delivery-status group %d: %v", i, err)
				}
				if i == 0 {
					perMsg = h
				} else {
					perRcpt = append(perRcpt, h)
				}
			}
		case "text/rfc822-headers":
			headers = string(body)
		}
	}
	if strings.Join(types, " ") != "text/plain message/delivery-status text/rfc822-headers" {
		t.Errorf("parts %v", types)
	}
	return perMsg, perRcpt, headers
}

func TestBounceOn5xx(t *testing.T) {
	down := startSink(t, sinkOptions{})
	down.rcptReply = func(to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}
	senders := startSink(t, sinkOptions{})
	rs, err := NewRoutes(mustRoutes(t,
		RouteConfig{Domains: []string{"relay.test"}, Hosts: []string{down.addr}, TLS: TLSNone},
		RouteConfig{Domains: []string{"origin.test"}, Hosts: []string{senders.addr}, TLS: TLSNone}))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	obs := newCountObserver()
	q := testQueue(t, dir, func(_ *Config, o *Options) { o.Routes, o.Observer = rs, obs })
	q.Start()
	id, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{"user@relay.test", "nobody@relay.test"},
		Body: testMessage("bounce")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bounce", func() bool { return len(senders.received()) == 1 })
	waitFor(t, "the spool to empty", func() bool { return spoolEmpty(t, dir) })
	if n := len(down.received()); n != 1 {
		t.Fatalf("%d messages downstream, want 1", n)
	}
	b := senders.received()[0]
	if b.from != "" || strings.Join(b.rcpts, ",") != "a@origin.test" {
		t.Errorf("bounce envelope %q -> %q, want <> -> a@origin.test", b.from, b.rcpts)
	}
	perMsg, perRcpt, headers := parseDSN(t, b.data)
	if perMsg.Get("Reporting-MTA") != "dns; moat.test" || perMsg.Get("X-Moat-Queue-ID") != id || perMsg.Get("Arrival-Date") == "" {
		t.Errorf("per-message fields %v", perMsg.Map())
	}
	if len(perRcpt) != 1 {
		t.Fatalf("%d recipients reported, want 1", len(perRcpt))
	}
	r := perRcpt[0]
	for k, want := range map[string]string{
		"Final-Recipient": "rfc822; nobody@relay.test", "Action": "failed", "Status": "5.1.1",
		"Remote-MTA": "dns; 127.0.0.1", "Diagnostic-Code": "smtp; 550 5.1.1 no such user",
	} {
		if got := r.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(headers, "Subject: bounce") || strings.Contains(headers, "Hello.") {
		t.Errorf("returned headers %q", headers)
	}
	if obs.get(obs.bounces, "bounce") != 1 || obs.get(obs.delivery, "bounced/relay") != 1 {
		t.Errorf("observer: %v %v", obs.bounces, obs.delivery)
	}
}

func mustRoutes(t testing.TB, rcs ...RouteConfig) []RouteConfig {
	t.Helper()
	if err := ValidateRoutes(rcs); err != nil {
		t.Fatal(err)
	}
	return rcs
}

func TestNoBounceOfABounce(t *testing.T) {
	down := startSink(t, sinkOptions{})
	down.rcptReply = func(string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	dir := t.TempDir()
	obs := newCountObserver()
	q := testQueue(t, dir, func(_ *Config, o *Options) {
		o.Routes, o.Observer = relayRoutes(t, down.addr, nil, "relay.test"), obs
	})
	q.Start()
	if _, err := q.Enqueue(context.Background(), &Message{From: "", Rcpts: []string{"gone@relay.test"}, Body: testMessage("dsn"), Origin: "bounce"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spool to empty", func() bool { return spoolEmpty(t, dir) })
	if obs.get(obs.bounces, "dropped") != 1 || obs.get(obs.bounces, "bounce") != 0 || obs.get(obs.queued, "bounce") != 1 {
		t.Errorf("bounces %v queued %v: want one dropped, none sent", obs.bounces, obs.queued)
	}
}

func TestExpiryBouncesAndDelayWarns(t *testing.T) {
	senders := startSink(t, sinkOptions{})
	// A downstream that is down: a port nobody listens on.
	deadAddr := freeAddr(t)
	rs, err := NewRoutes(mustRoutes(t,
		RouteConfig{Domains: []string{"relay.test"}, Hosts: []string{deadAddr}, TLS: TLSNone},
		RouteConfig{Domains: []string{"origin.test"}, Hosts: []string{senders.addr}, TLS: TLSNone}))
	if err != nil {
		t.Fatal(err)
	}
	var clock struct {
		sync.Mutex
		t time.Time
	}
	clock.t = time.Now()
	now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.t }
	advance := func(d time.Duration) { clock.Lock(); clock.t = clock.t.Add(d); clock.Unlock() }
	dir := t.TempDir()
	q := testQueue(t, dir, func(c *Config, o *Options) {
		o.Routes, o.Now = rs, now
		c.DelayWarning = 4 * time.Hour
		c.Lifetime = 24 * time.Hour
	})
	q.Start()
	id, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{"user@relay.test"}, Body: testMessage("expiry")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a first attempt", func() bool { info, _, _ := Show(dir, id); return len(info.Rcpts) == 1 && info.Rcpts[0].Attempts >= 1 })
	advance(5 * time.Hour)
	q.Retry(id)
	waitFor(t, "the delay warning", func() bool { return len(senders.received()) == 1 })
	_, perRcpt, _ := parseDSN(t, senders.received()[0].data)
	if len(perRcpt) != 1 || perRcpt[0].Get("Action") != "delayed" || !strings.HasPrefix(perRcpt[0].Get("Status"), "4.") ||
		perRcpt[0].Get("Will-Retry-Until") == "" {
		t.Errorf("delay DSN %v", perRcpt)
	}
	advance(20 * time.Hour)
	q.Retry(id)
	waitFor(t, "the expiry bounce", func() bool { return len(senders.received()) == 2 })
	waitFor(t, "the spool to empty", func() bool { return spoolEmpty(t, dir) })
	_, perRcpt, _ = parseDSN(t, senders.received()[1].data)
	if len(perRcpt) != 1 || perRcpt[0].Get("Action") != "failed" || perRcpt[0].Get("Status") != "4.4.1" ||
		!strings.Contains(perRcpt[0].Get("Diagnostic-Code"), "expired") {
		t.Errorf("expiry DSN %v", perRcpt)
	}
}

func TestBackoff(t *testing.T) {
	q := &Queue{cfg: Config{MinBackoff: 5 * time.Minute, MaxBackoff: time.Hour}}
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{1, 5 * time.Minute}, {2, 10 * time.Minute}, {3, 20 * time.Minute}, {4, 40 * time.Minute}, {5, time.Hour}, {50, time.Hour}} {
		if got := q.backoff(tt.n); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestCorruptFilesMovedAside(t *testing.T) {
	down := startSink(t, sinkOptions{})
	dir := t.TempDir()
	// A good message, queued by a queue that is not started.
	q := testQueue(t, dir, func(_ *Config, o *Options) { o.Routes = relayRoutes(t, down.addr, nil, "relay.test") })
	good, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{"user@relay.test"}, Body: testMessage("good")})
	if err != nil {
		t.Fatal(err)
	}
	q.Close(context.Background())
	// A message cut short, one with a broken envelope, one with a bad
	// state file.
	raw, _ := os.ReadFile(filepath.Join(dir, good+".msg"))
	short, badEnv, badState := newID(time.Now()), newID(time.Now().Add(time.Millisecond)), newID(time.Now().Add(2*time.Millisecond))
	os.WriteFile(filepath.Join(dir, short+".msg"), raw[:len(raw)-3], 0o600)
	os.WriteFile(filepath.Join(dir, badEnv+".msg"), []byte(magic+"{not json\n"), 0o600)
	os.WriteFile(filepath.Join(dir, badState+".msg"), raw, 0o600)
	os.WriteFile(filepath.Join(dir, badState+".state"), []byte("[{"), 0o600)

	obs := newCountObserver()
	q = testQueue(t, dir, func(_ *Config, o *Options) {
		o.Routes, o.Observer = relayRoutes(t, down.addr, nil, "relay.test"), obs
	})
	q.Start()
	waitFor(t, "the spool to empty", func() bool { return spoolEmpty(t, dir) })
	// The message whose state was damaged is delivered again, whole.
	waitFor(t, "the message with a damaged state", func() bool { return len(down.received()) == 2 })
	if obs.corrupted != 3 {
		t.Errorf("%d corrupt files counted, want 3", obs.corrupted)
	}
	aside, _ := os.ReadDir(filepath.Join(dir, "corrupt"))
	if len(aside) != 3 { // two messages and one state file
		t.Errorf("%d files in corrupt/, want 3", len(aside))
	}
}

func TestPerDestinationLimit(t *testing.T) {
	down := startSink(t, sinkOptions{})
	var mu sync.Mutex
	cur, peak := 0, 0
	release := make(chan struct{})
	down.rcptReply = func(string) error {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		<-release
		mu.Lock()
		cur--
		mu.Unlock()
		return nil
	}
	dir := t.TempDir()
	q := testQueue(t, dir, func(c *Config, o *Options) {
		o.Routes = relayRoutes(t, down.addr, func(r *RouteConfig) { r.Concurrency = 3 }, "relay.test")
		c.Workers = 10
	})
	q.Start()
	for i := range 10 {
		if _, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{"user@relay.test"},
			Body: testMessage("limit" + string(rune('a'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three sessions at RCPT", func() bool { mu.Lock(); defer mu.Unlock(); return cur == 3 })
	time.Sleep(100 * time.Millisecond) // a fourth would have arrived by now
	close(release)
	waitFor(t, "all ten", func() bool { return len(down.received()) == 10 })
	if peak != 3 {
		t.Errorf("peak concurrency %d, want 3", peak)
	}
}

func TestCommandThroughRunningQueue(t *testing.T) {
	dir := t.TempDir()
	deadAddr := freeAddr(t)
	cfg := DefaultConfig()
	cfg.MinBackoff, cfg.MaxBackoff, cfg.MTASTS = time.Hour, time.Hour, false
	q := testQueue(t, dir, func(c *Config, o *Options) {
		*c = cfg
		o.Routes = relayRoutes(t, deadAddr, nil, "relay.test")
	})
	q.Start()
	id, err := q.Enqueue(context.Background(), &Message{From: "", Rcpts: []string{"user@relay.test"}, Body: testMessage("cli")})
	if err != nil {
		t.Fatal(err)
	}
	// A second Open fails: the spool is held.
	if _, err := Open(cfg, Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	waitFor(t, "a first attempt", func() bool { info, _, _ := Show(dir, id); return len(info.Rcpts) == 1 && info.Rcpts[0].Attempts == 1 })
	if err := Command(context.Background(), cfg, Options{Dir: dir}, "retry "+id, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried attempt", func() bool { info, _, _ := Show(dir, id); return len(info.Rcpts) == 1 && info.Rcpts[0].Attempts == 2 })
	if err := Command(context.Background(), cfg, Options{Dir: dir}, "delete "+id, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !spoolEmpty(t, dir) {
		t.Error("deleted message still in the spool")
	}
	if err := Command(context.Background(), cfg, Options{Dir: dir}, "delete "+id, 10*time.Second); err == nil {
		t.Error("deleting a message twice succeeded")
	}
	if err := Command(context.Background(), cfg, Options{Dir: dir}, "delete ../../etc/passwd", time.Second); err == nil {
		t.Error("a path was taken as an id")
	}
}

func TestCommandWithoutRunningQueue(t *testing.T) {
	dir := t.TempDir()
	rcs := mustRoutes(t, RouteConfig{Domains: []string{"relay.test", "origin.test"}, Hosts: []string{freeAddr(t)}, TLS: TLSNone})
	rs, err := NewRoutes(rcs)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.MTASTS = false
	q := testQueue(t, dir, func(c *Config, o *Options) { *c = cfg; o.Routes = rs })
	id, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{"u@relay.test"}, Body: testMessage("offline")})
	if err != nil {
		t.Fatal(err)
	}
	q.Close(context.Background()) // no moat runs now: the command takes the lock
	if err := Command(context.Background(), cfg, Options{Dir: dir, Hostname: "moat.test", Routes: rs}, "bounce "+id, time.Second); err != nil {
		t.Fatal(err)
	}
	infos, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].ID == id || infos[0].From != "" || infos[0].Origin != "bounce" || infos[0].Rcpts[0].Addr != "a@origin.test" {
		t.Fatalf("after bounce: %+v, want only the DSN to a@origin.test", infos)
	}
	_, data, _ := Show(dir, infos[0].ID)
	_, perRcpt, _ := parseDSN(t, data)
	if len(perRcpt) != 1 || perRcpt[0].Get("Status") != "5.3.0" || !strings.Contains(perRcpt[0].Get("Diagnostic-Code"), "cancelled by the administrator") {
		t.Errorf("operator's bounce: %v", perRcpt)
	}
}
