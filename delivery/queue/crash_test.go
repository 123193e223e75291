package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The crash test runs the queue in a child process (this test binary,
// re-executed), which queues messages for a downstream that is down and
// prints each one's number once Enqueue has returned (when moat would
// answer 250). After 1,000 the parent kills it with SIGKILL, mid-write
// for all it knows, starts the downstream, reopens the spool in-process
// and checks that every acknowledged message arrives exactly once.

const crashChildEnv = "MOAT_QUEUE_CRASH_CHILD"

// TestCrashChild is the child's body; it does nothing unless started by
// TestCrashSafety.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("the child process of TestCrashSafety")
	}
	dir, down, _ := strings.Cut(spec, ",")
	cfg := DefaultConfig()
	cfg.MinBackoff, cfg.MaxBackoff, cfg.MTASTS = 20*time.Millisecond, 100*time.Millisecond, false
	routes, err := NewRoutes(mustRoutes(t, RouteConfig{Domains: []string{"relay.test"}, Hosts: []string{down}, TLS: TLSNone}))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(cfg, Options{Dir: dir, Hostname: "moat.test", Routes: routes, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	q.Start() // attempts (and state writes) run while the parent kills us
	// Twenty senders at once, as twenty SMTP sessions would.
	var mu sync.Mutex
	var next atomic.Int64
	for range 20 {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if _, err := q.Enqueue(context.Background(), &Message{From: "a@origin.test", Rcpts: []string{"user@relay.test"},
					Body: crashMessage(i)}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "acked %d\n", i)
				mu.Unlock()
			}
		}()
	}
	select {}
}

func crashMessage(i int) []byte {
	return fmt.Appendf(nil, "From: a@origin.test\r\nTo: user@relay.test\r\nSubject: crash %d\r\nMessage-ID: <crash-%d@origin.test>\r\n\r\n%s\r\n",
		i, i, strings.Repeat("x", 1000))
}

var crashID = regexp.MustCompile(`Message-ID: <crash-(\d+)@origin.test>`)

// TestCrashSafety: the downstream is go-smtp's server.
func TestCrashSafety(t *testing.T) {
	crashSafety(t, func(t *testing.T, addr string) func() [][]byte {
		sink := startSink(t, sinkOptions{addr: addr})
		return func() [][]byte {
			var out [][]byte
			for _, m := range sink.received() {
				out = append(out, m.data)
			}
			return out
		}
	})
}

// TestCrashSafetyPostfix: the downstream is Debian's Postfix, stopped
// while moat queues and is killed, started with moat's restart. It takes
// about 35 s on two cores under -race (Postfix takes the 1,000 messages at
// its own pace), so it runs only with MOAT_LONG_TESTS=1:
//
//	MOAT_LONG_TESTS=1 go test -race -run TestCrashSafetyPostfix ./delivery/queue/
func TestCrashSafetyPostfix(t *testing.T) {
	if os.Getenv("MOAT_LONG_TESTS") != "1" {
		t.Skip("long: set MOAT_LONG_TESTS=1 to run it")
	}
	crashSafety(t, func(t *testing.T, addr string) func() [][]byte {
		pf := startPostfixAt(t, addr, []string{"user@relay.test"}, "")
		return func() [][]byte { return pf.mailbox("user@relay.test") }
	})
}

// crashSafety runs the child, kills it, starts the downstream on the
// address the child used (up returns what the downstream holds) and
// restarts the queue.
func crashSafety(t *testing.T, up func(t *testing.T, addr string) func() [][]byte) {
	if testing.Short() {
		t.Skip("-short")
	}
	const want = 1000
	dir := t.TempDir()
	down := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir+","+down)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	acked := map[int]bool{}
	sc := bufio.NewScanner(stdout)
	for len(acked) < want && sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			i, _ := strconv.Atoi(n)
			acked[i] = true
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(acked) < want {
		t.Fatalf("the child acknowledged %d messages before it ended: %s", len(acked), stderr.String())
	}

	killed := time.Now()
	// The downstream comes back; moat restarts on the spool.
	received := up(t, down)
	q := testQueue(t, dir, func(_ *Config, o *Options) {
		o.Routes = relayRoutes(t, down, nil, "relay.test")
	})
	q.Start()
	count := func() map[int]int {
		got := map[int]int{}
		for _, m := range received() {
			if mm := crashID.FindSubmatch(m); mm != nil {
				i, _ := strconv.Atoi(string(mm[1]))
				got[i]++
			}
		}
		return got
	}
	waitFor(t, "every acknowledged message", func() bool {
		got := count()
		for i := range acked {
			if got[i] == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, "the spool to empty", func() bool { return spoolEmpty(t, dir) })
	got := count()
	for i, n := range got {
		if n != 1 {
			t.Errorf("message %d arrived %d times", i, n)
		}
	}
	// Messages queued but not yet acknowledged at the kill may arrive
	// (written whole) or not (left in tmp/): never twice.
	t.Logf("%d acknowledged in %v, %d arrived in %v", len(acked), killed.Sub(start).Round(time.Millisecond),
		len(got), time.Since(killed).Round(time.Millisecond))
}
