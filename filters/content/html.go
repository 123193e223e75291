package content

import (
	"bytes"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// html turns an HTML part into text, as a reader would see it: script and
// style dropped, entities decoded (the tokenizer does it), runs of white
// space made one space, block elements on their own lines, and the target
// of each link written after the link's text. Links (href, src, action,
// background) go to Content.URLs, and so do bare URLs in the text; <a>
// links with their text go to Content.Anchors. quiet gives links only.
// part receives the letters seen and hidden, and the images.
func (w *walker) html(u []byte, quiet bool, part *TextPart) {
	if !quiet {
		w.c.HTML = true
		w.startText(len(u) / 2)
	}
	h := htmlText{w: w, quiet: quiet, space: true, part: part}
	z := html.NewTokenizer(bytes.NewReader(u))
	for {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			// io.EOF at the end; the tokenizer reports no other error on
			// an in-memory reader without a buffer limit.
			h.flushLink()
			return
		case html.TextToken:
			t := z.Text()
			if h.skip {
				if h.inStyle && containsFold(t, "background") {
					// A style sheet sets backgrounds the walk does not
					// follow: the default background is unknown.
					h.cssBg = true
				}
				continue
			}
			w.bareURLs(t)
			h.count(t)
			h.text(t)
		case html.StartTagToken, html.SelfClosingTagToken:
			raw := z.Raw()
			a := tagAtom(raw)
			switch a {
			case atom.Script, atom.Style:
				// The tokenizer reads their content as raw text up to the
				// end tag, self-closing or not.
				h.skip = true
				h.inStyle = a == atom.Style
			case atom.A:
				h.flushLink()
			case atom.Img:
				h.part.Images++
			}
			p := h.top()
			p.a = a
			// The tokenizer copies every attribute it returns: ask only
			// when the tag may hold a link or a presentation.
			if mayHoldLink(raw) || mayStyle(raw) {
				for more := true; more; {
					var key, val []byte
					key, val, more = z.TagAttr()
					if key == nil {
						continue
					}
					p.attr(key, val)
					if !linkAttr(key) {
						continue
					}
					if u, ok := cleanLink(val); ok {
						kept := w.addURL(u)
						if a == atom.A && string(key) == "href" && !h.skip {
							if kept == "" {
								kept = string(u) // the list is full; the text still shows it
							}
							h.link = kept
						}
					}
				}
			}
			if tt == html.StartTagToken && a != 0 && !voidElement(a) && !h.skip {
				h.push(p)
			}
			h.block(a)
		case html.EndTagToken:
			a := tagAtom(z.Raw())
			switch a {
			case atom.Script, atom.Style:
				h.skip = false
			case atom.A:
				h.flushLink()
			}
			h.pop(a)
			h.block(a)
		}
	}
}

// tagAtom returns the atom of the tag whose source is raw ("<name ...>"
// or "</name>"), read without the copy Tokenizer.TagName makes; 0 for a
// name no atom has.
func tagAtom(raw []byte) atom.Atom {
	raw = bytes.TrimPrefix(raw, []byte("<"))
	raw = bytes.TrimPrefix(raw, []byte("/"))
	var buf [16]byte
	n := 0
	for _, c := range raw {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '/' || c == '>' {
			break
		}
		if n == len(buf) {
			return 0 // longer than any atom the walk looks for
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	return atom.Lookup(buf[:n])
}

// mayHoldLink reports whether a tag's source may hold one of the link
// attributes (a value, and one of their names in any case).
func mayHoldLink(raw []byte) bool {
	if bytes.IndexByte(raw, '=') < 0 {
		return false
	}
	return containsFold(raw, "href") || containsFold(raw, "src") ||
		containsFold(raw, "action") || containsFold(raw, "background")
}

// containsFold reports whether b holds the lower-case ASCII word s in any
// case.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if b[i]|0x20 == s[0] && bytes.EqualFold(b[i:i+len(s)], []byte(s)) {
			return true
		}
	}
	return false
}

// htmlText writes the text of an HTML part.
type htmlText struct {
	w       *walker
	part    *TextPart
	quiet   bool
	skip    bool   // inside script or style
	inStyle bool   // inside style
	cssBg   bool   // a style sheet sets a background
	space   bool   // the last thing written was white space or a line break
	link    string // the target of the open <a>, written when it closes
	anchor  []byte // the text of the open <a>
	stack   []presentation
}

// top returns the presentation of the innermost open element.
func (h *htmlText) top() presentation {
	if len(h.stack) == 0 {
		return rootPresentation
	}
	return h.stack[len(h.stack)-1]
}

// push opens an element.
func (h *htmlText) push(p presentation) {
	if len(h.stack) < maxStack {
		h.stack = append(h.stack, p)
	}
}

// pop closes the innermost open element of kind a and those inside it
// left open; an end tag nothing opened is ignored, as browsers do.
func (h *htmlText) pop(a atom.Atom) {
	for i := len(h.stack) - 1; i >= 0; i-- {
		if h.stack[i].a == a {
			h.stack = h.stack[:i]
			return
		}
	}
}

// count adds the letters of a text token to the part, as seen or as
// hidden, and to the text of the open link.
func (h *htmlText) count(t []byte) {
	if h.link != "" && len(h.anchor) < MaxAnchorText {
		h.anchor = append(h.anchor, t[:min(len(t), MaxAnchorText-len(h.anchor))]...)
	}
	p := h.top()
	switch {
	case p.hidden:
		h.part.Hidden += letterCount(t)
	case p.tiny:
		h.part.Tiny += letterCount(t)
	case p.colorSet && p.bgKnown && (p.bgSet || !h.cssBg) && near(p.color, p.bg):
		h.part.Invisible += letterCount(t)
	default:
		h.part.Letters.count(t)
		if p.huge {
			h.part.Huge += letterCount(t)
		}
	}
}

// text writes a text token with its runs of white space (and no-break
// spaces) made single spaces.
func (h *htmlText) text(t []byte) {
	if h.quiet {
		return
	}
	for len(t) > 0 {
		i := 0
		for i < len(t) && !isHTMLSpace(t, i) {
			i++
		}
		if i > 0 {
			h.w.put(t[:i])
			h.space = false
			t = t[i:]
			continue
		}
		if !h.space {
			h.w.put(space)
			h.space = true
		}
		if t[0] == 0xc2 {
			t = t[2:] // U+00A0
		} else {
			t = t[1:]
		}
	}
}

// isHTMLSpace reports whether t[i:] starts with ASCII white space (HTML's
// set) or a no-break space.
func isHTMLSpace(t []byte, i int) bool {
	switch t[i] {
	case ' ', '\t', '\n', '\r', '\f':
		return true
	case 0xc2:
		return i+1 < len(t) && t[i+1] == 0xa0
	}
	return false
}

// space separates words in Content.Text.
var space = []byte{' '}

// flushLink writes the target of the link just closed after its text, so
// that classifiers see where a link goes as well as what it says, and
// keeps the link with its text in Content.Anchors.
func (h *htmlText) flushLink() {
	if h.link == "" {
		return
	}
	if len(h.w.c.Anchors) < MaxAnchors {
		h.w.c.Anchors = append(h.w.c.Anchors, Anchor{Href: h.link, Text: collapseSpace(h.anchor)})
	}
	h.anchor = h.anchor[:0]
	if !h.quiet {
		if !h.space {
			h.w.put(space)
		}
		h.w.put([]byte(h.link))
		h.w.put(space)
		h.space = true
	}
	h.link = ""
}

// collapseSpace returns t with white space (and no-break spaces) around it
// dropped and runs of it inside made single spaces.
func collapseSpace(t []byte) string {
	var b strings.Builder
	b.Grow(len(t))
	sp := false
	for i := 0; i < len(t); {
		if isHTMLSpace(t, i) {
			sp = true
			if t[i] == 0xc2 {
				i += 2
			} else {
				i++
			}
			continue
		}
		if sp && b.Len() > 0 {
			b.WriteByte(' ')
		}
		sp = false
		b.WriteByte(t[i])
		i++
	}
	return b.String()
}

// block starts a new line at the edges of block elements.
func (h *htmlText) block(a atom.Atom) {
	if h.quiet || !blockElement(a) {
		return
	}
	if h.w.last != '\n' && h.w.text.Len() > 0 {
		h.w.put(newline)
	}
	h.space = true
}

// blockElement reports whether elements of kind a are laid out on lines
// of their own.
func blockElement(a atom.Atom) bool {
	switch a {
	case atom.P, atom.Div, atom.Br, atom.Li, atom.Ul, atom.Ol, atom.Tr, atom.Table,
		atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Blockquote, atom.Pre,
		atom.Hr, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Nav, atom.Aside,
		atom.Dl, atom.Dt, atom.Dd, atom.Form, atom.Fieldset, atom.Address, atom.Center,
		atom.Title, atom.Body, atom.Html, atom.Main, atom.Figure, atom.Figcaption:
		return true
	}
	return false
}

// linkAttr reports whether an attribute holds a URL the walk collects.
func linkAttr(key []byte) bool {
	switch string(key) {
	case "href", "src", "action", "background":
		return true
	}
	return false
}
