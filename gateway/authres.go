package gateway

import (
	"bytes"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

// writeAuthResults writes the Authentication-Results field (RFC 8601) of
// what the checks found, under moat's authserv-id: one resinfo per result,
// each on its own folded line, or "none" when no method was applied (RFC
// 8601 §2.2).
func writeAuthResults(b *bytes.Buffer, authservID string, results []filters.AuthResult) {
	b.WriteString("Authentication-Results: ")
	b.WriteString(authservID)
	b.WriteByte(';')
	if len(results) == 0 {
		b.WriteString(" none\r\n")
		return
	}
	for i, r := range results {
		b.WriteString("\r\n\t")
		b.WriteString(r.Method)
		b.WriteByte('=')
		b.WriteString(string(r.Value))
		if r.Reason != "" {
			b.WriteString(" reason=")
			writeValue(b, r.Reason)
		}
		for _, p := range r.Props {
			b.WriteByte(' ')
			b.WriteString(p.Type)
			b.WriteByte('.')
			b.WriteString(p.Name)
			b.WriteByte('=')
			writeValue(b, p.Value)
		}
		if i < len(results)-1 {
			b.WriteByte(';')
		}
	}
	b.WriteString("\r\n")
}

// writeValue writes a property or reason value: as it is when it is a
// pvalue of RFC 8601 §2.2 made of token characters, '@' and '.' (an
// address, a domain, an IP address), otherwise as a quoted-string (RFC
// 5322 §3.2.4) with control characters dropped.
func writeValue(b *bytes.Buffer, v string) {
	if v != "" && strings.IndexFunc(v, func(r rune) bool { return !pvalueChar(r) }) < 0 {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r < ' ' || r == 0x7f:
			continue
		case r == '"' || r == '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
}

// pvalueChar reports whether r may stand unquoted in a value: the token
// characters of RFC 2045 §5.1 (printable US-ASCII but tspecials and
// space), with '@' (a local-part@domain pvalue) and ':' (an IPv6 address)
// allowed.
func pvalueChar(r rune) bool {
	if r <= ' ' || r >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>,;\"/[]?=`, r)
}

// authservID returns the authserv-id of an Authentication-Results field
// value (RFC 8601 §2.2: the first token, before the optional version and
// the ';'), skipping comments and white space; "" when it has none.
func authservID(v string) string {
	v, _ = content.SkipCFWS(v)
	end := strings.IndexFunc(v, func(r rune) bool {
		return r == ';' || r == '(' || r == ' ' || r == '\t' || r == '\r' || r == '\n'
	})
	if end < 0 {
		end = len(v)
	}
	return v[:end]
}

// ownAuthResults reports whether h has an Authentication-Results field
// under authservID, which a sender may have written to forge moat's
// verdict (RFC 8601 §5).
func ownAuthResults(h textproto.Header, id string) bool {
	for f := h.FieldsByKey("Authentication-Results"); f.Next(); {
		if strings.EqualFold(authservID(f.Value()), id) {
			return true
		}
	}
	return false
}

// dropOwnAuthResults deletes h's Authentication-Results fields under
// authservID.
func dropOwnAuthResults(h *textproto.Header, id string) {
	for f := h.FieldsByKey("Authentication-Results"); f.Next(); {
		if strings.EqualFold(authservID(f.Value()), id) {
			f.Del()
		}
	}
}
