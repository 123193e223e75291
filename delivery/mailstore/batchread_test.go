package mailstore

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestReadBatch(t *testing.T) {
	ctx := context.Background()
	// Messages of 100 bytes or more go to files.
	s, err := Open(Config{Dir: t.TempDir(), InlineMax: 99})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, _ := s.AddUser(ctx, "a@example.com", "pw", RoleUser)
	other, _ := s.AddUser(ctx, "b@example.com", "pw", RoleUser)
	bodies := map[uint32]string{}
	for uid := uint32(1); uid <= 8; uid++ {
		body := fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", uid, uid)
		if uid == 3 || uid == 6 {
			body += strings.Repeat("x", 100) // a file
		}
		bodies[uid] = body
		if _, err := s.Deliver(ctx, &Delivery{Body: []byte(body), Targets: []Target{{u.ID, "INBOX"}}}); err != nil {
			t.Fatal(err)
		}
		// The other user's INBOX has the same UIDs: they must not mix.
		if _, err := s.Deliver(ctx, &Delivery{Body: []byte("other\r\n"), Targets: []Target{{other.ID, "INBOX"}}}); err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := s.Mailbox(ctx, u.ID, "INBOX")
	if _, err := s.StoreFlags(ctx, inbox.ID, []uint32{5}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}

	b, err := s.ReadBatch(ctx, inbox.ID, 2, 7, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uid    uint32
		covers bool
		held   bool // inline and still there
	}{
		{1, false, false},
		{2, true, true},
		{3, true, false}, // a file
		{4, true, true},
		{5, true, false}, // expunged
		{6, true, false}, // a file
		{7, true, true},
		{8, false, false},
		{9, false, false},
	} {
		if got := b.Covers(tc.uid); got != tc.covers {
			t.Errorf("Covers(%d) = %v, want %v", tc.uid, got, tc.covers)
		}
		data, ok := b.Message(tc.uid)
		if ok != tc.held {
			t.Errorf("Message(%d): held = %v, want %v", tc.uid, ok, tc.held)
			continue
		}
		if ok && string(data) != bodies[tc.uid] {
			t.Errorf("Message(%d) = %q, want %q", tc.uid, data, bodies[tc.uid])
		}
	}
	// A content returned by the batch cannot grow into the next one.
	two, _ := b.Message(2)
	if cap(two) != len(two) {
		t.Errorf("Message(2): cap %d, len %d", cap(two), len(two))
	}
	b.Release()
	if b.Covers(2) {
		t.Error("a released batch still covers its range")
	}

	// Reused from the pool: nothing of the last batch remains.
	b, err = s.ReadBatch(ctx, inbox.ID, 8, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if _, ok := b.Message(2); ok {
		t.Error("a reused batch holds a message of the last one")
	}
	if data, ok := b.Message(8); !ok || !bytes.Equal(data, []byte(bodies[8])) {
		t.Errorf("Message(8) = %q, %v", data, ok)
	}
	var none *MessageBatch
	if none.Covers(1) {
		t.Error("a nil batch covers a UID")
	}
	none.Release()
}

// BenchmarkReadInline reads 2,000 inline messages of 10 KB, one query per
// message (ReadMessage) and in batches of several sizes (ReadBatch).
func BenchmarkReadInline(b *testing.B) {
	const n, size = 2000, 10 << 10
	ctx := context.Background()
	s, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	u, _ := s.AddUser(ctx, "a@example.com", "pw", RoleUser)
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,\r\n"), size/66+1)[:size]
	for i := 0; i < n; i++ {
		if _, err := s.Deliver(ctx, &Delivery{Body: body, Targets: []Target{{u.ID, "INBOX"}}}); err != nil {
			b.Fatal(err)
		}
	}
	inbox, _ := s.Mailbox(ctx, u.ID, "INBOX")
	msgs, err := s.Messages(ctx, inbox.ID)
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B) {
		b.SetBytes(n * size)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1e3, "µs/msg")
	}
	b.Run("single", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, m := range msgs {
				if data, err := s.ReadMessage(m); err != nil || len(data) != size {
					b.Fatal(len(data), err)
				}
			}
		}
		report(b)
	})
	for _, per := range []int{4, 16, 64} {
		b.Run(fmt.Sprintf("batch%d", per), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				for k := 0; k < n; k += per {
					last := min(k+per, n) - 1
					batch, err := s.ReadBatch(ctx, inbox.ID, msgs[k].UID, msgs[last].UID, per*size)
					if err != nil {
						b.Fatal(err)
					}
					if data, ok := batch.Message(msgs[last].UID); !ok || len(data) != size {
						b.Fatal("short batch")
					}
					batch.Release()
				}
			}
			report(b)
		})
	}
}
