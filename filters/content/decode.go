package content

import (
	"bytes"
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/charmap"
)

// transferEncoding is a Content-Transfer-Encoding the walk knows (RFC 2045
// §6.1).
type transferEncoding int

const (
	encIdentity transferEncoding = iota // 7bit, 8bit, binary, or absent
	encBase64
	encQuotedPrintable
	encUnknown
)

// parseEncoding reads a Content-Transfer-Encoding value. Values are not
// case sensitive (RFC 2045 §6.1).
func parseEncoding(v string) transferEncoding {
	v = strings.TrimSpace(stripComment(v))
	switch {
	case v == "", strings.EqualFold(v, "7bit"), strings.EqualFold(v, "8bit"), strings.EqualFold(v, "binary"):
		return encIdentity
	case strings.EqualFold(v, "base64"):
		return encBase64
	case strings.EqualFold(v, "quoted-printable"):
		return encQuotedPrintable
	}
	return encUnknown
}

// decodedBound is an upper bound of the size of src once decoded, known
// before decoding it.
func decodedBound(n int, enc transferEncoding) int64 {
	if enc == encBase64 {
		return int64(n)/4*3 + 3
	}
	return int64(n)
}

// decode undoes the transfer encoding of a body. It never fails: bad is
// true when the body was not valid in its encoding, and what could be
// decoded is returned. Identity bodies are returned without a copy.
func decode(src []byte, enc transferEncoding) (data []byte, bad bool) {
	switch enc {
	case encBase64:
		return decodeBase64(src)
	case encQuotedPrintable:
		return decodeQP(src)
	}
	return src, false
}

// decodeBase64 decodes a base64 body (RFC 2045 §6.8). The standard
// decoder, which skips line breaks, takes a sound body; a broken one is
// decoded again leniently: characters outside the alphabet are skipped
// (§6.8 says to ignore them), a quantum cut short by "=" or by the end is
// decoded as far as it goes, and data after the padding is decoded too
// (some mailers concatenate encoded chunks). Everything but a body that
// lacks only its final padding counts as bad.
func decodeBase64(src []byte) ([]byte, bool) {
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src))+3)
	if n, err := base64.StdEncoding.Decode(dst, src); err == nil {
		return dst[:n], false
	}
	var (
		acc    uint32
		nacc   int
		n      int
		bad    bool
		padded bool
	)
	flush := func() {
		switch nacc {
		case 1:
			bad = true // six bits make no byte
		case 2:
			dst[n] = byte(acc >> 4)
			n++
		case 3:
			dst[n] = byte(acc >> 10)
			dst[n+1] = byte(acc >> 2)
			n += 2
		}
		acc, nacc = 0, 0
	}
	for _, c := range src {
		v := base64Value[c]
		switch {
		case v != 0xff:
			if padded {
				bad = true
				padded = false
			}
			acc = acc<<6 | uint32(v)
			nacc++
			if nacc == 4 {
				dst[n] = byte(acc >> 16)
				dst[n+1] = byte(acc >> 8)
				dst[n+2] = byte(acc)
				n += 3
				acc, nacc = 0, 0
			}
		case c == '=':
			if nacc > 0 {
				flush()
			}
			padded = true
		case c == '\r' || c == '\n' || c == ' ' || c == '\t':
		default:
			bad = true
		}
	}
	if nacc > 0 {
		flush()
	}
	return dst[:n], bad
}

// base64Value maps a byte to its base64 value, or 0xff.
var base64Value = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// qpMaxLine is the longest line quoted-printable allows (RFC 2045 §6.7
// (5): 76 characters, the soft line break's "=" included).
const qpMaxLine = 76

// longestLine returns the length of the longest line of b, without its
// line end.
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		n := i
		if n > 0 && b[n-1] == '\r' {
			n--
		}
		longest = max(longest, n)
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return longest
}

// decodeQP decodes a quoted-printable body (RFC 2045 §6.7): =XX escapes
// (lower-case hex digits too, as §6.7 (1) suggests a robust decoder
// accept), soft line breaks ("=" at the end of a line), and trailing
// white space removed from every line (§6.7 (3)). A "=" that starts no
// valid escape is kept as it is and makes the body bad. Line breaks are
// kept as they are in the source.
func decodeQP(src []byte) ([]byte, bool) {
	dst := make([]byte, 0, len(src))
	bad := false
	for len(src) > 0 {
		line := src
		eol := []byte(nil)
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, eol, src = src[:i], src[i:i+1], src[i+1:]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line, eol = line[:len(line)-1], []byte("\r\n")
			}
		} else {
			src = nil
		}
		line = bytes.TrimRight(line, " \t")
		soft := false
		if len(line) > 0 && line[len(line)-1] == '=' {
			soft = true
			line = line[:len(line)-1]
		}
		for len(line) > 0 {
			i := bytes.IndexByte(line, '=')
			if i < 0 {
				dst = append(dst, line...)
				break
			}
			dst = append(dst, line[:i]...)
			if i+2 < len(line) && isHex(line[i+1]) && isHex(line[i+2]) {
				dst = append(dst, unhex(line[i+1])<<4|unhex(line[i+2]))
				line = line[i+3:]
				continue
			}
			bad = true
			dst = append(dst, '=')
			line = line[i+1:]
		}
		if !soft {
			dst = append(dst, eol...)
		}
	}
	return dst, bad
}

// isHex reports whether c is a hexadecimal digit.
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unhex returns the value of hexadecimal digit c.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// toUTF8 converts b from charset cs to UTF-8 with go-message's charset
// tables. known is false when cs names no charset the tables know; b is
// then kept as it is if it is valid UTF-8, else its invalid bytes are
// replaced with U+FFFD.
//
// Without a charset, or with us-ascii, text that is not valid UTF-8 is
// read as windows-1252: RFC 2046 §4.1.2 makes us-ascii the default, but
// 8-bit text that does not say what it is, is nearly always that.
func toUTF8(b []byte, cs string) (out []byte, known bool) {
	cs = strings.ToLower(strings.Trim(strings.TrimSpace(cs), `"'`))
	switch cs {
	case "", "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us":
		if utf8.Valid(b) {
			return b, true
		}
		if out, err := charmap.Windows1252.NewDecoder().Bytes(b); err == nil {
			return out, true
		}
		return bytes.ToValidUTF8(b, []byte("\uFFFD")), true
	case "utf-8", "utf8":
		if utf8.Valid(b) {
			return b, true
		}
		return bytes.ToValidUTF8(b, []byte("\uFFFD")), true
	}
	if asciiSuperset(cs) && isASCII(b) {
		return b, true
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		if utf8.Valid(b) {
			return b, false
		}
		return bytes.ToValidUTF8(b, []byte("\uFFFD")), false
	}
	var buf bytes.Buffer
	buf.Grow(len(b) + len(b)/2 + 16)
	if _, err := buf.ReadFrom(r); err != nil {
		// A decoder error leaves what was converted; the rest is lost to
		// the reader, so keep the converted part and mark nothing: the
		// x/text decoders replace bad input rather than fail.
		return bytes.ToValidUTF8(buf.Bytes(), []byte("\uFFFD")), true
	}
	return buf.Bytes(), true
}

// asciiSuperset reports whether charset cs encodes ASCII text as ASCII,
// so that pure ASCII input needs no conversion. ISO-2022 and UTF-7 are
// 7-bit but not ASCII supersets, so the list names families, not
// "anything but UTF-16".
func asciiSuperset(cs string) bool {
	for _, p := range [...]string{"iso-8859-", "iso8859-", "windows-125", "cp125", "koi8-", "latin", "gb2312", "gbk", "gb18030", "big5", "shift_jis", "euc-"} {
		if strings.HasPrefix(cs, p) {
			return true
		}
	}
	return false
}

// isASCII reports whether b holds only 7-bit bytes.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
