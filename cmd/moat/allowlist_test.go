package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
)

// TestAllowSenderOnRelease: with quarantine.allow_sender_on_release, a
// message released by Python's imaplib puts its sender on the user's allow
// list; the sender's next spam reaches that user's INBOX, another
// sender's is still held.
func TestAllowSenderOnRelease(t *testing.T) {
	python := needTool(t, "python3")
	// SPF authenticates example.net's senders from loopback: an allow list
	// waives only authenticated senders.
	a, _ := startAuthTest(t, authZones("", ""), e2ePolicies+"[quarantine]\nallow_sender_on_release = true\n")
	ctx := context.Background()
	u, err := a.store.AddUser(ctx, "quarantine@example.com", "pw", mailstore.RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	tc := clientTLS(t, a.cfg.DataDir)
	gtube := func(from string) smtpResult {
		return send(t, a.Addr("smtp"), tc, from, []string{"quarantine@example.com"},
			message(from, "quarantine@example.com", "spam", gtubeString))
	}
	if r := gtube("bob@example.net"); r.code != 250 {
		t.Fatal(r)
	}
	out, err := runPython(t, python, pythonReview, a, "imap", "quarantine@example.com")
	if err != nil || !strings.Contains(string(out), "inbox-after: 1") {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	list, err := a.store.AllowedSenders(ctx, u.ID)
	if err != nil || len(list) != 1 || list[0].Sender != "bob@example.net" {
		t.Fatalf("allow list after the release: %+v, %v; want bob@example.net", list, err)
	}
	if got := metricValue(t, a, `moat_review_events_total{kind="allowlisted"}`); got != "1" {
		t.Errorf("allowlisted review events = %q, want 1", got)
	}

	if r := gtube("Bob@Example.NET"); r.code != 250 {
		t.Fatal(r)
	}
	if r := gtube("carol@example.net"); r.code != 250 {
		t.Fatal(r)
	}
	// A forged sender on the list is judged like any other: a user's
	// release cannot be turned into a pass for spoofed mail.
	if err := a.store.AllowSender(ctx, u.ID, "ceo@forged.example"); err != nil {
		t.Fatal(err)
	}
	if r := gtube("ceo@forged.example"); r.code != 250 {
		t.Fatal(r)
	}
	c := imapLogin(t, a.Addr("imap"), tc, "quarantine@example.com", "pw")
	defer c.Close()
	inbox, held := fetchAll(t, c, "INBOX"), fetchAll(t, c, "Quarantine")
	if len(inbox) != 2 || !strings.Contains(strings.ToLower(inbox[1]), "from: <bob@example.net>") ||
		!strings.Contains(inbox[1], "required=5.00 action=accept") {
		t.Errorf("INBOX holds %d messages, want the released one and bob's next, waived by the allow list:\n%s", len(inbox), strings.Join(inbox, "\n----\n"))
	}
	if len(held) != 2 || !strings.Contains(held[0], "carol@example.net") || !strings.Contains(held[1], "ceo@forged.example") {
		t.Errorf("Quarantine holds %d messages, want carol's and the forged sender's:\n%s", len(held), strings.Join(held, "\n----\n"))
	}
}

// TestAllowlistCommand: `moat user allowlist` edits a user's list beside a
// running moat. An allow-listed sender's mail is waived for that
// recipient only: a recipient of the same policy without the entry is
// sent to another transaction (452 4.5.3), and rejected there on score.
func TestAllowlistCommand(t *testing.T) {
	a, _ := startAuthTest(t, authZones("", ""), e2ePolicies)
	ctx := context.Background()
	for _, u := range []string{"alice@example.com", "dave@example.com"} {
		if _, err := a.store.AddUser(ctx, u, "pw", mailstore.RoleUser); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(t.TempDir(), "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(testConfig(a.cfg.DataDir, e2ePolicies)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		args    []string
		code    int
		out     string
		errText string
	}{
		{[]string{"-add", "Bob@Example.net", "alice@example.com"}, 0, "bob@example.net allowed for alice@example.com", ""},
		{[]string{"-add", "not an address", "alice@example.com"}, 1, "", "is not a mail address"},
		{[]string{"-add", "x@example.net", "nobody@example.com"}, 1, "", "no such user"},
		{[]string{"-add", "spammer@example.net", "alice@example.com"}, 0, "allowed", ""},
		{[]string{"-remove", "spammer@example.net", "alice@example.com"}, 0, "removed", ""},
		{[]string{"-remove", "spammer@example.net", "alice@example.com"}, 1, "", "is not on the allow list"},
		{[]string{"alice@example.com"}, 0, "bob@example.net", ""},
	} {
		code, out, errOut := cli(t, "", append([]string{"user", "allowlist", "-config", cfgPath}, s.args...)...)
		if code != s.code || !strings.Contains(out, s.out) || !strings.Contains(errOut, s.errText) {
			t.Errorf("user allowlist %v: exit %d, stdout %q, stderr %q", s.args, code, out, errOut)
		}
	}
	code, out, _ := cli(t, "", "user", "allowlist", "-config", cfgPath, "alice@example.com")
	if code != 0 || strings.Contains(out, "spammer") {
		t.Errorf("allow list after the removal:\n%s", out)
	}

	tc := clientTLS(t, a.cfg.DataDir)
	msg := message("bob@example.net", "alice@example.com", "spam", gtubeString)
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com", "dave@example.com"}, msg); r.code != 452 || r.ecode != "4.5.3" || r.at != "RCPT dave@example.com" {
		t.Errorf("alice and dave in one transaction: %v, want 452 4.5.3 for dave", r)
	}
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"alice@example.com"}, msg); r.code != 250 {
		t.Errorf("to alice, who allows bob: %v, want 250", r)
	}
	if r := send(t, a.Addr("smtp"), tc, "bob@example.net", []string{"dave@example.com"}, msg); r.code != 550 {
		t.Errorf("to dave, who does not: %v, want 550", r)
	}
	// alice allows a sender whose domain's SPF does not list loopback: the
	// allow list does not vouch for a forged sender.
	if code, _, errOut := cli(t, "", "user", "allowlist", "-config", cfgPath, "-add", "ceo@forged.example", "alice@example.com"); code != 0 {
		t.Fatalf("allowlist -add: %s", errOut)
	}
	forged := message("ceo@forged.example", "alice@example.com", "spam", gtubeString)
	if r := send(t, a.Addr("smtp"), tc, "ceo@forged.example", []string{"alice@example.com"}, forged); r.code != 550 {
		t.Errorf("forged allow-listed sender to alice: %v, want 550 on score", r)
	}
	c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	defer c.Close()
	if inbox := fetchAll(t, c, "INBOX"); len(inbox) != 1 {
		t.Errorf("alice's INBOX holds %d messages, want 1", len(inbox))
	}
}
