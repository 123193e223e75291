package imapd

import (
	"bytes"
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func sample(subject string) string {
	return message("sender@example.net", "alice@example.com", subject, "Mon, 2 Mar 2026 10:00:00 +0000", "Body of "+subject+"\r\n")
}

func TestStoreFlagsPersist(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 3; i++ {
		e.deliver(t, e.alice, "INBOX", sample("m"+itoa(uint32(i))))
	}
	c := e.dialAlice(t)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		set   imap.NumSet
		store imap.StoreFlags
		// want is the flags of each message after the step.
		want [3]string
	}{
		{"add", imap.SeqSetNum(1, 2), imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Label1"}},
			[3]string{`$Label1 \Flagged`, `$Label1 \Flagged`, ``}},
		{"system flags any case", imap.UIDSetNum(3), imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{`\SEEN`}},
			[3]string{`$Label1 \Flagged`, `$Label1 \Flagged`, `\Seen`}},
		{"remove", imap.SeqSetNum(2), imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{"$label1"}},
			[3]string{`$Label1 \Flagged`, `\Flagged`, `\Seen`}},
		{"replace silently", imap.SeqSet{{Start: 1, Stop: 0}}, imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: []imap.Flag{imap.FlagAnswered}},
			[3]string{`\Answered`, `\Answered`, `\Answered`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.store
			got, err := c.Store(tc.set, &store, nil).Collect()
			if err != nil {
				t.Fatal(err)
			}
			if store.Silent && len(got) != 0 {
				t.Errorf(".SILENT STORE answered %d FETCH responses", len(got))
			}
			if !store.Silent && len(got) == 0 {
				t.Errorf("STORE answered no FETCH response")
			}
			if _, isUID := tc.set.(imap.UIDSet); isUID && len(got) > 0 && got[0].UID == 0 {
				t.Errorf("UID STORE response without UID")
			}
		})
	}
	c.Logout().Wait()

	// A new session sees the flags: they are in the store.
	c2 := e.dialAlice(t)
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c2.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("FETCH: %d messages, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if len(m.Flags) != 1 || m.Flags[0] != imap.FlagAnswered {
			t.Errorf("message %d flags %v in a new session, want [\\Answered]", m.SeqNum, m.Flags)
		}
	}
	err = c2.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{`\Bogus`}}, nil).Close()
	if imapType(err) != imap.StatusResponseTypeBad {
		t.Errorf("STORE of an unknown system flag: %v, want BAD", err)
	}
}

func TestCopyAndMove(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 4; i++ {
		e.deliver(t, e.alice, "INBOX", sample("m"+itoa(uint32(i))))
	}
	trash := mustMailbox(t, e, e.alice, "Trash")
	ev := newEvents()
	c := e.dial(t, "alice@example.com", alicePass, ev.handler())
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	data, err := c.Copy(imap.UIDSet{{Start: 1, Stop: 2}}, "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.UIDValidity != trash.UIDValidity || data.SourceUIDs.String() != "1:2" || data.DestUIDs.String() != "1:2" {
		t.Errorf("COPYUID = %d %v %v, want %d 1:2 1:2", data.UIDValidity, data.SourceUIDs, data.DestUIDs, trash.UIDValidity)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Nowhere").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a missing mailbox: %v, want TRYCREATE", err)
	}

	ev.take()
	moved, err := c.Move(imap.UIDSet{{Start: 2, Stop: 3}}, "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if moved.UIDValidity != trash.UIDValidity || moved.SourceUIDs.String() != "2:3" || moved.DestUIDs.String() != "3:4" {
		t.Errorf("MOVE COPYUID = %d %v %v, want %d 2:3 3:4", moved.UIDValidity, moved.SourceUIDs, moved.DestUIDs, trash.UIDValidity)
	}
	// UIDs 2 and 3 were sequence numbers 2 and 3: EXPUNGE 3 then 2.
	if got := strings.Join(ev.take(), ","); got != "EXPUNGE 3,EXPUNGE 2" {
		t.Errorf("MOVE unilateral data = %q, want EXPUNGE 3,EXPUNGE 2", got)
	}
	st, err := c.Status("Trash", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 4 {
		t.Errorf("Trash has %v messages (%v), want 4", st.NumMessages, err)
	}
	rest, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(rest) != 2 || rest[0].UID != 1 || rest[1].UID != 4 {
		t.Errorf("INBOX after MOVE: %v, %v; want UIDs 1 and 4", rest, err)
	}
	// Copies share content with their source.
	if _, err := c.Select("Trash", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	m := fetchUID(t, c, 3, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}})
	if !bytes.Equal(m.FindBodySection(body), []byte(sample("m1"))) {
		t.Errorf("moved message content = %q", m.FindBodySection(body))
	}
}

func TestExpunge(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 5; i++ {
		e.deliver(t, e.alice, "INBOX", sample("m"+itoa(uint32(i))), `\Deleted`)
	}
	e.deliver(t, e.alice, "INBOX", sample("kept"))
	c := e.dialAlice(t)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// UID EXPUNGE removes only the named \Deleted messages (RFC 4315).
	seqs, err := c.UIDExpunge(imap.UIDSet{{Start: 2, Stop: 3}, {Start: 6, Stop: 6}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if !equalUIDs(seqs, []uint32{3, 2}) {
		t.Errorf("UID EXPUNGE 2:3,6 sent EXPUNGE %v, want [3 2]", seqs)
	}
	seqs, err = c.Expunge().Collect()
	if err != nil {
		t.Fatal(err)
	}
	// Left: UIDs 1, 4, 5, 6 → 1, 4, 5 are deleted, at 1, 2, 3.
	if !equalUIDs(seqs, []uint32{3, 2, 1}) {
		t.Errorf("EXPUNGE sent %v, want [3 2 1]", seqs)
	}
	msgs, err := e.store.Messages(context.Background(), mustMailbox(t, e, e.alice, "INBOX").ID)
	if err != nil || len(msgs) != 1 || msgs[0].UID != 6 {
		t.Errorf("store after EXPUNGE: %+v, %v; want UID 6 only", msgs, err)
	}
}

func TestAppend(t *testing.T) {
	e := newEnv(t, Config{AppendLimit: 4096})
	c := e.dialAlice(t)
	raw := []byte(sample("appended"))
	date := time.Date(2025, 12, 24, 18, 30, 0, 0, time.UTC)
	cmd := c.Append("Drafts", int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft, `\seen`}, Time: date})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	drafts := mustMailbox(t, e, e.alice, "Drafts")
	if data.UID != 1 || data.UIDValidity != drafts.UIDValidity {
		t.Errorf("APPENDUID = %d %d, want %d 1", data.UIDValidity, data.UID, drafts.UIDValidity)
	}
	if _, err := c.Select("Drafts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	m := fetchUID(t, c, 1, &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{body}})
	if !bytes.Equal(m.FindBodySection(body), raw) {
		t.Errorf("appended content = %q", m.FindBodySection(body))
	}
	if !m.InternalDate.Equal(date) {
		t.Errorf("INTERNALDATE = %v, want %v", m.InternalDate, date)
	}
	if len(m.Flags) != 2 || !hasFlag(m.Flags, imap.FlagDraft) || !hasFlag(m.Flags, imap.FlagSeen) {
		t.Errorf("FLAGS = %v, want \\Draft \\Seen", m.Flags)
	}

	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cmd = c.Append("Nowhere", 10, nil)
	cmd.Write([]byte("0123456789"))
	cmd.Close()
	if _, err := cmd.Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("APPEND to a missing mailbox = %v, want TRYCREATE", err)
	}
	// imapclient closes its connection when a synchronizing literal is
	// refused, so the limit is checked by hand: the refusal comes before
	// the continuation request, and the connection stays usable.
	conn, err := tls.Dial("tcp", e.tlsAddr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRawConn(t, conn)
	if _, tagged := rc.cmd("LOGIN alice@example.com " + alicePass); !strings.Contains(tagged, "OK") {
		t.Fatalf("LOGIN: %s", tagged)
	}
	if _, tagged := rc.cmd("APPEND INBOX {5000}"); !strings.Contains(tagged, "NO [TOOBIG]") {
		t.Errorf("APPEND over the limit: %q, want NO [TOOBIG]", tagged)
	}
	if _, tagged := rc.cmd("NOOP"); !strings.Contains(tagged, "OK") {
		t.Errorf("NOOP after a refused APPEND: %q", tagged)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("connection after refused APPENDs: %v", err)
	}
}
