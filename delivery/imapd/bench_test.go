package imapd

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/gateway/throttle"
)

// fill delivers n messages of about size bytes to a user's INBOX, from
// several goroutines so that the store's group commit batches them.
func fill(tb testing.TB, e *env, u mailstore.User, n, size int) {
	tb.Helper()
	body := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,\r\n", size/66+1)[:size]
	jobs := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				raw := message("bench@example.net", u.Address, fmt.Sprintf("message %d", i),
					"Mon, 2 Mar 2026 10:00:00 +0000", body)
				_, err := e.store.Deliver(context.Background(), &mailstore.Delivery{
					Body:    []byte(raw[:size]),
					Targets: []mailstore.Target{{UserID: u.ID, Mailbox: "INBOX"}},
				})
				if err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
}

// BenchmarkFetch10k is UID FETCH 1:* (BODY.PEEK[]) over 10,000 messages of
// 10 KB, through imapclient on loopback, the literals read to the end. The
// client runs in the same process and takes much of the CPU; against
// Python's imaplib in its own process the server does several times more.
func BenchmarkFetch10k(b *testing.B) {
	const n, size = 10_000, 10 << 10
	e := newEnv(b, Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true}})
	fill(b, e, e.alice, n, size)
	for _, mode := range []string{"plain", "starttls", "imaps"} {
		b.Run(mode, func(b *testing.B) {
			var c *imapclient.Client
			var err error
			switch mode {
			case "plain":
				c, err = imapclient.DialInsecure(e.addr, nil)
			case "starttls":
				c, err = imapclient.DialStartTLS(e.addr, e.options(nil))
			default:
				c, err = imapclient.DialTLS(e.tlsAddr, e.options(nil))
			}
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.Login("alice@example.com", alicePass).Wait(); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, bytes := fetchAll(b, c)
				if got != n || bytes != n*size {
					b.Fatalf("fetched %d messages, %d bytes; want %d, %d", got, bytes, n, n*size)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func fetchAll(b *testing.B, c *imapclient.Client) (msgs, total int) {
	cmd := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			if bs, ok := item.(imapclient.FetchItemDataBodySection); ok {
				k, err := io.Copy(io.Discard, bs.Literal)
				if err != nil {
					b.Fatal(err)
				}
				total += int(k)
			}
		}
		msgs++
	}
	if err := cmd.Close(); err != nil {
		b.Fatal(err)
	}
	return msgs, total
}

// BenchmarkIdleConnection reports the memory one connection costs while it
// waits: logged in only, and with INBOX (1,000 messages) selected and IDLE
// running. The figure is taken over 200 connections and includes the
// imapclient side, which lives in the same process: it is an upper bound.
func BenchmarkIdleConnection(b *testing.B) {
	const conns = 200
	e := newEnv(b, Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true}})
	fill(b, e, e.alice, 1000, 2048)
	for _, mode := range []string{"login", "idle"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				before := liveMemory()
				clients := make([]*imapclient.Client, 0, conns)
				idles := make([]*imapclient.IdleCommand, 0, conns)
				for j := 0; j < conns; j++ {
					c, err := imapclient.DialInsecure(e.addr, nil)
					if err != nil {
						b.Fatal(err)
					}
					if err := c.Login("alice@example.com", alicePass).Wait(); err != nil {
						b.Fatal(err)
					}
					clients = append(clients, c)
					if mode == "login" {
						continue
					}
					if _, err := c.Select("INBOX", nil).Wait(); err != nil {
						b.Fatal(err)
					}
					idle, err := c.Idle()
					if err != nil {
						b.Fatal(err)
					}
					idles = append(idles, idle)
				}
				time.Sleep(100 * time.Millisecond)
				after := liveMemory()
				b.ReportMetric(float64(after-before)/conns/1024, "KiB/conn")
				for _, idle := range idles {
					idle.Close()
				}
				for _, c := range clients {
					c.Close()
				}
			}
		})
	}
}

func liveMemory() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// BenchmarkLargeMailbox is SELECT and SEARCH SUBJECT on a 10,000-message
// INBOX through imapclient on loopback (scripts/mailboxbench measures 1k to
// 100k against Dovecot).
func BenchmarkLargeMailbox(b *testing.B) {
	const n, size = 10_000, 2048
	e := newEnv(b, Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true}})
	fill(b, e, e.alice, n, size)
	c, err := imapclient.DialInsecure(e.addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.com", alicePass).Wait(); err != nil {
		b.Fatal(err)
	}
	b.Run("select", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			data, err := c.Select("INBOX", nil).Wait()
			if err != nil || data.NumMessages != n {
				b.Fatal(data, err)
			}
		}
	})
	b.Run("search-subject", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "message 4242"}}}, nil).Wait()
			if err != nil || len(data.AllUIDs()) != 1 {
				b.Fatal(data, err)
			}
		}
	})
}
