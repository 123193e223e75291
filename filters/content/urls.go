package content

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// addURL adds u to Content.URLs unless it is there already or the list is
// full. It returns the URL as kept ("" when it was not). A URL already
// there costs no allocation.
func (w *walker) addURL(u []byte) string {
	if len(w.c.URLs) >= MaxURLs {
		return ""
	}
	if len(u) > MaxURLBytes {
		cut := MaxURLBytes
		for cut > 0 && !utf8.RuneStart(u[cut]) {
			cut--
		}
		u = u[:cut]
	}
	// A short list is searched; a long one gets a set.
	const setFrom = 16
	if w.urlSet == nil {
		for _, v := range w.c.URLs {
			if v == string(u) {
				return v
			}
		}
		if len(w.c.URLs) == setFrom {
			w.urlSet = make(map[string]struct{}, 2*setFrom)
			for _, v := range w.c.URLs {
				w.urlSet[v] = struct{}{}
			}
		}
	}
	if w.urlSet != nil {
		if _, dup := w.urlSet[string(u)]; dup {
			return string(u)
		}
	}
	s := string(u)
	if w.urlSet != nil {
		w.urlSet[s] = struct{}{}
	}
	w.c.URLs = append(w.c.URLs, s)
	return s
}

// cleanLink returns an attribute value as a URL worth keeping: white
// space around it trimmed and tabs and line breaks inside removed (as the
// WHATWG URL parser does, so "ht\ntp://" is the http link a browser
// follows), and only with a scheme of http, https, ftp or mailto: data:,
// cid:, javascript: and relative links name no place to look up.
func cleanLink(v []byte) ([]byte, bool) {
	v = bytes.TrimSpace(v)
	if bytes.ContainsAny(v, "\t\r\n") {
		c := make([]byte, 0, len(v))
		for _, b := range v {
			if b != '\t' && b != '\r' && b != '\n' {
				c = append(c, b)
			}
		}
		v = c
	}
	colon := bytes.IndexByte(v, ':')
	if colon <= 0 {
		return nil, false
	}
	switch scheme := v[:colon]; {
	case bytes.EqualFold(scheme, []byte("http")), bytes.EqualFold(scheme, []byte("https")),
		bytes.EqualFold(scheme, []byte("ftp")), bytes.EqualFold(scheme, []byte("mailto")):
	default:
		return nil, false
	}
	if len(v) == colon+1 {
		return nil, false
	}
	return v, true
}

// bareURLs adds the http and https URLs written out in text t: the scheme,
// "://", and the characters up to white space or a character that cannot
// be in a URL (RFC 3986 §2; quotes and angle brackets delimit URLs in
// text, RFC 3986 Appendix C), without trailing punctuation.
func (w *walker) bareURLs(t []byte) {
	for {
		i := bytes.Index(t, []byte("://"))
		if i < 0 {
			return
		}
		j := i
		for j > 0 && i-j < 8 && isLetter(t[j-1]) {
			j--
		}
		scheme := t[j:i]
		if (j == 0 || !isLetter(t[j-1])) &&
			(bytes.EqualFold(scheme, []byte("http")) || bytes.EqualFold(scheme, []byte("https"))) {
			k := i + 3
			for k < len(t) && urlByte(t, k) {
				k++
			}
			u := trimURL(t[j:k])
			if len(u) > len(scheme)+3 {
				w.addURL(u)
			}
			t = t[k:]
			continue
		}
		t = t[i+3:]
	}
}

// isLetter reports whether c is an ASCII letter.
func isLetter(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// urlByte reports whether t[k] may continue a URL in text: not white space
// or a control, not a delimiter of RFC 3986 Appendix C, not a no-break
// space. Bytes of other non-ASCII characters continue it (IRIs, RFC 3987).
func urlByte(t []byte, k int) bool {
	c := t[k]
	if c == 0xc2 && k+1 < len(t) && t[k+1] == 0xa0 {
		return false
	}
	return urlBytes[c]
}

// urlBytes holds true for the bytes that may continue a URL in text.
var urlBytes = func() (t [256]bool) {
	for c := 0x21; c < 0x100; c++ {
		t[c] = c != 0x7f && !strings.ContainsRune("<>\"'`{}|\\^", rune(c))
	}
	return t
}()

// trimURL drops the punctuation that ends a sentence rather than a URL,
// and a closing bracket the URL did not open.
func trimURL(u []byte) []byte {
	opened, closed := -1, 0 // counted when a bracket ends the URL
	for len(u) > 0 {
		switch c := u[len(u)-1]; c {
		case '.', ',', ';', ':', '!', '?':
		case ')', ']':
			if opened < 0 {
				opened = bytes.Count(u, []byte("(")) + bytes.Count(u, []byte("["))
				closed = bytes.Count(u, []byte(")")) + bytes.Count(u, []byte("]"))
			}
			if closed <= opened {
				return u
			}
			closed--
		default:
			return u
		}
		u = u[:len(u)-1]
	}
	return u
}
