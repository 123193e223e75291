package content

import (
	"bytes"
	"mime"
	"strconv"
	"strings"

	"github.com/emersion/go-message/charset"
)

// entityHeader holds the MIME fields of one entity's header (RFC 2045 §3).
//
// The walk reads part headers with its own small scanner rather than
// go-message's textproto.ReadHeader: it needs three fields out of the
// bytes already in memory, it must keep going where a part header is
// broken (textproto stops at the first malformed line, and a part header
// is written by the sender), and it allocates nothing for the fields it
// does not need.
type entityHeader struct {
	contentType string // unfolded value; "" when absent
	encoding    string // Content-Transfer-Encoding, unfolded
	disposition string // Content-Disposition, unfolded
	// repeated is true when one of those fields appears twice (RFC 2045
	// §3 allows each once); the first is used.
	repeated bool
	// broken is true when a line that is neither a field nor a
	// continuation ended the header.
	broken bool
	// body is the offset of the body in the entity.
	body int
}

// The fields the walk reads, as scanHeader tells them apart.
const (
	fieldOther = iota
	fieldContentType
	fieldEncoding
	fieldDisposition
)

// scanHeader reads the header of one entity: the fields up to the first
// empty line (RFC 5322 §2.1). A line that is not a field and not a
// continuation ends the header there and starts the body, as the mail
// readers that are lenient about it do, so that text after a missing
// blank line is still read.
func scanHeader(b []byte) entityHeader {
	var (
		h          entityHeader
		cur        = fieldOther
		start, end int  // the current field's value in b, folded
		seen       uint // bit per field already read
	)
	finish := func() {
		if cur == fieldOther {
			return
		}
		if seen&(1<<cur) != 0 {
			h.repeated = true
			cur = fieldOther
			return
		}
		seen |= 1 << cur
		v := unfold(b[start:end])
		switch cur {
		case fieldContentType:
			h.contentType = v
		case fieldEncoding:
			h.encoding = v
		default:
			h.disposition = v
		}
		cur = fieldOther
	}
	pos := 0
	for pos < len(b) {
		next := len(b)
		lineEnd := len(b)
		if i := bytes.IndexByte(b[pos:], '\n'); i >= 0 {
			lineEnd = pos + i
			next = lineEnd + 1
		}
		if lineEnd > pos && b[lineEnd-1] == '\r' {
			lineEnd--
		}
		line := b[pos:lineEnd]
		if len(line) == 0 {
			finish()
			h.body = next
			return h
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 5322 §2.2.3: a folded line continues the field.
			if cur != fieldOther {
				end = lineEnd
			}
			pos = next
			continue
		}
		finish()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validFieldName(line[:colon]) {
			h.broken = true
			h.body = pos
			return h
		}
		name := bytes.TrimRight(line[:colon], " \t") // RFC 5322 §4.5.3 (obs)
		switch {
		case bytes.EqualFold(name, []byte("Content-Type")):
			cur = fieldContentType
		case bytes.EqualFold(name, []byte("Content-Transfer-Encoding")):
			cur = fieldEncoding
		case bytes.EqualFold(name, []byte("Content-Disposition")):
			cur = fieldDisposition
		}
		start, end = pos+colon+1, lineEnd
		pos = next
	}
	finish()
	h.body = len(b)
	return h
}

// validFieldName reports whether b is a field name of RFC 5322 §3.6.8
// (printable ASCII but the colon), allowing the white space before the
// colon of the obsolete syntax (§4.5.3).
func validFieldName(b []byte) bool {
	b = bytes.TrimRight(b, " \t")
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// unfold returns a field value without the line breaks of its folding
// (RFC 5322 §2.2.3) and without surrounding white space.
func unfold(v []byte) string {
	v = bytes.TrimSpace(v)
	if bytes.IndexByte(v, '\n') < 0 {
		return string(v)
	}
	out := make([]byte, 0, len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return string(out)
}

// param is one parameter of a structured field (RFC 2045 §5.1): the name
// in lower case, the value with the quoting of a quoted-string removed.
type param struct {
	name, value string
}

// parseParams splits a Content-Type or Content-Disposition value into its
// lower-case token ("text/plain", "attachment") and its parameters.
//
// Unlike mime.ParseMediaType, which drops every parameter when one is
// malformed, it keeps each parameter it can read and reports the rest in
// bad: a boundary must not be lost to a stray semicolon that a mail
// reader would skip. An unquoted value runs to the next semicolon, as
// readers take "filename=my file.pdf".
func parseParams(v string) (token string, params []param, bad bool) {
	head, rest, _ := strings.Cut(v, ";")
	token = strings.ToLower(strings.TrimSpace(stripComment(head)))
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t;")
		if rest == "" {
			break
		}
		i := 0
		for i < len(rest) && isTokenChar(rest[i]) {
			i++
		}
		name := strings.ToLower(rest[:i])
		rest = strings.TrimLeft(rest[i:], " \t")
		if name == "" || !strings.HasPrefix(rest, "=") {
			if strings.HasPrefix(rest, "(") {
				// An RFC 822 comment between parameters.
				rest = skipComment(rest)
				continue
			}
			bad = true
			_, rest, _ = strings.Cut(rest, ";")
			continue
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		var value string
		if strings.HasPrefix(rest, `"`) {
			var ok bool
			value, rest, ok = quotedString(rest)
			if !ok {
				bad = true
			}
			// Anything but white space or a comment before the next
			// semicolon is junk.
			after, tail, _ := strings.Cut(rest, ";")
			if strings.TrimSpace(stripComment(after)) != "" {
				bad = true
			}
			rest = tail
		} else {
			value, rest, _ = strings.Cut(rest, ";")
			value = strings.TrimSpace(stripComment(value))
		}
		params = append(params, param{name: name, value: value})
	}
	return token, params, bad
}

// quotedString reads the quoted-string at the start of s (RFC 5322 §3.2.4)
// and returns its content and what follows. An unterminated string runs to
// the end, and ok is false.
func quotedString(s string) (value, rest string, ok bool) {
	var b strings.Builder
	simple := true
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			if simple {
				return s[1:i], s[i+1:], true
			}
			return b.String(), s[i+1:], true
		case '\\':
			if simple {
				b.WriteString(s[1:i])
				simple = false
			}
			// A backslash escapes the next character (quoted-pair), but
			// Windows paths arrive unescaped ("C:\dir\a.txt"): keep the
			// backslash unless it escapes a quote or a backslash, as
			// mime.ParseMediaType does for the same reason.
			if i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				i++
				b.WriteByte(s[i])
			} else {
				b.WriteByte(c)
			}
		default:
			if !simple {
				b.WriteByte(c)
			}
		}
	}
	if simple {
		return s[1:], "", false
	}
	return b.String(), "", false
}

// stripComment removes a trailing RFC 822 comment ("text/plain (note)").
func stripComment(s string) string {
	if i := strings.IndexByte(s, '('); i >= 0 {
		return s[:i]
	}
	return s
}

// skipComment returns s after the parenthesised comment it starts with.
func skipComment(s string) string {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return s[i+1:]
			}
		case '\\':
			i++
		}
	}
	return ""
}

// isTokenChar reports whether c may appear in a token (RFC 2045 §5.1).
func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// paramProblem says what went wrong reading a parameter value.
type paramProblem int

const (
	paramOK             paramProblem = iota
	paramUnknownCharset              // an RFC 2231 or 2047 charset could not be decoded
)

// lookup returns the value of parameter name, decoded: RFC 2231
// continuations and charsets (name*0*=, name*=utf-8'en'%E2%82%AC...), and RFC 2047
// encoded words in a plain value (not allowed by RFC 2047 §5 but written
// by common mailers). The RFC 2231 form wins over a plain one (as RFC 6266
// §4.3 says for filename*). others holds the further distinct values the
// parameter was given.
func lookup(params []param, name string) (value string, others []string, problem paramProblem) {
	var plain []string
	var ext string
	hasExt := false
	for _, p := range params {
		if p.name == name {
			v, pr := decodeWords(p.value)
			if pr != paramOK {
				problem = pr
			}
			plain = append(plain, v)
		}
	}
	if v, ok, pr := extended(params, name); ok {
		ext, hasExt = v, true
		if pr != paramOK {
			problem = pr
		}
	}
	var all []string
	if hasExt {
		all = append(all, ext)
	}
	all = append(all, plain...)
	if len(all) == 0 {
		return "", nil, problem
	}
	value = all[0]
	for _, v := range all[1:] {
		if len(others) == maxOthers {
			break
		}
		if v != value && !contains(others, v) {
			others = append(others, v)
		}
	}
	return value, others, problem
}

// maxOthers bounds the further values kept for one parameter: a header
// that repeats a parameter a million times gets no more.
const maxOthers = 8

// contains reports whether list holds s.
func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// maxSections bounds the RFC 2231 continuations read for one parameter.
const maxSections = 256

// extended assembles the RFC 2231 value of parameter name: either
// name*=charset'lang'value, or the sections name*0, name*1*, ... in order
// of their numbers, up to the first missing one (RFC 2231 §3). The charset
// of section 0 applies to every encoded section (§4.1).
func extended(params []param, name string) (value string, ok bool, problem paramProblem) {
	star := name + "*"
	for _, p := range params {
		if p.name == star {
			cs, _, v, found := cut2231(p.value)
			if !found {
				v = p.value
			}
			s, pr := charsetString(percentDecode(v), cs)
			return s, true, pr
		}
	}
	type section struct {
		value   string
		encoded bool
	}
	var sections [maxSections]*section
	n := 0
	for _, p := range params {
		rest, found := strings.CutPrefix(p.name, star)
		if !found || rest == "" {
			continue
		}
		enc := strings.HasSuffix(rest, "*")
		rest = strings.TrimSuffix(rest, "*")
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 || i >= maxSections || rest != strconv.Itoa(i) {
			continue
		}
		if sections[i] == nil {
			sections[i] = &section{value: p.value, encoded: enc}
			n++
		}
	}
	if n == 0 || sections[0] == nil {
		return "", false, paramOK
	}
	var raw []byte
	cs := ""
	if sections[0].encoded {
		c, _, v, found := cut2231(sections[0].value)
		if found {
			cs = c
			raw = append(raw, percentDecode(v)...)
		} else {
			raw = append(raw, percentDecode(sections[0].value)...)
		}
	} else {
		raw = append(raw, sections[0].value...)
	}
	for i := 1; i < maxSections && sections[i] != nil; i++ {
		if sections[i].encoded {
			raw = append(raw, percentDecode(sections[i].value)...)
		} else {
			raw = append(raw, sections[i].value...)
		}
	}
	v, pr := charsetString(raw, cs)
	return v, true, pr
}

// cut2231 splits charset'language'value.
func cut2231(v string) (cs, lang, value string, found bool) {
	cs, rest, ok := strings.Cut(v, "'")
	if !ok {
		return "", "", v, false
	}
	lang, value, ok = strings.Cut(rest, "'")
	if !ok {
		return "", "", v, false
	}
	return cs, lang, value, true
}

// percentDecode decodes %XX escapes (RFC 2231 §4); a malformed escape is
// kept as it is.
func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

// wordDecoder decodes RFC 2047 encoded words with go-message's charsets.
var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

// decodeWords decodes the RFC 2047 encoded words in v, if any. When a
// charset is unknown, v is returned as it is.
func decodeWords(v string) (string, paramProblem) {
	if !strings.Contains(v, "=?") {
		return v, paramOK
	}
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v, paramUnknownCharset
	}
	return d, paramOK
}

// DecodeHeader returns the header value v with its RFC 2047 encoded words
// decoded, or v as it is when a charset is unknown.
func DecodeHeader(v string) string {
	d, _ := decodeWords(v)
	return d
}

// charsetString converts b from charset cs to a UTF-8 string; see
// toUTF8.
func charsetString(b []byte, cs string) (string, paramProblem) {
	u, known := toUTF8(b, cs)
	if !known {
		return string(u), paramUnknownCharset
	}
	return string(u), paramOK
}

// SkipCFWS returns s after leading white space and comments (RFC 5322
// §3.2.2; comments nest, quoted pairs inside them are skipped). ok is
// false for an unclosed comment.
func SkipCFWS(s string) (string, bool) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0, c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			return s[i:], true
		}
	}
	return "", depth == 0
}
