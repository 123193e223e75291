package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/queue"
)

// TestBackupUnderLoad takes `moat backup` while 20 SMTP senders deliver,
// restores it into a new data folder and starts moat on it: every message
// acknowledged with 250 before the backup began is readable over IMAP, and
// `moat verify` finds nothing wrong. A copy with a message file removed,
// and one with a truncated index, are reported by verify and refused by
// restore.
func TestBackupUnderLoad(t *testing.T) {
	dir := t.TempDir()
	// Small messages stay inline in the index, larger ones are files: the
	// backup must carry both.
	// A relay route to a closed port: a message for it waits in the
	// outbound queue, which the backup must carry too.
	extra := "[store]\ninline_max = 2048\n[queue]\nmin_backoff = \"1h\"\n" +
		"[[route]]\ndomains = [\"example.net\"]\nhosts = [\"127.0.0.1:9\"]\ntls = \"none\"\n"
	text := testConfig(dir, extra)
	confFile := filepath.Join(t.TempDir(), "moat.toml")
	if err := os.WriteFile(confFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startConfig(t, text, startOptions{})
	defer a.Close(t.Context())
	if _, err := a.store.AddUser(t.Context(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, dir)

	type acked struct {
		id string
		at time.Time
	}
	var (
		mu     sync.Mutex
		got    []acked
		errs   []error
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		filler = strings.Repeat("moat backup test line\r\n", 200) // ~4.6 KB: a file
	)
	for s := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("s%d-m%d@backup.test", s, i)
				body := "short"
				if i%2 == 1 {
					body = filler
				}
				msg := fmt.Sprintf("From: <bob@example.net>\r\nTo: <alice@example.com>\r\nSubject: %s\r\n"+
					"Date: %s\r\nMessage-ID: <%s>\r\n\r\n%s\r\n", id, time.Now().Format(time.RFC1123Z), id, body)
				err := trySend(a.Addr("smtp"), tc, "alice@example.com", msg)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					got = append(got, acked{id, time.Now()})
				}
				mu.Unlock()
			}
		}()
	}
	waitFor := func(n int) {
		deadline := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d messages acknowledged, waiting for %d", k, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(60)
	queued, err := a.queue.Enqueue(t.Context(), &queue.Message{From: "alice@example.com", Rcpts: []string{"bob@example.net"},
		Body: []byte("Subject: waiting in the queue\r\n\r\nHello.\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	bak := filepath.Join(t.TempDir(), "backup")
	var out bytes.Buffer
	if code := run([]string{"backup", "-config", confFile, bak}, nil, &out, &out); code != 0 {
		t.Fatalf("moat backup: exit %d: %s", code, out.String())
	}
	t.Log(strings.TrimSpace(out.String()))
	mu.Lock()
	n := len(got)
	mu.Unlock()
	waitFor(n + 20) // the senders go on after the backup
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d sends failed, the first: %v", len(errs), errs[0])
	}
	want := map[string]bool{}
	for _, g := range got {
		if g.at.Before(began) {
			want[g.id] = true
		}
	}

	// moat verify on the backup and on the live store.
	for _, d := range []string{bak, dir} {
		out.Reset()
		if code := run([]string{"verify", d}, nil, &out, &out); code != 0 {
			t.Fatalf("moat verify %s: exit %d:\n%s", d, code, out.String())
		}
	}
	restored := filepath.Join(t.TempDir(), "restored")
	out.Reset()
	if code := run([]string{"restore", bak, restored}, nil, &out, &out); code != 0 {
		t.Fatalf("moat restore: exit %d: %s", code, out.String())
	}
	if code := run([]string{"restore", bak, restored}, nil, &out, &out); code == 0 {
		t.Fatal("moat restore into a non-empty folder succeeded")
	}
	out.Reset()
	if code := run([]string{"verify", restored}, nil, &out, &out); code != 0 {
		t.Fatalf("moat verify of the restored folder: exit %d:\n%s", code, out.String())
	}
	b := startConfig(t, testConfig(restored, extra), startOptions{})
	defer b.Close(t.Context())
	if _, body, err := queue.Show(filepath.Join(restored, "queue"), queued); err != nil || !strings.Contains(string(body), "waiting in the queue") {
		t.Errorf("the queued message after restore: %v", err)
	}
	if n := b.queue.Stats().Messages; n != 1 {
		t.Errorf("the restored queue holds %d messages, want 1", n)
	}
	c := imapLogin(t, b.Addr("imap"), clientTLS(t, restored), "alice@example.com", "pw")
	msgs := fetchAll(t, c, "INBOX")
	c.Close()
	have := map[string]bool{}
	for _, m := range msgs {
		for _, line := range strings.Split(m, "\r\n") {
			if id, ok := strings.CutPrefix(line, "Message-ID: <"); ok {
				have[strings.TrimSuffix(id, ">")] = true
			}
		}
	}
	missing := 0
	for id := range want {
		if !have[id] {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged before the backup began, absent after restore: %s", id)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d messages acknowledged before the backup are missing", missing, len(want))
	}
	t.Logf("%d messages acknowledged before the backup, all restored; %d in the restored INBOX, %d acknowledged in all",
		len(want), len(msgs), len(got))

	// Damaged copies: verify reports them, restore refuses them.
	damaged := func(name string, damage func(dir string)) {
		t.Helper()
		d := filepath.Join(t.TempDir(), name)
		if err := os.CopyFS(d, os.DirFS(bak)); err != nil {
			t.Fatal(err)
		}
		damage(d)
		out.Reset()
		if code := run([]string{"verify", d}, nil, &out, &out); code != 1 {
			t.Errorf("%s: moat verify exit %d, want 1:\n%s", name, code, out.String())
		}
		report := out.String()
		target := filepath.Join(t.TempDir(), "target")
		out.Reset()
		if code := run([]string{"restore", d, target}, nil, &out, &out); code == 0 {
			t.Errorf("%s: moat restore accepted it", name)
		}
		if entries, _ := os.ReadDir(target); len(entries) > 0 {
			t.Errorf("%s: moat restore wrote into %s", name, target)
		}
		t.Logf("%s: verify says:\n%s", name, report)
	}
	damaged("missing-file", func(d string) {
		files, _ := filepath.Glob(filepath.Join(d, "data", "blobs", "*", "*"))
		if len(files) == 0 {
			t.Fatal("no message file in the backup")
		}
		os.Remove(files[0])
	})
	damaged("truncated-index", func(d string) {
		p := filepath.Join(d, "data", "index.db")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		os.Truncate(p, fi.Size()/2)
	})
	// The same damage in a data folder (no manifest): verify reports it
	// from the index alone.
	live := filepath.Join(t.TempDir(), "folder")
	if err := os.CopyFS(live, os.DirFS(restored)); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(live, "blobs", "*", "*"))
	os.Remove(files[0])
	out.Reset()
	if code := run([]string{"verify", live}, nil, &out, &out); code != 1 || !strings.Contains(out.String(), "missing: message file") {
		t.Errorf("data folder with a missing message file: exit %d:\n%s", code, out.String())
	}
}
