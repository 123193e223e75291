package content

import (
	"bytes"
	"strconv"
	"strings"

	"golang.org/x/net/html/atom"
)

// The walk follows the presentation of HTML text far enough to tell text a
// reader sees from text hidden from the reader but not from a classifier
// (the Bayes poison of spam): an element with display:none,
// visibility:hidden, opacity:0 or the hidden attribute; a font size below
// 2 pixels or points; a text colour the sender set (nearly) equal to the
// background. Style sheets are not applied: only the style attribute and
// the presentational attributes (color, bgcolor, background) are read, as
// SpamAssassin's HTML rules do. A style sheet that sets a background makes
// the default background unknown, so that text is never called invisible
// against a background the walk cannot see.

// maxStack bounds the open elements followed per HTML part.
const maxStack = 256

// presentation is what an element passes on to the text inside it.
type presentation struct {
	a         atom.Atom
	hidden    bool // display:none, visibility:hidden, opacity:0, hidden
	tiny      bool // font size below 2px or 2pt
	huge      bool // font size 6 and more, 32px, 24pt, 2em
	color     rgb  // the text colour, when the sender set one
	colorSet  bool
	bg        rgb  // the background colour
	bgKnown   bool // false behind an image or a colour the walk cannot read
	bgSet     bool // an element set the background (not the default white)
	invisible bool // color set and (nearly) equal to bg
}

// rgb is a colour as 0xRRGGBB.
type rgb uint32

// rootPresentation is the default of a part: black on white.
var rootPresentation = presentation{color: 0x000000, bg: 0xffffff, bgKnown: true}

// voidElement reports whether elements of kind a have no content and no
// end tag (HTML §13.1.2).
func voidElement(a atom.Atom) bool {
	switch a {
	case atom.Area, atom.Base, atom.Br, atom.Col, atom.Embed, atom.Hr, atom.Img, atom.Input,
		atom.Link, atom.Meta, atom.Source, atom.Track, atom.Wbr, atom.Param:
		return true
	}
	return false
}

// mayStyle reports whether a tag's source may hold an attribute that
// changes the presentation of its text.
func mayStyle(raw []byte) bool {
	return bytes.IndexByte(raw, '=') >= 0 && (containsFold(raw, "style") || containsFold(raw, "color") ||
		containsFold(raw, "background") || containsFold(raw, "size")) || containsFold(raw, "hidden")
}

// attr applies a presentational attribute to p.
func (p *presentation) attr(key, val []byte) {
	switch string(key) {
	case "style":
		p.style(val)
	case "color":
		if c, ok := parseColor(string(bytes.TrimSpace(val))); ok {
			p.color, p.colorSet = c, true
		}
	case "bgcolor":
		if c, ok := parseColor(string(bytes.TrimSpace(val))); ok {
			p.bg, p.bgKnown, p.bgSet = c, true, true
		} else {
			p.bgKnown, p.bgSet = false, true
		}
	case "background":
		// An image behind the text: its colours are unknown.
		p.bgKnown, p.bgSet = false, true
	case "hidden":
		p.hidden = true
	case "size":
		if p.a == atom.Font {
			p.huge = hugeFontAttr(string(bytes.TrimSpace(val)))
		}
	}
}

// hugeFontAttr reports whether a <font size> is 6 or more: an absolute
// size of 6 or 7, or +3 and more from the default of 3 (HTML 3.2 §5.3).
func hugeFontAttr(v string) bool {
	rel := strings.HasPrefix(v, "+")
	n, err := strconv.Atoi(strings.TrimPrefix(v, "+"))
	if err != nil {
		return false
	}
	if rel {
		n += 3
	}
	return n >= 6
}

// style applies the declarations of a style attribute.
func (p *presentation) style(v []byte) {
	s := strings.ToLower(string(v))
	for len(s) > 0 {
		var decl string
		decl, s, _ = strings.Cut(s, ";")
		prop, val, ok := strings.Cut(decl, ":")
		if !ok {
			continue
		}
		prop = strings.TrimSpace(prop)
		val = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(val), "!important"))
		switch prop {
		case "display":
			if val == "none" {
				p.hidden = true
			}
		case "visibility":
			if val == "hidden" || val == "collapse" {
				p.hidden = true
			}
		case "opacity":
			if f, err := strconv.ParseFloat(val, 64); err == nil && f <= 0.05 {
				p.hidden = true
			}
		case "font-size":
			p.tiny = tinySize(val)
			p.huge = hugeSize(val)
		case "color":
			if c, ok := parseColor(val); ok {
				p.color, p.colorSet = c, true
			}
		case "background-color", "background":
			switch {
			case strings.Contains(val, "url("):
				p.bgKnown, p.bgSet = false, true
			default:
				first, _, _ := strings.Cut(val, " ")
				if c, ok := parseColor(first); ok {
					p.bg, p.bgKnown, p.bgSet = c, true, true
				} else if first != "transparent" && first != "inherit" {
					p.bgKnown, p.bgSet = false, true
				}
			}
		}
	}
}

// cssLength splits a CSS length ("12px", "0.5em", "80%") into its number
// and unit ("" for none); ok is false when it does not start with a
// number.
func cssLength(v string) (f float64, unit string, ok bool) {
	i := 0
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, "", false
	}
	f, err := strconv.ParseFloat(v[:i], 64)
	if err != nil {
		return 0, "", false
	}
	return f, strings.TrimSpace(v[i:]), true
}

// tinySize reports whether a CSS font-size is below 2px or 2pt (0.2em,
// 20%): text no reader can read.
func tinySize(v string) bool {
	f, unit, ok := cssLength(v)
	if !ok {
		return false
	}
	switch unit {
	case "", "px", "pt":
		return f < 2
	case "em", "rem":
		return f < 0.2
	case "%":
		return f < 20
	}
	return false
}

// hugeSize reports whether a CSS font-size is at least 32px, 24pt, 2em
// or 200%, or the keyword xx-large or larger: a headline a reader cannot
// miss.
func hugeSize(v string) bool {
	if v == "xx-large" || v == "xxx-large" {
		return true
	}
	f, unit, ok := cssLength(v)
	if !ok {
		return false
	}
	switch unit {
	case "", "px":
		return f >= 32
	case "pt":
		return f >= 24
	case "em", "rem":
		return f >= 2
	case "%":
		return f >= 200
	}
	return false
}

// namedColors are the HTML 4 colour names (CSS Color Level 3 §4.1).
var namedColors = map[string]rgb{
	"black": 0x000000, "silver": 0xc0c0c0, "gray": 0x808080, "grey": 0x808080, "white": 0xffffff,
	"maroon": 0x800000, "red": 0xff0000, "purple": 0x800080, "fuchsia": 0xff00ff,
	"green": 0x008000, "lime": 0x00ff00, "olive": 0x808000, "yellow": 0xffff00,
	"navy": 0x000080, "blue": 0x0000ff, "teal": 0x008080, "aqua": 0x00ffff,
}

// parseColor reads a colour: a name, #rgb, #rrggbb (the "#" may be
// missing in attributes, as browsers forgive) or rgb(r, g, b).
func parseColor(v string) (rgb, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	if c, ok := namedColors[v]; ok {
		return c, true
	}
	if strings.HasPrefix(v, "rgb(") && strings.HasSuffix(v, ")") {
		parts := strings.Split(v[4:len(v)-1], ",")
		if len(parts) != 3 {
			return 0, false
		}
		var c rgb
		for _, p := range parts {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n < 0 || n > 255 {
				return 0, false
			}
			c = c<<8 | rgb(n)
		}
		return c, true
	}
	h := strings.TrimPrefix(v, "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) != 6 {
		return 0, false
	}
	n, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return 0, false
	}
	return rgb(n), true
}

// near reports whether two colours differ by so little that text in one
// cannot be read on the other.
func near(a, b rgb) bool {
	d := 0
	for shift := 0; shift < 24; shift += 8 {
		x, y := int(a>>shift&0xff), int(b>>shift&0xff)
		if x > y {
			d += x - y
		} else {
			d += y - x
		}
	}
	return d < 30
}
