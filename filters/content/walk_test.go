package content

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fixtures holds the MIME fixture messages.
const fixtures = "../../testdata/messages/mime"

// wantAttachment is what a test expects of one attachment.
type wantAttachment struct {
	name   string
	others []string
	typ    string
	depth  int
	data   string // a prefix of Data; "" with cut means Data is nil
	cut    bool
}

// kinds returns the anomaly kinds of c, in order.
func kinds(c *Content) []AnomalyKind {
	var k []AnomalyKind
	for _, a := range c.Anomalies {
		k = append(k, a.Kind)
	}
	return k
}

// checkAttachments compares c's attachments with want.
func checkAttachments(t *testing.T, c *Content, want []wantAttachment) {
	t.Helper()
	if len(c.Attachments) != len(want) {
		t.Fatalf("got %d attachments, want %d: %+v", len(c.Attachments), len(want), c.Attachments)
	}
	for i, w := range want {
		a := c.Attachments[i]
		if a.Filename != w.name || !slices.Equal(a.OtherNames, w.others) || a.DeclaredType != w.typ || a.Depth != w.depth {
			t.Errorf("attachment %d = %q %q %s depth %d, want %q %q %s depth %d",
				i, a.Filename, a.OtherNames, a.DeclaredType, a.Depth, w.name, w.others, w.typ, w.depth)
		}
		if w.cut != (a.Data == nil) {
			t.Errorf("attachment %d: data cut = %v, want %v", i, a.Data == nil, w.cut)
		}
		if !w.cut {
			if !bytes.HasPrefix(a.Data, []byte(w.data)) {
				t.Errorf("attachment %d data %q does not start with %q", i, a.Data, w.data)
			}
			if a.Size != int64(len(a.Data)) {
				t.Errorf("attachment %d size %d, data %d bytes", i, a.Size, len(a.Data))
			}
		}
	}
}

// TestWalkFixtures walks the fixture messages.
func TestWalkFixtures(t *testing.T) {
	tests := []struct {
		file        string
		text        string   // exact, when not ""
		contains    []string // in Text
		notContains []string // not in Text
		html        bool
		urls        []string
		attachments []wantAttachment
		anomalies   []AnomalyKind
	}{
		{
			file: "plain.eml",
			text: "Hi Bob,\n\nThe report is at https://reports.example.test/q3?id=42. Please read it\n" +
				"before Friday (see http://wiki.example.test/Minutes_(2025)).\n\nAlice\n",
			urls: []string{"https://reports.example.test/q3?id=42", "http://wiki.example.test/Minutes_(2025)"},
		},
		{
			file: "qp-latin1.eml",
			text: "Café crème brûlée, naïve façade. This line is long and is broken by a soft line break.   \n" +
				"Trailing space is transport padding.\n",
		},
		{
			file: "base64-utf8.eml",
			text: "Grüße aus Köln — ☃\nVisit https://köln.example.test/Straße now.\n",
			urls: []string{"https://köln.example.test/Straße"},
		},
		{
			file:        "html-links.eml",
			contains:    []string{"Dear customer,\nYour account & card are suspended.\n", "Click here https://login.example.test/verify?u=1&t=2 to restore.", "mail us mailto:help@example.test"},
			notContains: []string{"DO-NOT-SHOW", "HIDDEN-TOO", "color: red", "<p>", "&amp;", "javascript:"},
			html:        true,
			urls: []string{"https://login.example.test/verify?u=1&t=2", "http://img.example.test/pixel.gif",
				"mailto:help@example.test", "https://split.example.test/a", "http://bare.example.test/page"},
		},
		{
			file:        "alternative.eml",
			text:        "HTML version: see the page https://html.example.test/y \n",
			notContains: []string{"Plain version", "epilogue", "multi-part message"},
			html:        true,
			urls:        []string{"https://plain-only.example.test/x", "https://html.example.test/y"},
		},
		{
			file: "nested-rfc822.eml",
			text: "Outer text, forwarding below.\nInner text of the forwarded message.",
			attachments: []wantAttachment{
				{name: "inner.pdf", typ: "application/pdf", depth: 3, data: "%PDF-1.4\n"},
			},
		},
		{
			file: "rfc2231-filename.eml",
			text: "Two attachments.",
			attachments: []wantAttachment{
				{name: "Résumé de l'année.pdf", typ: "application/pdf", depth: 1, data: "%PDF-1.7"},
				{name: "日本語.txt", typ: "application/octet-stream", depth: 1, data: "こんにちは"},
			},
		},
		{
			file:      "broken-base64.eml",
			text:      "Hello, world!\nThis is broken but readable.\nSee https://broken.example.test/",
			urls:      []string{"https://broken.example.test/"},
			anomalies: []AnomalyKind{BadEncoding},
		},
		{
			file:      "unknown-charset.eml",
			text:      "qapla' batlh tIn http://klingon.example.test/ ok\n",
			urls:      []string{"http://klingon.example.test/"},
			anomalies: []AnomalyKind{UnknownCharset},
		},
		{
			file: "missing-boundary.eml",
			text: "First part text.",
			attachments: []wantAttachment{
				{name: "data.bin", typ: "application/octet-stream", depth: 1, data: "\x00\x01\x02\x03binary"},
			},
			anomalies: []AnomalyKind{MissingBoundary},
		},
		{
			file:      "no-close-delimiter.eml",
			text:      "Only part, never closed.\n",
			anomalies: []AnomalyKind{MalformedMIME},
		},
		{
			file: "windows-1252-no-charset.eml",
			text: "Price: € 20, “quoted”\n",
		},
		{
			file: "lf-only.eml",
			text: "Line ends are LF only.",
			attachments: []wantAttachment{
				{name: "dot.png", typ: "image/png", depth: 1, data: "\x89PNG\r\n\x1a\n"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(fixtures, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			c := Walk(raw, Limits{})
			if tt.text != "" && c.Text != tt.text {
				t.Errorf("text\n got %q\nwant %q", c.Text, tt.text)
			}
			for _, s := range tt.contains {
				if !strings.Contains(c.Text, s) {
					t.Errorf("text %q does not contain %q", c.Text, s)
				}
			}
			for _, s := range tt.notContains {
				if strings.Contains(c.Text, s) {
					t.Errorf("text %q contains %q", c.Text, s)
				}
			}
			if c.HTML != tt.html {
				t.Errorf("HTML = %v, want %v", c.HTML, tt.html)
			}
			if !slices.Equal(c.URLs, tt.urls) {
				t.Errorf("URLs\n got %q\nwant %q", c.URLs, tt.urls)
			}
			checkAttachments(t, c, tt.attachments)
			if got := kinds(c); !slices.Equal(got, tt.anomalies) {
				t.Errorf("anomalies %v (%+v), want %v", got, c.Anomalies, tt.anomalies)
			}
			if !utf8.ValidString(c.Text) {
				t.Error("text is not valid UTF-8")
			}
		})
	}
}

// msg builds a message from a Content-Type (and other part fields) and a
// body, with CRLF line ends.
func msg(fields, body string) []byte {
	s := "From: a@example.test\nSubject: t\nMIME-Version: 1.0\n" + fields + "\n" + body
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

// TestWalkStructure covers structures the fixtures do not.
func TestWalkStructure(t *testing.T) {
	tests := []struct {
		name        string
		raw         []byte
		lim         Limits
		text        string
		urls        []string
		attachments []wantAttachment
		anomalies   []AnomalyKind
	}{
		{
			name: "no MIME header at all",
			raw:  []byte("Subject: x\r\n\r\nhello\r\n"),
			text: "hello\n",
		},
		{
			name: "header only",
			raw:  []byte("Subject: x\r\n"),
		},
		{
			name:      "no delimiter line: body read as text",
			raw:       msg("Content-Type: multipart/mixed; boundary=zz\n", "just text\nhttp://x.example.test/\n"),
			text:      "just text\nhttp://x.example.test/\n",
			urls:      []string{"http://x.example.test/"},
			anomalies: []AnomalyKind{MalformedMIME},
		},
		{
			name:      "missing boundary, nothing to guess",
			raw:       msg("Content-Type: multipart/mixed\n", "plain words\n"),
			text:      "plain words\n",
			anomalies: []AnomalyKind{MissingBoundary},
		},
		{
			name: "boundary prefix of an inner boundary",
			raw: msg("Content-Type: multipart/mixed; boundary=b\n",
				"--b\nContent-Type: multipart/alternative; boundary=b2\n\n--b2\n\ninner\n--b2--\n--b\n\nsecond\n--b--\n"),
			text: "inner\nsecond",
		},
		{
			name: "delimiter followed by junk is not a delimiter",
			raw:  msg("Content-Type: multipart/mixed; boundary=b\n", "--b\n\none\n--b junk\nstill one\n--b--\n"),
			text: "one\n--b junk\nstill one",
		},
		{
			name: "transport padding after delimiters",
			raw:  msg("Content-Type: multipart/mixed; boundary=b\n", "--b \t\n\none\n--b-- \n"),
			text: "one",
		},
		{
			name:      "part header broken by a text line",
			raw:       msg("Content-Type: multipart/mixed; boundary=b\n", "--b\nContent-Type: text/plain\nno blank line here\n--b--\n"),
			text:      "no blank line here",
			anomalies: []AnomalyKind{MalformedMIME},
		},
		{
			name: "base64-encoded multipart is decoded",
			raw: msg("Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: base64\n",
				"LS1iDQoNCmhpZGRlbg0KLS1iLS0NCg==\n"),
			text:      "hidden",
			anomalies: []AnomalyKind{MalformedMIME},
		},
		{
			name:      "duplicate boundary: the first wins",
			raw:       msg("Content-Type: multipart/mixed; boundary=one; boundary=two\n", "--one\n\nfirst\n--one--\n--two\n\nsecond\n--two--\n"),
			text:      "first",
			anomalies: []AnomalyKind{MalformedMIME},
		},
		{
			name:      "unreadable parameter does not lose the boundary",
			raw:       msg("Content-Type: multipart/mixed; junk; boundary=\"b\"\n", "--b\n\nkept\n--b--\n"),
			text:      "kept",
			anomalies: []AnomalyKind{MalformedMIME},
		},
		{
			name: "digest parts default to message/rfc822",
			raw: msg("Content-Type: multipart/digest; boundary=d\n",
				"--d\n\nSubject: one\nContent-Type: text/plain\n\ndigest one\n--d\n\nSubject: two\n\ndigest two\n--d--\n"),
			text: "digest one\ndigest two",
		},
		{
			name:        "unknown transfer encoding makes an attachment",
			raw:         msg("Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n", "begin 644 a.exe\n"),
			attachments: []wantAttachment{{typ: "text/plain", data: "begin 644 a.exe"}},
			anomalies:   []AnomalyKind{BadEncoding},
		},
		{
			name: "text attachment gives links, not text",
			raw: msg("Content-Type: multipart/mixed; boundary=b\n",
				"--b\n\nbody\n--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=notes.txt\n\nsee https://att.example.test/\n--b--\n"),
			text:        "body",
			urls:        []string{"https://att.example.test/"},
			attachments: []wantAttachment{{name: "notes.txt", typ: "text/plain", depth: 1, data: "see https"}},
		},
		{
			name:        "inline text with a file name is text and attachment",
			raw:         msg("Content-Type: text/plain; name=readme.txt\n", "read me\n"),
			text:        "read me\n",
			attachments: []wantAttachment{{name: "readme.txt", typ: "text/plain", data: "read me"}},
		},
		{
			name: "script part is an attachment",
			raw: msg("Content-Type: multipart/mixed; boundary=b\n",
				"--b\nContent-Type: text/x-shellscript\n\n#!/bin/sh\nrm -rf /\n--b--\n"),
			attachments: []wantAttachment{{typ: "text/x-shellscript", depth: 1, data: "#!/bin/sh"}},
		},
		{
			name: "names that differ are all kept",
			raw: msg("Content-Type: application/octet-stream; name=\"invoice.exe\"\nContent-Disposition: attachment; filename=\"invoice.pdf\"; filename=\"other.pdf\"\n",
				"MZ"),
			attachments: []wantAttachment{{name: "invoice.pdf", others: []string{"other.pdf", "invoice.exe"}, typ: "application/octet-stream", data: "MZ"}},
		},
		{
			name: "RFC 2231 name in an unknown charset",
			raw: msg("Content-Type: application/pdf\nContent-Disposition: attachment; filename*=x-unknown''a%41.pdf\n",
				"%PDF"),
			attachments: []wantAttachment{{name: "aA.pdf", typ: "application/pdf", data: "%PDF"}},
			anomalies:   []AnomalyKind{UnknownCharset},
		},
		{
			name:      "two Content-Type fields: the first wins",
			raw:       msg("Content-Type: text/plain\nContent-Type: multipart/mixed; boundary=b\n", "--b\n\nx\n--b--\n"),
			text:      "--b\n\nx\n--b--\n",
			anomalies: []AnomalyKind{MalformedMIME},
		},
		{
			name:      "invalid media type reads as text/plain",
			raw:       msg("Content-Type: garbage\n", "words\n"),
			text:      "words\n",
			anomalies: []AnomalyKind{MalformedMIME},
		},
		{
			name:      "text cut at a character boundary",
			raw:       msg("Content-Type: text/plain; charset=utf-8\n", "ééééé\n"),
			lim:       Limits{MaxTextBytes: 5},
			text:      "éé",
			anomalies: []AnomalyKind{TextTruncated},
		},
		{
			name: "decoded budget: a part that does not fit is skipped, later ones decode",
			raw: msg("Content-Type: multipart/mixed; boundary=b\n",
				"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=big.bin\n\n"+
					strings.Repeat("x", 200)+"\n--b\n\nsmall text\n--b--\n"),
			lim:         Limits{MaxDecodedBytes: 100},
			text:        "small text",
			attachments: []wantAttachment{{name: "big.bin", typ: "application/octet-stream", depth: 1, cut: true}},
			anomalies:   []AnomalyKind{TooLarge, AttachmentCutOff},
		},
		{
			name: "message/rfc822 with base64 is decoded",
			raw: msg("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n",
				"U3ViamVjdDogaQ0KDQppbm5lciB0ZXh0DQo=\n"),
			text:      "inner text\n",
			anomalies: []AnomalyKind{MalformedMIME},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Walk(tt.raw, tt.lim)
			if c.Text != tt.text {
				t.Errorf("text\n got %q\nwant %q", c.Text, tt.text)
			}
			if !slices.Equal(c.URLs, tt.urls) {
				t.Errorf("URLs %q, want %q", c.URLs, tt.urls)
			}
			checkAttachments(t, c, tt.attachments)
			if got := kinds(c); !slices.Equal(got, tt.anomalies) {
				t.Errorf("anomalies %v (%+v), want %v", got, c.Anomalies, tt.anomalies)
			}
		})
	}
}

// TestLimitsValidate checks that Validate refuses negative limits only.
func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		lim  Limits
		want string // "" for valid
	}{
		{Limits{}, ""},
		{DefaultLimits(), ""},
		{Limits{MaxDepth: -1}, "max_depth: -1 is negative"},
		{Limits{MaxParts: -2}, "max_parts: -2 is negative"},
		{Limits{MaxDepth: MaxDepthLimit}, ""},
		{Limits{MaxDepth: MaxDepthLimit + 1}, "max_depth: 101 is above 100"},
		{Limits{MaxDecodedBytes: -3}, "max_decoded_bytes: -3 is negative"},
		{Limits{MaxTextBytes: -4, MaxDepth: -5}, "max_depth: -5 is negative\nmax_text_bytes: -4 is negative"},
	}
	for _, tt := range tests {
		err := tt.lim.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%+v: Validate() = %q, want %q", tt.lim, got, tt.want)
		}
	}
	// Negative limits given to Walk anyway take the defaults.
	c := Walk(msg("Content-Type: text/plain\n", "x\n"), Limits{MaxDepth: -1, MaxParts: -1, MaxDecodedBytes: -1, MaxTextBytes: -1})
	if c.Text != "x\n" || len(c.Anomalies) != 0 {
		t.Errorf("negative limits: %+v", c)
	}
}
