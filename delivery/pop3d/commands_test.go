package pop3d

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/moatmail/moat/delivery/imapd"
	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/gateway/throttle"
)

// step is one command of a scripted session and what it must answer.
type step struct {
	send string
	// want is the exact status line, or its beginning when it ends in "…".
	want string
	// lines, when not nil, is the exact body of a multi-line answer.
	lines []string
}

func (s step) run(t *testing.T, cl *client) {
	t.Helper()
	multi := s.lines != nil
	var status string
	var lines []string
	if multi {
		status, lines = cl.multi(s.send)
	} else {
		status = cl.cmd(s.send)
	}
	if prefix, ok := strings.CutSuffix(s.want, "…"); ok {
		if !strings.HasPrefix(status, prefix) {
			t.Errorf("%s: %q, want %q…", s.send, status, prefix)
		}
	} else if status != s.want {
		t.Errorf("%s: %q, want %q", s.send, status, s.want)
	}
	if multi && strings.Join(lines, "\n") != strings.Join(s.lines, "\n") {
		t.Errorf("%s: body %q, want %q", s.send, lines, s.lines)
	}
}

func TestTransactionCommands(t *testing.T) {
	e := newEnv(t, Config{})
	msgs := []string{
		message("one", "first\r\n"),
		message("two", "second\r\nline\r\n"),
		message("three", "third\r\n"),
	}
	var uids []string
	for _, m := range msgs {
		uids = append(uids, strconv.Itoa(int(e.deliver(t, e.alice, m))))
	}
	_, mb := e.inbox(t, e.alice)
	v := strconv.Itoa(int(mb.UIDValidity))
	size := func(i int) string { return strconv.Itoa(len(msgs[i])) }
	total := strconv.Itoa(len(msgs[0]) + len(msgs[1]) + len(msgs[2]))
	less1 := strconv.Itoa(len(msgs[0]) + len(msgs[2]))
	cl := e.login(t, aliceAddr, alicePass)
	for _, s := range []step{
		{send: "STAT", want: "+OK 3 " + total},
		{send: "LIST", want: "+OK 3 messages (" + total + " octets)",
			lines: []string{"1 " + size(0), "2 " + size(1), "3 " + size(2)}},
		{send: "LIST 2", want: "+OK 2 " + size(1)},
		{send: "list 3", want: "+OK 3 " + size(2)},
		{send: "LIST 4", want: "-ERR No such message"},
		{send: "LIST 0", want: "-ERR No such message"},
		{send: "LIST x", want: "-ERR Syntax…"},
		{send: "LIST 1 2", want: "-ERR Syntax…"},
		{send: "UIDL", want: "+OK…", lines: []string{"1 " + v + "." + uids[0], "2 " + v + "." + uids[1], "3 " + v + "." + uids[2]}},
		{send: "UIDL 3", want: "+OK 3 " + v + "." + uids[2]},
		{send: "NOOP", want: "+OK"},
		{send: "RETR 2", want: "+OK " + size(1) + " octets",
			lines: strings.Split(strings.TrimSuffix(msgs[1], "\r\n"), "\r\n")},
		{send: "TOP 2 1", want: "+OK…", lines: []string{"From: carol@example.net", "To: alice@example.com",
			"Subject: two", "Message-ID: <two@example.net>", "", "second"}},
		{send: "TOP 2", want: "-ERR Syntax…"},
		{send: "TOP 2 -1", want: "-ERR Syntax…"},
		{send: "RETR", want: "-ERR Syntax…"},
		{send: "RETR 99999999999", want: "-ERR Syntax…"},
		{send: "DELE 2", want: "+OK Message 2 deleted"},
		{send: "DELE 2", want: "-ERR Message 2 already deleted"},
		{send: "RETR 2", want: "-ERR Message 2 already deleted"},
		{send: "TOP 2 0", want: "-ERR Message 2 already deleted"},
		{send: "LIST 2", want: "-ERR Message 2 already deleted"},
		{send: "UIDL 2", want: "-ERR Message 2 already deleted"},
		{send: "STAT", want: "+OK 2 " + less1},
		{send: "LIST", want: "+OK 2 messages (" + less1 + " octets)", lines: []string{"1 " + size(0), "3 " + size(2)}},
		{send: "UIDL", want: "+OK…", lines: []string{"1 " + v + "." + uids[0], "3 " + v + "." + uids[2]}},
		{send: "RSET", want: "+OK Maildrop has 3 messages (" + total + " octets)"},
		{send: "LIST 2", want: "+OK 2 " + size(1)},
		{send: "STAT 1", want: "-ERR Syntax: STAT"},
		{send: "USER " + aliceAddr, want: "-ERR Already logged in"},
		{send: "PASS x", want: "-ERR Already logged in"},
		{send: "AUTH PLAIN", want: "-ERR Already logged in"},
		{send: "STLS", want: "-ERR Already logged in"},
		{send: "APOP alice 0123", want: "-ERR Already logged in"},
		{send: "XTND XMIT", want: "-ERR Unknown command"},
		{send: "", want: "-ERR Empty command"},
		{send: "QUIT", want: "+OK moat POP3 server signing off (3 messages left)"},
	} {
		s.run(t, cl)
	}
	if !cl.closed() {
		t.Error("connection open after QUIT")
	}
}

func TestAuthorizationCommands(t *testing.T) {
	e := newEnv(t, Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true}})
	cl := e.dial(t)
	if cl.greeting != "+OK moat POP3 server ready" {
		t.Errorf("greeting %q", cl.greeting)
	}
	for _, s := range []step{
		{send: "STAT", want: "-ERR Command not valid before login"},
		{send: "NOOP", want: "-ERR Command not valid before login"},
		{send: "RETR 1", want: "-ERR Command not valid before login"},
		{send: "PASS " + alicePass, want: "-ERR USER first"},
		{send: "USER", want: "-ERR Syntax: USER name"},
		{send: "APOP alice 0123456789abcdef", want: "-ERR APOP not supported"},
		{send: "USER " + aliceAddr, want: "+OK Send PASS"},
		{send: "STAT", want: "-ERR Command not valid before login"},
		// RFC 1939 §7: USER must come right before PASS.
		{send: "PASS " + alicePass, want: "-ERR USER first"},
		{send: "USER " + aliceAddr, want: "+OK Send PASS"},
		{send: "PASS", want: "-ERR Syntax: PASS password"},
		{send: "USER " + aliceAddr, want: "+OK Send PASS"},
		{send: "PASS " + alicePass, want: "+OK Maildrop locked and ready, 0 messages (0 octets)"},
		{send: "STAT", want: "+OK 0 0"},
		{send: "LIST", want: "+OK 0 messages (0 octets)", lines: []string{}},
		{send: "RETR 1", want: "-ERR No such message"},
		{send: "QUIT", want: "+OK moat POP3 server signing off (0 messages left)"},
	} {
		s.run(t, cl)
	}
}

func TestTop(t *testing.T) {
	e := newEnv(t, Config{})
	header := "From: carol@example.net\r\nSubject: top\r\n"
	e.deliver(t, e.alice, header+"\r\nb1\r\n.b2\r\nb3\r\n")
	e.deliver(t, e.alice, "From: carol@example.net\nSubject: lf\n\nb1\nb2\n")
	e.deliver(t, e.alice, "Subject: no body\r\n")
	cl := e.login(t, aliceAddr, alicePass)
	for _, tc := range []struct {
		cmd  string
		want string
	}{
		{"TOP 1 0", header + "\r\n"},
		{"TOP 1 1", header + "\r\nb1\r\n"},
		{"TOP 1 2", header + "\r\nb1\r\n.b2\r\n"},
		{"TOP 1 3", header + "\r\nb1\r\n.b2\r\nb3\r\n"},
		{"TOP 1 100", header + "\r\nb1\r\n.b2\r\nb3\r\n"},
		{"TOP 1 99999999999999", header + "\r\nb1\r\n.b2\r\nb3\r\n"},
		{"TOP 2 1", "From: carol@example.net\r\nSubject: lf\r\n\r\nb1\r\n"},
		{"TOP 3 5", "Subject: no body\r\n"},
	} {
		if got := cl.cmd(tc.cmd); !strings.HasPrefix(got, "+OK") {
			t.Errorf("%s: %q", tc.cmd, got)
			continue
		}
		if got := cl.body(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

// TestDotStuffingRoundTrip: what a client reads back after undoing the
// dot-stuffing is the stored message with CRLF line ends.
func TestDotStuffingRoundTrip(t *testing.T) {
	e := newEnv(t, Config{})
	bodies := []struct{ name, raw string }{
		{"leading dots", "Subject: dots\r\n\r\n.\r\n..\r\n...x\r\n. \r\nend\r\n"},
		{"terminator look-alike", "Subject: term\r\n\r\nbefore\r\n.\r\nafter\r\n"},
		{"bare LF", "Subject: lf\n\n.line\nline\n"},
		{"no final newline", "Subject: open\r\n\r\nlast line"},
		{"only a dot", "."},
		{"long", "Subject: long\r\n\r\n" + strings.Repeat(".0123456789abcdef\r\nabc\n", 5000)},
	}
	for _, b := range bodies {
		e.deliver(t, e.alice, b.raw)
	}
	cl := e.login(t, aliceAddr, alicePass)
	for i, b := range bodies {
		t.Run(b.name, func(t *testing.T) {
			status := cl.cmd("RETR " + strconv.Itoa(i+1))
			if want := fmt.Sprintf("+OK %d octets", len(b.raw)); status != want {
				t.Errorf("status %q, want %q", status, want)
			}
			if got, want := cl.body(), crlf(b.raw); got != want {
				t.Errorf("body differs: got %d bytes, want %d\n got %.200q\nwant %.200q", len(got), len(want), got, want)
			}
		})
	}
}

func TestPipelining(t *testing.T) {
	e := newEnv(t, Config{})
	m1, m2 := message("one", "first\r\n"), message("two", ".dot\r\n")
	e.deliver(t, e.alice, m1)
	e.deliver(t, e.alice, m2)
	cl := e.dialSTLS(t)
	// RFC 2449 §6.6: the client may send many commands in one write.
	cl.send("USER " + aliceAddr + "\r\nPASS " + alicePass + "\r\nSTAT\r\nLIST\r\nRETR 1\r\nRETR 2\r\nDELE 1\r\nUIDL 1\r\nNOOP\r\nQUIT\r\n")
	for _, want := range []string{"+OK Send PASS", "+OK Maildrop locked…", "+OK 2 …"} {
		if got := cl.line(); !strings.HasPrefix(got, strings.TrimSuffix(want, "…")) {
			t.Errorf("pipelined: %q, want %q", got, want)
		}
	}
	if got := cl.line(); !strings.HasPrefix(got, "+OK 2 messages") {
		t.Errorf("LIST: %q", got)
	}
	if got := cl.body(); got != fmt.Sprintf("1 %d\r\n2 %d\r\n", len(m1), len(m2)) {
		t.Errorf("LIST body %q", got)
	}
	for i, m := range []string{m1, m2} {
		if got := cl.line(); got != fmt.Sprintf("+OK %d octets", len(m)) {
			t.Errorf("RETR %d: %q", i+1, got)
		}
		if got := cl.body(); got != m {
			t.Errorf("RETR %d body %q", i+1, got)
		}
	}
	for _, want := range []string{"+OK Message 1 deleted", "-ERR Message 1 already deleted", "+OK",
		"+OK moat POP3 server signing off (1 messages left)"} {
		if got := cl.line(); got != want {
			t.Errorf("pipelined: %q, want %q", got, want)
		}
	}
	if uids, _ := e.inbox(t, e.alice); len(uids) != 1 {
		t.Errorf("INBOX holds %v after DELE 1 and QUIT", uids)
	}
}

// TestUIDLMatchesIMAP: UIDL answers what an IMAP client sees as
// UIDVALIDITY and UID of the same INBOX message.
func TestUIDLMatchesIMAP(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 4; i++ {
		e.deliver(t, e.alice, message("m"+strconv.Itoa(i), "body\r\n"))
	}
	// A removed message leaves a gap in the UIDs: UIDL must follow the UIDs,
	// not the positions.
	uids, mb := e.inbox(t, e.alice)
	if err := e.store.Update(t.Context(), func(tx *mailstore.Tx) error { return tx.RemoveMessages(mb.ID, uids[1:2]) }); err != nil {
		t.Fatal(err)
	}

	isrv := imapd.New(imapd.Config{}, e.store, e.serverTLS, nil, testLogger(t))
	l := listenLoopback(t)
	go isrv.Serve(l)
	t.Cleanup(func() { isrv.Close() })
	ic, err := imapclient.DialStartTLS(l.Addr().String(), &imapclient.Options{TLSConfig: e.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login(aliceAddr, alicePass).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := ic.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := ic.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range msgs {
		want = append(want, fmt.Sprintf("%d %d.%d", m.SeqNum, sel.UIDValidity, m.UID))
	}
	ic.Logout().Wait()

	cl := e.login(t, aliceAddr, alicePass)
	status, got := cl.multi("UIDL")
	if !strings.HasPrefix(status, "+OK") || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("UIDL = %q %q, want IMAP's %q", status, got, want)
	}
	for _, line := range got {
		id := line[strings.IndexByte(line, ' ')+1:]
		// RFC 1939 §7: 1 to 70 characters in 0x21..0x7E.
		if len(id) < 1 || len(id) > 70 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			t.Errorf("unique-id %q breaks RFC 1939 §7", id)
		}
	}
	cl.cmd("QUIT")
	// Stable: a second session names the same messages the same way.
	cl = e.login(t, aliceAddr, alicePass)
	if _, again := cl.multi("UIDL"); strings.Join(again, "|") != strings.Join(got, "|") {
		t.Errorf("UIDL changed between sessions: %q then %q", got, again)
	}
}

func TestLineLength(t *testing.T) {
	e := newEnv(t, Config{LoginConfig: throttle.LoginConfig{AllowPlaintextLoopback: true}})
	for _, tc := range []struct {
		name      string
		line      string
		want      string
		wantClose bool
	}{
		// RFC 2449 §4 says 255 octets; longer lines are tolerated.
		{"300 octets", "USER " + strings.Repeat("a", 295), "+OK Send PASS", false},
		{"1000 octets", "USER " + strings.Repeat("a", 995), "+OK Send PASS", false},
		{"1001 octets", "USER " + strings.Repeat("a", 996), "-ERR Line too long", true},
		{"4 KiB", strings.Repeat("x", 4096), "-ERR Line too long", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := e.dial(t)
			if got := cl.cmd(tc.line); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.wantClose != cl.closedAfter("NOOP") {
				t.Errorf("closed = %v, want %v", !tc.wantClose, tc.wantClose)
			}
		})
	}
}

func TestTooManyErrors(t *testing.T) {
	e := newEnv(t, Config{})
	cl := e.dial(t)
	cl.cmd("CAPA")
	cl.body()
	for i := 1; i < maxBadCommands; i++ {
		if got := cl.cmd("BOGUS"); got != "-ERR Unknown command" {
			t.Fatalf("error %d: %q", i, got)
		}
	}
	// A good command in between starts the count again.
	if got, _ := cl.multi("CAPA"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("CAPA: %q", got)
	}
	for i := 1; i < maxBadCommands; i++ {
		cl.cmd("BOGUS")
	}
	cl.send("BOGUS\r\n")
	for _, want := range []string{"-ERR Unknown command", "-ERR Too many errors, closing connection"} {
		if got := cl.line(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if !cl.closed() {
		t.Error("connection still open")
	}
}
