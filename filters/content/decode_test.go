package content

import (
	"slices"
	"testing"
)

// TestDecodeBase64 covers sound and broken base64 (RFC 2045 §6.8).
func TestDecodeBase64(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"SGVsbG8=", "Hello", false},
		{"SGVs\r\nbG8=\r\n", "Hello", false},
		{"", "", false},
		{"SGVsbG8", "Hello", false},         // only the final padding missing: common, not flagged
		{"SGV*sbG8=", "Hello", true},        // a character outside the alphabet is skipped
		{"SGVsbG8= \t", "Hello", false},     // trailing blanks skipped
		{"SGk=SGk=", "HiHi", true},          // data after the padding is decoded too
		{"SGVsbG8gV", "Hello ", true},       // a lone sextet makes no byte
		{"====", "", false},                 // nothing but padding: nothing
		{"SG\x00Vs\xffbG8=", "Hello", true}, // binary junk
	}
	for _, tt := range tests {
		got, bad := decodeBase64([]byte(tt.in))
		if string(got) != tt.want || bad != tt.bad {
			t.Errorf("decodeBase64(%q) = %q, %v; want %q, %v", tt.in, got, bad, tt.want, tt.bad)
		}
	}
}

// TestDecodeQP covers quoted-printable (RFC 2045 §6.7).
func TestDecodeQP(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"Caf=E9\r\n", "Caf\xe9\r\n", false},
		{"caf=e9", "caf\xe9", false},                   // lower-case hex accepted
		{"soft=\r\nbreak\r\n", "softbreak\r\n", false}, // soft line break
		{"soft=\nbreak", "softbreak", false},           // with a bare LF
		{"pad   \r\nnext", "pad\r\nnext", false},       // transport padding removed
		{"pad=20  \r\n", "pad \r\n", false},
		{"a=\t \r\nb", "ab", false}, // "=" then white space is a soft break
		{"1=2", "1=2", true},        // not an escape: kept
		{"=G1x", "=G1x", true},
		{"end=", "end", false},
		{"=3D=3d", "==", false},
	}
	for _, tt := range tests {
		got, bad := decodeQP([]byte(tt.in))
		if string(got) != tt.want || bad != tt.bad {
			t.Errorf("decodeQP(%q) = %q, %v; want %q, %v", tt.in, got, bad, tt.want, tt.bad)
		}
	}
}

// TestParseEncoding maps Content-Transfer-Encoding values.
func TestParseEncoding(t *testing.T) {
	tests := []struct {
		in   string
		want transferEncoding
	}{
		{"", encIdentity}, {"7bit", encIdentity}, {"8BIT", encIdentity}, {" binary ", encIdentity},
		{"Base64", encBase64}, {"base64 (comment)", encBase64}, {"QUOTED-PRINTABLE", encQuotedPrintable},
		{"x-uuencode", encUnknown}, {"base 64", encUnknown},
	}
	for _, tt := range tests {
		if got := parseEncoding(tt.in); got != tt.want {
			t.Errorf("parseEncoding(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestToUTF8 converts charsets.
func TestToUTF8(t *testing.T) {
	tests := []struct {
		in, cs, want string
		known        bool
	}{
		{"plain", "", "plain", true},
		{"caf\xe9", "iso-8859-1", "café", true},
		{"caf\xe9", "ISO-8859-1", "café", true},
		{"caf\xe9", `"latin1"`, "café", true},
		{"\x80", "windows-1252", "€", true},
		{"\x80", "", "€", true},               // 8-bit text without a charset: windows-1252
		{"caf\xe9", "us-ascii", "café", true}, // likewise when it claims ASCII
		{"ok \xff", "utf-8", "ok \uFFFD", true},
		{"\xc4\xe5", "koi8-r", "дЕ", true},
		{"\x1b$B$3$s$K$A$O\x1b(B", "iso-2022-jp", "こんにちは", true},
		{"same", "x-nonesuch", "same", false},
		{"bad \xff", "x-nonesuch", "bad \uFFFD", false},
	}
	for _, tt := range tests {
		got, known := toUTF8([]byte(tt.in), tt.cs)
		if string(got) != tt.want || known != tt.known {
			t.Errorf("toUTF8(%q, %q) = %q, %v; want %q, %v", tt.in, tt.cs, got, known, tt.want, tt.known)
		}
	}
}

// TestParseParams covers structured field values (RFC 2045 §5.1) and the
// leniency the walk needs.
func TestParseParams(t *testing.T) {
	tests := []struct {
		in     string
		token  string
		params []param
		bad    bool
	}{
		{"text/plain", "text/plain", nil, false},
		{"Text/HTML; Charset=UTF-8", "text/html", []param{{"charset", "UTF-8"}}, false},
		{`multipart/mixed; boundary="a;b \"c\""`, "multipart/mixed", []param{{"boundary", `a;b "c"`}}, false},
		{"attachment; filename=my file.pdf", "attachment", []param{{"filename", "my file.pdf"}}, false},
		{`attachment; filename="C:\dir\a.exe"`, "attachment", []param{{"filename", `C:\dir\a.exe`}}, false},
		{"text/plain; ; charset=x;", "text/plain", []param{{"charset", "x"}}, false},
		{"text/plain (note); charset=x (comment)", "text/plain", []param{{"charset", "x"}}, false},
		{"multipart/mixed; junk; boundary=b", "multipart/mixed", []param{{"boundary", "b"}}, true},
		{`a/b; x="unterminated`, "a/b", []param{{"x", "unterminated"}}, true},
		{`a/b; x="q" junk; y=1`, "a/b", []param{{"x", "q"}, {"y", "1"}}, true},
		{"", "", nil, false},
	}
	for _, tt := range tests {
		token, params, bad := parseParams(tt.in)
		if token != tt.token || !slices.Equal(params, tt.params) || bad != tt.bad {
			t.Errorf("parseParams(%q) = %q %q %v; want %q %q %v", tt.in, token, params, bad, tt.token, tt.params, tt.bad)
		}
	}
}

// TestLookup covers RFC 2231 and RFC 2047 parameter values.
func TestLookup(t *testing.T) {
	tests := []struct {
		in      string
		name    string
		want    string
		others  []string
		problem paramProblem
	}{
		{"a/b; name=x.pdf", "name", "x.pdf", nil, paramOK},
		{"a/b; name*=utf-8''%E2%82%AC.txt", "name", "€.txt", nil, paramOK},
		{"a/b; name*=iso-8859-1'en'caf%E9", "name", "café", nil, paramOK},
		{"a/b; name*0=\"long \"; name*1=name.txt", "name", "long name.txt", nil, paramOK},
		{"a/b; name*1=b; name*0=a; name*2=c", "name", "abc", nil, paramOK},               // sections out of order
		{"a/b; name*0=a; name*2=c", "name", "a", nil, paramOK},                           // a gap ends the value
		{"a/b; name*0*=utf-8''%C3; name*1*=%A9; name*2=.x", "name", "é.x", nil, paramOK}, // a character split across sections
		{"a/b; name=plain.pdf; name*=utf-8''ext.exe", "name", "ext.exe", []string{"plain.pdf"}, paramOK},
		{`a/b; name="=?UTF-8?Q?r=C3=A9sum=C3=A9.pdf?="`, "name", "résumé.pdf", nil, paramOK},
		{`a/b; name="=?x-nonesuch?Q?abc?="`, "name", "=?x-nonesuch?Q?abc?=", nil, paramUnknownCharset},
		{"a/b; name*=x-nonesuch''abc", "name", "abc", nil, paramUnknownCharset},
		{"a/b; name=a; name=b; name=a", "name", "a", []string{"b"}, paramOK},
		{"a/b; filename=x", "name", "", nil, paramOK},
		{"a/b; name*99999999999999999999=x", "name", "", nil, paramOK},
	}
	for _, tt := range tests {
		_, params, _ := parseParams(tt.in)
		got, others, problem := lookup(params, tt.name)
		if got != tt.want || !slices.Equal(others, tt.others) || problem != tt.problem {
			t.Errorf("lookup(%q, %q) = %q %q %v; want %q %q %v", tt.in, tt.name, got, others, problem, tt.want, tt.others, tt.problem)
		}
	}
}

// TestScanHeader covers the part header scanner.
func TestScanHeader(t *testing.T) {
	tests := []struct {
		in               string
		ctype, enc, disp string
		repeated, broken bool
		body             string
	}{
		{"Content-Type: text/plain\r\n\r\nbody", "text/plain", "", "", false, false, "body"},
		{"content-type:\r\n text/html;\r\n\tcharset=utf-8\r\n\r\nb", "text/html;\tcharset=utf-8", "", "", false, false, "b"},
		{"Content-Type : a/b\nCONTENT-TRANSFER-ENCODING: base64\nContent-Disposition: inline\n\nx", "a/b", "base64", "inline", false, false, "x"},
		{"Content-Type: a/b\nContent-Type: c/d\n\n", "a/b", "", "", true, false, ""},
		{"Content-Type: a/b\nnot a field\nmore", "a/b", "", "", false, true, "not a field\nmore"},
		{"\r\nbody only", "", "", "", false, false, "body only"},
		{"X-Other: 1\n", "", "", "", false, false, ""},
		{"", "", "", "", false, false, ""},
	}
	for _, tt := range tests {
		h := scanHeader([]byte(tt.in))
		if h.contentType != tt.ctype || h.encoding != tt.enc || h.disposition != tt.disp ||
			h.repeated != tt.repeated || h.broken != tt.broken || tt.in[h.body:] != tt.body {
			t.Errorf("scanHeader(%q) = %+v (body %q)", tt.in, h, tt.in[h.body:])
		}
	}
}
