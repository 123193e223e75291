package imapd

import (
	"crypto/tls"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// listing runs LIST and returns each mailbox's attributes, sorted, joined.
func listing(t *testing.T, c *imapclient.Client, ref, pattern string, options *imap.ListOptions) map[string]string {
	t.Helper()
	list, err := c.List(ref, pattern, options).Collect()
	if err != nil {
		t.Fatalf("LIST %q %q: %v", ref, pattern, err)
	}
	out := make(map[string]string, len(list))
	for _, d := range list {
		attrs := make([]string, len(d.Attrs))
		for i, a := range d.Attrs {
			attrs[i] = string(a)
		}
		sort.Strings(attrs)
		out[d.Mailbox] = strings.Join(attrs, " ")
		if d.Delim != '/' {
			t.Errorf("%s: delimiter %q, want /", d.Mailbox, d.Delim)
		}
	}
	return out
}

func equalListing(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestListSpecialUse(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.dialAlice(t)
	if err := c.Create("Archive/2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe("Junk").Wait(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		ref, pattern string
		options      *imap.ListOptions
		want         map[string]string
	}{
		{"all", "", "*", nil, map[string]string{
			"INBOX":        `\HasNoChildren`,
			"Sent":         `\HasNoChildren \Sent`,
			"Drafts":       `\Drafts \HasNoChildren`,
			"Trash":        `\HasNoChildren \Trash`,
			"Junk":         `\HasNoChildren \Junk`,
			"Quarantine":   `\HasNoChildren`,
			"Archive":      `\HasChildren`,
			"Archive/2026": `\HasNoChildren`,
		}},
		{"top level", "", "%", nil, map[string]string{
			"INBOX": `\HasNoChildren`, "Sent": `\HasNoChildren \Sent`, "Drafts": `\Drafts \HasNoChildren`,
			"Trash": `\HasNoChildren \Trash`, "Junk": `\HasNoChildren \Junk`, "Quarantine": `\HasNoChildren`,
			"Archive": `\HasChildren`,
		}},
		{"reference", "Archive/", "%", nil, map[string]string{"Archive/2026": `\HasNoChildren`}},
		{"inbox any case", "", "inbox", nil, map[string]string{"INBOX": `\HasNoChildren`}},
		{"special-use selection", "", "*", &imap.ListOptions{SelectSpecialUse: true}, map[string]string{
			"Sent": `\HasNoChildren \Sent`, "Drafts": `\Drafts \HasNoChildren`,
			"Trash": `\HasNoChildren \Trash`, "Junk": `\HasNoChildren \Junk`,
		}},
		{"subscribed", "", "T*", &imap.ListOptions{SelectSubscribed: true}, map[string]string{
			"Trash": `\HasNoChildren \Subscribed \Trash`,
		}},
		{"unsubscribed is left out", "", "J*", &imap.ListOptions{SelectSubscribed: true}, map[string]string{}},
		{"no match", "", "Nothing*", nil, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listing(t, c, tc.ref, tc.pattern, tc.options); !equalListing(got, tc.want) {
				t.Errorf("LIST %q %q = %v\nwant %v", tc.ref, tc.pattern, got, tc.want)
			}
		})
	}

	// An empty pattern asks for the delimiter.
	root, err := c.List("", "", nil).Collect()
	if err != nil || len(root) != 1 || root[0].Delim != '/' || root[0].Mailbox != "" {
		t.Errorf(`LIST "" "" = %+v, %v; want one entry with delimiter /`, root, err)
	}

	// LSUB (RFC 3501 §6.3.9), which imapclient does not send.
	conn, err := tls.Dial("tcp", e.tlsAddr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRawConn(t, conn)
	rc.cmd("LOGIN alice@example.com " + alicePass)
	lines, tagged := rc.cmd(`LSUB "" "*"`)
	got := strings.Join(lines, "\n")
	if !strings.Contains(tagged, "OK") || !strings.Contains(got, `* LSUB (\HasNoChildren \Trash \Subscribed) "/" "Trash"`) ||
		strings.Contains(got, "Junk") || len(lines) != 7 {
		t.Errorf("LSUB answered %q, %q; want the 7 subscribed mailboxes, no Junk", lines, tagged)
	}

	// LIST-STATUS (RFC 5819).
	e.deliver(t, e.alice, "INBOX", message("a@example.net", "alice@example.com", "one", "Mon, 2 Mar 2026 10:00:00 +0000", "x"))
	list, err := c.List("", "INBOX", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true}}).Collect()
	if err != nil || len(list) != 1 || list[0].Status == nil || list[0].Status.NumMessages == nil ||
		*list[0].Status.NumMessages != 1 || *list[0].Status.NumUnseen != 1 {
		t.Errorf("LIST RETURN (STATUS) = %+v, %v; want 1 message, 1 unseen", list, err)
	}
}

func TestMailboxManagement(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.dialAlice(t)
	for _, tc := range []struct {
		name     string
		run      func() error
		wantCode imap.ResponseCode // "" for success
	}{
		{"create", func() error { return c.Create("Projects/A", nil).Wait() }, ""},
		{"create existing", func() error { return c.Create("Projects/A", nil).Wait() }, imap.ResponseCodeAlreadyExists},
		{"create inbox", func() error { return c.Create("inbox", nil).Wait() }, imap.ResponseCodeAlreadyExists},
		{"create empty level", func() error { return c.Create("a//b", nil).Wait() }, imap.ResponseCodeCannot},
		{"create wildcard", func() error { return c.Create("a*", nil).Wait() }, imap.ResponseCodeCannot},
		{"create special-use", func() error {
			return c.Create("Everything", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrAll}}).Wait()
		}, ""},
		{"create bad special-use", func() error {
			return c.Create("Odd", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrNoSelect}}).Wait()
		}, "USEATTR"},
		{"rename with children", func() error { return c.Rename("Projects", "Work", nil).Wait() }, ""},
		{"rename missing", func() error { return c.Rename("Nope", "Other", nil).Wait() }, imap.ResponseCodeNonExistent},
		{"rename onto existing", func() error { return c.Rename("Work", "Sent", nil).Wait() }, imap.ResponseCodeAlreadyExists},
		{"rename into itself", func() error { return c.Rename("Work", "Work/Sub", nil).Wait() }, imap.ResponseCodeCannot},
		{"rename inbox", func() error { return c.Rename("INBOX", "Old", nil).Wait() }, imap.ResponseCodeCannot},
		{"delete child", func() error { return c.Delete("Work/A").Wait() }, ""},
		{"delete missing", func() error { return c.Delete("Work/A").Wait() }, imap.ResponseCodeNonExistent},
		{"delete inbox", func() error { return c.Delete("INBOX").Wait() }, imap.ResponseCodeCannot},
		{"select missing", func() error { _, err := c.Select("Nope", nil).Wait(); return err }, imap.ResponseCodeNonExistent},
		{"status missing", func() error { _, err := c.Status("Nope", &imap.StatusOptions{NumMessages: true}).Wait(); return err }, imap.ResponseCodeNonExistent},
		{"subscribe missing", func() error { return c.Subscribe("Nope").Wait() }, imap.ResponseCodeNonExistent},
		{"unsubscribe missing", func() error { return c.Unsubscribe("Nope").Wait() }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if tc.wantCode == "" && err != nil {
				t.Fatalf("err = %v, want success", err)
			}
			if tc.wantCode != "" && imapCode(err) != tc.wantCode {
				t.Fatalf("err = %v, want code %s", err, tc.wantCode)
			}
		})
	}
	got := listing(t, c, "", "*", nil)
	want := map[string]string{
		"INBOX": `\HasNoChildren`, "Sent": `\HasNoChildren \Sent`, "Drafts": `\Drafts \HasNoChildren`,
		"Trash": `\HasNoChildren \Trash`, "Junk": `\HasNoChildren \Junk`, "Quarantine": `\HasNoChildren`,
		"Work": `\HasNoChildren`, "Everything": `\All \HasNoChildren`,
	}
	if !equalListing(got, want) {
		t.Errorf("after the changes, LIST = %v\nwant %v", got, want)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t, Config{})
	raw := message("a@example.net", "alice@example.com", "s", "Mon, 2 Mar 2026 10:00:00 +0000", "hello")
	e.deliver(t, e.alice, "INBOX", raw)
	e.deliver(t, e.alice, "INBOX", raw, `\Seen`)
	e.deliver(t, e.alice, "INBOX", raw, `\Deleted`)
	c := e.dialAlice(t)
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		NumUnseen: true, NumDeleted: true, Size: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	mb, err := e.store.Mailbox(t.Context(), e.alice.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	u32 := func(p *uint32) int64 {
		if p == nil {
			return -1
		}
		return int64(*p)
	}
	size := int64(-1)
	if st.Size != nil {
		size = *st.Size
	}
	got := [...]int64{u32(st.NumMessages), int64(st.UIDNext), int64(st.UIDValidity), u32(st.NumUnseen), u32(st.NumDeleted), size}
	want := [...]int64{3, 4, int64(mb.UIDValidity), 2, 1, int64(3 * len(raw))}
	if st.Mailbox != "INBOX" || got != want {
		t.Errorf("STATUS %s (messages uidnext uidvalidity unseen deleted size) = %v, want %v", st.Mailbox, got, want)
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Prefix != "" || ns.Personal[0].Delim != '/' ||
		ns.Other != nil || ns.Shared != nil {
		t.Errorf("NAMESPACE = %+v, %v", ns, err)
	}
}
