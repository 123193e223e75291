package content

import (
	"unicode"
	"unicode/utf8"
)

// asciiLetter is 1 for the ASCII letters.
var asciiLetter = func() (t [utf8.RuneSelf]uint8) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c], t[c+'a'-'A'] = 1, 1
	}
	return t
}()

// count adds the letters of the UTF-8 text t.
func (l *Letters) count(t []byte) {
	for i := 0; i < len(t); {
		c := t[i]
		if c < utf8.RuneSelf {
			// A run of ASCII at a time: most mail is.
			j := i
			n := 0
			for j < len(t) && t[j] < utf8.RuneSelf {
				n += int(asciiLetter[t[j]])
				j++
			}
			l.ASCII += n
			i = j
			continue
		}
		r, n := utf8.DecodeRune(t[i:])
		i += n
		l.add(r)
	}
}

// merge adds the counts of o.
func (l *Letters) merge(o Letters) {
	l.ASCII += o.ASCII
	l.Latin += o.Latin
	l.Cyrillic += o.Cyrillic
	l.Greek += o.Greek
	l.CJK += o.CJK
	l.Other += o.Other
}

// add counts the non-ASCII rune r if it is a letter.
func (l *Letters) add(r rune) {
	switch {
	case r < 0x250 && unicode.IsLetter(r):
		// Latin-1 Supplement and Latin Extended-A and -B.
		l.Latin++
	case 0x400 <= r && r < 0x530:
		if unicode.IsLetter(r) {
			l.Cyrillic++
		}
	case 0x370 <= r && r < 0x400:
		if unicode.IsLetter(r) {
			l.Greek++
		}
	case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
		l.CJK++
	case unicode.Is(unicode.Latin, r):
		l.Latin++
	case unicode.Is(unicode.Cyrillic, r):
		l.Cyrillic++
	case unicode.Is(unicode.Greek, r):
		l.Greek++
	case unicode.IsLetter(r):
		l.Other++
	}
}

// letterCount returns the number of letters in the UTF-8 text t.
func letterCount(t []byte) int {
	var l Letters
	l.count(t)
	return l.Total()
}
