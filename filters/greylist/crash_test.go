package greylist

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashChildEnv names the database a child process of TestKillMidUpdate
// writes to.
const crashChildEnv = "MOAT_GREYLIST_CRASH_DB"

// crashWorkers is how many goroutines of the child update the store at
// once, so that the kill lands while transactions are in flight.
const crashWorkers = 4

// crashTriplet is the attempt worker w makes for its i-th triplet, from
// a network of its own (so that each pass is counted for its network and
// none is allowed automatically).
func crashTriplet(w, i int) attempt {
	return attempt{ip: fmt.Sprintf("%d.%d.%d.25", 20+w, i/256%256, i%256), from: "sender@example.net",
		rcpt: fmt.Sprintf("w%d-r%d@example.com", w, i)}
}

// TestKillMidUpdate runs a child process (this test binary again) that
// greylists and passes triplets in a loop and reports each pass once
// Check has returned, then kills it with SIGKILL mid-update. The store
// must open, pass SQLite's integrity check, and hold every reported pass.
func TestKillMidUpdate(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	path := t.TempDir() + "/greylist.db"
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillMidUpdate$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 300 // reported passes
	type pass struct{ w, i int }
	var passes []pass
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "passed" {
			continue // the test framework's own output
		}
		w, _ := strconv.Atoi(f[1])
		i, _ := strconv.Atoi(f[2])
		passes = append(passes, pass{w, i})
		if len(passes) == killAfter && !killed {
			// SIGKILL: no deferred function, no Close, no checkpoint.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("the child ended before %d passes (%d reported): %v", killAfter, len(passes), werr)
	}

	st := openStore(t, path)
	var check string
	if err := st.wdb.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	cfg := DefaultConfig()
	ctx := context.Background()
	for _, p := range passes {
		a := crashTriplet(p.w, p.i)
		tr := cfg.Triplet(netip.MustParseAddr(a.ip), a.from, a.rcpt)
		e, err := st.UpdateTriplet(ctx, tr, func(e Entry, found bool) (Entry, bool) {
			if !found {
				e = Entry{}
			}
			return e, false
		})
		if err != nil {
			t.Fatal(err)
		}
		if !e.Passed() {
			t.Errorf("worker %d triplet %d was reported passed and is not stored as passed: %+v", p.w, p.i, e)
		}
	}
	all, err := st.Triplets(ctx, netip.Prefix{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d passes reported before the kill, %d triplets in the store", len(passes), len(all))
}

// crashChild greylists and passes triplets until it is killed, printing
// "passed W I" once the pass of worker W's I-th triplet is committed.
func crashChild(path string) {
	st, err := OpenSQLite(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex // one line per write
	var wg sync.WaitGroup
	for w := range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := start
			f, err := New(DefaultConfig(), st, Options{Now: func() time.Time { return now }})
			if err != nil {
				panic(err)
			}
			for i := 0; ; i++ {
				in := crashTriplet(w, i).input()
				for _, want := range []string{SymNew, SymPassed} {
					r, err := f.Check(context.Background(), in)
					if err != nil || !r.HasSymbol(want) {
						fmt.Fprintf(os.Stderr, "worker %d triplet %d: %+v %v, want %s\n", w, i, r, err, want)
						os.Exit(2)
					}
					now = now.Add(DefaultDelay)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "passed %d %d\n", w, i)
				mu.Unlock()
			}
		}()
	}
	// Expiry runs beside the checks, as in moat serve (at the start of
	// the workers' clocks: it removes nothing they stored).
	go RunExpiry(context.Background(), st, time.Millisecond, Options{Now: func() time.Time { return start }})
	wg.Wait()
}
