package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
)

// throughSMTP starts moat with the extra configuration, sends each
// message (envelope sender, text) to alice@example.com through the SMTP
// listener, and returns her INBOX, one message for each sent.
func throughSMTP(t *testing.T, extra string, mails ...[2]string) []string {
	t.Helper()
	a := startTest(t, extra)
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw-alice", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	for _, m := range mails {
		if got := send(t, a.Addr("smtp"), tc, m[0], []string{"alice@example.com"}, m[1]); got.code != 250 {
			t.Fatalf("message from %s: %v", m[0], got)
		}
	}
	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw-alice")
	defer c.Close()
	msgs := fetchAll(t, c, "INBOX")
	if len(msgs) != len(mails) {
		t.Fatalf("INBOX holds %d messages, want %d", len(msgs), len(mails))
	}
	return msgs
}

// TestHeuristicsThroughSMTP sends mail that the content heuristics score
// through the SMTP listener and finds their symbols, with the configured
// scores, in the stored message's X-Spam-Status; a disabled rule is not
// there, and a clean message gets none of them.
func TestHeuristicsThroughSMTP(t *testing.T) {
	spammy := "From: \"service@bank.example.net\" <promo@offers.example.org>\r\n" +
		"To: <alice@example.com>\r\nSubject: MAKE MONEY FAST\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n" +
		"Message-ID: <1234.random@offers.example.org>\r\n" +
		"X-Mailer: Microsoft Outlook Express 6.00.2600.0000\r\n\r\n" +
		"Get c.i.a.l.i.s at http://3405803785/shop now.\r\n"
	clean := message("bob@example.net", "alice@example.com", "minutes of Thursday", "The notes are attached to the wiki page.")
	msgs := throughSMTP(t, `
[filters.heuristics]
disabled = ["SUBJ_ALL_CAPS"]
url_numeric_host = 2.75
`, [2]string{"promo@offers.example.org", spammy}, [2]string{"bob@example.net", clean})
	status := func(m string) string {
		i := strings.Index(m, "X-Spam-Status:")
		if i < 0 {
			t.Fatalf("no X-Spam-Status in\n%s", m)
		}
		end := strings.Index(m[i:], "\r\n\r\n")
		if end < 0 {
			end = len(m) - i
		}
		// The field and those after it, unfolded.
		return strings.NewReplacer("\r\n\t", " ", "\r\n ", " ").Replace(m[i : i+end])
	}
	got := status(msgs[0])
	for _, want := range []string{"FORGED_MUA", "URL_NUMERIC_HOST", "OBFUSCATED_WORD", "SUBJ_MONEY", "FROM_NAME_HAS_ADDR"} {
		if !strings.Contains(got, want) {
			t.Errorf("spammy message's status lacks %s:\n%s", want, got)
		}
	}
	// FORGED_MUA 2.4 + FROM_NAME_HAS_ADDR 0.5 + OBFUSCATED_WORD 2 +
	// SUBJ_MONEY 1.5 + URL_NUMERIC_HOST as configured, 2.75; the
	// untrained classifier adds nothing.
	if !strings.Contains(got, "score=9.15 ") {
		t.Errorf("not scored 9.15 (URL_NUMERIC_HOST at its configured 2.75):\n%s", got)
	}
	if strings.Contains(got, "SUBJ_ALL_CAPS") {
		t.Errorf("disabled SUBJ_ALL_CAPS scored:\n%s", got)
	}
	clean2 := status(msgs[1])
	for _, s := range []string{"FORGED_MUA", "URL_", "OBFUSCATED", "SUBJ_", "HTML_", "DATE_IN", "BULK_", "CHARSET_"} {
		if strings.Contains(clean2, s) {
			t.Errorf("clean message scored %s:\n%s", s, clean2)
		}
	}
}

// TestBulkToolHeaderSignsThroughSMTP sends mail with the header of a
// bulk tool (a normal X-Priority and no mailer, a To without an address,
// a field name in an X- field's value, a Reply-To at a regional free
// provider) through the SMTP listener: each sign is in the stored
// message's X-Spam-Status, and together they tag it.
func TestBulkToolHeaderSignsThroughSMTP(t *testing.T) {
	bulk := "From: \"Anna\" <anna@trade.example.org>\r\n" +
		"To: \r\nSubject: a question for you\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n" +
		"Message-ID: <20021010.1234@trade.example.org>\r\n" +
		"Reply-To: <letmego@bk.ru>\r\n" +
		"X-Priority: 3\r\nX-Header: Reply-To: letmego@bk.ru\r\n\r\n" +
		"I found your address in a directory and would like to write to you.\r\n"
	msgs := throughSMTP(t, "", [2]string{"anna@trade.example.org", bulk})
	hdr, _, _ := strings.Cut(strings.NewReplacer("\r\n\t", " ", "\r\n ", " ").Replace(msgs[0]), "\r\n\r\n")
	for _, want := range []string{"XPRIORITY_NO_MAILER", "TO_NO_ADDRESS", "HEADER_NAME_IN_VALUE", "FREEMAIL_REPLYTO"} {
		if !strings.Contains(hdr, want) {
			t.Errorf("status lacks %s:\n%s", want, hdr)
		}
	}
	// 1.0 + 1.5 + 1.5 + 1.5: the tag threshold (5) passed on header signs.
	if !strings.Contains(hdr, "X-Spam-Flag: YES") || !strings.Contains(hdr, "score=5.50 ") {
		t.Errorf("not tagged at 5.5:\n%s", hdr)
	}
}

// TestHeuristicsDisabledDefault: the default switches URL_SHORTENER off;
// a configured list replaces the default one.
func TestHeuristicsDisabledDefault(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  []string
	}{
		{"", []string{"URL_SHORTENER"}},
		{"[filters.heuristics]\ndisabled = []", []string{}},
		{"[filters.heuristics]\ndisabled = [\"SUBJ_URGENT\"]", []string{"SUBJ_URGENT"}},
	} {
		cfg, err := parseConfig(withDefault(tc.extra), "test")
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Filters.Heuristics.Disabled; len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0] {
			t.Errorf("%q: disabled %q, want %q", tc.extra, got, tc.want)
		}
	}
}
