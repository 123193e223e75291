package gateway

import (
	"bytes"
	"crypto/tls"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
	"github.com/moatmail/moat/quarantine"
	"github.com/moatmail/moat/rules"
)

// traceHeader returns the fields moat prepends to every message it stores:
// Received (RFC 5321 §4.4), Authentication-Results (RFC 8601) and the
// X-Spam- verdict fields.
func (s *session) traceHeader(queueID string, v rules.Verdict) []byte {
	var b bytes.Buffer
	b.Grow(512)
	b.WriteString("Received: from ")
	b.WriteString(sanitize(s.info.Helo))
	b.WriteString(" (")
	if s.info.ReverseName != "" {
		b.WriteString(sanitize(s.info.ReverseName))
		b.WriteByte(' ')
	}
	b.WriteByte('[')
	b.WriteString(s.info.RemoteIP.String())
	b.WriteString("])")
	s.writeReceivedBy(&b, queueID)
	// RFC 5321 §7.2: naming the recipient of a message with several
	// would disclose Bcc recipients to the others.
	if len(s.rcpts) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(s.rcpts[0].addr)
		b.WriteByte('>')
	}
	b.WriteString("; ")
	b.WriteString(time.Now().Format(time.RFC1123Z))
	b.WriteString("\r\n")
	// RFC 8601 §4: directly below the Received field of the hop that
	// made the checks.
	writeAuthResults(&b, s.srv.cfg.AuthservID, s.found.Auth)

	spam := v.Action >= policies.ActionTag
	if spam {
		b.WriteString("X-Spam-Flag: YES\r\n")
	}
	b.WriteString("X-Spam-Score: ")
	b.WriteString(formatScore(v.Score))
	b.WriteString("\r\nX-Spam-Status: ")
	if spam {
		b.WriteString("Yes")
	} else {
		b.WriteString("No")
	}
	b.WriteString(", score=")
	b.WriteString(formatScore(v.Score))
	if t := s.policy.TagScore; !math.IsInf(t, 1) {
		b.WriteString(" required=")
		b.WriteString(formatScore(t))
	}
	b.WriteString(" action=")
	b.WriteString(v.Action.String())
	if names := v.SymbolNames(); len(names) > 0 {
		b.WriteString("\r\n\ttests=")
		writeWrapped(&b, names)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// writeReceivedBy writes the by, with and id clauses of moat's Received
// field (RFC 5321 §4.4), with the TLS version and cipher.
func (s *session) writeReceivedBy(b *bytes.Buffer, queueID string) {
	b.WriteString("\r\n\tby ")
	b.WriteString(s.srv.cfg.Hostname)
	b.WriteString(" (moat) with ")
	b.WriteString(s.protocol())
	if st := s.info.TLS; st != nil {
		b.WriteString(" (")
		b.WriteString(tls.VersionName(st.Version))
		b.WriteByte(' ')
		b.WriteString(tls.CipherSuiteName(st.CipherSuite))
		b.WriteByte(')')
	}
	b.WriteString(" id ")
	b.WriteString(queueID)
}

// protocol names the transport in the Received field (RFC 3848, RFC 6531
// §3.7.3).
func (s *session) protocol() string {
	p := "ESMTP"
	if s.env.SMTPUTF8 {
		p = "UTF8SMTP"
	}
	if s.info.TLS != nil {
		p += "S"
	}
	if s.info.AuthUser != "" {
		p += "A"
	}
	return p
}

// writeWrapped writes a comma-separated list folded under 78 columns
// (RFC 5322 §2.2.3).
func writeWrapped(b *bytes.Buffer, names []string) {
	col := 7
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
			col++
			if col+len(n) > 76 {
				b.WriteString("\r\n\t")
				col = 1
			}
		}
		b.WriteString(n)
		col += len(n)
	}
}

func formatScore(f float64) string {
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// sanitize makes a client-supplied name safe inside a header comment.
func sanitize(s string) string {
	if s == "" {
		return "unknown"
	}
	if len(s) > 255 {
		s = s[:255]
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == '\\' || r == '[' || r == ']' {
			return '?'
		}
		return r
	}, s)
}

// rewrite returns the message to store: the raw bytes, or, when fields
// must change (forged X-Spam- fields removed, a subject prefix added on
// tag), a new header followed by the untouched body.
func (s *session) rewrite(msg *filters.Message, v rules.Verdict) []byte {
	prefix := ""
	if v.Action == policies.ActionTag {
		prefix = s.policy.SubjectPrefix
	}
	strip := *s.srv.cfg.StripSpamHeaders && hasSpamFields(msg.Header)
	// RFC 8601 §5: a field under moat's own authserv-id that arrives with
	// the message is a forgery (or a loop) and goes, always.
	forged := ownAuthResults(msg.Header, s.srv.cfg.AuthservID)
	if (!strip && !forged && prefix == "") || msg.HeaderErr != nil {
		return msg.Raw
	}
	h := msg.Header.Copy()
	if forged {
		dropOwnAuthResults(&h, s.srv.cfg.AuthservID)
	}
	if strip {
		for f := h.Fields(); f.Next(); {
			if strings.HasPrefix(strings.ToLower(f.Key()), "x-spam-") {
				f.Del()
			}
		}
	}
	if prefix != "" {
		subj := h.Get("Subject")
		if !strings.HasPrefix(subj, prefix) {
			h.Set("Subject", strings.TrimSpace(prefix+" "+subj))
		}
	}
	var out bytes.Buffer
	out.Grow(len(msg.Raw) + 64)
	if err := textproto.WriteHeader(&out, h); err != nil {
		return msg.Raw
	}
	out.Write(msg.Body())
	return out.Bytes()
}

func hasSpamFields(h textproto.Header) bool {
	for f := h.Fields(); f.Next(); {
		if len(f.Key()) > 7 && strings.EqualFold(f.Key()[:7], "x-spam-") {
			return true
		}
	}
	return false
}

func (s *session) quarantineRecord(queueID string, msg *filters.Message, v rules.Verdict) quarantine.Record {
	return quarantine.Record{
		QueueID:    queueID,
		Sender:     s.env.From,
		Recipients: append([]string(nil), s.env.Rcpts...),
		Subject:    msg.Header.Get("Subject"),
		ClientIP:   s.info.RemoteIP.String(),
		Score:      v.Score,
		Action:     v.Action.String(),
		Symbols:    v.Symbols,
		Reasons:    v.Reasons,
	}
}
