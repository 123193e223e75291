package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/moatmail/moat/delivery/mailstore"
)

// TestMbsync syncs a mailbox both ways with isync's mbsync over STARTTLS:
// mail delivered by SMTP reaches the local Maildir, a message written into
// the Maildir reaches the server, and a flag set locally is set on the
// server.
func TestMbsync(t *testing.T) {
	mbsync := needTool(t, "mbsync")
	a := startTest(t, "")
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	for i := 0; i < 3; i++ {
		if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"},
			message("bob@example.net", "alice@example.com", fmt.Sprintf("server-%d", i), "body")); r.code != 250 {
			t.Fatal(r)
		}
	}
	dir := t.TempDir()
	maildir := filepath.Join(dir, "mail")
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	host, port := splitAddr(t, a.Addr("imap"))
	rc := fmt.Sprintf(`IMAPAccount moat
Host %s
Port %s
User alice@example.com
Pass pw
SSLType STARTTLS
CertificateFile %s

IMAPStore moat-remote
Account moat

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel moat
Far :moat-remote:
Near :local:
Patterns INBOX
Create Both
Sync All
Expunge None
SyncState *
`, host, port, filepath.Join(a.cfg.DataDir, "tls", "cert.pem"), maildir, maildir)
	rcPath := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	sync := func() {
		t.Helper()
		out, err := exec.Command(mbsync, "-c", rcPath, "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
	}
	sync()
	files, _ := filepath.Glob(filepath.Join(maildir, "INBOX", "*", "*"))
	if len(files) != 3 {
		t.Fatalf("local Maildir holds %d messages after the first sync, want 3: %v", len(files), files)
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), "Subject: server-") || !strings.Contains(string(b), "X-Spam-Status:") {
			t.Errorf("%s is not a message moat delivered:\n%s", f, b)
		}
	}

	// A message written locally is uploaded; a local \Seen reaches the
	// server (Maildir flag S in the file name).
	local := message("alice@example.com", "alice@example.com", "written-locally", "draft")
	if err := os.WriteFile(filepath.Join(maildir, "INBOX", "cur", "1700000000.local.host:2,"), []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	first := files[0]
	if err := os.Rename(first, first+"S"); err != nil {
		t.Fatal(err)
	}
	sync()

	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	defer c.Close()
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 4 {
		t.Fatalf("server INBOX holds %d after the second sync, want 4", sel.NumMessages)
	}
	msgs, err := c.Fetch(allMessages(sel.NumMessages), &imap.FetchOptions{Envelope: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	seen, uploaded := 0, false
	for _, m := range msgs {
		for _, f := range m.Flags {
			if f == imap.FlagSeen {
				seen++
			}
		}
		uploaded = uploaded || m.Envelope.Subject == "written-locally"
	}
	if !uploaded {
		t.Error("the locally written message did not reach the server")
	}
	if seen != 1 {
		t.Errorf("%d messages are \\Seen on the server, want 1 (set locally)", seen)
	}
}
