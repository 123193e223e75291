package pop3d

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
)

// TestReadAhead retrieves a maildrop of inline messages and files in order,
// out of order and with TOP: inline messages come from read-ahead batches
// (a window that grows while the client goes in order), and every answer
// must be the one the store would give message by message, expunges over
// IMAP included.
func TestReadAhead(t *testing.T) {
	saved := storeInlineMax
	if storeInlineMax == 0 {
		storeInlineMax = 3000 // every 5th message below goes to a file
	}
	e := newEnv(t, Config{})
	storeInlineMax = saved
	const n = 60
	raws := make([]string, n+1) // by message number
	uids := make([]uint32, n+1)
	for i := 1; i <= n; i++ {
		size := 500 + 97*i%2000
		if i%5 == 0 {
			size = 4000
		}
		raw := message("m"+strconv.Itoa(i), "")
		for len(raw) < size {
			// A line that begins with "." is byte-stuffed on the wire.
			raw += ".line " + strconv.Itoa(len(raw)) + " of message " + strconv.Itoa(i) + "\r\n"
		}
		raws[i], uids[i] = raw, e.deliver(t, e.alice, raw)
	}
	cl := e.login(t, aliceAddr, alicePass)
	retr := func(k int) {
		t.Helper()
		if status := cl.cmd("RETR " + strconv.Itoa(k)); status != "+OK "+strconv.Itoa(len(raws[k]))+" octets" {
			t.Fatalf("RETR %d: %q", k, status)
		}
		if got := cl.body(); got != raws[k] {
			t.Errorf("RETR %d: got %d bytes %.40q…, want %d bytes %.40q…", k, len(got), got, len(raws[k]), raws[k])
		}
	}
	// In order, then jumping about (the window falls back to one).
	for k := 1; k <= 40; k++ {
		retr(k)
	}
	for _, k := range []int{7, 3, 30, 31, 32, 33, 2, 60, 59, 41} {
		retr(k)
	}
	// TOP through the same batches: the header, the blank line, one line.
	for _, k := range []int{42, 43, 44} {
		status, lines := cl.multi("TOP " + strconv.Itoa(k) + " 1")
		head, body, _ := strings.Cut(raws[k], "\r\n\r\n")
		first, _, _ := strings.Cut(body, "\r\n")
		want := strings.Split(head+"\r\n\r\n"+first, "\r\n")
		if status != "+OK Top of message follows" || strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Errorf("TOP %d 1: %q %q, want %q", k, status, lines, want)
		}
	}
	// A message marked by DELE stays out of reach, read ahead or not.
	if got := cl.cmd("DELE 46"); got != "+OK Message 46 deleted" {
		t.Fatalf("DELE 46: %q", got)
	}
	retr(45)
	if got := cl.cmd("RETR 46"); got != "-ERR Message 46 already deleted" {
		t.Errorf("RETR 46 after DELE: %q", got)
	}
	retr(47)
	// Messages 48 and 49 are read ahead by now (the client goes in
	// order); IMAP expunges 49 behind the session's back.
	_, mb := e.inbox(t, e.alice)
	ctx := context.Background()
	if _, err := e.store.StoreFlags(ctx, mb.ID, []uint32{uids[49]}, mailstore.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Expunge(ctx, mb.ID, []uint32{uids[49]}); err != nil {
		t.Fatal(err)
	}
	retr(48)
	if got := cl.cmd("RETR 49"); got != "-ERR Message 49 was removed by another session" {
		t.Errorf("RETR 49 after an expunge over IMAP: %q", got)
	}
	for k := 50; k <= 58; k++ {
		retr(k)
	}
	if got := cl.cmd("QUIT"); !strings.HasPrefix(got, "+OK") {
		t.Errorf("QUIT: %q", got)
	}
}
