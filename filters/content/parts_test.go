package content

import (
	"slices"
	"testing"
)

// TestPresentation counts the letters of HTML text a reader sees and does
// not see.
func TestPresentation(t *testing.T) {
	tests := []struct {
		name                               string
		in                                 string
		shown, hidden, tiny, invisible, im int
	}{
		{"plain", "<p>Hello world</p>", 10, 0, 0, 0, 0},
		{"display none", `<p>ab</p><div style="DISPLAY: none">hidden</div>cd`, 4, 6, 0, 0, 0},
		{"visibility and hidden attribute", `<span style="visibility:hidden">abc</span><p hidden>de</p>`, 0, 5, 0, 0, 0},
		{"nested in a hidden element", `<div style="display:none"><p><b>abc</b></p></div>de`, 2, 3, 0, 0, 0},
		{"tiny fonts", `<span style="font-size:1px">ab</span><span style="font-size: 0.1em">cd</span><span style="font-size:10px">ef</span>`, 2, 0, 4, 0, 0},
		{"white on white", `<font color="#ffffff">abc</font><font color="#fff"><b>de</b></font>`, 0, 0, 0, 5, 0},
		{"text colour on its cell", `<td bgcolor="navy"><font color="#000080">abc</font></td>`, 0, 0, 0, 3, 0},
		{"white on black", `<body bgcolor="#000"><font color="#fff">abc</font></body>`, 3, 0, 0, 0, 0},
		{"default colour is not chosen", `<td bgcolor="#000000">abc</td>`, 3, 0, 0, 0, 0},
		{"background image", `<td background="http://i.example.test/b.gif"><font color="white">abc</font></td>`, 3, 0, 0, 0, 0},
		{"style sheet background", `<style>body{background:#000}</style><font color="white">abc</font>`, 3, 0, 0, 0, 0},
		{"closed element ends its style", `<div style="display:none">ab</div>cd`, 2, 2, 0, 0, 0},
		{"unclosed inner elements", `<div style="display:none"><p>ab<b>cd</div>ef`, 2, 4, 0, 0, 0},
		{"stray end tag", `</div><font color="#fff">ab</font></font>cd`, 2, 0, 0, 2, 0},
		{"images", `<img src="http://i.example.test/a.gif"><IMG SRC=b.gif />x`, 1, 0, 0, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Walk(msg("Content-Type: text/html; charset=utf-8\n", tt.in), Limits{})
			if len(c.Parts) != 1 {
				t.Fatalf("parts %+v, want one", c.Parts)
			}
			p := c.Parts[0]
			got := []int{p.Letters.Total(), p.Hidden, p.Tiny, p.Invisible, p.Images}
			want := []int{tt.shown, tt.hidden, tt.tiny, tt.invisible, tt.im}
			if !slices.Equal(got, want) {
				t.Errorf("shown, hidden, tiny, invisible, images = %v, want %v", got, want)
			}
		})
	}
}

// TestParts describes the text parts: media, charset, shown, 8-bit
// bytes and letters by script.
func TestParts(t *testing.T) {
	raw := msg("Content-Type: multipart/mixed; boundary=m\n",
		"--m\nContent-Type: multipart/alternative; boundary=a\n\n"+
			"--a\nContent-Type: text/plain; charset=\"US-ASCII\"\n\nplain caf\xe9\n"+
			"--a\nContent-Type: text/html; charset=koi8-r\n\n<p>\xf0\xd2\xc9\xd7\xc5\xd4 ok &#x4e2d;</p>\n--a--\n"+
			"--m\nContent-Type: text/plain; charset=iso-8859-7\n\n\xe1\xe2\xe3 abc\n"+
			"--m\nContent-Type: text/plain\nContent-Disposition: attachment; filename=notes.txt\n\nattached\n--m--\n")
	c := Walk(raw, Limits{})
	want := []TextPart{
		{Media: "text/plain", Charset: "us-ascii", Shown: false, EightBit: true, Letters: Letters{ASCII: 8, Latin: 1}},
		{Media: "text/html", Charset: "koi8-r", Shown: true, EightBit: true, Letters: Letters{ASCII: 2, Cyrillic: 6, CJK: 1}},
		{Media: "text/plain", Charset: "iso-8859-7", Shown: true, EightBit: true, Letters: Letters{ASCII: 3, Greek: 3}},
	}
	if !slices.Equal(c.Parts, want) {
		t.Errorf("parts\n%+v\nwant\n%+v", c.Parts, want)
	}
}

// TestAnchors keeps each HTML link with the text it shows, in quiet
// alternatives too, and bounds the list.
func TestAnchors(t *testing.T) {
	c := Walk(msg("Content-Type: text/html\n",
		`<a href="http://a.example.test/">  www.bank.example.test </a><a href="http://b.example.test/"><img src="http://i.example.test/x.gif">Click&nbsp;<b>here</b></a>`+
			`<a name="x">no link</a><a href="javascript:void(0)">js</a>`), Limits{})
	want := []Anchor{{Href: "http://a.example.test/", Text: "www.bank.example.test"}, {Href: "http://b.example.test/", Text: "Click here"}}
	if !slices.Equal(c.Anchors, want) {
		t.Errorf("anchors %+v, want %+v", c.Anchors, want)
	}
	var many []byte
	for range MaxAnchors + 10 {
		many = append(many, `<a href="http://x.example.test/">`+string(make([]byte, 0))+"text that is long enough</a>"...)
	}
	c = Walk(msg("Content-Type: text/html\n", string(many)), Limits{})
	if len(c.Anchors) != MaxAnchors {
		t.Errorf("%d anchors, want the bound %d", len(c.Anchors), MaxAnchors)
	}
}

// TestParseColor reads the colour notations of HTML and CSS.
func TestParseColor(t *testing.T) {
	for in, want := range map[string]rgb{"white": 0xffffff, "#FFF": 0xffffff, "#003366": 0x003366, "003366": 0x003366,
		"rgb(0, 51, 102)": 0x003366, " Navy ": 0x000080} {
		if got, ok := parseColor(in); !ok || got != want {
			t.Errorf("parseColor(%q) = %06x, %v; want %06x", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "#12", "rgb(1,2)", "rgb(300,0,0)", "papayawhip-ish", "#gggggg"} {
		if _, ok := parseColor(in); ok {
			t.Errorf("parseColor(%q) ok", in)
		}
	}
}
