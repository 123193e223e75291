package imapd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/quarantine"
)

const (
	adminAddr = "admin@example.com"
	adminPass = "admin-secret"
	// oddAddr is a valid address that needs every escape of a shared
	// level; oddLevel is how it is listed.
	oddAddr  = "a/b*c%d~e@example.com"
	oddLevel = "a~2Fb~2Ac~25d~7Ee@example.com"

	aliceQ     = "Shared/alice@example.com/Quarantine"
	aliceInbox = "Shared/alice@example.com/INBOX"
	bobQ       = "Shared/bob@example.com/Quarantine"
	bobInbox   = "Shared/bob@example.com/INBOX"
)

// reviewLog is a Reviewer that records its calls and passes them on to a
// real quarantine.Review.
type reviewLog struct {
	mu    sync.Mutex
	calls []string
	next  Reviewer
}

// Moved implements Reviewer.
func (r *reviewLog) Moved(user mailstore.User, from, to mailstore.Mailbox, msgs []mailstore.Message, move bool) {
	call := fmt.Sprintf("moved %s %s>%s %d move=%v", user.Address, from.Name, to.Name, len(msgs), move)
	if from.UserID != user.ID || to.UserID != user.ID {
		call += " NOT THE USER'S MAILBOXES"
	}
	r.add(call)
	r.next.Moved(user, from, to, msgs, move)
}

// Expunging implements Reviewer.
func (r *reviewLog) Expunging(user mailstore.User, mb mailstore.Mailbox, msgs []mailstore.Message) {
	call := fmt.Sprintf("expunging %s %s %d", user.Address, mb.Name, len(msgs))
	if mb.UserID != user.ID {
		call += " NOT THE USER'S MAILBOX"
	}
	r.add(call)
	r.next.Expunging(user, mb, msgs)
}

func (r *reviewLog) add(call string) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
}

func (r *reviewLog) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// learnLog is a quarantine.Learner that records "user ham|spam".
type learnLog struct {
	mu  sync.Mutex
	got []string
}

func (l *learnLog) LearnSpam(_ context.Context, user string, _ []byte) error {
	return l.record(user, "spam")
}

func (l *learnLog) LearnHam(_ context.Context, user string, _ []byte) error {
	return l.record(user, "ham")
}

func (l *learnLog) record(user, kind string) error {
	l.mu.Lock()
	l.got = append(l.got, user+" "+kind)
	l.mu.Unlock()
	return nil
}

// wait waits (up to 5s) for want to be learned.
func (l *learnLog) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		got := append([]string(nil), l.got...)
		l.mu.Unlock()
		for _, g := range got {
			if g == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("learned %v, want %q among them", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// adminEnv is an env with an admin account, a user whose address needs
// escaping, a user without a Quarantine folder (carol), and the real
// quarantine review behind a recording Reviewer.
type adminEnv struct {
	*env
	admin, odd, carol mailstore.User
	q                 *quarantine.Quarantine
	reviews           *reviewLog
	learned           *learnLog
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	a := &adminEnv{reviews: &reviewLog{}, learned: &learnLog{}}
	a.env = newEnvWith(t, Config{}, func(e *env) {
		ctx := context.Background()
		var err error
		if a.admin, err = e.store.AddUser(ctx, adminAddr, adminPass, mailstore.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		if a.odd, err = e.store.AddUser(ctx, oddAddr, "odd-secret", mailstore.RoleUser); err != nil {
			t.Fatal(err)
		}
		if a.carol, err = e.store.AddUser(ctx, "carol@example.com", "carol-secret", mailstore.RoleUser); err != nil {
			t.Fatal(err)
		}
		if err := e.store.DeleteMailbox(ctx, a.carol.ID, mailstore.QuarantineMailbox); err != nil {
			t.Fatal(err)
		}
		if a.q, err = quarantine.New(quarantine.Config{}, e.store); err != nil {
			t.Fatal(err)
		}
		review := quarantine.NewReview(a.q, a.learned, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		// Registered before the server's cleanup, so run after it: no
		// session calls the Review once it is closed.
		t.Cleanup(review.Close)
		a.reviews.next = review
		e.srv.Reviewer = a.reviews
	})
	return a
}

func (a *adminEnv) dialAdmin(t *testing.T, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	return a.dial(t, adminAddr, adminPass, h)
}

// quarantined puts a message in u's Quarantine through the quarantine.
func (a *adminEnv) quarantined(t *testing.T, u mailstore.User, subject string) string {
	t.Helper()
	raw := message("spammer@example.net", u.Address, subject, "Mon, 2 Mar 2026 10:00:00 +0000", "Buy now\r\n")
	_, err := a.q.Put(context.Background(), nil, []byte(raw),
		quarantine.Record{QueueID: subject, Recipients: []string{u.Address}, Subject: subject, Score: 9}, []int64{u.ID})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// contents returns the messages of a user's mailbox, by UID.
func (a *adminEnv) contents(t *testing.T, u mailstore.User, name string) []string {
	t.Helper()
	msgs, err := a.store.Messages(context.Background(), mustMailbox(t, a.env, u, name).ID)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		raw, err := a.store.ReadMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(raw)
	}
	return out
}

func TestAdminSharedNamespace(t *testing.T) {
	a := newAdminEnv(t)
	ctx := context.Background()
	// The admin's own folder under Shared is hidden behind the namespace.
	if _, err := a.store.CreateMailbox(ctx, a.admin.ID, "Shared/Old", ""); err != nil {
		t.Fatal(err)
	}
	a.quarantined(t, a.alice, "q1")
	a.quarantined(t, a.alice, "q2")
	a.quarantined(t, a.odd, "q3")
	c := a.dialAdmin(t, nil)

	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Prefix != "" || ns.Other != nil ||
		len(ns.Shared) != 1 || ns.Shared[0].Prefix != "Shared/" || ns.Shared[0].Delim != '/' {
		t.Errorf("admin NAMESPACE = %+v, %v; want personal \"\" and shared \"Shared/\" with /", ns, err)
	}

	own := map[string]string{
		"INBOX": `\HasNoChildren`, "Sent": `\HasNoChildren \Sent`, "Drafts": `\Drafts \HasNoChildren`,
		"Trash": `\HasNoChildren \Trash`, "Junk": `\HasNoChildren \Junk`, "Quarantine": `\HasNoChildren`,
	}
	with := func(m map[string]string, more map[string]string) map[string]string {
		out := make(map[string]string)
		for k, v := range m {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	levels := map[string]string{
		"Shared/alice@example.com": `\HasChildren \Noselect`,
		"Shared/bob@example.com":   `\HasChildren \Noselect`,
		"Shared/" + oddLevel:       `\HasChildren \Noselect`,
	}
	leaves := map[string]string{
		aliceQ: `\HasNoChildren`, aliceInbox: `\HasNoChildren`,
		bobQ: `\HasNoChildren`, bobInbox: `\HasNoChildren`,
		"Shared/" + oddLevel + "/Quarantine": `\HasNoChildren`, "Shared/" + oddLevel + "/INBOX": `\HasNoChildren`,
	}
	subscribedLeaves := make(map[string]string)
	for k, v := range leaves {
		subscribedLeaves[k] = v + ` \Subscribed`
	}
	for _, tc := range []struct {
		name         string
		ref, pattern string
		options      *imap.ListOptions
		want         map[string]string
	}{
		// carol has no Quarantine folder; the admin is not in their own
		// shared namespace.
		{"all", "", "*", nil, with(with(with(own, map[string]string{"Shared": `\HasChildren \Noselect`}), levels), leaves)},
		{"top level", "", "%", nil, with(own, map[string]string{"Shared": `\HasChildren \Noselect`})},
		{"address levels", "Shared/", "%", nil, levels},
		{"quarantines", "", "Shared/%/Quarantine", nil, map[string]string{
			aliceQ: `\HasNoChildren`, bobQ: `\HasNoChildren`, "Shared/" + oddLevel + "/Quarantine": `\HasNoChildren`,
		}},
		{"subscribed", "", "Shared/*", &imap.ListOptions{SelectSubscribed: true}, subscribedLeaves},
		{"personal names only", "", "INBOX", nil, map[string]string{"INBOX": `\HasNoChildren`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listing(t, c, tc.ref, tc.pattern, tc.options); !equalListing(got, tc.want) {
				t.Errorf("LIST %q %q = %v\nwant %v", tc.ref, tc.pattern, got, tc.want)
			}
		})
	}

	// LIST-STATUS: the quarantines have a STATUS, the release targets,
	// which cannot be read, have none.
	list, err := c.List("", "Shared/alice@example.com/*", &imap.ListOptions{
		ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	statuses := make(map[string]string)
	for _, d := range list {
		switch {
		case d.Status == nil:
			statuses[d.Mailbox] = "none"
		case d.Status.NumMessages != nil:
			statuses[d.Mailbox] = itoa(*d.Status.NumMessages)
		}
	}
	if want := map[string]string{aliceQ: "2", aliceInbox: "none"}; !equalListing(statuses, want) {
		t.Errorf("LIST RETURN (STATUS) = %v, want %v", statuses, want)
	}

	aliceQuarantine := mustMailbox(t, a.env, a.alice, "Quarantine")
	for _, tc := range []struct {
		name string
		want uint32
		mb   mailstore.Mailbox
	}{
		{aliceQ, 2, aliceQuarantine},
		{"Shared/" + oddLevel + "/Quarantine", 1, mustMailbox(t, a.env, a.odd, "Quarantine")},
		{bobQ, 0, mustMailbox(t, a.env, a.bob, "Quarantine")},
	} {
		st, err := c.Status(tc.name, &imap.StatusOptions{NumMessages: true, UIDValidity: true}).Wait()
		if err != nil {
			t.Errorf("STATUS %s: %v", tc.name, err)
			continue
		}
		if st.Mailbox != tc.name || st.NumMessages == nil || *st.NumMessages != tc.want || st.UIDValidity != tc.mb.UIDValidity {
			t.Errorf("STATUS %s = %s %v %d, want %s %d %d", tc.name, st.Mailbox, st.NumMessages, st.UIDValidity,
				tc.name, tc.want, tc.mb.UIDValidity)
		}
	}
	if _, err := c.Select("Shared/Old", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("SELECT of the admin's own Shared/Old: %v, want NONEXISTENT (hidden by the namespace)", err)
	}

	// A non-admin sees no shared namespace.
	alice := a.dialAlice(t)
	ns, err = alice.Namespace().Wait()
	if err != nil || ns.Shared != nil || ns.Other != nil {
		t.Errorf("alice's NAMESPACE = %+v, %v; want no shared namespace", ns, err)
	}
	if got := listing(t, alice, "", "*", nil); !equalListing(got, own) {
		t.Errorf("alice's LIST = %v, want her own mailboxes only", got)
	}
}

func TestAdminReadsQuarantine(t *testing.T) {
	a := newAdminEnv(t)
	raw := a.quarantined(t, a.alice, "suspect")
	ev := newEvents()
	c := a.dialAdmin(t, ev.handler())
	sel, err := c.Select(aliceQ, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	mb := mustMailbox(t, a.env, a.alice, "Quarantine")
	if sel.NumMessages != 1 || sel.UIDValidity != mb.UIDValidity || len(sel.PermanentFlags) == 0 {
		t.Errorf("SELECT %s = %d messages, UIDVALIDITY %d, PERMANENTFLAGS %v; want 1, %d, read-write",
			aliceQ, sel.NumMessages, sel.UIDValidity, sel.PermanentFlags, mb.UIDValidity)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	m := fetchUID(t, c, 1, &imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{body}})
	if !bytes.Equal(m.FindBodySection(body), []byte(raw)) || m.Envelope.Subject != "suspect" {
		t.Errorf("FETCH of alice's quarantined message = %q (subject %q)", m.FindBodySection(body), m.Envelope.Subject)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "suspect"}}}, nil).Wait()
	if err != nil || !equalUIDs(uidList(found.AllUIDs()), []uint32{1}) {
		t.Errorf("UID SEARCH SUBJECT suspect = %v, %v; want [1]", found, err)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	msgs, err := a.store.Messages(context.Background(), mb.ID)
	if err != nil || len(msgs) != 1 || !msgs[0].HasFlag(`\Flagged`) {
		t.Errorf("alice's Quarantine after the admin's STORE: %+v, %v; want \\Flagged", msgs, err)
	}

	// IDLE sees new quarantined mail of the owner.
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	a.quarantined(t, a.alice, "another")
	waitEvent(t, ev, "EXISTS 2")
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	// And NOOP sees a change the owner makes.
	alice := a.dialAlice(t)
	if _, err := alice.Select("Quarantine", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := alice.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	ev.take()
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(collect(ev, 1), ","); got != `FETCH 2 \Seen` {
		t.Errorf("NOOP after alice flagged her message: %q, want FETCH 2 \\Seen", got)
	}
	if got := a.reviews.take(); len(got) != 0 {
		t.Errorf("reading told the Reviewer %v", got)
	}
}

func TestAdminRelease(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target string
		move   bool
	}{
		{"MOVE", aliceInbox, true},
		{"COPY", "Shared/alice@example.com/inbox", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAdminEnv(t)
			raw := a.quarantined(t, a.alice, "wanted")
			kept := a.quarantined(t, a.alice, "unwanted")
			ev := newEvents()
			alice := a.dial(t, "alice@example.com", alicePass, ev.handler())
			if _, err := alice.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			idle, err := alice.Idle()
			if err != nil {
				t.Fatal(err)
			}

			c := a.dialAdmin(t, nil)
			if _, err := c.Select(aliceQ, nil).Wait(); err != nil {
				t.Fatal(err)
			}
			// COPYUID, from either command.
			var validity uint32
			var srcUIDs, dstUIDs string
			if tc.move {
				var moved *imapclient.MoveData
				if moved, err = c.Move(imap.UIDSetNum(1), tc.target).Wait(); err == nil {
					validity, srcUIDs, dstUIDs = moved.UIDValidity, moved.SourceUIDs.String(), moved.DestUIDs.String()
				}
			} else {
				var copied *imap.CopyData
				if copied, err = c.Copy(imap.UIDSetNum(1), tc.target).Wait(); err == nil {
					validity, srcUIDs, dstUIDs = copied.UIDValidity, copied.SourceUIDs.String(), copied.DestUIDs.String()
				}
			}
			if err != nil {
				t.Fatalf("%s to %s: %v", tc.name, tc.target, err)
			}
			inbox := mustMailbox(t, a.env, a.alice, "INBOX")
			if validity != inbox.UIDValidity || srcUIDs != "1" || dstUIDs != "1" {
				t.Errorf("COPYUID = %d %s %s, want %d 1 1 (alice's INBOX)", validity, srcUIDs, dstUIDs, inbox.UIDValidity)
			}
			// The owner's session sees it arrive.
			waitEvent(t, ev, "EXISTS 1")
			if err := idle.Close(); err != nil {
				t.Fatal(err)
			}

			if got := a.contents(t, a.alice, "INBOX"); len(got) != 1 || got[0] != raw {
				t.Errorf("alice's INBOX holds %d messages, want the released one once", len(got))
			}
			wantQ := []string{kept}
			if !tc.move {
				wantQ = []string{raw, kept}
			}
			if got := a.contents(t, a.alice, "Quarantine"); strings.Join(got, "|") != strings.Join(wantQ, "|") {
				t.Errorf("alice's Quarantine holds %d messages, want %d", len(got), len(wantQ))
			}
			if got := a.contents(t, a.admin, "INBOX"); len(got) != 0 {
				t.Errorf("the admin's INBOX got %d messages", len(got))
			}
			want := fmt.Sprintf("moved alice@example.com Quarantine>INBOX 1 move=%v", tc.move)
			if got := a.reviews.take(); len(got) != 1 || got[0] != want {
				t.Errorf("Reviewer was told %q, want [%q]", got, want)
			}
			// The real Review learned ham for alice and, for a move,
			// dropped the verdict record.
			a.learned.wait(t, "alice@example.com ham")
			entries, err := a.q.List(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			wantRecords := 1
			if !tc.move {
				wantRecords = 2
			}
			if len(entries) != wantRecords {
				t.Errorf("%d quarantine records left, want %d", len(entries), wantRecords)
			}
		})
	}
}

func TestAdminDeletesInQuarantine(t *testing.T) {
	a := newAdminEnv(t)
	a.quarantined(t, a.alice, "junk")
	kept := a.quarantined(t, a.alice, "maybe")
	c := a.dialAdmin(t, nil)
	if _, err := c.Select(aliceQ, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	seqs, err := c.Expunge().Collect()
	if err != nil || !equalUIDs(seqs, []uint32{1}) {
		t.Fatalf("EXPUNGE = %v, %v; want [1]", seqs, err)
	}
	if got := a.reviews.take(); len(got) != 1 || got[0] != "expunging alice@example.com Quarantine 1" {
		t.Errorf("Reviewer was told %q, want [expunging alice@example.com Quarantine 1]", got)
	}
	a.learned.wait(t, "alice@example.com spam")
	if got := a.contents(t, a.alice, "Quarantine"); len(got) != 1 || got[0] != kept {
		t.Errorf("alice's Quarantine holds %d messages, want the other one", len(got))
	}
}

// TestAdminBoundaries: an admin reaches other users' Quarantine folders
// and, as a release target, their INBOX; nothing else, and no mail crosses
// accounts.
func TestAdminBoundaries(t *testing.T) {
	a := newAdminEnv(t)
	ctx := context.Background()
	if _, err := a.store.CreateMailbox(ctx, a.alice.ID, "Secret", ""); err != nil {
		t.Fatal(err)
	}
	a.deliver(t, a.alice, "Secret", sample("alice's secret"))
	a.deliver(t, a.alice, "INBOX", sample("alice's mail"))
	a.deliver(t, a.admin, "INBOX", sample("admin's mail"))
	a.quarantined(t, a.alice, "alice's spam")
	a.quarantined(t, a.bob, "bob's spam")

	c := a.dialAdmin(t, nil)
	inQ := a.dialAdmin(t, nil) // selected on alice's shared Quarantine
	if _, err := inQ.Select(aliceQ, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	inOwn := a.dialAdmin(t, nil) // selected on the admin's INBOX
	if _, err := inOwn.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sel := func(name string, readOnly bool) func() error {
		return func() error {
			_, err := c.Select(name, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
			return err
		}
	}
	appendTo := func(name string) func() error {
		return func() error {
			cmd := c.Append(name, 4, nil)
			cmd.Write([]byte("spam"))
			cmd.Close()
			_, err := cmd.Wait()
			return err
		}
	}
	copyTo := func(cl *imapclient.Client, name string) func() error {
		return func() error { _, err := cl.Copy(imap.SeqSetNum(1), name).Wait(); return err }
	}
	moveTo := func(cl *imapclient.Client, name string) func() error {
		return func() error { _, err := cl.Move(imap.SeqSetNum(1), name).Wait(); return err }
	}
	const ok = imap.ResponseCode("")
	for _, tc := range []struct {
		name string
		run  func() error
		want imap.ResponseCode
	}{
		{"SELECT another user's other folder", sel("Shared/alice@example.com/Secret", false), imap.ResponseCodeNonExistent},
		{"SELECT another user's Sent", sel("Shared/alice@example.com/Sent", false), imap.ResponseCodeNonExistent},
		{"SELECT a release target", sel(aliceInbox, false), imap.ResponseCodeNoPerm},
		{"EXAMINE a release target", sel(aliceInbox, true), imap.ResponseCodeNoPerm},
		{"STATUS a release target", func() error {
			_, err := c.Status(aliceInbox, &imap.StatusOptions{NumMessages: true}).Wait()
			return err
		}, imap.ResponseCodeNoPerm},
		{"SELECT the Shared level", sel("Shared", false), imap.ResponseCodeNonExistent},
		{"SELECT an address level", sel("Shared/alice@example.com", false), imap.ResponseCodeNonExistent},
		{"SELECT below a quarantine", sel(aliceQ+"/Sub", false), imap.ResponseCodeNonExistent},
		{"SELECT another spelling of the address", sel("Shared/Alice@Example.com/Quarantine", false), imap.ResponseCodeNonExistent},
		{"SELECT an unknown user", sel("Shared/nobody@example.com/Quarantine", false), imap.ResponseCodeNonExistent},
		{"SELECT a user without Quarantine", sel("Shared/carol@example.com/Quarantine", false), imap.ResponseCodeNonExistent},
		{"SELECT the admin's own shared name", sel("Shared/admin@example.com/Quarantine", false), imap.ResponseCodeNonExistent},
		{"SELECT a bad escape", sel("Shared/a~2/Quarantine", false), imap.ResponseCodeNonExistent},
		{"APPEND to a shared Quarantine", appendTo(aliceQ), imap.ResponseCodeNoPerm},
		{"APPEND to a release target", appendTo(aliceInbox), imap.ResponseCodeNoPerm},
		{"APPEND to another user's Sent", appendTo("Shared/alice@example.com/Sent"), imap.ResponseCodeNonExistent},
		{"CREATE under an address", func() error { return c.Create("Shared/alice@example.com/Sub", nil).Wait() }, imap.ResponseCodeNoPerm},
		{"CREATE under Shared", func() error { return c.Create("Shared/new", nil).Wait() }, imap.ResponseCodeNoPerm},
		{"CREATE Shared", func() error { return c.Create("Shared", nil).Wait() }, imap.ResponseCodeNoPerm},
		{"DELETE a shared Quarantine", func() error { return c.Delete(aliceQ).Wait() }, imap.ResponseCodeNoPerm},
		{"DELETE a release target", func() error { return c.Delete(aliceInbox).Wait() }, imap.ResponseCodeNoPerm},
		{"RENAME a shared Quarantine", func() error { return c.Rename(aliceQ, "Mine", nil).Wait() }, imap.ResponseCodeNoPerm},
		{"RENAME into Shared", func() error { return c.Rename("Sent", "Shared/alice@example.com/Sent", nil).Wait() }, imap.ResponseCodeNoPerm},
		{"SUBSCRIBE a shared Quarantine", func() error { return c.Subscribe(aliceQ).Wait() }, ok},
		{"SUBSCRIBE another user's other folder", func() error { return c.Subscribe("Shared/alice@example.com/Secret").Wait() }, imap.ResponseCodeNonExistent},
		{"UNSUBSCRIBE a shared Quarantine", func() error { return c.Unsubscribe(aliceQ).Wait() }, imap.ResponseCodeCannot},
		{"COPY from a shared Quarantine to the admin's INBOX", copyTo(inQ, "INBOX"), imap.ResponseCodeCannot},
		{"MOVE from a shared Quarantine to the admin's Trash", moveTo(inQ, "Trash"), imap.ResponseCodeCannot},
		{"MOVE from a shared Quarantine to a missing own folder", moveTo(inQ, "Nowhere"), imap.ResponseCodeCannot},
		{"MOVE from a shared Quarantine to another user's INBOX", moveTo(inQ, bobInbox), imap.ResponseCodeCannot},
		{"COPY from a shared Quarantine to another user's Quarantine", copyTo(inQ, bobQ), imap.ResponseCodeCannot},
		{"COPY from a shared Quarantine into itself", copyTo(inQ, aliceQ), imap.ResponseCodeNoPerm},
		{"MOVE from a shared Quarantine to the owner's Junk", moveTo(inQ, "Shared/alice@example.com/Junk"), imap.ResponseCodeNonExistent},
		{"COPY from the admin's INBOX to a release target", copyTo(inOwn, aliceInbox), imap.ResponseCodeCannot},
		{"MOVE from the admin's INBOX to a shared Quarantine", moveTo(inOwn, aliceQ), imap.ResponseCodeCannot},
		{"MOVE from the admin's INBOX to another user's Secret", moveTo(inOwn, "Shared/alice@example.com/Secret"), imap.ResponseCodeNonExistent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if tc.want == ok && err != nil {
				t.Fatalf("err = %v, want success", err)
			}
			if tc.want != ok && (err == nil || imapCode(err) != tc.want) {
				t.Errorf("err = %v, want NO [%s]", err, tc.want)
			}
		})
	}

	// Nothing moved, nobody's folders changed.
	for _, tc := range []struct {
		u       mailstore.User
		mailbox string
		want    int
	}{
		{a.alice, "INBOX", 1}, {a.alice, "Secret", 1}, {a.alice, "Quarantine", 1}, {a.alice, "Sent", 0},
		{a.bob, "INBOX", 0}, {a.bob, "Quarantine", 1},
		{a.admin, "INBOX", 1}, {a.admin, "Trash", 0}, {a.admin, "Quarantine", 0},
	} {
		if got := a.contents(t, tc.u, tc.mailbox); len(got) != tc.want {
			t.Errorf("%s's %s holds %d messages, want %d", tc.u.Address, tc.mailbox, len(got), tc.want)
		}
	}
	mbs, err := a.store.Mailboxes(ctx, a.alice.ID)
	if err != nil || len(mbs) != 7 {
		t.Errorf("alice has %d mailboxes (%v), want her 6 and Secret", len(mbs), err)
	}
	if q := mustMailbox(t, a.env, a.alice, "Quarantine"); !q.Subscribed {
		t.Errorf("alice's Quarantine subscription changed")
	}
	if _, err := a.store.Mailbox(ctx, a.admin.ID, "Nowhere"); err == nil {
		t.Errorf("a refused MOVE created the admin's Nowhere")
	}
	if got := a.reviews.take(); len(got) != 0 {
		t.Errorf("refused commands told the Reviewer %v", got)
	}
}

// TestNonAdminCannotReachShared: for a user who is not an admin, names
// under Shared/ are personal names like any other.
func TestNonAdminCannotReachShared(t *testing.T) {
	a := newAdminEnv(t)
	a.quarantined(t, a.bob, "bob's spam")
	a.deliver(t, a.alice, "INBOX", sample("alice's mail"))
	alice := a.dialAlice(t)
	if _, err := alice.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	ops := []struct {
		name string
		run  func(name string) error
	}{
		{"EXAMINE", func(name string) error {
			_, err := alice.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
			if err != nil {
				// A failed SELECT leaves no mailbox selected.
				if _, err := alice.Select("INBOX", nil).Wait(); err != nil {
					t.Fatal(err)
				}
			}
			return err
		}},
		{"STATUS", func(name string) error {
			_, err := alice.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
			return err
		}},
		{"APPEND", func(name string) error {
			cmd := alice.Append(name, 4, nil)
			cmd.Write([]byte("spam"))
			cmd.Close()
			_, err := cmd.Wait()
			return err
		}},
		{"DELETE", func(name string) error { return alice.Delete(name).Wait() }},
		{"RENAME", func(name string) error { return alice.Rename(name, "Mine", nil).Wait() }},
		{"SUBSCRIBE", func(name string) error { return alice.Subscribe(name).Wait() }},
		{"COPY", func(name string) error { _, err := alice.Copy(imap.SeqSetNum(1), name).Wait(); return err }},
		{"MOVE", func(name string) error { _, err := alice.Move(imap.SeqSetNum(1), name).Wait(); return err }},
	}
	for _, op := range ops {
		baseline := op.run("Nope/Quarantine")
		if baseline == nil {
			t.Fatalf("%s of an unknown name succeeded", op.name)
		}
		for _, name := range []string{bobQ, bobInbox, "Shared", "Shared/bob@example.com"} {
			if err := op.run(name); err == nil || imapCode(err) != imapCode(baseline) {
				t.Errorf("alice %s %s: %v; want %v, as for an unknown name", op.name, name, err, baseline)
			}
		}
	}
	if got := listing(t, alice, "", "Shared*", nil); len(got) != 0 {
		t.Errorf("alice's LIST Shared* = %v, want nothing", got)
	}
	// She may have a folder of that name: her own, empty.
	if err := alice.Create(bobQ, nil).Wait(); err != nil {
		t.Fatalf("alice CREATE %s: %v", bobQ, err)
	}
	sel, err := alice.Select(bobQ, nil).Wait()
	if err != nil || sel.NumMessages != 0 {
		t.Errorf("alice SELECT of her own %s: %+v, %v; want it empty", bobQ, sel, err)
	}
	if got := a.contents(t, a.bob, "Quarantine"); len(got) != 1 {
		t.Errorf("bob's Quarantine holds %d messages, want 1", len(got))
	}
	if got := a.reviews.take(); len(got) != 0 {
		t.Errorf("the Reviewer was told %v", got)
	}
}

func TestAddressLevels(t *testing.T) {
	for _, tc := range []struct{ addr, level string }{
		{"alice@example.com", "alice@example.com"},
		{"first.last+tag@sub.example.com", "first.last+tag@sub.example.com"},
		{oddAddr, oddLevel},
		{"~~@example.com", "~7E~7E@example.com"},
		{"jörg@example.com", "jörg@example.com"},
	} {
		if got := escapeAddress(tc.addr); got != tc.level {
			t.Errorf("escapeAddress(%q) = %q, want %q", tc.addr, got, tc.level)
		}
		if got, ok := unescapeAddress(tc.level); !ok || got != tc.addr {
			t.Errorf("unescapeAddress(%q) = %q, %v; want %q", tc.level, got, ok, tc.addr)
		}
	}
	for _, bad := range []string{"a~", "a~2", "a~zz@example.com"} {
		if got, ok := unescapeAddress(bad); ok {
			t.Errorf("unescapeAddress(%q) = %q, want a malformed escape", bad, got)
		}
	}
}

func TestMayListShared(t *testing.T) {
	for _, tc := range []struct {
		ref      string
		patterns []string
		want     bool
	}{
		{"", []string{"*"}, true},
		{"", []string{"%"}, true},
		{"", []string{"INBOX"}, false},
		{"", []string{"Sent", "Trash"}, false},
		{"", []string{"Sent", "Shared/%"}, true},
		{"", []string{"S*"}, true},
		{"", []string{"Archive/*"}, false},
		{"Shared", []string{"%"}, true},
		{"Shared/", []string{"%"}, true},
		{"Archive", []string{"/Shared/*"}, true},
		{"Archive", []string{"*"}, false},
		{"", []string{"Shared/alice@example.com/Quarantine"}, true},
	} {
		if got := mayListShared(tc.ref, tc.patterns); got != tc.want {
			t.Errorf("mayListShared(%q, %q) = %v, want %v", tc.ref, tc.patterns, got, tc.want)
		}
	}
}
