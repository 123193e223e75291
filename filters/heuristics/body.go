package heuristics

import (
	"fmt"
	"strings"
)

// shownLetters returns the letters a reader sees in the shown text parts,
// and the letters of the shown HTML parts alone.
func (m *msg) shownLetters() (all, html int) {
	for _, p := range m.c.Parts {
		if !p.Shown {
			continue
		}
		n := p.Letters.Total()
		all += n
		if p.Media == "text/html" {
			html += n
		}
	}
	return all, html
}

// htmlOnly: an HTML body without a text/plain part (SpamAssassin's
// MIME_HTML_ONLY). Mailers that write HTML write a text alternative too;
// bulk tools often do not.
func htmlOnly(m *msg) (string, bool) {
	html := false
	for _, p := range m.c.Parts {
		switch {
		case p.Media == "text/plain":
			return "", false
		case p.Shown:
			html = true
		}
	}
	return "HTML without a text/plain part", html
}

// htmlShortText: a text/plain alternative of a few words beside an HTML
// part of at least 1,000 letters ("your mail reader cannot show this
// message"): the text a filter would read is not what the reader sees.
func htmlShortText(m *msg) (string, bool) {
	plain, html := 0, 0
	for _, p := range m.c.Parts {
		switch p.Media {
		case "text/plain":
			plain += p.Letters.Total()
		case "text/html":
			html += p.Letters.Total()
		}
	}
	if plain == 0 || html < 1000 || plain >= 40 {
		return "", false
	}
	return fmt.Sprintf("text part of %d letters beside HTML of %d", plain, html), true
}

// hiddenShare reports whether hidden letters, counted by pick, are at
// least 30 and a quarter of the letters shown: enough to poison a
// classifier, more than the one-line preheader of a newsletter.
func (m *msg) hiddenShare(pick func(hidden, tiny, invisible int) int) (int, bool) {
	hidden := 0
	for _, p := range m.c.Parts {
		if p.Media == "text/html" {
			hidden += pick(p.Hidden, p.Tiny, p.Invisible)
		}
	}
	shown, _ := m.shownLetters()
	return hidden, hidden >= 30 && 4*hidden >= shown
}

// htmlHidden: text in elements with display:none, visibility:hidden,
// opacity:0 or the hidden attribute.
func htmlHidden(m *msg) (string, bool) {
	n, ok := m.hiddenShare(func(h, _, _ int) int { return h })
	return fmt.Sprintf("%d letters in hidden HTML elements", n), ok
}

// htmlTiny: text in a font below 2px or 2pt.
func htmlTiny(m *msg) (string, bool) {
	n, ok := m.hiddenShare(func(_, t, _ int) int { return t })
	return fmt.Sprintf("%d letters in a font below 2px", n), ok
}

// htmlInvisible: text in a colour the sender set equal, or nearly, to its
// background (white on white).
func htmlInvisible(m *msg) (string, bool) {
	n, ok := m.hiddenShare(func(_, _, i int) int { return i })
	return fmt.Sprintf("%d letters coloured as their background", n), ok
}

// imagesOnly: images (inline <img> or image attachments) and next to no
// text: the words are in the picture, where a filter cannot read them
// (SpamAssassin's HTML_IMAGE_ONLY_*).
func imagesOnly(m *msg) (string, bool) {
	images := 0
	for _, p := range m.c.Parts {
		if p.Media == "text/html" && p.Shown {
			images += p.Images
		}
	}
	for _, a := range m.c.Attachments {
		if strings.HasPrefix(a.DeclaredType, "image/") {
			images++
		}
	}
	if images == 0 {
		return "", false
	}
	shown, _ := m.shownLetters()
	if shown >= 100 {
		return "", false
	}
	return fmt.Sprintf("%d images and %d letters of text", images, shown), true
}
