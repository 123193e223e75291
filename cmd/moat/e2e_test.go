package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/moatmail/moat/delivery/mailstore"
)

const gtubeString = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// e2ePolicies: the default policy rejects GTUBE (score 1000 >= 20);
// quarantine@example.com has reject switched off, so GTUBE is quarantined.
const e2ePolicies = `
[policies.default]
tag = 5.0
quarantine = 10.0
reject = 20.0
[policies.recipients."quarantine@example.com"]
reject = "off"
`

func TestEndToEnd(t *testing.T) {
	a := startTest(t, e2ePolicies)
	ctx := context.Background()
	for _, u := range []string{"alice@example.com", "quarantine@example.com", "carol@example.org"} {
		if _, err := a.store.AddUser(ctx, u, "pw-"+u, mailstore.RoleUser); err != nil {
			t.Fatal(err)
		}
	}
	tc := clientTLS(t, a.cfg.DataDir)
	smtpAddr := a.Addr("smtp")
	big := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 1100) // ~72 KB

	cases := []struct {
		name  string
		to    []string
		msg   string
		code  int
		ecode string
		at    string
	}{
		{"clean message is delivered", []string{"alice@example.com"},
			message("bob@example.net", "alice@example.com", "hello alice", "clean body"), 250, "", "DATA end"},
		{"sub-address is delivered to the user", []string{"alice+lists@example.com"},
			message("bob@example.net", "alice+lists@example.com", "hello sub-address", "body"), 250, "", "DATA end"},
		{"GTUBE is rejected by the default policy", []string{"alice@example.com"},
			message("bob@example.net", "alice@example.com", "gtube reject", gtubeString), 550, "5.7.1", "DATA end"},
		{"GTUBE is quarantined by a recipient policy", []string{"quarantine@example.com"},
			message("bob@example.net", "quarantine@example.com", "gtube quarantine", gtubeString), 250, "", "DATA end"},
		{"relay attempt is refused", []string{"victim@elsewhere.example"},
			message("bob@example.net", "victim@elsewhere.example", "relay", "x"), 554, "5.7.1", "RCPT victim@elsewhere.example"},
		{"unknown user is refused at RCPT", []string{"nobody@example.com"},
			message("bob@example.net", "nobody@example.com", "unknown", "x"), 550, "5.1.1", "RCPT nobody@example.com"},
		{"oversize message is refused", []string{"alice@example.com"},
			message("bob@example.net", "alice@example.com", "big", big), 552, "5.3.4", "DATA end"},
		{"recipients under different policies are split", []string{"alice@example.com", "quarantine@example.com"},
			message("bob@example.net", "alice@example.com", "split", "x"), 452, "4.5.3", "RCPT quarantine@example.com"},
	}
	for _, tc2 := range cases {
		t.Run(tc2.name, func(t *testing.T) {
			got := send(t, smtpAddr, tc, "bob@example.net", tc2.to, tc2.msg)
			if got.code != tc2.code || got.at != tc2.at || (tc2.ecode != "" && got.ecode != tc2.ecode) {
				t.Fatalf("got %v, want %d %s at %s", got, tc2.code, tc2.ecode, tc2.at)
			}
			if got.code == 250 && !strings.Contains(got.text, "queued as") {
				t.Errorf("250 reply %q does not name the queue id", got.text)
			}
		})
	}

	t.Run("implicit-TLS listener delivers", func(t *testing.T) {
		c, err := smtp.DialTLS(a.Addr("smtps"), tc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := message("bob@example.net", "carol@example.org", "over smtps", "x")
		if err := c.SendMail("bob@example.net", []string{"carol@example.org"}, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		ic := imapLogin(t, a.Addr("imap"), tc, "carol@example.org", "pw-carol@example.org")
		defer ic.Close()
		msgs := fetchAll(t, ic, "INBOX")
		if len(msgs) != 1 || !strings.Contains(msgs[0], "with ESMTPS (TLS") || !strings.Contains(msgs[0], "Subject: over smtps") {
			t.Fatalf("carol's INBOX = %q", msgs)
		}
	})

	t.Run("IMAP shows delivered mail with trace headers", func(t *testing.T) {
		c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw-alice@example.com")
		defer c.Close()
		msgs := fetchAll(t, c, "INBOX")
		if len(msgs) != 2 {
			t.Fatalf("INBOX holds %d messages, want 2 (clean + sub-address)", len(msgs))
		}
		m := msgs[0]
		for _, want := range []string{"Received: from client.example.net", "by mx.example.com (moat) with ESMTPS",
			"X-Spam-Status: No", "X-Spam-Score: ", "Subject: hello alice", "clean body"} {
			if !strings.Contains(m, want) {
				t.Errorf("delivered message lacks %q:\n%s", want, m)
			}
		}
		if q := fetchAll(t, c, "Quarantine"); len(q) != 0 {
			t.Errorf("alice's Quarantine holds %d messages, want 0", len(q))
		}
	})

	t.Run("GTUBE lands in Quarantine with its verdict", func(t *testing.T) {
		c, err := imapclient.DialTLS(a.Addr("imaps"), &imapclient.Options{TLSConfig: tc})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login("quarantine@example.com", "pw-quarantine@example.com").Wait(); err != nil {
			t.Fatal(err)
		}
		q := fetchAll(t, c, "Quarantine")
		if len(q) != 1 {
			t.Fatalf("Quarantine holds %d messages, want 1", len(q))
		}
		for _, want := range []string{"X-Spam-Flag: YES", "action=quarantine", "GTUBE", gtubeString} {
			if !strings.Contains(q[0], want) {
				t.Errorf("quarantined message lacks %q", want)
			}
		}
		if in := fetchAll(t, c, "INBOX"); len(in) != 0 {
			t.Errorf("INBOX holds %d messages, want 0", len(in))
		}
		entries, err := a.quar.List(ctx, "quarantine@example.com")
		if err != nil || len(entries) != 1 {
			t.Fatalf("quarantine list = %v, %v", entries, err)
		}
		e := entries[0]
		if e.Action != "quarantine" || e.Score < 1000 || e.Sender != "bob@example.net" || e.Subject != "gtube quarantine" {
			t.Errorf("entry = %+v", e)
		}
		if n, err := a.quar.Release(ctx, e.ID); err != nil || n != 1 {
			t.Fatalf("release = %d, %v", n, err)
		}
		if in := fetchAll(t, c, "INBOX"); len(in) != 1 {
			t.Errorf("INBOX holds %d messages after release, want 1", len(in))
		}
		if q := fetchAll(t, c, "Quarantine"); len(q) != 0 {
			t.Errorf("Quarantine holds %d messages after release, want 0", len(q))
		}
	})

	t.Run("plaintext IMAP login is refused", func(t *testing.T) {
		c, err := imapclient.DialInsecure(a.Addr("imap"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login("alice@example.com", "pw-alice@example.com").Wait(); err == nil {
			t.Fatal("LOGIN over plaintext succeeded")
		}
	})

	t.Run("metrics count verdicts", func(t *testing.T) {
		resp, err := http.Get("http://" + a.Addr("metrics") + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, want := range []string{
			`moat_messages_total{action="accept"} 3`,
			`moat_messages_total{action="quarantine"} 1`,
			`moat_messages_total{action="reject"} 1`,
			`moat_symbol_hits_total{symbol="GTUBE"} 2`,
			`moat_smtp_replies_total{class="5xx",phase="rcpt"} 2`,
			`moat_filter_duration_seconds_count{filter="gtube",stage="data"}`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// TestRulesTaggingAndLists drives configured rules, tagging and the sender
// block list through SMTP.
func TestRulesTaggingAndLists(t *testing.T) {
	a := startTest(t, `
[policies.default]
tag = 5.0
quarantine = 10.0
reject = 20.0
subject_prefix = "[SPAM]"
block_senders = ["@blocked.example"]

[[rules.rule]]
name = "TEST_TAG_ME"
expr = 'header("Subject") contains "tagme"'
score = 6.0
reason = "subject asks for it"

[[rules.rule]]
name = "TEST_CUSTOM_REPLY"
stage = "mail"
expr = 'from endsWith "@virus.example"'
action = "reject"
reply = "554 5.7.0"

[[rules.rule]]
name = "TEST_EVIL_SENDER"
stage = "mail"
expr = 'from endsWith "@evil.example"'
action = "reject"
reason = "evil sender"
`)
	ctx := context.Background()
	if _, err := a.store.AddUser(ctx, "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	forged := "X-Spam-Status: No, score=-100\r\nX-Spam-Flag: NO\r\n" +
		message("bob@example.net", "alice@example.com", "tagme please", "body")
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"}, forged); r.code != 250 {
		t.Fatalf("tagged message: %v", r)
	}
	for _, tcase := range []struct {
		from, at string
		code     int
		ecode    string
	}{
		{"x@evil.example", "MAIL", 550, "5.7.1"},
		{"y@blocked.example", "MAIL", 550, "5.7.1"},
		{"z@virus.example", "MAIL", 554, "5.7.0"},
	} {
		r := send(t, a.Addr("smtp"), tc, tcase.from, []string{"alice@example.com"}, message(tcase.from, "alice@example.com", "x", "x"))
		if r.code != tcase.code || r.ecode != tcase.ecode || r.at != tcase.at {
			t.Errorf("from %s: %v, want %d %s at %s", tcase.from, r, tcase.code, tcase.ecode, tcase.at)
		}
	}
	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	defer c.Close()
	msgs := fetchAll(t, c, "INBOX")
	if len(msgs) != 1 {
		t.Fatalf("INBOX holds %d, want 1", len(msgs))
	}
	m := msgs[0]
	for _, want := range []string{"Subject: [SPAM] tagme please", "X-Spam-Flag: YES", "TEST_TAG_ME", "action=tag"} {
		if !strings.Contains(m, want) {
			t.Errorf("tagged message lacks %q:\n%s", want, m)
		}
	}
	for _, forbidden := range []string{"score=-100", "X-Spam-Flag: NO"} {
		if strings.Contains(m, forbidden) {
			t.Errorf("forged field %q survived:\n%s", forbidden, m)
		}
	}
}

// TestConnectStageRule: a connect-stage rule refuses every transaction of
// the connection with its action.
func TestConnectStageRule(t *testing.T) {
	a := startTest(t, `
[[rules.rule]]
name = "TEST_LOOPBACK_DEFER"
stage = "connect"
expr = 'ip == "127.0.0.1"'
action = "tempfail"
`)
	if _, err := a.store.AddUser(context.Background(), "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	r := send(t, a.Addr("smtp"), clientTLS(t, a.cfg.DataDir), "bob@example.net", []string{"alice@example.com"},
		message("bob@example.net", "alice@example.com", "x", "x"))
	if r.code != 451 || r.ecode != "4.7.1" || r.at != "MAIL" {
		t.Fatalf("got %v, want 451 4.7.1 at MAIL", r)
	}
}
