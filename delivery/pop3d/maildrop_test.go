package pop3d

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/gateway/throttle"
)

// TestDeleQuitDeletesExactlyThose: QUIT removes the messages marked by DELE
// and nothing else: not a message IMAP flagged \Deleted without expunging
// it, not a message delivered during the session.
func TestDeleQuitDeletesExactlyThose(t *testing.T) {
	e := newEnv(t, Config{})
	var uids []uint32
	for i := 0; i < 5; i++ {
		uids = append(uids, e.deliver(t, e.alice, message("m"+strconv.Itoa(i), "body\r\n")))
	}
	_, mb := e.inbox(t, e.alice)
	ctx := context.Background()
	if _, err := e.store.StoreFlags(ctx, mb.ID, uids[4:], mailstore.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	cl := e.login(t, aliceAddr, alicePass)
	late := e.deliver(t, e.alice, message("late", "body\r\n"))
	for _, s := range []step{
		{send: "DELE 1", want: "+OK Message 1 deleted"},
		{send: "DELE 3", want: "+OK Message 3 deleted"},
		{send: "DELE 6", want: "-ERR No such message"}, // delivered after login: not in the snapshot
		{send: "STAT", want: "+OK 3 …"},
		{send: "QUIT", want: "+OK moat POP3 server signing off (3 messages left)"},
	} {
		s.run(t, cl)
	}
	got, _ := e.inbox(t, e.alice)
	if want := []uint32{uids[1], uids[3], uids[4], late}; !slices.Equal(got, want) {
		t.Errorf("INBOX after DELE 1, DELE 3, QUIT = %v, want %v", got, want)
	}
	msgs, err := e.store.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.UID == uids[4] && !m.HasFlag(`\Deleted`) {
			t.Errorf("message %d lost the \\Deleted flag IMAP gave it", m.UID)
		}
	}
}

// TestNoUpdateWithoutQuit: RFC 1939 §6: a session that ends without QUIT
// never enters the UPDATE state, so its DELE marks are forgotten; and the
// maildrop lock is released.
func TestNoUpdateWithoutQuit(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		end  func(t *testing.T, e *env, cl *client)
	}{
		{"client closes", Config{}, func(t *testing.T, e *env, cl *client) {
			cl.c.Close()
		}},
		{"line too long", Config{}, func(t *testing.T, e *env, cl *client) {
			if got := cl.cmd(strings.Repeat("Q", 2000)); got != "-ERR Line too long" {
				t.Errorf("long line: %q", got)
			}
		}},
		{"too many errors", Config{}, func(t *testing.T, e *env, cl *client) {
			for i := 0; i < maxBadCommands; i++ {
				cl.send("DELE x\r\n")
			}
			if !cl.closed() {
				t.Error("connection still open after bad commands")
			}
		}},
		{"idle timeout", Config{}, func(t *testing.T, e *env, cl *client) {
			if got := cl.line(); got != "-ERR Idle timeout, closing connection" {
				t.Errorf("after idling: %q", got)
			}
			if !cl.closed() {
				t.Error("connection still open after the idle timeout")
			}
		}},
		{"server closes", Config{}, func(t *testing.T, e *env, cl *client) {
			if err := e.srv.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if !cl.closed() {
				t.Error("connection still open after Close")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg, func(s *Server) {
				if tc.name == "idle timeout" {
					s.cfg.IdleTimeout = 300 * time.Millisecond
				}
			})
			for i := 0; i < 3; i++ {
				e.deliver(t, e.alice, message("m"+strconv.Itoa(i), "body\r\n"))
			}
			before, _ := e.inbox(t, e.alice)
			cl := e.login(t, aliceAddr, alicePass)
			for _, n := range []string{"1", "3"} {
				if got := cl.cmd("DELE " + n); !strings.HasPrefix(got, "+OK") {
					t.Fatalf("DELE %s: %q", n, got)
				}
			}
			tc.end(t, e, cl)
			if tc.name != "server closes" {
				// The lock is gone: a new session logs in (retrying
				// while the old one winds down).
				var got string
				for i := 0; i < 100; i++ {
					cl2 := e.dialSTLS(t)
					cl2.cmd("USER " + aliceAddr)
					if got = cl2.cmd("PASS " + alicePass); !strings.Contains(got, "[IN-USE]") {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if !strings.HasPrefix(got, "+OK") {
					t.Errorf("login after the session ended: %q", got)
				}
			}
			if after, _ := e.inbox(t, e.alice); !slices.Equal(after, before) {
				t.Errorf("INBOX %v after DELE without QUIT, want %v", after, before)
			}
		})
	}
}

func TestRset(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 3; i++ {
		e.deliver(t, e.alice, message("m"+strconv.Itoa(i), "body\r\n"))
	}
	before, _ := e.inbox(t, e.alice)
	cl := e.login(t, aliceAddr, alicePass)
	for _, s := range []step{
		{send: "DELE 1", want: "+OK…"},
		{send: "DELE 2", want: "+OK…"},
		{send: "STAT", want: "+OK 1 …"},
		{send: "RSET", want: "+OK Maildrop has 3 messages…"},
		{send: "STAT", want: "+OK 3 …"},
		{send: "RETR 1", want: "+OK…", lines: strings.Split("From: carol@example.net|To: alice@example.com|Subject: m0|Message-ID: <m0@example.net>||body", "|")},
		{send: "DELE 3", want: "+OK…"},
		{send: "QUIT", want: "+OK moat POP3 server signing off (2 messages left)"},
	} {
		s.run(t, cl)
	}
	if after, _ := e.inbox(t, e.alice); !slices.Equal(after, before[:2]) {
		t.Errorf("INBOX after RSET and DELE 3 = %v, want %v", after, before[:2])
	}
}

// TestMaildropLock: two clients race for one maildrop; one wins, the other
// gets [IN-USE] (RFC 2449 §8.1.1) until the first one is gone.
func TestMaildropLock(t *testing.T) {
	for _, end := range []string{"QUIT", "drop"} {
		t.Run(end, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.deliver(t, e.alice, message("one", "body\r\n"))
			clients := []*client{e.dialSTLS(t), e.dialSTLS(t)}
			for _, cl := range clients {
				cl.cmd("USER " + aliceAddr)
			}
			replies := make([]string, 2)
			var wg sync.WaitGroup
			for i, cl := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cl.send("PASS " + alicePass + "\r\n")
					l, _ := cl.r.ReadString('\n')
					replies[i] = strings.TrimSpace(l)
				}()
			}
			wg.Wait()
			winner, loser := clients[0], clients[1]
			if strings.HasPrefix(replies[1], "+OK") {
				winner, loser = loser, winner
				replies[0], replies[1] = replies[1], replies[0]
			}
			if !strings.HasPrefix(replies[0], "+OK") || replies[1] != "-ERR [IN-USE] Maildrop is in use by another POP3 session" {
				t.Fatalf("racing logins answered %q", replies)
			}
			// The loser stays in the AUTHORIZATION state.
			if got := loser.cmd("STAT"); !strings.HasPrefix(got, "-ERR") {
				t.Errorf("STAT after [IN-USE]: %q", got)
			}
			if got := winner.cmd("STAT"); !strings.HasPrefix(got, "+OK 1 ") {
				t.Errorf("winner STAT: %q", got)
			}
			// bob is not locked out by alice's session.
			e.login(t, bobAddr, bobPass).cmd("QUIT")
			if end == "QUIT" {
				winner.cmd("QUIT")
			} else {
				winner.c.Close()
			}
			var got string
			for i := 0; i < 100; i++ {
				loser.cmd("USER " + aliceAddr)
				if got = loser.cmd("PASS " + alicePass); !strings.Contains(got, "[IN-USE]") || end == "QUIT" {
					break
				}
				time.Sleep(20 * time.Millisecond) // the dropped session is winding down
			}
			if !strings.HasPrefix(got, "+OK") {
				t.Errorf("login after the first session's %s: %q", end, got)
			}
			if obs := e.observed.list(); len(obs) == 0 || obs[0] != throttle.ReasonInUse {
				t.Errorf("observed %v, want %s first", obs, throttle.ReasonInUse)
			}
		})
	}
}

// TestExpungedMeanwhile: messages that IMAP expunges during a POP3 session
// keep their numbers; RETR and TOP answer -ERR for them, cleanly.
func TestExpungedMeanwhile(t *testing.T) {
	e := newEnv(t, Config{})
	var uids []uint32
	for i := 0; i < 3; i++ {
		uids = append(uids, e.deliver(t, e.alice, message("m"+strconv.Itoa(i), "body\r\n")))
	}
	cl := e.login(t, aliceAddr, alicePass)
	_, mb := e.inbox(t, e.alice)
	ctx := context.Background()
	if _, err := e.store.StoreFlags(ctx, mb.ID, uids[1:2], mailstore.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Expunge(ctx, mb.ID, uids[1:2]); err != nil {
		t.Fatal(err)
	}
	for _, s := range []step{
		{send: "RETR 2", want: "-ERR Message 2 was removed by another session"},
		{send: "TOP 2 0", want: "-ERR Message 2 was removed by another session"},
		{send: "RETR 3", want: "+OK…", lines: strings.Split("From: carol@example.net|To: alice@example.com|Subject: m2|Message-ID: <m2@example.net>||body", "|")},
		{send: "STAT", want: "+OK 3 …"},
		{send: "DELE 2", want: "+OK…"},
		{send: "DELE 3", want: "+OK…"},
		{send: "QUIT", want: "+OK…"},
	} {
		s.run(t, cl)
	}
	if got, _ := e.inbox(t, e.alice); !slices.Equal(got, uids[:1]) {
		t.Errorf("INBOX = %v, want %v", got, uids[:1])
	}
}

// TestMaildropUnavailable: a user without an INBOX (a damaged store: the
// store API cannot delete INBOX) gets [SYS/PERM]; a closed store gets
// [SYS/TEMP]. Neither keeps the maildrop locked.
func TestMaildropUnavailable(t *testing.T) {
	e := newEnv(t, Config{})
	_, mb := e.inbox(t, e.bob)
	if err := e.store.Update(context.Background(), func(tx *mailstore.Tx) error {
		_, err := tx.Exec("DELETE FROM mailboxes WHERE id = ?", mb.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cl := e.dialSTLS(t)
	cl.cmd("USER " + bobAddr)
	if got := cl.cmd("PASS " + bobPass); got != "-ERR [SYS/PERM] Maildrop unavailable" {
		t.Errorf("login without INBOX: %q", got)
	}
	if !e.srv.lockMaildrop(e.bob.ID) {
		t.Error("maildrop left locked after a failed open")
	}
	e.srv.unlockMaildrop(e.bob.ID)

	cl = e.dialSTLS(t)
	e.store.Close()
	cl.cmd("USER " + aliceAddr)
	if got := cl.cmd("PASS " + alicePass); got != "-ERR [SYS/TEMP] Temporary failure, try again later" {
		t.Errorf("login with the store closed: %q", got)
	}
	if obs := e.observed.list(); !slices.Equal(obs, []string{throttle.ReasonInternal, throttle.ReasonInternal}) {
		t.Errorf("observed %v, want two %s", obs, throttle.ReasonInternal)
	}
}
