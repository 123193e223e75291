package gateway

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/rdns"
	"github.com/moatmail/moat/filters/resolver"
	"github.com/moatmail/moat/filters/resolver/dnstest"
)

// fromAddr runs a connect-stage filter as if the client connected from
// addr: a test over loopback cannot connect from a routable address, and
// the rdns filter skips loopback clients.
type fromAddr struct {
	filters.Filter
	addr netip.Addr
}

func (f fromAddr) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	c := *in.Conn
	c.RemoteIP = f.addr
	moved := *in
	moved.Conn = &c
	return f.Filter.Check(ctx, &moved)
}

// TestReverseNameInReceived: the client's reverse name, which the rdns
// filter confirms through real DNS on loopback, reaches the Received field
// of the delivered message, in every transaction of the connection.
func TestReverseNameInReceived(t *testing.T) {
	dns := dnstest.Start(t, dnstest.LoadZoneDir(t, "../testdata/dns"))
	rcfg := resolver.DefaultConfig()
	rcfg.Upstream = dns.Addr()
	rcfg.Timeout = time.Second
	r, err := resolver.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := rdns.New(rdns.DefaultConfig(), r)
	if err != nil {
		t.Fatal(err)
	}
	// 192.0.2.25 has the PTR mail.example.test, which has that address.
	addr, st := startGateway(t, Config{}, fromAddr{f, netip.MustParseAddr("192.0.2.25")})
	msg := "From: bob@example.net\r\nTo: alice@example.com\r\nSubject: hi\r\nDate: Sat, 05 Dec 2026 08:00:00 +0000\r\nMessage-ID: <1@example.net>\r\n\r\nhello\r\n.\r\n"
	tx := "MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
	out := dialogue(t, addr, "EHLO client.example.net\r\n"+tx, msg, tx, msg, "QUIT\r\n")
	if n := strings.Count(out, "250 2.0.0 OK queued"); n != 2 {
		t.Fatalf("%d messages queued, want 2:\n%s", n, out)
	}
	ctx := context.Background()
	u, _ := st.LookupUser(ctx, "alice@example.com")
	mb, _ := st.Mailbox(ctx, u.ID, "INBOX")
	msgs, err := st.Messages(ctx, mb.ID)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("INBOX holds %d messages (%v), want 2", len(msgs), err)
	}
	for i, m := range msgs {
		raw, err := st.ReadMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		want := "Received: from client.example.net (mail.example.test [127.0.0.1])"
		if !strings.HasPrefix(string(raw), want) {
			t.Errorf("message %d starts %q, want %q", i+1, firstLine(raw), want)
		}
		if !strings.Contains(string(raw), "\r\n\tiprev=pass policy.iprev=192.0.2.25\r\n") {
			t.Errorf("message %d lacks the iprev result:\n%s", i+1, raw)
		}
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}
