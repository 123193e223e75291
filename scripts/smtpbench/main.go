// Command smtpbench measures SMTP acceptance: N parallel clients over
// loopback each send messages of a given size, and it prints messages/s and
// latency percentiles of the whole transaction (MAIL to the final reply).
//
//	go run ./scripts/smtpbench -addr 127.0.0.1:2525 -rcpt demo@example.test -c 20 -n 5000
package main

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "SMTP server address")
	rcpt := flag.String("rcpt", "demo@example.test", "recipient")
	from := flag.String("from", "bench@example.net", "sender")
	conc := flag.Int("c", 20, "parallel sessions")
	total := flag.Int("n", 5000, "messages in all")
	size := flag.Int("size", 10*1024, "message size in bytes")
	perConn := flag.Int("per-conn", 1, "messages per connection (1: a new connection for each, like smtp-source)")
	startTLS := flag.Bool("starttls", false, "use STARTTLS (certificate not verified)")
	dkimKey := flag.String("dkim-key", "", "sign the message with this PKCS#8 PEM private key (RSA or Ed25519)")
	dkimSelector := flag.String("dkim-selector", "bench", "DKIM selector of -dkim-key")
	flag.Parse()

	msg := buildMessage(*from, *rcpt, *size)
	if *dkimKey != "" {
		var err error
		if msg, err = sign(msg, *dkimKey, (*from)[strings.LastIndexByte(*from, '@')+1:], *dkimSelector); err != nil {
			fmt.Fprintln(os.Stderr, "dkim:", err)
			os.Exit(1)
		}
	}
	var next atomic.Int64
	var failed atomic.Int64
	lat := make([][]time.Duration, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for next.Load() < int64(*total) {
				c, err := dial(*addr, *startTLS)
				if err != nil {
					fmt.Fprintln(os.Stderr, "dial:", err)
					failed.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				for i := 0; i < *perConn; i++ {
					if next.Add(1) > int64(*total) {
						break
					}
					t0 := time.Now()
					if err := sendOne(c, *from, *rcpt, msg); err != nil {
						fmt.Fprintln(os.Stderr, "send:", err)
						failed.Add(1)
						break
					}
					lat[w] = append(lat[w], time.Since(t0))
				}
				c.Quit()
				c.Close()
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(float64(len(all)-1)*p)]
	}
	fmt.Printf("sent %d messages of %d bytes in %.2fs with %d sessions (%d per connection): %.0f msg/s; failed %d\n",
		len(all), *size, elapsed.Seconds(), *conc, *perConn, float64(len(all))/elapsed.Seconds(), failed.Load())
	fmt.Printf("latency p50 %v  p90 %v  p99 %v  max %v\n",
		pct(.5).Round(time.Microsecond), pct(.9).Round(time.Microsecond), pct(.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
}

func dial(addr string, startTLS bool) (*smtp.Client, error) {
	var c *smtp.Client
	var err error
	if startTLS {
		c, err = smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = smtp.Dial(addr)
	}
	if err != nil {
		return nil, err
	}
	if err := c.Hello("bench.example.net"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func sendOne(c *smtp.Client, from, rcpt string, msg []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}

// sign adds a DKIM-Signature (RFC 6376) made with the key in keyFile.
func sign(msg []byte, keyFile, domain, selector string) ([]byte, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", keyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", keyFile)
	}
	var out bytes.Buffer
	err = dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: selector, Signer: signer})
	return out.Bytes(), err
}

// buildMessage returns a well-formed message of about size bytes.
func buildMessage(from, rcpt string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: benchmark\r\nDate: %s\r\nMessage-ID: <%d@bench.example.net>\r\n\r\n",
		from, rcpt, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String()[:size-2] + "\r\n")
}
