package imapd

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/moatmail/moat/delivery/mailstore"
)

// view is what a client sees: UID and flags of every message, by sequence
// number.
func view(t *testing.T, c *imapclient.Client) string {
	t.Helper()
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%d:%d%v ", m.SeqNum, m.UID, m.Flags)
	}
	return b.String()
}

// storeView is the same from the store.
func storeView(t *testing.T, e *env, mailboxID int64) string {
	t.Helper()
	msgs, err := e.store.Messages(context.Background(), mailboxID)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, m := range msgs {
		flags := make([]imap.Flag, len(m.Flags))
		for k, f := range m.Flags {
			flags[k] = imap.Flag(f)
		}
		fmt.Fprintf(&b, "%d:%d%v ", i+1, m.UID, flags)
	}
	return b.String()
}

// TestSessionsShareOneListing: three sessions on one mailbox share its
// listing, and each sees the others' flag changes, expunges and moves and
// new mail; after every step all three agree with the store.
func TestSessionsShareOneListing(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 5; i++ {
		e.deliver(t, e.alice, "INBOX", sample("m"+itoa(uint32(i))))
	}
	inbox, err := e.store.Mailbox(context.Background(), e.alice.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateMailbox(context.Background(), e.alice.ID, "Archive", ""); err != nil {
		t.Fatal(err)
	}
	evs := []*events{newEvents(), newEvents(), newEvents()}
	cs := make([]*imapclient.Client, 3)
	for i := range cs {
		cs[i] = e.dial(t, "alice@example.com", alicePass, evs[i].handler())
		if _, err := cs[i].Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	e.srv.listings.mu.Lock()
	entry := e.srv.listings.byID[inbox.ID]
	users := 0
	if entry != nil {
		users = entry.users
	}
	e.srv.listings.mu.Unlock()
	if users != 3 {
		t.Fatalf("listing of INBOX has %d users, want 3", users)
	}
	a, b, c := cs[0], cs[1], cs[2]
	for _, step := range []struct {
		name string
		act  func() error
		// what B and C report at their next NOOP
		want string
	}{
		{"flag", func() error {
			return a.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close()
		}, `FETCH 3 \Flagged`},
		{"new mail", func() error { e.deliver(t, e.alice, "INBOX", sample("new")); return nil }, "EXISTS 6"},
		{"expunge", func() error {
			if err := a.Store(imap.SeqSetNum(2, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return err
			}
			return a.Expunge().Close()
		}, "EXPUNGE 4,EXPUNGE 2"},
		{"move", func() error { _, err := a.Move(imap.SeqSetNum(1), "Archive").Wait(); return err }, "EXPUNGE 1"},
		{"flag and new mail", func() error {
			if err := a.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
				return err
			}
			e.deliver(t, e.alice, "INBOX", sample("newer"))
			return nil
		}, `FETCH 1 \Flagged \Seen,EXISTS 4`},
	} {
		for i := 1; i < 3; i++ {
			evs[i].take()
		}
		if err := step.act(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		n := strings.Count(step.want, ",") + 1
		for i, cl := range []*imapclient.Client{b, c} {
			if err := cl.Noop().Wait(); err != nil {
				t.Fatal(err)
			}
			// imapclient hands FETCH data over on a goroutine of its
			// own: compare without order.
			got := collect(evs[i+1], n)
			sort.Strings(got)
			want := strings.Split(step.want, ",")
			sort.Strings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: session %d saw %q, want %q", step.name, i+2, got, step.want)
			}
		}
		if err := a.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		want := storeView(t, e, inbox.ID)
		for i, cl := range cs {
			if got := view(t, cl); got != want {
				t.Errorf("%s: session %d sees %q, the store holds %q", step.name, i+1, got, want)
			}
		}
	}
	// Unselecting leaves the listing to linger for the next client.
	for _, cl := range cs {
		if err := cl.Unselect().Wait(); err != nil {
			t.Fatal(err)
		}
	}
	e.srv.listings.mu.Lock()
	users = e.srv.listings.byID[inbox.ID].users
	e.srv.listings.mu.Unlock()
	if users != 0 {
		t.Errorf("after UNSELECT the listing has %d users", users)
	}
}

// TestListingSuccessorsLeaveOlderIntact: a listing moved forward by new
// mail appends to the slices it shares with its predecessor; a session
// still on the predecessor sees it unchanged.
func TestListingSuccessorsLeaveOlderIntact(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	inbox, _ := e.store.Mailbox(ctx, e.alice.ID, "INBOX")
	for i := 0; i < 3; i++ {
		e.deliver(t, e.alice, "INBOX", sample("m"+itoa(uint32(i))))
	}
	entry := e.srv.listings.acquire(inbox.ID)
	defer e.srv.listings.release(inbox.ID, entry)
	first, err := entry.get(ctx, e.store, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(first.uids, first.flags, len(first.info))
	again, _ := entry.get(ctx, e.store, inbox.ID)
	if again != first {
		t.Error("an unchanged mailbox gave a new listing")
	}
	e.deliver(t, e.alice, "INBOX", sample("new"), `\Seen`)
	e.store.StoreFlags(ctx, inbox.ID, []uint32{1}, mailstore.FlagsAdd, []string{"$label"})
	next, err := entry.get(ctx, e.store, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprint(first.uids, first.flags, len(first.info)); after != before {
		t.Errorf("older listing changed from %s to %s", before, after)
	}
	if first.table.sets[first.flags[0]].key != "" {
		t.Errorf("older listing's flags of UID 1 = %q", first.table.sets[first.flags[0]].key)
	}
	if fmt.Sprint(next.uids) != "[1 2 3 4]" || next.table.sets[next.flags[0]].key != "$label" ||
		next.table.sets[next.flags[3]].key != `\Seen` || next.firstUnseen != 0 {
		t.Errorf("new listing: uids %v, flags of 1 %q, of 4 %q, first unseen %d", next.uids,
			next.table.sets[next.flags[0]].key, next.table.sets[next.flags[3]].key, next.firstUnseen)
	}
}

// TestHeaderSearchFromIndex: SUBJECT, FROM, TO, CC and HEADER criteria
// answer the same from the index as from the messages (encoded words,
// case, folded and repeated fields, NOT and OR), for messages indexed at
// delivery and for messages stored without (an index of before), which
// the search then indexes.
func TestHeaderSearchFromIndex(t *testing.T) {
	e := newEnv(t, Config{})
	msgs := []string{
		"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.net>\r\nTo: alice@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n =?iso-8859-1?q?_aus_K=F6ln?=\r\n\r\nbody one\r\n",
		"From: Bob <BOB@Example.NET>\r\nTo: x@example.org\r\nTo: alice@example.com\r\nCc: Carol <carol@example.com>\r\nSubject: Quarterly\r\n\tREPORT\r\nX-Tag: blue\r\n\r\nbody two\r\n",
		"From: carol@example.com\r\nSubject:\r\n\r\nno subject text\r\n",
		"From: dave@example.com\r\n\r\nno subject field\r\n",
	}
	for _, m := range msgs {
		e.deliver(t, e.alice, "INBOX", m)
	}
	hdr := func(k, v string) imap.SearchCriteria {
		return imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: k, Value: v}}}
	}
	cases := []struct {
		name string
		c    imap.SearchCriteria
		want string
	}{
		{"encoded word", hdr("Subject", "grüße aus köln"), "[1]"},
		{"case", hdr("SUBJECT", "GRÜßE"), "[1]"},
		{"folded", hdr("Subject", "quarterly report"), "[2]"},
		{"from name", hdr("From", "jürgen"), "[1]"},
		{"from address case", hdr("from", "bob@example.net"), "[2]"},
		{"second To field", hdr("To", "alice@"), "[1 2]"},
		{"cc", hdr("Cc", "carol"), "[2]"},
		{"bcc none", hdr("Bcc", "a"), "[]"},
		{"empty value: field present", hdr("Subject", ""), "[1 2 3]"},
		{"not indexed field", hdr("X-Tag", "BLU"), "[2]"},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{hdr("From", "example.com")}}, "[1 2]"},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{hdr("Subject", "report"), hdr("From", "dave")}}}, "[2 4]"},
		{"two criteria", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "example"}, {Key: "Subject", Value: "e"}}}, "[1 2]"},
		{"across fields", hdr("To", "org\nalice"), "[]"},
	}
	c := e.dialAlice(t)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	run := func(when string) {
		for _, tc := range cases {
			data, err := c.UIDSearch(&tc.c, nil).Wait()
			if err != nil {
				t.Fatalf("%s: %s: %v", when, tc.name, err)
			}
			if got := fmt.Sprint(data.AllUIDs()); got != tc.want {
				t.Errorf("%s: %s: UIDs %s, want %s", when, tc.name, got, tc.want)
			}
		}
	}
	run("indexed at delivery")

	// An index of before: no search fields. The same answers, read from
	// the messages, and the rows are back after the search.
	var seq int
	var name, path string
	if err := e.store.DB().QueryRow("PRAGMA database_list").Scan(&seq, &name, &path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM search_headers"); err != nil {
		t.Fatal(err)
	}
	run("not indexed")
	var n int
	if err := db.QueryRow("SELECT count(*) FROM search_headers").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(msgs) {
		t.Errorf("after a search %d messages are indexed, want %d", n, len(msgs))
	}
	run("indexed by the search")
}

// TestListingFirstUnseen: the position of the first message without \Seen
// (SELECT's OK [UNSEEN]) follows flag changes, expunges and new mail.
func TestListingFirstUnseen(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	inbox, _ := e.store.Mailbox(ctx, e.alice.ID, "INBOX")
	for i := 0; i < 4; i++ {
		e.deliver(t, e.alice, "INBOX", sample("m"+itoa(uint32(i))))
	}
	entry := e.srv.listings.acquire(inbox.ID)
	defer e.srv.listings.release(inbox.ID, entry)
	steps := []struct {
		name   string
		change func()
		want   int
	}{
		{"all new", func() {}, 0},
		{"first two seen", func() {
			e.store.StoreFlags(ctx, inbox.ID, []uint32{1, 2}, mailstore.FlagsAdd, []string{`\Seen`})
		}, 2},
		{"first unseen expunged", func() {
			e.store.StoreFlags(ctx, inbox.ID, []uint32{3}, mailstore.FlagsAdd, []string{`\Deleted`})
			e.store.Expunge(ctx, inbox.ID, nil)
		}, 2},
		{"all seen", func() {
			e.store.StoreFlags(ctx, inbox.ID, []uint32{4}, mailstore.FlagsAdd, []string{`\Seen`})
		}, -1},
		{"new mail", func() { e.deliver(t, e.alice, "INBOX", sample("new")) }, 3},
		{"one unseen again", func() {
			e.store.StoreFlags(ctx, inbox.ID, []uint32{2}, mailstore.FlagsRemove, []string{`\Seen`})
		}, 1},
	}
	for _, s := range steps {
		s.change()
		l, err := entry.get(ctx, e.store, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		if l.firstUnseen != s.want {
			t.Errorf("%s: first unseen at %d, want %d (uids %v)", s.name, l.firstUnseen, s.want, l.uids)
		}
	}
}
