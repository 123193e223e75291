// Command relaybench measures the outbound queue's relay throughput: C
// goroutines (standing for SMTP sessions) each Enqueue messages of a given
// size, fsync'd as before a 250, into a queue whose relay route points at
// a downstream (Postfix's smtp-sink); it prints the acceptance rate (all
// Enqueue calls returned) and the relay rate (all delivered downstream).
// scripts/relaybench.sh runs it beside smtp-source straight to the sink and
// Postfix relaying to the same sink.
//
//	go run ./scripts/relaybench -sink 127.0.0.1:2526 -c 20 -n 5000 -size 10240
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatmail/moat/delivery/queue"
)

// counter counts final deliveries.
type counter struct {
	sent, other atomic.Int64
	done        chan struct{}
	want        int64
	once        sync.Once
}

func (c *counter) Queued(string) {}
func (c *counter) Delivery(result, _ string, _ time.Duration) {
	switch result {
	case "sent":
		c.sent.Add(1)
	case "deferred":
		return
	default:
		c.other.Add(1)
	}
	if c.sent.Load()+c.other.Load() >= c.want {
		c.once.Do(func() { close(c.done) })
	}
}
func (c *counter) Bounce(string) {}
func (c *counter) Corrupt()      {}

func main() {
	sink := flag.String("sink", "127.0.0.1:2526", "the downstream (smtp-sink) address")
	conc := flag.Int("c", 20, "concurrent enqueuers")
	total := flag.Int("n", 5000, "messages in all")
	size := flag.Int("size", 10*1024, "message size in bytes")
	dir := flag.String("dir", "", "spool folder (default: a temporary folder, removed)")
	workers := flag.Int("workers", 20, "queue.workers and the route's concurrency")
	flag.Parse()

	spool := *dir
	if spool == "" {
		d, err := os.MkdirTemp("", "relaybench-")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(d)
		spool = d
	}
	rcs := []queue.RouteConfig{{Domains: []string{"relay.test"}, Hosts: []string{*sink}, TLS: queue.TLSNone, Concurrency: *workers}}
	if err := queue.ValidateRoutes(rcs); err != nil {
		fail(err)
	}
	routes, err := queue.NewRoutes(rcs)
	if err != nil {
		fail(err)
	}
	cfg := queue.DefaultConfig()
	cfg.Workers, cfg.PerDestination, cfg.MTASTS = *workers, *workers, false
	cnt := &counter{done: make(chan struct{}), want: int64(*total)}
	q, err := queue.Open(cfg, queue.Options{Dir: spool, Hostname: "bench.test", Routes: routes, Observer: cnt,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fail(err)
	}
	q.Start()
	body := message(*size)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *conc {
		wg.Go(func() {
			for next.Add(1) <= int64(*total) {
				if _, err := q.Enqueue(context.Background(), &queue.Message{From: "bench@origin.test",
					Rcpts: []string{"user@relay.test"}, Body: body}); err != nil {
					fail(err)
				}
			}
		})
	}
	wg.Wait()
	accepted := time.Since(start)
	select {
	case <-cnt.done:
	case <-time.After(10 * time.Minute):
		fail(fmt.Errorf("only %d of %d delivered after 10 minutes", cnt.sent.Load(), *total))
	}
	relayed := time.Since(start)
	q.Close(context.Background())
	fmt.Printf("queue: %d x %d B, %d enqueuers, %d workers: accepted (fsync'd) %.0f msg/s, relayed %.0f msg/s (%d sent, %d failed)\n",
		*total, *size, *conc, *workers, float64(*total)/accepted.Seconds(), float64(*total)/relayed.Seconds(),
		cnt.sent.Load(), cnt.other.Load())
}

func message(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: bench@origin.test\r\nTo: user@relay.test\r\nSubject: relay bench\r\nMessage-ID: <bench@origin.test>\r\n\r\n")
	line := bytes.Repeat([]byte("x"), 76)
	for b.Len() < size {
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "relaybench:", err)
	os.Exit(1)
}
