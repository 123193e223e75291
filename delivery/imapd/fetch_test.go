package imapd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/moatmail/moat/delivery/mailstore"
)

const multipartHeader = "Received: from mx.example.net by moat; Mon, 2 Mar 2026 10:00:00 +0000\r\n"

const multipartBody = "From: Carol <carol@example.net>\r\n" +
	"To: alice@example.com\r\n" +
	"Subject: Report\r\n" +
	"Date: Mon, 2 Mar 2026 09:59:00 +0000\r\n" +
	"Message-ID: <report-1@example.net>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello Alice.\r\n" +
	"--b1\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"Content-Disposition: attachment; filename=\"x.bin\"\r\n" +
	"\r\n" +
	"AAECAwQ=\r\n" +
	"--b1--\r\n"

// fetchOne fetches one message by UID and fails the test on error.
func fetchUID(t *testing.T, c *imapclient.Client, uid uint32, options *imap.FetchOptions) *imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), options).Collect()
	if err != nil {
		t.Fatalf("UID FETCH %d: %v", uid, err)
	}
	if len(msgs) != 1 {
		t.Fatalf("UID FETCH %d: %d messages", uid, len(msgs))
	}
	return msgs[0]
}

func TestFetchExactBytesAndParts(t *testing.T) {
	e := newEnv(t, Config{})
	placed, err := e.store.Deliver(context.Background(), &mailstore.Delivery{
		Header:  []byte(multipartHeader),
		Body:    []byte(multipartBody),
		Targets: []mailstore.Target{{UserID: e.alice.ID, Mailbox: "INBOX"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	uid := placed[0].UID
	raw := multipartHeader + multipartBody
	c := e.dialAlice(t)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	full := &imap.FetchItemBodySection{Peek: true}
	partial := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 10, Size: 20}}
	text := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierText}
	subject := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}
	part1 := &imap.FetchItemBodySection{Peek: true, Part: []int{1}}
	binary2 := &imap.FetchItemBinarySection{Peek: true, Part: []int{2}}
	msg := fetchUID(t, c, uid, &imap.FetchOptions{
		UID: true, Flags: true, RFC822Size: true, InternalDate: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{full, partial, text, subject, part1},
		BinarySection: []*imap.FetchItemBinarySection{binary2},
	})

	for _, tc := range []struct {
		name      string
		got, want []byte
	}{
		{"BODY[]", msg.FindBodySection(full), []byte(raw)},
		{"BODY[]<10.20>", msg.FindBodySection(partial), []byte(raw[10:30])},
		{"BODY[TEXT]", msg.FindBodySection(text), []byte(raw[bytes.Index([]byte(raw), []byte("\r\n\r\n"))+4:])},
		{"BODY[HEADER.FIELDS (Subject)]", msg.FindBodySection(subject), []byte("Subject: Report\r\n\r\n")},
		{"BODY[1]", msg.FindBodySection(part1), []byte("Hello Alice.")},
		{"BINARY[2]", msg.FindBinarySection(binary2), []byte{0, 1, 2, 3, 4}},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if msg.RFC822Size != int64(len(raw)) {
		t.Errorf("RFC822.SIZE = %d, want %d", msg.RFC822Size, len(raw))
	}
	if uint32(msg.UID) != uid || len(msg.Flags) != 0 || msg.InternalDate.IsZero() {
		t.Errorf("UID %d flags %v date %v; want UID %d, no flags, a date", msg.UID, msg.Flags, msg.InternalDate, uid)
	}
	env := msg.Envelope
	if env == nil || env.Subject != "Report" || env.MessageID != "report-1@example.net" || len(env.From) != 1 ||
		env.From[0].Name != "Carol" || env.From[0].Mailbox != "carol" || env.From[0].Host != "example.net" {
		t.Errorf("ENVELOPE = %+v", env)
	}
	mp, ok := msg.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 2 {
		t.Fatalf("BODYSTRUCTURE = %#v, want multipart/mixed with 2 parts", msg.BodyStructure)
	}
	att, ok := mp.Children[1].(*imap.BodyStructureSinglePart)
	if !ok || att.Type != "application" || att.Subtype != "octet-stream" || att.Encoding != "base64" ||
		att.Extended == nil || att.Extended.Disposition == nil || att.Extended.Disposition.Value != "attachment" {
		t.Errorf("attachment structure = %#v", mp.Children[1])
	}

	// A non-PEEK body fetch sets \Seen and reports it unasked
	// (RFC 9051 §6.4.5).
	seen := fetchUID(t, c, uid, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText}}})
	if !hasFlag(seen.Flags, imap.FlagSeen) {
		t.Errorf("after BODY[TEXT], FLAGS = %v, want \\Seen", seen.Flags)
	}
	st, err := e.store.Status(context.Background(), e.alice.ID, "INBOX")
	if err != nil || st.Unseen != 0 {
		t.Errorf("store says %d unseen (%v), want 0", st.Unseen, err)
	}

	// Sequence numbers beyond the mailbox are a client error.
	_, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Flags: true}).Collect()
	if imapType(err) != imap.StatusResponseTypeBad {
		t.Errorf("FETCH 2 in a one-message mailbox: %v, want BAD", err)
	}
}

func TestExamineIsReadOnly(t *testing.T) {
	e := newEnv(t, Config{})
	uid := e.deliver(t, e.alice, "INBOX", message("a@example.net", "alice@example.com", "ro", "Mon, 2 Mar 2026 10:00:00 +0000", "body"))
	c := e.dialAlice(t)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msg := fetchUID(t, c, uid, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{}}})
	if hasFlag(msg.Flags, imap.FlagSeen) {
		t.Errorf("BODY[] under EXAMINE set \\Seen")
	}
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"STORE", func() error {
			return c.Store(imap.UIDSetNum(imap.UID(uid)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close()
		}},
		{"EXPUNGE", func() error { return c.Expunge().Close() }},
		{"MOVE", func() error { _, err := c.Move(imap.UIDSetNum(imap.UID(uid)), "Trash").Wait(); return err }},
	} {
		if err := tc.run(); imapCode(err) != "READ-ONLY" {
			t.Errorf("%s under EXAMINE: %v, want NO [READ-ONLY]", tc.name, err)
		}
	}
	// COPY out of a read-only mailbox is fine.
	if _, err := c.Copy(imap.UIDSetNum(imap.UID(uid)), "Trash").Wait(); err != nil {
		t.Errorf("COPY under EXAMINE: %v", err)
	}
	// CLOSE removes nothing and is no error (RFC 9051 §6.4.1).
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Errorf("CLOSE under EXAMINE: %v", err)
	}
	msgs, err := e.store.Messages(context.Background(), mustMailbox(t, e, e.alice, "INBOX").ID)
	if err != nil || len(msgs) != 1 || msgs[0].HasFlag(`\Seen`) {
		t.Errorf("INBOX after EXAMINE session: %+v, %v", msgs, err)
	}
}

func mustMailbox(t testing.TB, e *env, u mailstore.User, name string) mailstore.Mailbox {
	t.Helper()
	mb, err := e.store.Mailbox(context.Background(), u.ID, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

func TestBodyStructureOfEmptyMultipart(t *testing.T) {
	e := newEnv(t, Config{})
	// A multipart with no parts at all: go-imap's encoder would panic on
	// it; anyone can send such a message.
	uid := e.deliver(t, e.alice, "INBOX", "Subject: empty\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\nno parts here\r\n")
	c := e.dialAlice(t)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msg := fetchUID(t, c, uid, &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	if msg.BodyStructure == nil {
		t.Fatal("no BODYSTRUCTURE")
	}
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("connection unusable after BODYSTRUCTURE: %v", err)
	}
}

// TestFetchAcrossBatches fetches a mailbox of inline messages and files
// (some without their key in the listing) whole and in pieces: FETCH reads
// inline messages in batches (at most batchMessages messages and
// batchBytes bytes of consecutive positions), and every message must come
// once, in order, with its own content.
func TestFetchAcrossBatches(t *testing.T) {
	saved := storeInlineMax
	if storeInlineMax == 0 {
		storeInlineMax = 3000 // the 4,000-byte messages below go to files
	}
	e := newEnv(t, Config{})
	storeInlineMax = saved
	// 300 small messages (the count limit), then 200 of 2-4 KB (the
	// size limit), every 13th a file.
	const n = 500
	raws := make(map[uint32]string, n)
	for i := 0; i < n; i++ {
		size := 150 + i%50
		if i >= 300 {
			size = 2000 + (i*37)%900
			if i%13 == 0 {
				size = 4000
			}
		}
		subject := "m" + itoa(uint32(i))
		raw := sample(subject)
		raw += strings.Repeat("x", max(size-len(raw)-2, 0)) + "\r\n"
		raws[e.deliver(t, e.alice, "INBOX", raw)] = raw
	}
	mb := mustMailbox(t, e, e.alice, "INBOX")
	ctx := context.Background()
	if _, err := e.store.StoreFlags(ctx, mb.ID, []uint32{200}, mailstore.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	c := e.dialAlice(t)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Files whose key the listing lacks (written under a lower
	// InlineMax than the store's now: mailstore.Entry.BlobKey) are
	// found from their blob.
	e.srv.listings.mu.Lock()
	l := e.srv.listings.byID[mb.ID].cur
	e.srv.listings.mu.Unlock()
	forgot := 0
	for i := range l.info {
		if l.info[i].key != "" && i%2 == 0 {
			l.info[i].key = ""
			forgot++
		}
	}
	if forgot == 0 {
		t.Fatal("no file in the listing")
	}
	// Message 200 goes behind the session's back: the batch that holds
	// its UID range comes without it.
	if _, err := e.store.Expunge(ctx, mb.ID, nil); err != nil {
		t.Fatal(err)
	}
	delete(raws, 200)

	full := &imap.FetchItemBodySection{Peek: true}
	subject := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}
	for _, tc := range []struct {
		name    string
		set     imap.NumSet
		options *imap.FetchOptions
		want    []uint32 // UIDs
	}{
		{"UID FETCH 1:* BODY[]", imap.UIDSet{{Start: 1, Stop: 0}},
			&imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{full}}, seqRange(1, n)},
		{"FETCH sparse BODY[] and a header field", imap.SeqSet{{Start: 1, Stop: 1}, {Start: 3, Stop: 3}, {Start: 5, Stop: 9},
			{Start: 190, Stop: 210}, {Start: 250, Stop: 320}, {Start: 499, Stop: 500}},
			&imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{full, subject}},
			append(append(append([]uint32{1, 3, 5, 6, 7, 8, 9}, seqRange(190, 210)...), seqRange(250, 320)...), 499, 500)},
	} {
		msgs, err := c.Fetch(tc.set, tc.options).Collect()
		var want []uint32
		for _, uid := range tc.want {
			if _, ok := raws[uid]; ok {
				want = append(want, uid)
			}
		}
		if imapCode(err) != "EXPUNGEISSUED" {
			t.Errorf("%s: %v, want NO [EXPUNGEISSUED] for UID 200", tc.name, err)
		}
		if len(msgs) != len(want) {
			t.Errorf("%s: %d messages, want %d", tc.name, len(msgs), len(want))
			continue
		}
		for k, m := range msgs {
			uid := uint32(m.UID)
			raw := raws[uid]
			if uid != want[k] || m.SeqNum != uid {
				t.Errorf("%s: response %d is seq %d UID %d, want UID %d", tc.name, k, m.SeqNum, uid, want[k])
				break
			}
			if got := string(m.FindBodySection(full)); got != raw {
				t.Errorf("%s: UID %d: BODY[] is %d bytes, want %d", tc.name, uid, len(got), len(raw))
			}
			if tc.options.RFC822Size && m.RFC822Size != int64(len(raw)) {
				t.Errorf("%s: UID %d: RFC822.SIZE %d, want %d", tc.name, uid, m.RFC822Size, len(raw))
			}
			if want := "Subject: m" + itoa(uid-1) + "\r\n\r\n"; len(tc.options.BodySection) > 1 && string(m.FindBodySection(subject)) != want {
				t.Errorf("%s: UID %d: %q, want %q", tc.name, uid, m.FindBodySection(subject), want)
			}
		}
	}
}

// seqRange returns the numbers from first to last.
func seqRange(first, last uint32) []uint32 {
	out := make([]uint32, 0, last-first+1)
	for n := first; n <= last; n++ {
		out = append(out, n)
	}
	return out
}
