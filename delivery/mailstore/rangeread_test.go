package mailstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestRangeReaders: batches read on the range readers' own connections see
// every committed delivery, from many goroutines at once, while the
// writer commits; at most maxRangeReaders connections stay open; a
// canceled context and a closed store give errors.
func TestRangeReaders(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	u, _ := s.AddUser(ctx, "a@example.com", "pw", RoleUser)
	inbox, err := s.Mailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	body := func(uid uint32) string { return fmt.Sprintf("Subject: %d\r\n\r\nbody of %d\r\n", uid, uid) }
	deliver := func(want uint32) {
		placed, err := s.Deliver(ctx, &Delivery{Body: []byte(body(want)), Targets: []Target{{u.ID, "INBOX"}}})
		if err != nil || placed[0].UID != want {
			t.Errorf("deliver: %v, %v; want UID %d", placed, err, want)
		}
	}
	for uid := uint32(1); uid <= 50; uid++ {
		deliver(uid)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < 20; k++ {
				first := uint32(1 + (g+k)%40)
				b, err := s.ReadBatch(ctx, inbox.ID, first, first+9, 0)
				if err != nil {
					errs <- err
					return
				}
				for uid := first; uid <= first+9; uid++ {
					if data, ok := b.Message(uid); !ok || string(data) != body(uid) {
						errs <- fmt.Errorf("UID %d: %q, %v", uid, data, ok)
					}
				}
				b.Release()
			}
		}(g)
	}
	// The writer commits meanwhile.
	for uid := uint32(51); uid <= 60; uid++ {
		deliver(uid)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(s.ranges.idle); n > maxRangeReaders {
		t.Errorf("%d idle range readers, want at most %d", n, maxRangeReaders)
	}

	// A reader opened before a delivery sees it.
	deliver(61)
	b, err := s.ReadBatch(ctx, inbox.ID, 55, 70, 0)
	if err != nil {
		t.Fatal(err)
	}
	if data, ok := b.Message(61); !ok || string(data) != body(61) {
		t.Errorf("UID 61 after its delivery: %q, %v", data, ok)
	}
	b.Release()

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.ReadBatch(canceled, inbox.ID, 1, 60, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadBatch with a canceled context: %v", err)
	}

	s.Close()
	if _, err := s.ReadBatch(ctx, inbox.ID, 1, 60, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadBatch on a closed store: %v, want ErrClosed", err)
	}
	if n := len(s.ranges.idle); n != 0 {
		t.Errorf("%d range readers left open after Close", n)
	}
}
