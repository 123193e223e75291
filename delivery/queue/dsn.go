package queue

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
)

// dsnRcpt is one recipient a DSN reports on.
type dsnRcpt struct {
	addr string
	o    outcome
}

// dsnInfo is what a DSN says.
type dsnInfo struct {
	hostname string
	id       string // queue id of the original
	from     string // its envelope sender: the DSN's recipient
	arrival  time.Time
	now      time.Time
	rcpts    []dsnRcpt
	delayed  bool // "delayed" (a warning) rather than "failed"
	header   []byte
	lifetime time.Duration
}

// buildDSN writes a delivery status notification (RFC 3464) as a
// multipart/report (RFC 6522): a human-readable part, the
// message/delivery-status part, and the original's header section
// (text/rfc822-headers: the body is not sent back, as Postfix does with
// RET=HDRS, so that a bounce never carries the content a second time).
// It is sent from the null sender (RFC 5321 §4.5.5) and marked
// Auto-Submitted (RFC 3834 §5).
func buildDSN(d dsnInfo) []byte {
	var rb [12]byte
	rand.Read(rb[:])
	boundary := "=_moat_" + hex.EncodeToString(rb[:])
	var b bytes.Buffer
	crlf := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	subject := "Undelivered Mail Returned to Sender"
	if d.delayed {
		subject = "Delayed Mail (still being retried)"
	}
	crlf("From: Mail Delivery System <MAILER-DAEMON@%s>", d.hostname)
	crlf("To: <%s>", d.from)
	crlf("Subject: %s", subject)
	crlf("Date: %s", d.now.Format(time.RFC1123Z))
	crlf("Message-ID: <%s.%s@%s>", d.id, hex.EncodeToString(rb[:4]), d.hostname)
	crlf("Auto-Submitted: auto-replied")
	crlf("MIME-Version: 1.0")
	crlf("Content-Type: multipart/report; report-type=delivery-status;")
	crlf("\tboundary=\"%s\"", boundary)
	crlf("")
	crlf("This is a MIME-encapsulated message.")
	crlf("")
	crlf("--%s", boundary)
	crlf("Content-Type: text/plain; charset=utf-8")
	crlf("Content-Description: Notification")
	crlf("")
	crlf("This is the mail system at host %s.", d.hostname)
	crlf("")
	if d.delayed {
		crlf("Your message could not be delivered yet to the recipients below.")
		crlf("It is still being retried, for up to %s after it was sent;", d.lifetime)
		crlf("you need not send it again.")
	} else {
		crlf("Your message could not be delivered to the recipients below.")
		crlf("This is a permanent error; it will not be retried.")
	}
	crlf("")
	for _, r := range d.rcpts {
		crlf("<%s>: %s", r.addr, textLine(r.o.reply))
	}
	crlf("")
	crlf("--%s", boundary)
	crlf("Content-Type: message/delivery-status")
	crlf("Content-Description: Delivery report")
	crlf("")
	// RFC 3464 §2.2: the per-message fields.
	crlf("Reporting-MTA: dns; %s", d.hostname)
	crlf("X-Moat-Queue-ID: %s", d.id)
	crlf("Arrival-Date: %s", d.arrival.Format(time.RFC1123Z))
	for _, r := range d.rcpts {
		// RFC 3464 §2.3: the per-recipient fields.
		crlf("")
		crlf("Final-Recipient: rfc822; %s", r.addr)
		action, status := "failed", r.o.status
		if d.delayed {
			action = "delayed"
		}
		if status == "" {
			status = "5.0.0"
			if d.delayed {
				status = "4.0.0"
			}
		}
		crlf("Action: %s", action)
		crlf("Status: %s", status)
		if r.o.remote != "" && r.o.remote != "local" {
			crlf("Remote-MTA: dns; %s", r.o.remote)
		}
		if r.o.reply != "" {
			crlf("Diagnostic-Code: smtp; %s", textLine(r.o.reply))
		}
		crlf("Last-Attempt-Date: %s", d.now.Format(time.RFC1123Z))
		if d.delayed {
			crlf("Will-Retry-Until: %s", d.arrival.Add(d.lifetime).Format(time.RFC1123Z))
		}
	}
	crlf("")
	crlf("--%s", boundary)
	crlf("Content-Type: text/rfc822-headers")
	crlf("Content-Description: Undelivered Message Headers")
	crlf("")
	b.Write(toCRLF(d.header))
	crlf("")
	crlf("--%s--", boundary)
	return b.Bytes()
}

// textLine keeps a reply to printable ASCII on one line, so that a
// remote's text cannot break the report's structure.
func textLine(s string) string {
	s = oneLine(s)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// readHeader returns a message's header section, up to the empty line.
func readHeader(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	var b bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 && (len(line) > 0 || err != nil) {
			return b.Bytes(), nil
		}
		b.Write(line)
		if err == io.EOF {
			return b.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// toCRLF ends every line with CRLF.
func toCRLF(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	if len(b) > 0 && !bytes.HasSuffix(b, []byte("\r\n")) {
		b = append(b, '\r', '\n')
	}
	return b
}
