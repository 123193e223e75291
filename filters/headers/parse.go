package headers

import (
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/moatmail/moat/filters/content"
)

// validDate reports whether v is an RFC 5322 date-time (§3.3), obsolete
// forms of §4.3 included. net/mail.ParseDate takes the forms real mail
// uses (no day of week, two-digit years, no seconds, named zones such as
// EDT, a trailing comment); what it misses of §4.3 (comments and spaces
// anywhere, military one-letter zones) is normalised away and tried
// again.
func validDate(v string) bool {
	if _, err := mail.ParseDate(v); err == nil {
		return true
	}
	n, ok := normaliseObsDate(v)
	if !ok {
		return false
	}
	_, err := mail.ParseDate(n)
	return err == nil
}

// normaliseObsDate rewrites the obsolete date-time syntax net/mail does not
// read into the modern one: comments are dropped, runs of white space
// become one space, white space around ':' goes (obs-hour, obs-minute,
// obs-second allow CFWS there), and a final one-letter military zone
// becomes "-0000", as RFC 5322 §4.3 says it SHOULD be taken. ok is false
// when nothing changed or a comment is not closed.
func normaliseObsDate(v string) (string, bool) {
	var b strings.Builder
	b.Grow(len(v))
	depth := 0
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && depth > 0:
			i++ // quoted-pair inside a comment
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			space = true
		default:
			if space && b.Len() > 0 && c != ':' && !strings.HasSuffix(b.String(), ":") {
				b.WriteByte(' ')
			}
			space = false
			b.WriteByte(c)
		}
	}
	if depth != 0 {
		return "", false
	}
	s := b.String()
	if i := strings.LastIndexByte(s, ' '); i >= 0 && len(s)-i == 2 {
		if z := s[i+1] | 0x20; z >= 'a' && z <= 'z' && z != 'j' {
			s = s[:i] + " -0000"
		}
	}
	return s, s != v
}

// validMsgID reports whether v is one msg-id of RFC 5322 §3.6.4:
//
//	msg-id   = [CFWS] "<" id-left "@" id-right ">" [CFWS]
//	id-left  = dot-atom-text / obs-id-left      (quoted-string allowed)
//	id-right = dot-atom-text / no-fold-literal / obs-id-right
//
// Deliberately lenient where real mail is sloppy and nothing breaks: dots
// may be doubled or lead or trail in id-left. UTF-8 counts as atext (RFC
// 6532 §3.2); whether 8-bit was allowed is another symbol's business.
func validMsgID(v string) bool {
	p, ok := content.SkipCFWS(v)
	if !ok || !strings.HasPrefix(p, "<") {
		return false
	}
	p = p[1:]
	if strings.HasPrefix(p, `"`) {
		if p, ok = skipQuoted(p); !ok {
			return false
		}
	} else {
		n := 0
		for n < len(p) && (isAtext(p[n]) || p[n] == '.') {
			n++
		}
		if n == 0 {
			return false
		}
		p = p[n:]
	}
	if !strings.HasPrefix(p, "@") {
		return false
	}
	p = p[1:]
	if strings.HasPrefix(p, "[") {
		end := strings.IndexByte(p, ']')
		if end < 0 {
			return false
		}
		for i := 1; i < end; i++ {
			if c := p[i]; c <= ' ' || c == '[' || c == '\\' || c == 0x7f {
				return false
			}
		}
		p = p[end+1:]
	} else {
		n := dotAtomText(p)
		if n == 0 {
			return false
		}
		p = p[n:]
	}
	if !strings.HasPrefix(p, ">") {
		return false
	}
	p, ok = content.SkipCFWS(p[1:])
	return ok && p == ""
}

// dotAtomText returns the length of the dot-atom-text (RFC 5322 §3.2.3)
// that starts s: atext runs joined by single dots; 0 if there is none.
func dotAtomText(s string) int {
	n := 0
	for {
		start := n
		for n < len(s) && isAtext(s[n]) {
			n++
		}
		if n == start {
			// No atext after a dot: the dot is not part of it.
			return max(start-1, 0)
		}
		if n == len(s) || s[n] != '.' {
			return n
		}
		n++
	}
}

// isAtext reports whether c is atext (RFC 5322 §3.2.3), any byte of a
// UTF-8 sequence included (RFC 6532 §3.2).
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// skipQuoted returns s after the quoted-string that starts it (RFC 5322
// §3.2.4). ok is false if it is not closed.
func skipQuoted(s string) (string, bool) {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return s[i+1:], true
		}
	}
	return "", false
}

// addressParser reads address lists. Its decoder accepts encoded-words in
// any charset without converting them: only the structure of the list
// matters here, and an unknown charset in a display name does not make
// From invalid.
var addressParser = mail.AddressParser{
	WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	},
}

// countMailboxes parses v as an RFC 5322 address list and returns how many
// mailboxes it names (members of groups included).
func countMailboxes(v string) (int, error) {
	list, err := addressParser.ParseList(v)
	if err != nil {
		return 0, err
	}
	return len(list), nil
}
