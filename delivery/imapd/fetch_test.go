package imapd

import (
	"bytes"
	"context"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/moatmail/moat/delivery"
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
	placed, err := e.store.Deliver(context.Background(), &delivery.Delivery{
		Header:  []byte(multipartHeader),
		Body:    []byte(multipartBody),
		Targets: []delivery.Target{{UserID: e.alice.ID, Mailbox: "INBOX"}},
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

func mustMailbox(t testing.TB, e *env, u delivery.User, name string) delivery.Mailbox {
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
