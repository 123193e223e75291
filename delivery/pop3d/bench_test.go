package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/gateway/throttle"
)

// fill delivers n messages of size bytes to a user's INBOX, from several
// goroutines so that the store's group commit batches them.
func fill(tb testing.TB, st *mailstore.Store, u mailstore.User, n, size int) {
	tb.Helper()
	body := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,\r\n", size/66+1)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				raw := message(fmt.Sprintf("message %d", i), body)[:size-2] + "\r\n"
				_, err := st.Deliver(context.Background(), &mailstore.Delivery{
					Body:    []byte(raw),
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

// readRetr reads one RETR response and returns the size of its body.
func readRetr(r *bufio.Reader) (int, error) {
	status, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(status, []byte("+OK")) {
		return 0, fmt.Errorf("RETR: %q", status)
	}
	n := 0
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return n, err
		}
		if len(line) == 3 && line[0] == '.' {
			return n, nil
		}
		n += len(line)
	}
}

// BenchmarkRetr1000 retrieves 1,000 messages of 10 KB with RETR over one
// loopback connection, per iteration, and reports messages per second.
// The client runs in this process and takes a share of the CPU.
//
//   - sequential: one RETR at a time, each answer read before the next
//     command is sent (what poplib and most clients do);
//   - pipelined: all commands written at once (RFC 2449 PIPELINING, as
//     fetchmail does when the server offers it);
//   - stls: sequential, over TLS.
//
// Messages are inline in the index (the store's default for 10 KB) or,
// in the "file" variants, one file each.
func BenchmarkRetr1000(b *testing.B) {
	const n, size = 1000, 10 << 10
	for _, storage := range []string{"inline", "file"} {
		b.Run(storage, func(b *testing.B) {
			inlineMax := 0
			if storage == "file" {
				inlineMax = -1
			}
			saved := storeInlineMax
			storeInlineMax = inlineMax
			e := newEnv(b, Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true}})
			storeInlineMax = saved
			fill(b, e.store, e.alice, n, size)
			for _, mode := range []string{"sequential", "pipelined", "stls"} {
				b.Run(mode, func(b *testing.B) {
					var cl *client
					if mode == "stls" {
						cl = e.dialSTLS(b)
					} else {
						cl = e.dial(b)
					}
					cl.mustLogin(aliceAddr, alicePass)
					cl.c.SetDeadline(time.Time{})
					r := bufio.NewReaderSize(cl.c, 64<<10)
					var cmds bytes.Buffer
					for i := 1; i <= n; i++ {
						cmds.WriteString("RETR " + strconv.Itoa(i) + "\r\n")
					}
					b.SetBytes(n * size)
					b.ResetTimer()
					for it := 0; it < b.N; it++ {
						if mode == "pipelined" {
							go func() { cl.c.Write(cmds.Bytes()) }()
							for i := 0; i < n; i++ {
								if _, err := readRetr(r); err != nil {
									b.Fatal(err)
								}
							}
							continue
						}
						for i := 1; i <= n; i++ {
							if _, err := io.WriteString(cl.c, "RETR "+strconv.Itoa(i)+"\r\n"); err != nil {
								b.Fatal(err)
							}
							if got, err := readRetr(r); err != nil || got != size {
								b.Fatalf("RETR %d: %d bytes, %v", i, got, err)
							}
						}
					}
					b.StopTimer()
					b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
					io.WriteString(cl.c, "QUIT\r\n")
				})
			}
		})
	}
}
