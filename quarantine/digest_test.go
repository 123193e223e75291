package quarantine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters"
)

func TestDigest(t *testing.T) {
	ctx := context.Background()
	q, st, users := setup(t)
	alice, bob := users[0], users[1]
	base := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	q.now = func() time.Time { return base }
	for i, u := range []mailstore.User{alice, alice, bob} {
		rec := Record{Sender: "spam" + string(rune('a'+i)) + "@example.net", Recipients: []string{u.Address},
			Subject: "=?utf-8?q?Gr=C3=BC=C3=9Fe?= offer", Score: 11.5 + float64(i), Action: "quarantine",
			Symbols: []filters.Symbol{{Name: "X", Score: 11}}, Reasons: []string{"score 11.5 >= quarantine 10 (policy default)"}}
		if _, err := q.Put(ctx, nil, []byte("Subject: x\r\n\r\nx\r\n"), rec, []int64{u.ID}); err != nil {
			t.Fatal(err)
		}
	}
	q.now = func() time.Time { return base.Add(time.Hour) }
	n, err := q.SendDigests(ctx, "postmaster@mx.example.com", 24*time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("SendDigests = %d, %v; want 2 digests", n, err)
	}
	read := func(u mailstore.User) []string {
		mb, _ := st.Mailbox(ctx, u.ID, "INBOX")
		msgs, _ := st.Messages(ctx, mb.ID)
		var out []string
		for _, m := range msgs {
			b, err := st.ReadMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
		return out
	}
	ad := read(alice)
	if len(ad) != 1 {
		t.Fatalf("alice has %d digests, want 1", len(ad))
	}
	for _, want := range []string{"Subject: Quarantine: 2 new message(s) held for you", "Auto-Submitted: auto-generated",
		"From:    spama@example.net", "From:    spamb@example.net", "Subject: Grüße offer", "score 11.5", "score 12.5",
		"Why:     score 11.5 >= quarantine 10"} {
		if !strings.Contains(ad[0], want) {
			t.Errorf("alice's digest lacks %q:\n%s", want, ad[0])
		}
	}
	if strings.Contains(ad[0], "spamc@") {
		t.Error("alice's digest lists bob's message")
	}
	if bd := read(bob); len(bd) != 1 || !strings.Contains(bd[0], "spamc@example.net") {
		t.Errorf("bob's digests: %q", bd)
	}
	// Within the interval, nothing more is sent.
	q.now = func() time.Time { return base.Add(2 * time.Hour) }
	if n, err := q.SendDigests(ctx, "postmaster@mx.example.com", 24*time.Hour); err != nil || n != 0 {
		t.Fatalf("second run = %d, %v; want 0", n, err)
	}
}
