package quarantine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters"
)

func setup(t *testing.T) (*Quarantine, *mailstore.Store, []mailstore.User) {
	t.Helper()
	st, err := mailstore.Open(mailstore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var users []mailstore.User
	for _, a := range []string{"a@example.com", "b@example.com"} {
		u, err := st.AddUser(context.Background(), a, "pw", mailstore.RoleUser)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	q, err := New(Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	return q, st, users
}

func count(t *testing.T, st *mailstore.Store, user int64, mailbox string) int {
	t.Helper()
	mb, err := st.Mailbox(context.Background(), user, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(context.Background(), mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	return len(msgs)
}

func TestPutListRelease(t *testing.T) {
	ctx := context.Background()
	q, st, users := setup(t)
	rec := Record{QueueID: "Q1", Sender: "s@spam.example", Recipients: []string{"a@example.com", "b@example.com"},
		Subject: "buy", Score: 12.5, Action: "quarantine",
		Symbols: []filters.Symbol{{Name: "GTUBE", Score: 1000}}, Reasons: []string{"score 12.5 >= 10"}}
	e, err := q.Put(ctx, []byte("X-Spam-Score: 12.5\r\n"), []byte("Subject: buy\r\n\r\nx\r\n"), rec, []int64{users[0].ID, users[1].ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if n := count(t, st, u.ID, mailstore.QuarantineMailbox); n != 1 {
			t.Errorf("user %d Quarantine holds %d, want 1", u.ID, n)
		}
	}
	list, err := q.List(ctx, "B@example.com")
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	got := list[0]
	if got.ID != e.ID || got.Score != 12.5 || got.Symbols[0].Name != "GTUBE" || got.Reasons[0] != "score 12.5 >= 10" || len(got.Recipients) != 2 {
		t.Errorf("entry = %+v", got)
	}
	if other, _ := q.List(ctx, "c@example.com"); len(other) != 0 {
		t.Errorf("list for another recipient = %v", other)
	}
	_, data, err := q.Get(ctx, e.ID)
	if err != nil || string(data) != "X-Spam-Score: 12.5\r\nSubject: buy\r\n\r\nx\r\n" {
		t.Fatalf("Get = %q, %v", data, err)
	}
	n, err := q.Release(ctx, e.ID)
	if err != nil || n != 2 {
		t.Fatalf("Release = %d, %v", n, err)
	}
	for _, u := range users {
		if n := count(t, st, u.ID, "INBOX"); n != 1 {
			t.Errorf("user %d INBOX holds %d after release, want 1", u.ID, n)
		}
		if n := count(t, st, u.ID, mailstore.QuarantineMailbox); n != 0 {
			t.Errorf("user %d Quarantine holds %d after release, want 0", u.ID, n)
		}
	}
	if _, err := q.Release(ctx, e.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second release: %v, want ErrNotFound", err)
	}
}

func TestDeleteAndExpire(t *testing.T) {
	ctx := context.Background()
	q, st, users := setup(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q.now = func() time.Time { return base }
	old, err := q.Put(ctx, nil, []byte("Subject: old\r\n\r\n"), Record{Recipients: []string{"a@example.com"}}, []int64{users[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	q.now = func() time.Time { return base.Add(29 * 24 * time.Hour) }
	recent, err := q.Put(ctx, nil, []byte("Subject: new\r\n\r\n"), Record{Recipients: []string{"a@example.com"}}, []int64{users[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	q.now = func() time.Time { return base.Add(31 * 24 * time.Hour) }
	n, err := q.Expire(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	if _, _, err := q.Get(ctx, old.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired entry still there: %v", err)
	}
	if err := q.Delete(ctx, recent.ID); err != nil {
		t.Fatal(err)
	}
	if c := count(t, st, users[0].ID, mailstore.QuarantineMailbox); c != 0 {
		t.Errorf("Quarantine holds %d after delete/expire", c)
	}
}
