package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
)

// serverProcess is moat running as a separate process (this test binary,
// see TestMain), so that it can be killed with SIGKILL.
type serverProcess struct {
	cmd   *exec.Cmd
	addrs map[string]string
}

func startProcess(t *testing.T, cfgPath string) *serverProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MOAT_TEST_SERVE="+cfgPath)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, addrs: make(map[string]string)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && strings.Contains(f[1], ":") && !strings.HasSuffix(f[0], ":") {
			p.addrs[f[0]] = f[1]
		}
		if strings.HasPrefix(sc.Text(), "try:") || p.addrs["metrics"] != "" {
			break
		}
	}
	go io.Copy(io.Discard, out)
	if p.addrs["smtp"] == "" || p.addrs["imap"] == "" {
		t.Fatalf("server did not print its addresses (got %v)", p.addrs)
	}
	return p
}

// trySend sends one message and returns nil only on a 250 after DATA.
func trySend(addr string, tc *tls.Config, to, msg string) error {
	c, err := smtp.DialStartTLS(addr, tc)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail("sender@example.net", []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return nil
}

// TestCrashLosesNothing kills moat with SIGKILL in the middle of a stream
// of deliveries, restarts it, and checks that every message that got a 250
// is there and readable over IMAP.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts processes")
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(testConfig(filepath.Join(dir, "data"), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailstore.Open(mailstore.Config{Dir: cfg.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	st.Close()

	p := startProcess(t, cfgPath)
	tc := clientTLS(t, cfg.DataDir)
	const senders, killAfter = 8, 120
	body := strings.Repeat(strings.Repeat("x", 70)+"\r\n", 30)
	var (
		mu     sync.Mutex
		acked  []string
		killed = make(chan struct{})
		once   sync.Once
		wg     sync.WaitGroup
		// failures counts sends that got no 250; lastErr says why.
		failures atomic.Int64
		lastErr  atomic.Value
	)
	for w := 0; w < senders; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-killed:
					return
				default:
				}
				subject := fmt.Sprintf("crash-%d-%d", w, i)
				err := trySend(p.addrs["smtp"], tc, "alice@example.com",
					message("sender@example.net", "alice@example.com", subject, body))
				if err != nil {
					// Refused or cut by the kill: not acknowledged, may or
					// may not be stored.
					failures.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				mu.Lock()
				acked = append(acked, subject)
				n := len(acked)
				mu.Unlock()
				if n >= killAfter {
					once.Do(func() {
						p.cmd.Process.Signal(syscall.SIGKILL)
						close(killed)
					})
				}
			}
		}(w)
	}
	select {
	case <-killed:
	case <-time.After(3 * time.Minute):
		once.Do(func() { close(killed) })
		t.Fatalf("the senders did not reach the kill point: %d acknowledged, %d failed, last error %v",
			len(acked), failures.Load(), lastErr.Load())
	}
	wg.Wait()
	err = p.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("server did not die of SIGKILL: %v", err)
	}

	p2 := startProcess(t, cfgPath)
	c := imapLogin(t, p2.addrs["imap"], tc, "alice@example.com", "pw")
	defer c.Close()
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(allMessages(sel.NumMessages), &imap.FetchOptions{
		Envelope: true, BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != int(sel.NumMessages) {
		t.Errorf("SELECT says %d messages, FETCH 1:* returned %d", sel.NumMessages, len(msgs))
	}
	have := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		got := m.FindBodySection(section)
		if !strings.Contains(string(got), body) {
			t.Errorf("message %q is truncated (%d bytes)", m.Envelope.Subject, len(got))
		}
		have[m.Envelope.Subject] = true
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for _, s := range acked {
		if !have[s] {
			lost++
			t.Errorf("acknowledged message %s is lost", s)
		}
	}
	t.Logf("%d acknowledged before SIGKILL, %d in INBOX after restart, %d lost", len(acked), len(msgs), lost)
}
