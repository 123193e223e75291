package imapd

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/moatmail/moat/delivery/mailstore"
)

func day(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }

func TestSearch(t *testing.T) {
	e := newEnv(t, Config{})
	msgs := []struct {
		raw   string
		date  time.Time
		flags []string
	}{
		{message("Alice <alice@example.org>", "alice@example.com", "Alpha meeting", "Sun, 1 Mar 2026 09:00:00 +0000",
			"The agenda is attached.\r\n"), day(1).Add(12 * time.Hour), []string{`\Seen`}},
		{message("Bob <bob@example.net>", "alice@example.com", "Beta", "Thu, 5 Mar 2026 09:00:00 +0000",
			"Lunch?\r\n"+strings.Repeat("padding line\r\n", 100)), day(5).Add(12 * time.Hour), []string{`\Flagged`}},
		{message("Carol <carol@example.com>", "alice@example.com", "alpha again", "Tue, 10 Mar 2026 09:00:00 +0000",
			"Quarterly numbers.\r\n"), day(10).Add(12 * time.Hour), []string{"$Work"}},
		{"From: dave@example.com\r\nSubject: encoded\r\nDate: Fri, 20 Mar 2026 09:00:00 +0000\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			"VGhlIHNlY3JldCB3b3JkLg==\r\n", day(20).Add(12 * time.Hour), nil}, // "The secret word."
	}
	for _, m := range msgs {
		_, err := e.store.Deliver(context.Background(), &mailstore.Delivery{
			Body: []byte(m.raw), Flags: m.flags, InternalDate: m.date,
			Targets: []mailstore.Target{{UserID: e.alice.ID, Mailbox: "INBOX"}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c := e.dialAlice(t)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		criteria imap.SearchCriteria
		want     []uint32
	}{
		{"all", imap.SearchCriteria{}, []uint32{1, 2, 3, 4}},
		{"from", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "BOB"}}}, []uint32{2}},
		{"subject any case", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "alpha"}}}, []uint32{1, 3}},
		{"header present", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Content-Transfer-Encoding"}}}, []uint32{4}},
		{"body", imap.SearchCriteria{Body: []string{"agenda"}}, []uint32{1}},
		{"body decoded base64", imap.SearchCriteria{Body: []string{"secret word"}}, []uint32{4}},
		{"body does not search headers", imap.SearchCriteria{Body: []string{"carol"}}, nil},
		{"text searches headers", imap.SearchCriteria{Text: []string{"carol"}}, []uint32{3}},
		{"seen", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, []uint32{1}},
		{"unseen", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []uint32{2, 3, 4}},
		{"keyword", imap.SearchCriteria{Flag: []imap.Flag{"$work"}}, []uint32{3}},
		{"since", imap.SearchCriteria{Since: day(5)}, []uint32{2, 3, 4}},
		{"before", imap.SearchCriteria{Before: day(5)}, []uint32{1}},
		{"on", imap.SearchCriteria{Since: day(5), Before: day(6)}, []uint32{2}},
		{"sent before", imap.SearchCriteria{SentBefore: day(10)}, []uint32{1, 2}},
		{"larger", imap.SearchCriteria{Larger: 1000}, []uint32{2}},
		{"smaller", imap.SearchCriteria{Smaller: 1000}, []uint32{1, 3, 4}},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagFlagged}}}}, []uint32{1, 3, 4}},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{
			{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "bob"}}},
			{Flag: []imap.Flag{imap.FlagSeen}},
		}}}, []uint32{1, 2}},
		{"uid range", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 2, Stop: 3}}}}, []uint32{2, 3}},
		{"uid star", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 3, Stop: 0}}}}, []uint32{3, 4}},
		{"seq set", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(1, 3)}}, []uint32{1, 3}},
		{"and", imap.SearchCriteria{Since: day(2), Body: []string{"numbers"}}, []uint32{3}},
		{"nothing", imap.SearchCriteria{Body: []string{"absent"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			criteria := tc.criteria
			data, err := c.UIDSearch(&criteria, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if got := uidList(data.AllUIDs()); !equalUIDs(got, tc.want) {
				t.Errorf("UID SEARCH = %v, want %v", got, tc.want)
			}
		})
	}

	// ESEARCH return options (RFC 4731).
	data, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}},
		&imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
	if err != nil || data.Min != 2 || data.Max != 4 || data.Count != 3 {
		t.Errorf("ESEARCH = %+v, %v; want min 2 max 4 count 3", data, err)
	}

	// SEARCHRES (RFC 5182); imapclient cannot send SAVE, so by hand.
	conn, err := tls.Dial("tcp", e.tlsAddr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRawConn(t, conn)
	for _, step := range []struct{ line, wantUntagged, wantTagged string }{
		{"LOGIN alice@example.com " + alicePass, "", "OK"},
		{"SELECT INBOX", "* 4 EXISTS", "OK [READ-WRITE]"},
		{"UID SEARCH RETURN (SAVE) UNSEEN", "", "OK"},
		{"UID FETCH $ (FLAGS)", "* 4 FETCH (UID 4 FLAGS ())", "OK"},
		{"SEARCH RETURN (COUNT) UID $", "COUNT 3", "OK"},
	} {
		untagged, tagged := rc.cmd(step.line)
		if !strings.Contains(tagged, " "+step.wantTagged) {
			t.Errorf("%s: tagged %q, want %s", step.line, tagged, step.wantTagged)
		}
		if step.wantUntagged != "" && !strings.Contains(strings.Join(untagged, "\n"), step.wantUntagged) {
			t.Errorf("%s: untagged %q, want %q", step.line, untagged, step.wantUntagged)
		}
	}
}
