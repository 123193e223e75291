package content

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Walk reads the MIME structure of raw (a whole message: header, blank
// line, body) and returns its decoded view. Zero or negative limits take
// their defaults. Walk never fails: whatever could not be read is
// reported in Content.Anomalies, and a limit that is reached stops the
// walk from descending or decoding further, not from returning.
//
// Walk reads raw and never writes it; Attachment.Data may point into it.
func Walk(raw []byte, lim Limits) *Content {
	w := walker{lim: lim.withDefaults(), c: &Content{}}
	w.entity(raw, 0, "text/plain", false, true)
	w.c.Text = w.text.String()
	return w.c
}

// walker holds the state of one walk.
type walker struct {
	lim     Limits
	c       *Content
	text    strings.Builder
	last    byte // the last byte written to text
	full    bool // text reached MaxTextBytes
	parts   int  // entities walked
	decoded int64
	stopped bool   // the part limit was reached: walk nothing more
	seen    uint16 // bit per anomaly kind already reported
	urlSet  map[string]struct{}
}

// note records an anomaly of kind, once per walk.
func (w *walker) note(kind AnomalyKind, format string, args ...any) {
	bit := uint16(1) << kindIndex(kind)
	if w.seen&bit != 0 {
		return
	}
	w.seen |= bit
	w.c.Anomalies = append(w.c.Anomalies, Anomaly{Kind: kind, Detail: printable(fmt.Sprintf(format, args...), 160)})
}

// kindIndex returns the position of kind in AnomalyKinds.
func kindIndex(kind AnomalyKind) int {
	for i, k := range AnomalyKinds {
		if k == kind {
			return i
		}
	}
	return len(AnomalyKinds)
}

// Has reports whether the walk found an anomaly of kind.
func (c *Content) Has(kind AnomalyKind) bool {
	for _, a := range c.Anomalies {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

// printable returns s with every byte outside printable ASCII replaced by
// "?", cut at max bytes: details go to logs.
func printable(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] < 0x20 || b[j] > 0x7e {
					b[j] = '?'
				}
			}
			return string(b)
		}
	}
	return s
}

// entity walks one entity: the message itself, a body part, or an
// encapsulated message. defType is the media type of an entity without
// Content-Type (RFC 2046 §5.1.5: message/rfc822 in a digest). quiet
// entities give links and attachments but no text (the alternatives a
// reader is not shown). top is the message itself, whose header is the
// headers filter's business.
func (w *walker) entity(b []byte, depth int, defType string, quiet, top bool) {
	if w.stopped {
		return
	}
	if w.parts >= w.lim.MaxParts {
		w.note(TooManyParts, "more than %d MIME parts", w.lim.MaxParts)
		w.stopped = true
		return
	}
	w.parts++
	h := scanHeader(b)
	if h.broken && !top {
		// The message's own header is the headers filter's business.
		w.note(MalformedMIME, "part header at depth %d broken by a line that is not a field", depth)
	}
	if h.repeated {
		// Readers differ on which of two Content-Type fields wins, which
		// is what makes a second one worth writing.
		w.note(MalformedMIME, "header at depth %d repeats a Content- field; the first is used", depth)
	}
	body := b[h.body:]
	media, params, bad := defType, []param(nil), false
	if h.contentType != "" {
		media, params, bad = parseParams(h.contentType)
		if bad {
			w.note(MalformedMIME, "unreadable parameter in Content-Type %q", h.contentType)
		}
		if !validMediaType(media) {
			// RFC 2045 §5.2: a Content-Type that cannot be read means
			// text/plain.
			w.note(MalformedMIME, "invalid media type %q", media)
			media = "text/plain"
		}
	}
	enc := parseEncoding(h.encoding)
	switch {
	case strings.HasPrefix(media, "multipart/"):
		w.multipart(body, depth, media, params, enc, h.encoding, quiet)
	case media == "message/rfc822" || media == "message/global":
		w.message(body, depth, enc, h.encoding, quiet)
	default:
		w.leaf(body, depth, media, params, enc, h, quiet)
	}
}

// validMediaType reports whether t is type "/" subtype of tokens.
func validMediaType(t string) bool {
	typ, sub, ok := strings.Cut(t, "/")
	if !ok || typ == "" || sub == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] != '/' && !isTokenChar(t[i]) {
			return false
		}
	}
	return true
}

// composite decodes the body of a multipart or message entity that
// carries a transfer encoding it may not have: RFC 2045 §6.4 allows only
// 7bit, 8bit and binary there. Some mailers, and malware that hopes a
// scanner gives up, encode it anyway; mail readers decode it, so the walk
// does too, and says so. A layer the decoded-bytes budget cannot afford
// is not walked; it is listed as an attachment that was cut
// (MIME_ATTACHMENT_CUT, Data nil), never dropped unseen: nesting encoded
// layers is how a payload would hide from the attachment checks.
func (w *walker) composite(body []byte, depth int, enc transferEncoding, what, raw string) ([]byte, bool) {
	switch enc {
	case encIdentity:
		return body, true
	case encUnknown:
		w.note(MalformedMIME, "%s with unknown transfer encoding %q", what, raw)
		return body, true
	}
	w.note(MalformedMIME, "%s with transfer encoding %q", what, raw)
	if bound := decodedBound(len(body), enc); w.decoded+bound > w.lim.MaxDecodedBytes {
		w.note(TooLarge, "decoded parts exceed %d bytes", w.lim.MaxDecodedBytes)
		w.note(AttachmentCutOff, "%s encoded as %q (up to %d bytes) not decoded", what, raw, bound)
		w.c.Attachments = append(w.c.Attachments, Attachment{DeclaredType: what, Size: bound, Depth: depth})
		return nil, false
	}
	data, bad := decode(body, enc)
	if bad {
		w.note(BadEncoding, "broken %s encoding of a %s", raw, what)
	}
	w.decoded += int64(len(data))
	return data, true
}

// multipart walks the body parts of a multipart entity (RFC 2046 §5.1).
func (w *walker) multipart(body []byte, depth int, media string, params []param, enc transferEncoding, rawEnc string, quiet bool) {
	if depth+1 > w.lim.MaxDepth {
		w.note(TooDeep, "MIME parts nested deeper than %d", w.lim.MaxDepth)
		return
	}
	body, ok := w.composite(body, depth, enc, media, rawEnc)
	if !ok {
		return
	}
	boundary, others, _ := lookup(params, "boundary")
	if len(others) > 0 {
		w.note(MalformedMIME, "%s with several boundary parameters", media)
	}
	if boundary == "" {
		// RFC 2046 §5.1.1 makes the boundary parameter mandatory. A
		// reader may still find the parts by the first delimiter-like
		// line; so does the walk, else the body is read as text.
		w.note(MissingBoundary, "%s without a boundary", media)
		boundary = guessBoundary(body)
		if boundary == "" {
			w.plainLeaf(body, depth, quiet)
			return
		}
	}
	parts, closed := w.split(body, boundary)
	if len(parts) == 0 {
		w.note(MalformedMIME, "%s without a delimiter line for its boundary", media)
		w.plainLeaf(body, depth, quiet)
		return
	}
	if !closed {
		w.note(MalformedMIME, "%s without a close delimiter", media)
	}
	def := "text/plain"
	if media == "multipart/digest" {
		def = "message/rfc822" // RFC 2046 §5.1.5
	}
	shown := -1
	if media == "multipart/alternative" {
		shown = shownAlternative(parts)
	}
	for i, p := range parts {
		if w.stopped {
			return
		}
		w.entity(p, depth+1, def, quiet || shown >= 0 && i != shown, false)
	}
}

// encodingName names enc for details.
func encodingName(enc transferEncoding) string {
	switch enc {
	case encBase64:
		return "base64"
	case encQuotedPrintable:
		return "quoted-printable"
	case encUnknown:
		return "unknown"
	}
	return "identity"
}

// plainLeaf reads a body whose structure could not be found as one
// text/plain part, so that its words and links are still seen.
func (w *walker) plainLeaf(body []byte, depth int, quiet bool) {
	w.leaf(body, depth, "text/plain", nil, encIdentity, entityHeader{}, quiet)
}

// shownAlternative returns the index of the alternative a reader shows:
// the last that is text/plain, text/html or a multipart and not an
// attachment (RFC 2046 §5.1.4: alternatives come in increasing
// faithfulness to the original), or -1.
func shownAlternative(parts [][]byte) int {
	shown := -1
	for i, p := range parts {
		h := scanHeader(p)
		media := "text/plain"
		if h.contentType != "" {
			media, _, _ = parseParams(h.contentType)
		}
		disp, _, _ := parseParams(h.disposition)
		if disp == "attachment" {
			continue
		}
		if media == "text/plain" || media == "text/html" || strings.HasPrefix(media, "multipart/") {
			shown = i
		}
	}
	return shown
}

// guessBoundary returns the boundary of the first line that looks like a
// delimiter ("--" and at least one more character), or "".
func guessBoundary(body []byte) string {
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimRight(line, " \t\r")
		if len(line) > 2 && len(line) <= 2+70 && line[0] == '-' && line[1] == '-' && line[2] > ' ' {
			return string(line[2:])
		}
	}
	return ""
}

// split cuts a multipart body into its parts at the delimiter lines of
// boundary (RFC 2046 §5.1.1): "--" boundary at the start of a line, then
// "--" for the close delimiter, then only white space. The line break
// before a delimiter belongs to it. The preamble and the epilogue are
// dropped. closed is false when the close delimiter is missing; the last
// part then runs to the end. It stops after one part more than the part
// limit leaves room for, so that a body of a million empty parts costs
// no more than the limit.
func (w *walker) split(body []byte, boundary string) (parts [][]byte, closed bool) {
	delim := []byte("--" + boundary)
	_, end, final, ok := nextDelimiter(body, 0, delim)
	if !ok {
		return nil, false
	}
	room := w.lim.MaxParts - w.parts + 1
	for !final {
		if len(parts) >= room {
			return parts, true
		}
		start := end
		s, e, f, ok := nextDelimiter(body, start, delim)
		if !ok {
			return append(parts, body[start:]), false
		}
		stop := s
		if stop > start && body[stop-1] == '\n' {
			stop--
			if stop > start && body[stop-1] == '\r' {
				stop--
			}
		}
		parts = append(parts, body[start:stop])
		end, final = e, f
	}
	return parts, true
}

// nextDelimiter finds the first delimiter line at or after from: its
// start, the end of its line (after the line break), and whether it is the
// close delimiter.
func nextDelimiter(body []byte, from int, delim []byte) (start, end int, final, ok bool) {
	for from < len(body) {
		i := bytes.Index(body[from:], delim)
		if i < 0 {
			return 0, 0, false, false
		}
		i += from
		if i == 0 || body[i-1] == '\n' {
			j := i + len(delim)
			fin := bytes.HasPrefix(body[j:], []byte("--"))
			if fin {
				j += 2
			}
			for j < len(body) && (body[j] == ' ' || body[j] == '\t' || body[j] == '\r') {
				j++
			}
			if j == len(body) {
				return i, j, fin, true
			}
			if body[j] == '\n' {
				return i, j + 1, fin, true
			}
		}
		from = i + 1
	}
	return 0, 0, false, false
}

// message walks an encapsulated message (RFC 2046 §5.2.1).
func (w *walker) message(body []byte, depth int, enc transferEncoding, rawEnc string, quiet bool) {
	if depth+1 > w.lim.MaxDepth {
		w.note(TooDeep, "MIME parts nested deeper than %d", w.lim.MaxDepth)
		return
	}
	body, ok := w.composite(body, depth, enc, "message/rfc822", rawEnc)
	if !ok {
		return
	}
	w.entity(body, depth+1, "text/plain", quiet, false)
}

// leaf reads a part that holds content: text for Content.Text and
// Content.URLs, anything else (or anything with a file name) for
// Content.Attachments.
func (w *walker) leaf(body []byte, depth int, media string, params []param, enc transferEncoding, h entityHeader, quiet bool) {
	disp, dparams, bad := parseParams(h.disposition)
	if bad {
		w.note(MalformedMIME, "unreadable parameter in Content-Disposition %q", h.disposition)
	}
	name, others := w.filename(dparams, params)
	isHTML := media == "text/html"
	readable := media == "text/plain" || isHTML
	// RFC 2183 §2.2: an attachment is not shown with the message, so its
	// words are not the message's; its links still count.
	inline := readable && disp != "attachment"
	if enc == encUnknown {
		// RFC 2045 §6.4: an unrecognised encoding makes the part
		// application/octet-stream.
		w.note(BadEncoding, "unknown transfer encoding %q", h.encoding)
		inline, readable = false, false
	}
	attached := !inline || name != ""
	if bound := decodedBound(len(body), enc); w.decoded+bound > w.lim.MaxDecodedBytes {
		w.note(TooLarge, "decoded parts exceed %d bytes", w.lim.MaxDecodedBytes)
		if attached {
			w.note(AttachmentCutOff, "attachment %q (%s, up to %d bytes) not decoded", name, media, bound)
			w.c.Attachments = append(w.c.Attachments, Attachment{
				Filename: name, OtherNames: others, DeclaredType: media, Size: bound, Depth: depth,
			})
		}
		return
	}
	data, bad := decode(body, enc)
	if bad {
		w.note(BadEncoding, "broken %s in a %s part", encodingName(enc), media)
	}
	w.decoded += int64(len(data))
	if attached {
		w.c.Attachments = append(w.c.Attachments, Attachment{
			Filename: name, OtherNames: others, DeclaredType: media, Size: int64(len(data)), Data: data, Depth: depth,
		})
	}
	if !readable {
		return
	}
	cs, _, _ := lookup(params, "charset")
	u, known := toUTF8(data, cs)
	if !known {
		w.note(UnknownCharset, "unknown charset %q", cs)
	}
	// Conversion can triple the text (windows-1252 to UTF-8): the growth
	// is decoded bytes too, so that later parts cannot go past the budget.
	if grown := int64(len(u) - len(data)); grown > 0 {
		w.decoded += grown
	}
	quiet = quiet || !inline
	var part TextPart
	if inline {
		// An attached text file is not the message's text: it is
		// described by Attachments only.
		part = TextPart{Media: media, Charset: normCharset(cs), Shown: !quiet, EightBit: !isASCII(data),
			QPLongLine: enc == encQuotedPrintable && longestLine(body) > qpMaxLine,
			Encoded:    enc == encQuotedPrintable || enc == encBase64}
	}
	if isHTML {
		w.html(u, quiet, &part)
	} else {
		w.bareURLs(u)
		if !quiet {
			w.startText(len(u))
			w.putLines(u)
		}
		if inline {
			part.Letters.count(u)
		}
	}
	if inline && len(w.c.Parts) < MaxTextParts {
		w.c.Parts = append(w.c.Parts, part)
	}
}

// normCharset returns a charset parameter in lower case without quotes
// and white space around it.
func normCharset(cs string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(cs), `"'`))
}

// filename returns the part's file name: Content-Disposition's filename
// (RFC 2183 §2.3), else Content-Type's name (RFC 2046 §4.5.1 deprecated
// it, mailers still write it), with every other distinct name declared.
func (w *walker) filename(dparams, params []param) (string, []string) {
	name, others, pr := lookup(dparams, "filename")
	tname, tothers, pr2 := lookup(params, "name")
	if pr != paramOK || pr2 != paramOK {
		w.note(UnknownCharset, "file name in an unknown charset")
	}
	if name == "" {
		name, others, tname, tothers = tname, tothers, "", nil
	}
	for _, n := range append([]string{tname}, tothers...) {
		if n != "" && n != name && !contains(others, n) && len(others) < 2*maxOthers {
			others = append(others, n)
		}
	}
	return name, others
}

// startText separates the text of a new part from what came before and
// makes room for about n more bytes.
func (w *walker) startText(n int) {
	if w.full {
		return
	}
	if w.text.Len() == 0 {
		w.text.Grow(min(n+1, w.lim.MaxTextBytes))
		return
	}
	if w.last != '\n' {
		w.put(newline)
	}
	if room := w.lim.MaxTextBytes - w.text.Len(); room > 0 {
		w.text.Grow(min(n+1, room))
	}
}

// put appends p to the text, up to MaxTextBytes, cutting at a character
// boundary.
func (w *walker) put(p []byte) {
	if w.full || len(p) == 0 {
		return
	}
	if room := w.lim.MaxTextBytes - w.text.Len(); len(p) > room {
		cut := room
		for cut > 0 && !utf8.RuneStart(p[cut]) {
			cut--
		}
		p = p[:cut]
		w.full = true
		w.note(TextTruncated, "text cut at %d bytes", w.lim.MaxTextBytes)
		if len(p) == 0 {
			return
		}
	}
	w.text.Write(p)
	w.last = p[len(p)-1]
}

// newline is the line break of Content.Text.
var newline = []byte{'\n'}

// putLines appends plain text with its line breaks made "\n" (a CRLF or a
// lone CR).
func (w *walker) putLines(u []byte) {
	for len(u) > 0 && !w.full {
		i := bytes.IndexByte(u, '\r')
		if i < 0 {
			w.put(u)
			return
		}
		w.put(u[:i])
		w.put(newline)
		u = u[i+1:]
		if len(u) > 0 && u[0] == '\n' {
			u = u[1:]
		}
	}
}
