package mailstore

import (
	"context"
	"testing"
)

func TestAllowList(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	users := addTestUsers(t, s, "alice@example.com", "bob@example.com")
	alice, bob := users[0], users[1]
	for range 2 { // twice: the second changes nothing
		if err := s.AllowSender(ctx, alice.ID, " Partner@Example.NET "); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AllowSender(ctx, alice.ID, "not an address"); err == nil {
		t.Error("allowing a non-address: want an error")
	}
	for _, tc := range []struct {
		user   int64
		sender string
		want   bool
	}{
		{alice.ID, "partner@example.net", true},
		{alice.ID, "PARTNER@example.net", true},
		{alice.ID, "other@example.net", false},
		{alice.ID, "", false}, // the null sender never is
		{bob.ID, "partner@example.net", false},
	} {
		got, err := s.SenderAllowed(ctx, tc.user, tc.sender)
		if err != nil || got != tc.want {
			t.Errorf("SenderAllowed(%d, %q) = %v, %v; want %v", tc.user, tc.sender, got, err, tc.want)
		}
	}
	list, err := s.AllowedSenders(ctx, alice.ID)
	if err != nil || len(list) != 1 || list[0].Sender != "partner@example.net" || list[0].Added.IsZero() {
		t.Fatalf("alice's list: %+v, %v", list, err)
	}
	if removed, err := s.DisallowSender(ctx, alice.ID, "partner@EXAMPLE.net"); err != nil || !removed {
		t.Errorf("remove: %v, %v", removed, err)
	}
	if removed, err := s.DisallowSender(ctx, alice.ID, "partner@example.net"); err != nil || removed {
		t.Errorf("remove again: %v, %v; want nothing removed", removed, err)
	}
	// A deleted user's list goes with them.
	if err := s.AllowSender(ctx, bob.ID, "x@example.net"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM allowed_senders`).Scan(&n); err != nil || n != 0 {
		t.Errorf("allow list rows after deleting bob: %d, %v", n, err)
	}
}
