package imapd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/moatmail/moat/delivery/mailstore"
)

// waitEvent waits for an event with the given prefix.
func waitEvent(t *testing.T, ev *events, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-ev.ch:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within 10s; saw %v", want, ev.take())
		}
	}
}

// collect waits (up to 5s) until n events were recorded and returns them.
func collect(ev *events, n int) []string {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ev.mu.Lock()
		k := len(ev.log)
		ev.mu.Unlock()
		if k >= n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ev.take()
}

func TestIdleSeesDelivery(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, e.alice, "INBOX", sample("first"))
	ev := newEvents()
	c := e.dial(t, "alice@example.com", alicePass, ev.handler())
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	// Another writer (the SMTP side) delivers while the client idles.
	e.deliver(t, e.alice, "INBOX", sample("second"))
	waitEvent(t, ev, "EXISTS 2")
	// A flag change by another session arrives too.
	other := e.dialAlice(t)
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ev, `FETCH 1 \Flagged`)
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	// IDLE dropped the per-message details; FETCH reloads them.
	body := &imap.FetchItemBodySection{Peek: true}
	m := fetchUID(t, c, 2, &imap.FetchOptions{RFC822Size: true, BodySection: []*imap.FetchItemBodySection{body}})
	if string(m.FindBodySection(body)) != sample("second") || m.RFC822Size != int64(len(sample("second"))) {
		t.Errorf("after IDLE, FETCH = %q (%d bytes)", m.FindBodySection(body), m.RFC822Size)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, Config{})
	e.srv.cfg.IdleTimeout = 100 * time.Millisecond // below the RFC minimum, for the test only
	c := e.dialAlice(t)
	if _, err := c.Idle(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("IDLE outlived its timeout")
	}
}

func TestTwoSessionsSeeEachOther(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 3; i++ {
		e.deliver(t, e.alice, "INBOX", sample("m"+itoa(uint32(i))))
	}
	evA, evB := newEvents(), newEvents()
	a := e.dial(t, "alice@example.com", alicePass, evA.handler())
	b := e.dial(t, "alice@example.com", alicePass, evB.handler())
	if _, err := a.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		act  func() error
		want string // what B's NOOP reports
	}{
		{"store", func() error {
			return a.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
		}, `FETCH 2 \Deleted`},
		{"expunge", func() error { return a.Expunge().Close() }, "EXPUNGE 2"},
		{"delivery", func() error { e.deliver(t, e.alice, "INBOX", sample("new")); return nil }, "EXISTS 3"},
		{"expunge and delivery", func() error {
			if err := a.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return err
			}
			if err := a.Expunge().Close(); err != nil {
				return err
			}
			e.deliver(t, e.alice, "INBOX", sample("newer"))
			return nil
		}, "EXPUNGE 1,EXISTS 3"},
	} {
		t.Run(step.name, func(t *testing.T) {
			evB.take()
			if err := step.act(); err != nil {
				t.Fatal(err)
			}
			if err := b.Noop().Wait(); err != nil {
				t.Fatal(err)
			}
			// imapclient hands unilateral FETCH data to its handler
			// on a goroutine of its own: wait for the count.
			n := strings.Count(step.want, ",") + 1
			if got := strings.Join(collect(evB, n), ","); got != step.want {
				t.Errorf("B saw %q, want %q", got, step.want)
			}
		})
	}
	// Both agree on the mailbox once A has polled too.
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ua, err := a.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	ub, err := b.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(ua) != 3 || len(ub) != 3 {
		t.Fatalf("A sees %d, B sees %d messages; want 3", len(ua), len(ub))
	}
	for i := range ua {
		if ua[i].UID != ub[i].UID || ua[i].SeqNum != ub[i].SeqNum {
			t.Errorf("message %d: A has UID %d, B has UID %d", i+1, ua[i].UID, ub[i].UID)
		}
	}
}

func TestNoExpungeDuringFetch(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 3; i++ {
		e.deliver(t, e.alice, "INBOX", sample("m"+itoa(uint32(i))))
	}
	ev := newEvents()
	c := e.dial(t, "alice@example.com", alicePass, ev.handler())
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Another session expunges message 2 behind this one's back.
	mb := mustMailbox(t, e, e.alice, "INBOX")
	ctx := context.Background()
	if _, err := e.store.StoreFlags(ctx, mb.ID, []uint32{2}, mailstore.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Expunge(ctx, mb.ID, nil); err != nil {
		t.Fatal(err)
	}
	ev.take()
	// FETCH, STORE and SEARCH must not announce it (RFC 9051 §7.5.1);
	// the message keeps its sequence number meanwhile. The first FETCH
	// finds its file gone. A command that succeeds polls, which makes it
	// a ghost, which the next FETCH skips.
	body := &imap.FetchItemBodySection{Peek: true}
	for _, pass := range []string{"file gone", "ghost"} {
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 3}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
		if imapCode(err) != "EXPUNGEISSUED" {
			t.Errorf("%s: FETCH of an expunged message: %v, want NO [EXPUNGEISSUED]", pass, err)
		}
		if len(msgs) != 2 || msgs[0].SeqNum != 1 || msgs[1].SeqNum != 3 || msgs[1].UID != 3 ||
			string(msgs[1].FindBodySection(body)) != sample("m2") {
			t.Errorf("%s: FETCH 1:3 answered %d messages, want seq 1 and 3 (UID 3)", pass, len(msgs))
		}
		if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); imapCode(err) != "EXPUNGEISSUED" {
		t.Errorf("STORE on the expunged message: %v, want NO [EXPUNGEISSUED]", err)
	}
	data, err := c.Search(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := data.AllSeqNums(); !equalUIDs(got, []uint32{1, 3}) {
		t.Errorf("SEARCH ALL = %v, want [1 3]", got)
	}
	if got := ev.take(); len(got) != 0 {
		t.Errorf("unilateral data during FETCH/SEARCH: %v", got)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ev.take(), ","); got != "EXPUNGE 2" {
		t.Errorf("NOOP reported %q, want EXPUNGE 2", got)
	}
}

func TestUserIsolation(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	if _, err := e.store.CreateMailbox(ctx, e.alice.ID, "Secret", ""); err != nil {
		t.Fatal(err)
	}
	e.deliver(t, e.alice, "Secret", sample("alice's secret"))
	e.deliver(t, e.alice, "INBOX", sample("alice's mail"))
	e.deliver(t, e.bob, "INBOX", sample("bob's mail"))

	bob := e.dial(t, "bob@example.com", bobPass, nil)
	for _, tc := range []struct {
		name string
		run  func() error
		want imap.ResponseCode
	}{
		{"SELECT", func() error { _, err := bob.Select("Secret", nil).Wait(); return err }, imap.ResponseCodeNonExistent},
		{"EXAMINE", func() error {
			_, err := bob.Select("Secret", &imap.SelectOptions{ReadOnly: true}).Wait()
			return err
		}, imap.ResponseCodeNonExistent},
		{"STATUS", func() error {
			_, err := bob.Status("Secret", &imap.StatusOptions{NumMessages: true}).Wait()
			return err
		}, imap.ResponseCodeNonExistent},
		{"DELETE", func() error { return bob.Delete("Secret").Wait() }, imap.ResponseCodeNonExistent},
		{"RENAME", func() error { return bob.Rename("Secret", "Mine", nil).Wait() }, imap.ResponseCodeNonExistent},
		{"SUBSCRIBE", func() error { return bob.Subscribe("Secret").Wait() }, imap.ResponseCodeNonExistent},
		{"APPEND", func() error {
			cmd := bob.Append("Secret", 4, nil)
			cmd.Write([]byte("spam"))
			cmd.Close()
			_, err := cmd.Wait()
			return err
		}, imap.ResponseCodeTryCreate},
		{"COPY", func() error {
			if _, err := bob.Select("INBOX", nil).Wait(); err != nil {
				return err
			}
			_, err := bob.Copy(imap.SeqSetNum(1), "Secret").Wait()
			return err
		}, imap.ResponseCodeTryCreate},
		{"MOVE", func() error { _, err := bob.Move(imap.SeqSetNum(1), "Secret").Wait(); return err }, imap.ResponseCodeTryCreate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); imapCode(err) != tc.want {
				t.Errorf("bob %s on alice's Secret: %v, want %s", tc.name, err, tc.want)
			}
		})
	}
	list := listing(t, bob, "", "*", nil)
	if _, ok := list["Secret"]; ok {
		t.Errorf("bob's LIST shows alice's Secret: %v", list)
	}
	// Bob's INBOX holds only his mail; alice's Secret is untouched.
	msgs, err := bob.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "bob's mail" {
		t.Errorf("bob's INBOX: %d messages, %v", len(msgs), err)
	}
	st, err := e.store.Status(ctx, e.alice.ID, "Secret")
	if err != nil || st.Messages != 1 {
		t.Errorf("alice's Secret after bob's attempts: %d messages, %v", st.Messages, err)
	}
}
