package content

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Language returns the language of the message's shown text (see
// language), worked out once, on the first call. It is safe for
// concurrent use.
func (c *Content) Language() string {
	c.langOnce.Do(func() { c.lang = c.language() })
	return c.lang
}

// language names the language of a message's shown text, as well as a
// short list of common words can tell it: "en", "de", "fr", "es", "it",
// "pt", "nl", "tr", "id", "vi"; for text mostly in another script than
// Latin the script's name ("cjk", "cyrillic", "greek", "other"); "" when
// the text is too short or matches none well. It reads the letters the
// walk counted and at most the first maxLangWords words of the text. It
// is a coarse sign for a classifier ("this organisation's mail is never
// in Turkish"), not a language identifier.
func (c *Content) language() string {
	var l Letters
	for _, p := range c.Parts {
		if p.Shown {
			l.merge(p.Letters)
		}
	}
	total := l.Total()
	if total < minLangLetters {
		return ""
	}
	for _, s := range []struct {
		name string
		n    int
	}{{"cjk", l.CJK}, {"cyrillic", l.Cyrillic}, {"greek", l.Greek}, {"other", l.Other}} {
		if 2*s.n >= total {
			return s.name
		}
	}
	return latinLanguage(c.Text)
}

// Languages lists every name Language returns.
var Languages = []string{"en", "de", "fr", "es", "it", "pt", "nl", "tr", "id", "vi", "cjk", "cyrillic", "greek", "other"}

// minLangLetters is the fewest letters a text needs to be given a
// language; minLangHits the fewest common words of the best language,
// which must have twice as many as the next.
const (
	minLangLetters = 200
	minLangHits    = 8
	maxLangWords   = 600
	maxCommonWord  = 8 // letters of the longest common word
)

// commonWords maps a frequent short word to the languages it is
// frequent in (function words that carry no topic).
var commonWords = func() map[string][]string {
	m := map[string][]string{}
	for lang, words := range map[string]string{
		"en": "the and to of you for is that this with are your have be not will",
		"de": "und der die das ist nicht sie mit für ein eine sich auch auf dem den wir",
		"fr": "le la les et des est pour vous une dans que sur avec pas nous qui",
		"es": "el los las que por para con una del se es usted como pero más",
		"it": "il di che della per sono una non con gli del alla questo",
		"pt": "os que não uma para com por mais você como dos das pelo",
		"nl": "het een en van is dat niet voor met zijn ook naar wij",
		"tr": "ve bir bu için icin ile gibi daha çok cok olarak olan değil degil",
		"id": "dan yang di untuk dengan ini itu dari tidak akan",
		"vi": "và của các cho là được trong có không những người",
	} {
		for _, w := range strings.Fields(words) {
			m[w] = append(m[w], lang)
		}
	}
	return m
}()

// latinLanguage names the language of a Latin-script text by its common
// words.
func latinLanguage(text string) string {
	hits := map[string]int{}
	words := 0
	var buf [4 * maxCommonWord]byte
	n, runes, long := 0, 0, false
	flush := func() {
		if n > 0 && !long {
			// m[string(b)] does not allocate.
			for _, l := range commonWords[string(buf[:n])] {
				hits[l]++
			}
		}
		n, runes, long = 0, 0, false
	}
	for _, r := range text {
		// ASCII, the most of most text, without the Unicode tables.
		letter := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || r >= utf8.RuneSelf && unicode.IsLetter(r)
		if !letter {
			if n > 0 || long {
				flush()
				if words++; words >= maxLangWords {
					return pickLanguage(hits)
				}
			}
			continue
		}
		if runes++; runes > maxCommonWord {
			long = true
			continue
		}
		if r < utf8.RuneSelf {
			buf[n] = byte(r) | 0x20 // lower case
			n++
		} else {
			n += utf8.EncodeRune(buf[n:], unicode.ToLower(r))
		}
	}
	flush()
	return pickLanguage(hits)
}

// pickLanguage returns the language with the most common-word hits, if
// it has enough and twice as many as the next.
func pickLanguage(hits map[string]int) string {
	best, second := "", 0
	for l, n := range hits {
		switch {
		case best == "" || n > hits[best] || n == hits[best] && l < best:
			second = max(second, hits[best]) // 0 for no best yet
			best = l
		default:
			second = max(second, n)
		}
	}
	if best == "" || hits[best] < minLangHits || hits[best] < 2*second {
		return ""
	}
	return best
}
