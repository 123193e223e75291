package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// BenchmarkSMTPAcceptance sends 10 KB messages through moat's SMTP
// listener from 20 parallel sessions, a new connection for each message
// as smtp-source does, every message fsync'd before its 250, with the
// content filters alone (content) and with SPF, DKIM and DMARC on as well
// (content+auth: the sender's SPF passes, its DKIM signature verifies,
// DMARC passes; a DNS server on loopback answers, and moat's resolver
// cache is warm after the first messages). Run it with
//
//	go test -run '^$' -bench SMTPAcceptance -benchtime 5000x ./cmd/moat
//
// and compare the msg/s of the two beside each other.
func BenchmarkSMTPAcceptance(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	zones := map[string]string{"example.net.": "$TTL 3600\n@ IN SOA ns1 h 1 3600 600 86400 3600\n" +
		`@ IN TXT "v=spf1 ip4:127.0.0.1 -all"` + "\n" +
		`_dmarc IN TXT "v=DMARC1; p=reject"` + "\n" +
		`bench._domainkey IN TXT "v=DKIM1; k=ed25519; p=` + base64.StdEncoding.EncodeToString(pub) + `"` + "\n"}
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(tenKB()), &dkim.SignOptions{
		Domain: "example.net", Selector: "bench", Signer: priv,
	}); err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct{ name, disabled string }{
		{"checks=content", `"rdns", "spf", "dkim", "dmarc", "antivirus"`},
		{"checks=content+auth", `"rdns", "antivirus"`},
	} {
		b.Run(v.name, func(b *testing.B) {
			dns := dnstest.Start(b, zones)
			cfg, err := parseConfig(testConfigWith(b.TempDir(), v.disabled, fmt.Sprintf("[dns]\nupstream = %q\n", dns.Addr())), "bench")
			if err != nil {
				b.Fatal(err)
			}
			a, err := start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close(b.Context())
			if _, err := a.store.AddUser(b.Context(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
				b.Fatal(err)
			}
			msg := signed.Bytes()
			var next, failed atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(int64(len(msg)))
			cpu0 := processCPU()
			b.ResetTimer()
			for range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := sendPlain(a.Addr("smtp"), msg); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
			b.ReportMetric(float64(dns.Queries())/float64(b.N), "dns-queries/msg")
			// CPU of the whole process (server and client) per message:
			// steadier than msg/s on a machine shared with other work.
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d messages failed", n, b.N)
			}
		})
	}
}

// processCPU returns the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sendPlain sends msg from bob@example.net to alice@example.com in a
// session of its own, without TLS (as an MX's peers often do), and wants
// a 250.
func sendPlain(addr string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if err := c.Mail("bob@example.net", nil); err != nil {
		return err
	}
	if err := c.Rcpt("alice@example.com", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
