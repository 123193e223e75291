package mailstore

import (
	"context"
	"fmt"
	"testing"
)

// TestPlacementsBlobsState: what a package that references blobs asks of
// the store (the quarantine) answers for the blobs it names and no others.
func TestPlacementsBlobsState(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	users := addTestUsers(t, s, "alice@example.com", "bob@example.com")
	alice, bob := users[0], users[1]
	deliver := func(targets ...Target) (int64, []Placed) {
		t.Helper()
		var blob int64
		placed, err := s.Deliver(ctx, &Delivery{Body: []byte("Subject: x\r\n\r\nx\r\n"), Targets: targets,
			Record: func(_ *Tx, id int64, _ []Placed) error { blob = id; return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return blob, placed
	}
	both, bothPlaced := deliver(Target{bob.ID, QuarantineMailbox}, Target{alice.ID, QuarantineMailbox})
	inbox, _ := deliver(Target{alice.ID, "INBOX"})
	other, _ := deliver(Target{bob.ID, QuarantineMailbox})

	for _, tc := range []struct {
		mailbox string
		blobs   []int64
		want    string
	}{
		{QuarantineMailbox, []int64{both, inbox}, fmt.Sprintf("[{%d %d alice@example.com %d 1} {%d %d bob@example.com %d 1}]",
			both, alice.ID, bothPlaced[1].MailboxID, both, bob.ID, bothPlaced[0].MailboxID)},
		{"inbox", []int64{both, inbox}, fmt.Sprintf("[{%d %d alice@example.com %d 1}]", inbox, alice.ID, mustMailbox(t, s, alice.ID, "INBOX"))},
		{"Junk", []int64{both, inbox, other}, "[]"},
		{QuarantineMailbox, nil, "[]"},
	} {
		got, err := s.Placements(ctx, tc.mailbox, tc.blobs)
		if err != nil {
			t.Fatal(err)
		}
		var inTx []Placement
		if err := s.Update(ctx, func(tx *Tx) error {
			inTx, err = tx.Placements(tc.mailbox, tc.blobs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(placementsOrEmpty(got)) != tc.want || fmt.Sprint(placementsOrEmpty(inTx)) != tc.want {
			t.Errorf("Placements(%s, %v) = %v, in a transaction %v; want %s", tc.mailbox, tc.blobs, got, inTx, tc.want)
		}
	}

	blobs, err := s.Blobs(ctx, []int64{both, other, 9999})
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 2 || blobs[both].Size != 17 || blobs[other].ID != other || blobs[both].Key != "" {
		t.Errorf("Blobs = %+v; want the two that exist, inline, 17 bytes", blobs)
	}

	if v, ok, err := s.State(ctx, "test.key"); err != nil || ok || v != "" {
		t.Errorf("State of a key never set = %q, %v, %v", v, ok, err)
	}
	for _, v := range []string{"one", "two"} {
		if err := s.Update(ctx, func(tx *Tx) error { return tx.SetState("test.key", v) }); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := s.State(ctx, "test.key"); err != nil || !ok || got != v {
			t.Errorf("State after SetState(%q) = %q, %v, %v", v, got, ok, err)
		}
	}
}

func placementsOrEmpty(p []Placement) []Placement {
	if p == nil {
		return []Placement{}
	}
	return p
}

func mustMailbox(t *testing.T, s *Store, user int64, name string) int64 {
	t.Helper()
	mb, err := s.Mailbox(context.Background(), user, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb.ID
}
