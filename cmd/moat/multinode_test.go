package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/state/redistest"
)

// stateConfig is the [state] section of nodes sharing srv.
func stateConfig(srv *redistest.Server, onError string) string {
	return fmt.Sprintf(`
[state]
backend = "redis"
address = %q
key_prefix = "mx:"
on_error = %q
`, srv.Addr(), onError)
}

// startNode starts one moat node of a cluster sharing srv, with its own
// data folder (its own mailbox store and quarantine) and users.
func startNode(t *testing.T, srv *redistest.Server, disabled, extra, onError string, clock *testClock) *app {
	t.Helper()
	a := startConfig(t, testConfigWith(t.TempDir(), disabled, stateConfig(srv, onError)+extra), startOptions{now: clock.Now})
	t.Cleanup(func() { a.Close(context.Background()) })
	for _, u := range []string{"alice@example.com", "bob@example.com"} {
		if _, err := a.store.AddUser(t.Context(), u, "pw", mailstore.RoleUser); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// TestTwoNodesShareState: two moat nodes on one Redis. A triplet
// greylisted through node A passes when retried through node B; a
// sender's rate limit is one limit across both; a message learned as
// spam through node A's IMAP review (moved into Junk) is known to node
// B's classifier within a second.
func TestTwoNodesShareState(t *testing.T) {
	srv := redistest.Start(t)
	clock := &testClock{now: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}
	extra := `
[filters.greylist]
allow_networks = ["127.0.0.1/32", "127.0.0.5/32"]
[filters.ratelimit]
exempt_networks = []
messages_per_sender = { limit = 4, per = "1h" }
[filters.bayes]
min_spam = 30
min_ham = 30
`
	a := startNode(t, srv, testDisabled, extra, "tempfail", clock)
	b := startNode(t, srv, testDisabled, extra, "tempfail", clock)
	rcpt := []string{"alice@example.com"}

	// Greylisting: deferred by A, passed by B after the delay.
	if r := sendFrom(t, a.Addr("smtp"), "127.0.0.2", "carol@example.net", rcpt); r.code != 451 || !strings.HasPrefix(r.at, "RCPT") {
		t.Fatalf("first attempt through A: %v, want 451 at RCPT", r)
	}
	clock.Advance(6 * time.Minute)
	if r := sendFrom(t, b.Addr("smtp"), "127.0.0.2", "carol@example.net", rcpt); r.code != 250 {
		t.Fatalf("retry through B after the delay: %v, want 250", r)
	}
	if got := metricValue(t, b, `moat_greylist_checks_total{outcome="passed"}`); got != "1" {
		t.Errorf("B counted %q passes, want 1", got)
	}

	// Rate limits: 4 messages an hour from a sender, wherever they go.
	for i, node := range []*app{a, b, a, b} {
		if r := sendFrom(t, node.Addr("smtp"), "127.0.0.5", "dan@example.net", rcpt); r.code != 250 {
			t.Fatalf("message %d of the sender: %v, want 250", i+1, r)
		}
	}
	for _, node := range []*app{a, b} {
		if r := sendFrom(t, node.Addr("smtp"), "127.0.0.5", "dan@example.net", rcpt); r.code != 451 || r.at != "MAIL" {
			t.Errorf("the fifth message: %v, want 451 at MAIL on either node", r)
		}
	}

	// The classifier: trained by `moat bayes train` on the shared store
	// (through node A's configuration), then a message learned as spam
	// through A's IMAP review.
	ctx := context.Background()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	spamDir, hamDir := filepath.Join(dir, "spam"), filepath.Join(dir, "ham")
	os.Mkdir(spamDir, 0o700)
	os.Mkdir(hamDir, 0o700)
	for i := range 30 {
		os.WriteFile(filepath.Join(spamDir, fmt.Sprint(i)), []byte(corpusMessage(r, true, i)), 0o600)
		os.WriteFile(filepath.Join(hamDir, fmt.Sprint(i)), []byte(corpusMessage(r, false, i)), 0o600)
	}
	cfgPath := filepath.Join(dir, "moat.toml")
	os.WriteFile(cfgPath, []byte(testConfig(a.cfg.DataDir, stateConfig(srv, "tempfail")+extra)), 0o600)
	if code, out, errOut := cli(t, "", "bayes", "train", "-config", cfgPath, "--spam", spamDir, "--ham", hamDir); code != 0 ||
		!strings.Contains(out, "30 spam and 30 ham messages read, 30 learned") && !strings.Contains(out, "60 learned") {
		t.Fatalf("bayes train on Redis: exit %d\n%s%s", code, out, errOut)
	}
	waitTotals := func(node *app, spam int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			tot, err := node.bayes.Store().Totals(ctx, "")
			if err == nil && tot.Spam == spam {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node still sees %+v (%v), want %d spam", tot, err, spam)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitTotals(b, 30)

	// A message of words neither class used much: B's classifier is
	// unsure of it until A's user calls it spam.
	odd := "From: Zed <zed@odd.example>\r\nTo: bob@example.com\r\nSubject: quarterly zeppelin inventory\r\n" +
		"Message-ID: <odd.1@odd.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n" +
		strings.Repeat("zeppelin hangar inventory quarterly ballast helium mooring gondola\r\n", 6)
	before, err := b.bayes.Classify(ctx, "", filters.ParseMessage([]byte(odd)))
	if err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	if res := send(t, a.Addr("smtp"), tc, "zed@odd.example", []string{"bob@example.com"}, odd); res.code != 250 {
		t.Fatalf("send through A: %v", res)
	}
	c := imapLogin(t, a.Addr("imap"), tc, "bob@example.com", "pw")
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Junk").Wait(); err != nil {
		t.Fatalf("MOVE to Junk on A: %v", err)
	}
	waitTotals(b, 31)
	after, err := b.bayes.Classify(ctx, "", filters.ParseMessage([]byte(odd)))
	if err != nil {
		t.Fatal(err)
	}
	if after.Probability <= before.Probability || after.Probability < 0.9 {
		t.Errorf("B's spam probability of the message: %.3f before A's user called it spam, %.3f after; want it high after",
			before.Probability, after.Probability)
	}
	if got := metricValue(t, a, `moat_state_redis_duration_seconds_count{command="evalsha"}`); got == "" || got == "0" {
		t.Errorf("Redis commands are not timed: %q", got)
	}
}

// TestRedisKilledMidLoad: Redis is killed (by the pid the test started)
// while two nodes take mail: node A (on_error = "tempfail") defers, node
// B (on_error = "skip") accepts without the shared checks; nothing
// crashes and nothing is refused for good. Redis comes back on the same
// port: both nodes use it again on their own.
func TestRedisKilledMidLoad(t *testing.T) {
	srv := redistest.Start(t)
	clock := &testClock{now: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}
	extra := `
[filters.ratelimit]
exempt_networks = []
`
	disabled := testDisabled + `, "greylist"`
	a := startNode(t, srv, disabled, extra, "tempfail", clock)
	b := startNode(t, srv, disabled, extra, "skip", clock)
	rcpt := []string{"alice@example.com"}

	var mu sync.Mutex
	codes := map[string]map[int]int{"A": {}, "B": {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, node := range []*app{a, b, a, b} {
		name := []string{"A", "B"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				r := sendFrom(t, node.Addr("smtp"), fmt.Sprintf("127.0.1.%d", 1+i), "load@example.net", rcpt)
				mu.Lock()
				codes[name][r.code]++
				mu.Unlock()
			}
		}()
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: codes %v", what, codes)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	count := func(node string, code int) int {
		mu.Lock()
		defer mu.Unlock()
		return codes[node][code]
	}
	waitFor("mail accepted with Redis up", func() bool { return count("A", 250) > 3 && count("B", 250) > 3 })
	srv.Kill()
	a250, b250 := count("A", 250), count("B", 250)
	waitFor("A defers and B accepts with Redis down", func() bool { return count("A", 451) > 3 && count("B", 250) > b250+3 })
	a451 := count("A", 451)
	srv.Restart()
	waitFor("A accepts again after Redis came back", func() bool { return count("A", 250) > a250+3 })
	close(stop)
	wg.Wait()
	for node, m := range codes {
		for code, n := range m {
			if code != 250 && code != 451 {
				t.Errorf("node %s answered %d %d times: want only 250 and 451", node, code, n)
			}
		}
	}
	if codes["B"][451] > 0 {
		t.Errorf("node B (on_error = skip) deferred %d messages", codes["B"][451])
	}
	if a451 == 0 {
		t.Error("node A never deferred")
	}
	if got := metricValue(t, a, `moat_state_redis_errors_total{command="evalsha",kind="connection"}`); got == "" {
		t.Errorf("Redis errors are not counted")
	}
}
