package quarantine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
)

// TestMaintain drives Maintain on a short interval over a quarantine whose
// clock says 31 days have passed: the expired message goes, the digest of
// the last day's message is delivered once however many rounds run, and
// the record of a message the user deleted goes.
func TestMaintain(t *testing.T) {
	ctx := context.Background()
	q, st, users := setup(t)
	alice := users[0]
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base.Add(31 * 24 * time.Hour)
	put := func(at time.Time, subject string) Entry {
		t.Helper()
		q.now = func() time.Time { return at }
		e, err := q.Put(ctx, nil, []byte("Subject: "+subject+"\r\n\r\nx\r\n"),
			Record{Sender: "spam@example.net", Recipients: []string{alice.Address}, Subject: subject, Score: 11}, []int64{alice.ID})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	expired := put(base, "expired")
	deleted := put(now.Add(-2*time.Hour), "deleted")
	recent := put(now.Add(-time.Hour), "recent")
	q.now = func() time.Time { return now }

	// The user deletes one message from the Quarantine folder.
	qmb, err := st.Mailbox(ctx, alice.ID, mailstore.QuarantineMailbox)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(ctx, qmb.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.BlobID == deleted.BlobID {
			if err := st.Update(ctx, func(tx *mailstore.Tx) error { return tx.RemoveMessages(qmb.ID, []uint32{m.UID}) }); err != nil {
				t.Fatal(err)
			}
		}
	}

	var logs bytes.Buffer
	run, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Maintain(run, 10*time.Millisecond, "postmaster@mx.example.com", slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	ids := func() []int64 {
		list, err := q.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, e := range list {
			out = append(out, e.ID)
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := ids(); len(got) == 1 && got[0] == recent.ID && count(t, st, alice.ID, "INBOX") == 1 {
			break
		}
		if time.Now().After(deadline) {
			stop()
			<-done
			t.Fatalf("after 10s: records %v (want only %d), %d message(s) in INBOX (want the digest)",
				ids(), recent.ID, count(t, st, alice.ID, "INBOX"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a few more rounds
	stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Maintain did not return after its context ended")
	}

	if _, _, err := q.Get(ctx, expired.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired entry: %v, want ErrNotFound", err)
	}
	if n := count(t, st, alice.ID, "INBOX"); n != 1 {
		t.Errorf("INBOX holds %d messages after several rounds, want the one digest", n)
	}
	for _, want := range []string{"quarantine expired\" messages=1", "quarantine digests delivered\" users=1",
		"users deleted removed\" records=1"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a step failed:\n%s", logs.String())
	}
}
