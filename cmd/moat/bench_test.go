package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/state/redistest"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/rules"
)

// tenKB is a well-formed message of 10 KB.
func tenKB() string {
	m := message("bob@example.net", "alice@example.com", "benchmark", "")
	line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	var b strings.Builder
	b.WriteString(m)
	for b.Len() < 10*1024 {
		b.WriteString(line)
	}
	return b.String()
}

// BenchmarkDataPipeline10KB runs the data stage as moat wires it (parse,
// the enabled filters, rules, policy) on a 10 KB message.
func BenchmarkDataPipeline10KB(b *testing.B) {
	cfg, err := parseConfig(testConfig(b.TempDir(), `
[[rules.rule]]
name = "BENCH_RULE"
expr = 'has("GTUBE") || header("Subject") contains "viagra"'
score = 1.0
`), "bench")
	if err != nil {
		b.Fatal(err)
	}
	dns, err := resolver.New(cfg.DNS)
	if err != nil {
		b.Fatal(err)
	}
	built, err := buildFilters(cfg, builtOnce{dns: dns}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer built.close()
	p, err := rules.NewPipeline(cfg.Rules, built.list, nil)
	if err != nil {
		b.Fatal(err)
	}
	pols, err := policies.New(cfg.Policies)
	if err != nil {
		b.Fatal(err)
	}
	raw := []byte(tenKB())
	pol := pols.Default()
	conn := &filters.Connection{Helo: "client.example.net"}
	env := &filters.Envelope{From: "bob@example.net", Rcpts: []string{"alice@example.com"}}
	ctx := context.Background()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := &filters.Input{Conn: conn, Env: env, Msg: filters.ParseMessage(raw)}
		res := p.Run(ctx, filters.StageData, in, pol.Runs)
		v := p.Decide(filters.StageData, in, res, pol)
		if v.Action != policies.ActionAccept {
			b.Fatalf("verdict %v", v)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkSMTPAccept10KB sends 10 KB messages through moat's SMTP front
// over loopback, from parallel sessions (one connection per session, many
// messages each), with the pipeline on and fsync durability.
func BenchmarkSMTPAccept10KB(b *testing.B) { benchSMTPAccept(b, "") }

// BenchmarkSMTPAcceptState is SMTP acceptance with the rate limits
// counting loopback (three stores asked per message: connect, mail,
// rcpt) and the classifier on, with the state in SQLite and memory
// beside Redis on loopback.
func BenchmarkSMTPAcceptState(b *testing.B) {
	const limits = `
[filters.ratelimit]
exempt_networks = []
connections = { limit = 1000000000, per = "1m" }
messages_per_network = { limit = 1000000000, per = "1h" }
messages_per_sender = { limit = 1000000000, per = "1h" }
recipients_per_network = { limit = 1000000000, per = "1h" }
recipients_per_sender = { limit = 1000000000, per = "1h" }
`
	b.Run("sqlite", func(b *testing.B) { benchSMTPAccept(b, limits) })
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		benchSMTPAccept(b, limits+fmt.Sprintf("[state]\nbackend = \"redis\"\naddress = %q\n", srv.Addr()))
	})
}

func benchSMTPAccept(b *testing.B, extra string) {
	benchSMTP(b, testConfig(b.TempDir(), extra), "alice@example.com", nil)
}

// BenchmarkSMTPRelay10KB is SMTP acceptance for a relay domain: each
// message judged, fsync'd into the outbound queue before its 250, and
// relayed to a downstream on loopback; the time runs until the
// downstream has every message.
func BenchmarkSMTPRelay10KB(b *testing.B) {
	d := &downstream{}
	srv := smtp.NewServer(d)
	srv.Domain = "down.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	dir := b.TempDir()
	st, err := mailstore.Open(mailstore.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.AddUser(context.Background(), "postmaster@example.com", "pw", mailstore.RoleAdmin); err != nil {
		b.Fatal(err)
	}
	st.Close()
	text := testConfig(dir, fmt.Sprintf("[[route]]\ndomains = [\"corp.example\"]\nhosts = [%q]\ntls = \"none\"\n", l.Addr().String()))
	text = strings.Replace(text, "[smtp]\n", "[smtp]\nrelay_domains = [\"corp.example\"]\nquarantine_owner = \"postmaster@example.com\"\n", 1)
	benchSMTP(b, text, "user@corp.example", func() {
		for d.count() < b.N {
			time.Sleep(time.Millisecond)
		}
	})
}

// benchSMTP sends 10 KB messages to rcpt through a moat started on the
// configuration text, from 10 × GOMAXPROCS sessions; done, when not nil,
// waits for what must happen after the last 250 before the time stops.
func benchSMTP(b *testing.B, text, rcpt string, done func()) {
	cfg, err := parseConfig(text, "bench")
	if err != nil {
		b.Fatal(err)
	}
	a, err := start(cfg, discardLogger(), nilWriter{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(context.Background())
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		b.Fatal(err)
	}
	msg := tenKB()
	addr := a.Addr("smtp")
	var failed atomic.Int64
	b.SetParallelism(10) // 10 × GOMAXPROCS sessions
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := smtp.Dial(addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		for pb.Next() {
			if err := c.SendMail("bob@example.net", []string{rcpt}, strings.NewReader(msg)); err != nil {
				failed.Add(1)
			}
		}
	})
	if done != nil && failed.Load() == 0 {
		done()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	if failed.Load() > 0 {
		b.Fatalf("%d sends failed", failed.Load())
	}
}
