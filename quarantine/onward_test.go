package quarantine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/queue/queuetest"
)

// putHeld quarantines a message for the local user alice and two relay
// recipients held by holder.
func putHeld(t *testing.T, q *Quarantine, alice, holder mailstore.User) Entry {
	t.Helper()
	rec := Record{QueueID: "Q1", Sender: "s@far.example", Subject: "held",
		Recipients: []string{alice.Address, "x@relay.example", "y@relay.example"},
		Onward:     []string{"x@relay.example", "y@relay.example"}, Holder: holder.ID}
	e, err := q.Put(context.Background(), []byte("Received: test\r\n"), []byte("Subject: held\r\n\r\nbody\r\n"), rec,
		[]int64{alice.ID, holder.ID})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestReleaseOnward(t *testing.T) {
	ctx := context.Background()
	q, st, users := setup(t)
	alice := users[0]
	admin, err := st.AddUser(ctx, "postmaster@example.com", "pw", mailstore.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	e := putHeld(t, q, alice, admin)
	got, _, err := q.Get(ctx, e.ID)
	if err != nil || !slices.Equal(got.Onward, []string{"x@relay.example", "y@relay.example"}) || got.Holder != admin.ID {
		t.Fatalf("Get = %+v, %v: onward recipients and holder not kept", got, err)
	}
	if n := count(t, st, admin.ID, mailstore.QuarantineMailbox); n != 1 {
		t.Fatalf("the holder's Quarantine holds %d, want 1", n)
	}

	// Without a queue, or with a queue that fails, the message stays held.
	if _, err := q.Release(ctx, e.ID); err == nil {
		t.Fatal("Release without an outbound queue succeeded")
	}
	out := &queuetest.Memory{}
	out.Fail(errors.New("disk full"))
	q.SetOnward(out)
	if _, err := q.Release(ctx, e.ID); err == nil {
		t.Fatal("Release with a failing queue succeeded")
	}
	if _, _, err := q.Get(ctx, e.ID); err != nil {
		t.Fatalf("after failed releases the message is gone: %v", err)
	}
	if n := count(t, st, alice.ID, "INBOX"); n != 0 {
		t.Fatalf("a failed release delivered to alice's INBOX (%d)", n)
	}

	out.Fail(nil)
	n, err := q.Release(ctx, e.ID)
	if err != nil || n != 3 {
		t.Fatalf("Release = %d, %v; want 3 (one mailbox, two sent on)", n, err)
	}
	if len(out.Taken()) != 1 {
		t.Fatalf("queued %d messages, want 1", len(out.Taken()))
	}
	m := out.Taken()[0]
	if m.From != "s@far.example" || !slices.Equal(m.Rcpts, []string{"x@relay.example", "y@relay.example"}) ||
		m.Origin != "release" || string(m.Header)+string(m.Body) != "Received: test\r\nSubject: held\r\n\r\nbody\r\n" {
		t.Errorf("queued %+v (body %q)", m, m.Body)
	}
	if n := count(t, st, alice.ID, "INBOX"); n != 1 {
		t.Errorf("alice's INBOX holds %d, want 1", n)
	}
	for _, mb := range []string{mailstore.QuarantineMailbox, "INBOX"} {
		if n := count(t, st, admin.ID, mb); n != 0 {
			t.Errorf("the holder's %s holds %d, want 0: the held copy is not theirs", mb, n)
		}
	}
	if _, err := q.Release(ctx, e.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second release: %v, want ErrNotFound", err)
	}
}

func TestReviewSendsOnHeld(t *testing.T) {
	ctx := context.Background()
	q, st, users := setup(t)
	alice := users[0]
	admin, err := st.AddUser(ctx, "postmaster@example.com", "pw", mailstore.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	out := &queuetest.Memory{}
	q.SetOnward(out)
	putHeld(t, q, alice, admin)
	counted := map[string]int{}
	r := NewReview(q, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), func(k string) { counted[k]++ })
	defer r.Close()
	move := func(u mailstore.User, to string) {
		t.Helper()
		src, err := st.Mailbox(ctx, u.ID, mailstore.QuarantineMailbox)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := st.Mailbox(ctx, u.ID, to)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := st.Messages(ctx, src.ID)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s's Quarantine: %v, %v", u.Address, msgs, err)
		}
		if _, err := st.Move(ctx, src.ID, []uint32{msgs[0].UID}, dst.ID); err != nil {
			t.Fatal(err)
		}
		r.Moved(u, src, dst, msgs, true)
	}
	// Alice releasing her own copy sends nothing on: she is not the holder.
	move(alice, "INBOX")
	if len(out.Taken()) != 0 {
		t.Fatalf("a recipient's release sent the message on: %+v", out.Taken())
	}
	// The holder releasing the held copy sends it on.
	move(admin, "INBOX")
	if len(out.Taken()) != 1 || !slices.Equal(out.Taken()[0].Rcpts, []string{"x@relay.example", "y@relay.example"}) {
		t.Fatalf("queued %+v, want the message to the two relay recipients", out.Taken())
	}
	if counted["sent_on"] != 1 {
		t.Errorf("counted %v, want one sent_on", counted)
	}
}
