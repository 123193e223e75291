package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/quarantine"
)

// cli runs one moat command line and returns its exit status and output.
func cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(testConfig(filepath.Join(dir, "data"), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		stdin   string
		args    []string
		code    int
		wantOut string
		wantErr string
	}{
		{"version", "", []string{"version"}, 0, "moat ", ""},
		{"check-config", "", []string{"check-config", "-config", cfgPath}, 0, "configuration OK", ""},
		{"user add from stdin", "s3cret\n", []string{"user", "add", "-config", cfgPath, "Alice@Example.com"}, 0, "user alice@example.com created", ""},
		{"user add twice", "x\n", []string{"user", "add", "-config", cfgPath, "alice@example.com"}, 1, "", "already exists"},
		{"user add outside local domains", "x\n", []string{"user", "add", "-config", cfgPath, "eve@elsewhere.example"}, 1, "", "not in a local domain"},
		{"user add empty password", "\n", []string{"user", "add", "-config", cfgPath, "bob@example.com"}, 1, "", "empty password"},
		{"user list", "", []string{"user", "list", "-config", cfgPath}, 0, "alice@example.com", ""},
		{"user passwd", "n3w\n", []string{"user", "passwd", "-config", cfgPath, "alice@example.com"}, 0, "password of alice@example.com changed", ""},
		{"user passwd unknown", "n3w\n", []string{"user", "passwd", "-config", cfgPath, "nobody@example.com"}, 1, "", "no such user"},
		{"unknown command", "", []string{"frobnicate"}, 2, "", "unknown command"},
		{"quarantine show bad id", "", []string{"quarantine", "show", "-config", cfgPath, "x"}, 2, "", "is not an ID"},
		{"quarantine show missing", "", []string{"quarantine", "show", "-config", cfgPath, "42"}, 1, "", "no such quarantined message"},
	}
	for _, s := range steps {
		code, out, errOut := cli(t, s.stdin, s.args...)
		if code != s.code || !strings.Contains(out, s.wantOut) || !strings.Contains(errOut, s.wantErr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				s.name, code, out, errOut, s.code, s.wantOut, s.wantErr)
		}
	}

	// The password set through the CLI works.
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailstore.Open(mailstore.Config{Dir: cfg.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.Authenticate(context.Background(), "alice@example.com", "n3w")
	if err != nil {
		t.Fatalf("password from user passwd: %v", err)
	}
	q, _ := quarantine.New(cfg.Quarantine, st)
	e, err := q.Put(context.Background(), nil, []byte("Subject: caught\r\n\r\nbody\r\n"), quarantine.Record{
		Sender: "spammer@example.net", Recipients: []string{"alice@example.com"}, Subject: "caught", Score: 12,
		Action: "quarantine", Symbols: []filters.Symbol{{Name: "TEST_SYMBOL", Score: 12}},
	}, []int64{u.ID})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	id := strconv.FormatInt(e.ID, 10)

	for _, s := range []struct {
		args    []string
		wantOut string
	}{
		{[]string{"quarantine", "list", "-config", cfgPath}, "spammer@example.net"},
		{[]string{"quarantine", "list", "-config", cfgPath, "-rcpt", "alice@example.com"}, "caught"},
		{[]string{"quarantine", "show", "-config", cfgPath, id}, "symbol: TEST_SYMBOL 12.00"},
		{[]string{"quarantine", "release", "-config", cfgPath, id}, "released " + id + " to 1 recipient(s)"},
	} {
		code, out, errOut := cli(t, "", s.args...)
		if code != 0 || !strings.Contains(out, s.wantOut) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want stdout with %q", s.args, code, out, errOut, s.wantOut)
		}
	}
	if code, _, errOut := cli(t, "", "quarantine", "delete", "-config", cfgPath, id); code != 1 || !strings.Contains(errOut, "no such quarantined message") {
		t.Errorf("delete after release: exit %d, %q", code, errOut)
	}
	if code, _, errOut := cli(t, "", "user", "delete", "-config", cfgPath, "alice@example.com"); code != 0 {
		t.Errorf("user delete: exit %d, %q", code, errOut)
	}
}

func TestImportMaildir(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(testConfig(filepath.Join(dir, "data"), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(md, sub), 0o700)
	}
	os.WriteFile(filepath.Join(md, "cur", "1700000001.a.host:2,FS"), []byte("Subject: one\n\nfirst\n"), 0o600)
	os.WriteFile(filepath.Join(md, "new", "1700000002.b.host"), []byte("Subject: two\r\n\r\nsecond\r\n"), 0o600)
	if code, _, errOut := cli(t, "pw\n", "user", "add", "-config", cfgPath, "alice@example.com"); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut := cli(t, "", "import", "-config", cfgPath, "alice@example.com", md)
	if code != 0 || !strings.Contains(out, "imported 2 messages into INBOX of alice@example.com") {
		t.Fatalf("import: exit %d, %q, %q", code, out, errOut)
	}
	cfg, _ := loadConfig(cfgPath)
	st, err := mailstore.Open(cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, _ := st.LookupUser(context.Background(), "alice@example.com")
	mb, _ := st.Mailbox(context.Background(), u.ID, "INBOX")
	msgs, _ := st.Messages(context.Background(), mb.ID)
	if len(msgs) != 2 {
		t.Fatalf("INBOX holds %d", len(msgs))
	}
	first, _ := st.ReadMessage(msgs[0])
	if string(first) != "Subject: one\r\n\r\nfirst\r\n" || !msgs[0].HasFlag(`\Seen`) || !msgs[0].HasFlag(`\Flagged`) {
		t.Errorf("first message %q flags %v", first, msgs[0].Flags)
	}
	if len(msgs[1].Flags) != 0 {
		t.Errorf("message from new/ has flags %v", msgs[1].Flags)
	}
}
