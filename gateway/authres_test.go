package gateway

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

func TestWriteAuthResults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []filters.AuthResult
		want    string
	}{
		{"none", nil, "Authentication-Results: mx.example.com; none\r\n"},
		{"two", []filters.AuthResult{
			{Method: "iprev", Value: filters.AuthPass, Props: []filters.AuthProp{{Type: "policy", Name: "iprev", Value: "2001:db8::25"}}},
			{Method: "spf", Value: filters.AuthFail, Reason: "not (authorized)", Props: []filters.AuthProp{{Type: "smtp", Name: "mailfrom", Value: "bob@example.net"}}},
		}, "Authentication-Results: mx.example.com;\r\n\tiprev=pass policy.iprev=2001:db8::25;\r\n" +
			"\tspf=fail reason=\"not (authorized)\" smtp.mailfrom=bob@example.net\r\n"},
		{"hostile values are quoted", []filters.AuthResult{
			{Method: "dkim", Value: filters.AuthPermError, Props: []filters.AuthProp{{Type: "header", Name: "d", Value: "a;b\r\nX-Spam: \"yes\\"}}},
		}, "Authentication-Results: mx.example.com;\r\n\tdkim=permerror header.d=\"a;bX-Spam: \\\"yes\\\\\"\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeAuthResults(&b, "mx.example.com", tc.results)
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}

func TestAuthservID(t *testing.T) {
	for in, want := range map[string]string{
		"mx.example.com; spf=pass":                "mx.example.com",
		" (comment (nested)) mx.example.com 1; x": "mx.example.com",
		"mx.example.com":                          "mx.example.com",
		"(unclosed":                               "",
		"":                                        "",
		"\tMX.Example.Com(c);none":                "MX.Example.Com",
	} {
		if got := authservID(in); got != want {
			t.Errorf("authservID(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestForgedAuthResults: an Authentication-Results field under moat's
// authserv-id that arrives with the message is removed, one under another
// id stays, and moat's own field follows its Received field.
func TestForgedAuthResults(t *testing.T) {
	addr, st := startGateway(t, Config{AuthservID: "mx.example.com"})
	msg := "Authentication-Results: MX.example.com (forged); dmarc=pass header.from=bank.example\r\n" +
		"Authentication-Results: relay.example.net; spf=pass smtp.mailfrom=bob@example.net\r\n" +
		"From: bob@example.net\r\nTo: alice@example.com\r\nSubject: hi\r\nDate: Sat, 05 Dec 2026 08:00:00 +0000\r\n" +
		"Message-ID: <2@example.net>\r\n\r\nhello\r\n.\r\n"
	out := dialogue(t, addr, "EHLO client.example.net\r\nMAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n", msg, "QUIT\r\n")
	if !strings.Contains(out, "250 2.0.0 OK queued") {
		t.Fatalf("not queued:\n%s", out)
	}
	ctx := context.Background()
	u, _ := st.LookupUser(ctx, "alice@example.com")
	mb, _ := st.Mailbox(ctx, u.ID, "INBOX")
	msgs, err := st.Messages(ctx, mb.ID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("INBOX holds %d messages (%v), want 1", len(msgs), err)
	}
	raw, err := st.ReadMessage(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	stored := string(raw)
	if strings.Contains(stored, "forged") || strings.Contains(stored, "dmarc=pass") {
		t.Errorf("the forged field is still there:\n%s", stored)
	}
	if !strings.Contains(stored, "Authentication-Results: relay.example.net; spf=pass") {
		t.Errorf("another host's field was removed:\n%s", stored)
	}
	// Loopback: rdns skips it, no other check authenticates: "none".
	if i, j := strings.Index(stored, "Received: "), strings.Index(stored, "Authentication-Results: mx.example.com; none\r\n"); i != 0 || j < 0 {
		t.Errorf("want Received first and moat's own field after it:\n%s", stored)
	}
}
