package mailstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func openTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// addTestUsers adds users with the password "pw".
func addTestUsers(t testing.TB, s *Store, addrs ...string) []User {
	t.Helper()
	var out []User
	for _, a := range addrs {
		u, err := s.AddUser(context.Background(), a, "pw", RoleUser)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func TestUsersAndAuth(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	u, err := s.AddUser(ctx, "Alice@Example.COM", "s3cret", RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	if u.Address != "alice@example.com" {
		t.Errorf("address = %q, want lower case", u.Address)
	}
	if _, err := s.AddUser(ctx, "alice@example.com", "x", RoleUser); !errors.Is(err, ErrUserExists) {
		t.Errorf("duplicate AddUser: err = %v, want ErrUserExists", err)
	}
	for _, tc := range []struct {
		addr, pass string
		ok         bool
	}{
		{"alice@example.com", "s3cret", true},
		{"ALICE@example.com", "s3cret", true},
		{"alice@example.com", "wrong", false},
		{"bob@example.com", "s3cret", false},
	} {
		_, err := s.Authenticate(ctx, tc.addr, tc.pass)
		if (err == nil) != tc.ok {
			t.Errorf("Authenticate(%s, %s) = %v, want ok=%v", tc.addr, tc.pass, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrAuthFailed) {
			t.Errorf("Authenticate error %v is not ErrAuthFailed", err)
		}
	}
	mbs, err := s.Mailboxes(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(mbs) != len(DefaultMailboxes) {
		t.Errorf("got %d mailboxes, want %d", len(mbs), len(DefaultMailboxes))
	}
	if err := s.SetPassword(ctx, "alice@example.com", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice@example.com", "new"); err != nil {
		t.Errorf("after SetPassword: %v", err)
	}
	if err := s.DeleteUser(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupUser(ctx, "alice@example.com"); !errors.Is(err, ErrNoUser) {
		t.Errorf("after DeleteUser: %v", err)
	}
}

func TestIndexIsPrivate(t *testing.T) {
	s := openTestStore(t)
	if _, err := s.AddUser(context.Background(), "a@example.com", "pw", RoleUser); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index.db", "index.db-wal"} {
		fi, err := os.Stat(filepath.Join(s.cfg.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", name, fi.Mode().Perm())
		}
	}
}

func TestVerifyPasswordBcrypt(t *testing.T) {
	// htpasswd -nbB x secret
	const hash = "$2y$05$4GQZ8vBq5l7yC4y7zjE9..0nZQp1k4b8y7h5t6Xn6m0Hq9h9J9Y1e"
	if VerifyPassword(hash, "not-it") {
		t.Error("bcrypt hash accepted a wrong password")
	}
	if VerifyPassword("$argon2id$garbage", "x") || VerifyPassword("", "") {
		t.Error("malformed hash accepted")
	}
}

// storageModes runs a test with messages inline in the index and with
// messages in files.
var storageModes = []struct {
	name      string
	inlineMax int
}{{"inline", 0}, {"files", -1}}

func TestDeliverCopyMoveExpunge(t *testing.T) {
	for _, mode := range storageModes {
		t.Run(mode.name, func(t *testing.T) { testDeliverCopyMoveExpunge(t, mode.inlineMax) })
	}
}

func testDeliverCopyMoveExpunge(t *testing.T, inlineMax int) {
	ctx := context.Background()
	s, err := Open(Config{Dir: t.TempDir(), InlineMax: inlineMax})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ := s.AddUser(ctx, "a@example.com", "pw", RoleUser)
	b, _ := s.AddUser(ctx, "b@example.com", "pw", RoleUser)
	changes, stop := func() (<-chan struct{}, func()) {
		inbox, err := s.Mailbox(ctx, a.ID, "inbox")
		if err != nil {
			t.Fatal(err)
		}
		return s.Watch(inbox.ID)
	}()
	defer stop()

	placed, err := s.Deliver(ctx, &Delivery{
		Header:  []byte("Received: test\r\n"),
		Body:    []byte("Subject: hi\r\n\r\nbody\r\n"),
		Targets: []Target{{a.ID, "INBOX"}, {b.ID, "INBOX"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(placed) != 2 || placed[0].UID != 1 || placed[1].UID != 1 {
		t.Fatalf("placed = %+v", placed)
	}
	select {
	case <-changes:
	default:
		t.Error("no change notice after delivery")
	}
	msgs, err := s.Messages(ctx, placed[0].MailboxID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages = %v, %v", msgs, err)
	}
	data, err := s.ReadMessage(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "Received: test\r\nSubject: hi\r\n\r\nbody\r\n"; got != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	if msgs[0].Size != int64(len(data)) {
		t.Errorf("size = %d, want %d", msgs[0].Size, len(data))
	}

	junk, _ := s.Mailbox(ctx, a.ID, "Junk")
	res, err := s.Move(ctx, placed[0].MailboxID, []uint32{1}, junk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DestUIDs) != 1 || res.DestUIDs[0] != 1 || res.UIDValidity != junk.UIDValidity {
		t.Errorf("move result = %+v", res)
	}
	if msgs, _ := s.Messages(ctx, placed[0].MailboxID); len(msgs) != 0 {
		t.Errorf("INBOX still holds %d after move", len(msgs))
	}
	// Cross-user copies are refused: users see only their own mail.
	binbox, _ := s.Mailbox(ctx, b.ID, "INBOX")
	if _, err := s.Copy(ctx, junk.ID, []uint32{1}, binbox.ID); err == nil {
		t.Error("copy across users succeeded")
	}

	// b expunges its copy: the blob stays, a still holds it.
	if _, err := s.StoreFlags(ctx, binbox.ID, []uint32{1}, FlagsAdd, []string{`\Deleted`, `\Seen`}); err != nil {
		t.Fatal(err)
	}
	if gone, err := s.Expunge(ctx, binbox.ID, nil); err != nil || len(gone) != 1 {
		t.Fatalf("expunge = %v, %v", gone, err)
	}
	jm, _ := s.Messages(ctx, junk.ID)
	if _, err := s.ReadMessage(jm[0]); err != nil {
		t.Fatalf("blob removed while still referenced: %v", err)
	}
	// a expunges the last copy: the file goes.
	s.StoreFlags(ctx, junk.ID, []uint32{jm[0].UID}, FlagsSet, []string{`\Deleted`})
	if gone, _ := s.Expunge(ctx, junk.ID, []uint32{jm[0].UID}); len(gone) != 1 {
		t.Fatalf("expunge last copy: %v", gone)
	}
	if (jm[0].BlobKey == "") != (inlineMax == 0) {
		t.Errorf("blob key %q with inline_max %d", jm[0].BlobKey, inlineMax)
	}
	if jm[0].BlobKey != "" {
		if _, err := os.Stat(s.blobPath(jm[0].BlobKey)); !os.IsNotExist(err) {
			t.Errorf("blob file still there after last reference expunged: %v", err)
		}
	}
	var blobs int
	s.DB().QueryRow("SELECT count(*) FROM blobs").Scan(&blobs)
	if blobs != 0 {
		t.Errorf("%d blobs left after every message was expunged", blobs)
	}
}

func TestUIDValidityAndUIDsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := s.AddUser(ctx, "a@example.com", "pw", RoleUser)
	for i := 0; i < 3; i++ {
		if _, err := s.Deliver(ctx, &Delivery{Body: []byte("x\r\n"), Targets: []Target{{u.ID, "INBOX"}}}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.Mailbox(ctx, u.ID, "INBOX")
	s.Close()
	s, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after, _ := s.Mailbox(ctx, u.ID, "INBOX")
	if after.UIDValidity != before.UIDValidity || after.UIDNext != 4 {
		t.Errorf("after restart: %+v, before %+v", after, before)
	}
	// A mailbox re-created under a used name gets a new UIDVALIDITY.
	if _, err := s.CreateMailbox(ctx, u.ID, "Work", ""); err != nil {
		t.Fatal(err)
	}
	w1, _ := s.Mailbox(ctx, u.ID, "Work")
	s.DeleteMailbox(ctx, u.ID, "Work")
	s.CreateMailbox(ctx, u.ID, "Work", "")
	w2, _ := s.Mailbox(ctx, u.ID, "Work")
	if w1.UIDValidity == w2.UIDValidity {
		t.Error("re-created mailbox kept its UIDVALIDITY")
	}
}

func TestConcurrentDeliveriesGetDistinctUIDs(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	u, _ := s.AddUser(ctx, "a@example.com", "pw", RoleUser)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Deliver(ctx, &Delivery{Body: []byte(fmt.Sprintf("n: %d\r\n\r\n", i)), Targets: []Target{{u.ID, "INBOX"}}})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := s.Mailbox(ctx, u.ID, "INBOX")
	msgs, _ := s.Messages(ctx, inbox.ID)
	if len(msgs) != 50 {
		t.Fatalf("%d messages, want 50", len(msgs))
	}
	for i, m := range msgs {
		if m.UID != uint32(i+1) {
			t.Fatalf("uid[%d] = %d", i, m.UID)
		}
	}
}

func BenchmarkDeliver10KB(b *testing.B) {
	for _, mode := range storageModes {
		b.Run(mode.name, func(b *testing.B) { benchmarkDeliver(b, mode.inlineMax) })
	}
}

func benchmarkDeliver(b *testing.B, inlineMax int) {
	ctx := context.Background()
	s, err := Open(Config{Dir: b.TempDir(), InlineMax: inlineMax})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	u, _ := s.AddUser(ctx, "a@example.com", "pw", RoleUser)
	body := make([]byte, 10*1024)
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Deliver(ctx, &Delivery{Body: body, Targets: []Target{{u.ID, "INBOX"}}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
