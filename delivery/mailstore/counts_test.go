package mailstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
)

// scanCounts counts a mailbox the slow way, for comparison with the counts
// the triggers keep.
func scanCounts(t *testing.T, st *mailstore.Store, mailboxID int64) [4]int64 {
	t.Helper()
	msgs, err := st.Messages(context.Background(), mailboxID)
	if err != nil {
		t.Fatal(err)
	}
	var c [4]int64
	for _, m := range msgs {
		c[0]++
		if !m.HasFlag(`\Seen`) {
			c[1]++
		}
		if m.HasFlag(`\Deleted`) {
			c[2]++
		}
		c[3] += m.Size
	}
	return c
}

func checkCounts(t *testing.T, st *mailstore.Store, userID int64, name, step string) {
	t.Helper()
	s, err := st.Status(context.Background(), userID, name)
	if err != nil {
		t.Fatal(err)
	}
	got := [4]int64{int64(s.Messages), int64(s.Unseen), int64(s.Deleted), s.Size}
	if want := scanCounts(t, st, s.ID); got != want {
		t.Errorf("%s: %s counts (messages, unseen, deleted, size) = %v, want %v", step, name, got, want)
	}
}

// TestCountsFollowChanges: the counts kept in the index agree with a scan
// after every kind of change.
func TestCountsFollowChanges(t *testing.T) {
	ctx := context.Background()
	st, err := mailstore.Open(mailstore.Config{Dir: t.TempDir(), InlineMax: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.AddUser(ctx, "alice@example.com", "pw", mailstore.RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := st.Mailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	archive, err := st.CreateMailbox(ctx, u.ID, "Archive", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		// Sizes on both sides of InlineMax: inline and file blobs.
		body := fmt.Sprintf("Subject: m%d\r\n\r\n%s\r\n", i, strings.Repeat("x", i*40))
		if _, err := st.Deliver(ctx, &mailstore.Delivery{Body: []byte(body),
			Targets: []mailstore.Target{{UserID: u.ID, Mailbox: "INBOX"}, {UserID: u.ID, Mailbox: "Archive"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Append(ctx, inbox.ID, []byte("Subject: a\r\n\r\nx\r\n"), []string{`\Seen`}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, st, u.ID, "INBOX", "deliver")
	steps := []struct {
		name string
		do   func() error
	}{
		{"seen", func() error {
			_, err := st.StoreFlags(ctx, inbox.ID, []uint32{1, 2, 3}, mailstore.FlagsAdd, []string{`\Seen`})
			return err
		}},
		{"deleted", func() error {
			_, err := st.StoreFlags(ctx, inbox.ID, []uint32{2, 4}, mailstore.FlagsAdd, []string{`\Deleted`, "$x"})
			return err
		}},
		{"unseen again", func() error {
			_, err := st.StoreFlags(ctx, inbox.ID, []uint32{1}, mailstore.FlagsSet, nil)
			return err
		}},
		{"expunge", func() error { _, err := st.Expunge(ctx, inbox.ID, nil); return err }},
		{"move", func() error { _, err := st.Move(ctx, inbox.ID, []uint32{5, 6}, archive.ID); return err }},
		{"copy", func() error { _, err := st.Copy(ctx, archive.ID, []uint32{1, 2}, inbox.ID); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		checkCounts(t, st, u.ID, "INBOX", s.name)
		checkCounts(t, st, u.ID, "Archive", s.name)
	}
}

// TestMigrateFillsCountsAndIndexesLazily: an index of schema version 2
// with messages gets its counts at upgrade; its messages have no search
// fields until IndexHeaders, and SearchHeader says so.
func TestMigrateFillsCountsAndIndexesLazily(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	subject := "=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus\r\n Berlin"
	msg := "From: Bob <bob@example.net>\r\nSubject: " + subject + "\r\n\r\nhello\r\n"
	writeIndex(t, dir, append(append(legacyV1, legacyV2...), `PRAGMA user_version = 2`,
		`INSERT INTO users (id, address, password_hash, created) VALUES (1, 'alice@example.com', 'x', 0)`,
		`INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext, modseq) VALUES (1, 1, 'INBOX', 7, 3, 3)`,
		fmt.Sprintf(`INSERT INTO blobs (id, key, size, created, data) VALUES (1, NULL, %d, 0, CAST('%s' AS BLOB))`,
			len(msg), strings.ReplaceAll(msg, "'", "''")),
		`INSERT INTO messages (mailbox_id, uid, blob_id, flags, internal_date, size, modseq) VALUES
			(1, 1, 1, '\Seen', 0, 10, 1), (1, 2, 1, '\Deleted', 0, 20, 2)`)...)
	st, err := mailstore.Open(mailstore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Status(ctx, 1, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if s.Messages != 2 || s.Unseen != 1 || s.Deleted != 1 || s.Size != 30 {
		t.Errorf("counts after upgrade = %+v", s)
	}
	field := mailstore.SearchFieldIndex("SUBJECT")
	res, err := st.SearchHeader(ctx, 1, field, "grüsse")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.UIDs) != 0 || len(res.Unindexed) != 2 || res.Blobs[0] != 1 {
		t.Fatalf("before indexing: %+v, want both unindexed", res)
	}
	if err := st.IndexHeaders(ctx, res.Blobs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value string
		want  int
	}{{"GRÜßE", 2}, {"grüße AUS berlin", 2}, {"grüsse", 0}, {"bob@example", 0}} {
		res, err := st.SearchHeader(ctx, 1, field, tc.value)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Unindexed) != 0 || len(res.UIDs) != tc.want {
			t.Errorf("SUBJECT %q after indexing: %+v, want %d matches", tc.value, res, tc.want)
		}
	}
}

// TestChangesSince: what ChangesSince reports after deliveries, flag
// changes and expunges, and that it lists UIDs only when some went.
func TestChangesSince(t *testing.T) {
	ctx := context.Background()
	st, err := mailstore.Open(mailstore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.AddUser(ctx, "alice@example.com", "pw", mailstore.RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := st.Mailbox(ctx, u.ID, "INBOX")
	for i := 0; i < 4; i++ {
		if _, err := st.Append(ctx, inbox.ID, []byte("Subject: x\r\n\r\nx\r\n"), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := st.ChangesSince(ctx, inbox.ID, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Entries) != 4 || all.UIDs != nil || all.Count != 4 || all.FirstUnseen != 1 {
		t.Fatalf("first read: %d messages, UIDs %v, count %d, first unseen %d",
			len(all.Entries), all.UIDs, all.Count, all.FirstUnseen)
	}
	same, err := st.ChangesSince(ctx, inbox.ID, all.ModSeq, 4, all.UIDNext)
	if err != nil || len(same.Entries) != 0 || same.UIDs != nil {
		t.Fatalf("no change: %+v, %v", same, err)
	}
	st.StoreFlags(ctx, inbox.ID, []uint32{1, 2}, mailstore.FlagsAdd, []string{`\Seen`})
	st.Append(ctx, inbox.ID, []byte("Subject: y\r\n\r\ny\r\n"), nil, time.Time{})
	ch, err := st.ChangesSince(ctx, inbox.ID, all.ModSeq, 4, all.UIDNext)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Entries) != 3 || ch.Entries[0].UID != 1 || ch.Entries[2].UID != 5 || ch.UIDs != nil {
		t.Fatalf("flag change and delivery: %+v", ch)
	}
	if got := ch.FlagSets[ch.Entries[1].FlagSet]; got != `\Seen` || ch.FirstUnseen != 3 {
		t.Fatalf("flags of UID 2 %q, first unseen %d; want \\Seen, 3", got, ch.FirstUnseen)
	}
	st.StoreFlags(ctx, inbox.ID, []uint32{3}, mailstore.FlagsAdd, []string{`\Deleted`})
	st.Expunge(ctx, inbox.ID, nil)
	ch2, err := st.ChangesSince(ctx, inbox.ID, ch.ModSeq, 5, ch.UIDNext)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ch2.UIDs) != "[1 2 4 5]" || ch2.FirstUnseen != 4 {
		t.Fatalf("after an expunge UIDs = %v, first unseen %d; want [1 2 4 5], 4", ch2.UIDs, ch2.FirstUnseen)
	}
	st.StoreFlags(ctx, inbox.ID, []uint32{4, 5}, mailstore.FlagsAdd, []string{`\Seen`})
	ch3, err := st.ChangesSince(ctx, inbox.ID, ch2.ModSeq, 4, ch2.UIDNext)
	if err != nil || ch3.FirstUnseen != 0 {
		t.Fatalf("all seen: first unseen %d, %v; want 0", ch3.FirstUnseen, err)
	}
}

// TestChangesSinceBlobKeys: a listing gives the file key of messages above
// InlineMax only; messages kept in files under a lower InlineMax are still
// read and opened from their blob id alone.
func TestChangesSinceBlobKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	small := []byte("Subject: small\r\n\r\nx\r\n")
	large := []byte("Subject: large\r\n\r\n" + strings.Repeat("y", 200) + "\r\n")
	// Written with every message in a file...
	st, err := mailstore.Open(mailstore.Config{Dir: dir, InlineMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.AddUser(ctx, "alice@example.com", "pw", mailstore.RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := st.Mailbox(ctx, u.ID, "INBOX")
	for _, m := range [][]byte{small, large} {
		if _, err := st.Append(ctx, inbox.ID, m, nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	// ...read with a threshold between the two sizes, then one more
	// message kept inline.
	st, err = mailstore.Open(mailstore.Config{Dir: dir, InlineMax: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Append(ctx, inbox.ID, small, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	ch, err := st.ChangesSince(ctx, inbox.ID, 0, 0, 0)
	if err != nil || len(ch.Entries) != 3 {
		t.Fatalf("listing: %+v, %v", ch, err)
	}
	for i, want := range [][]byte{small, large, small} {
		e := ch.Entries[i]
		if (e.BlobKey != "") != (i == 1) {
			t.Errorf("UID %d: key %q; want one only above InlineMax", e.UID, e.BlobKey)
		}
		m := mailstore.Message{BlobID: e.BlobID, BlobKey: e.BlobKey}
		got, err := st.ReadMessage(m)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("UID %d: ReadMessage = %q, %v", e.UID, got, err)
		}
		r, err := st.OpenMessage(m)
		if err != nil {
			t.Fatalf("UID %d: OpenMessage: %v", e.UID, err)
		}
		got, err = io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("UID %d: OpenMessage read %q, %v", e.UID, got, err)
		}
	}
	if _, err := st.ReadMessage(mailstore.Message{BlobID: 999}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadMessage of a blob that is gone: %v, want fs.ErrNotExist", err)
	}
}
