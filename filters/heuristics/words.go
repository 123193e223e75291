package heuristics

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// spamWords are the words spam spells out of a filter's reach (v.i.a.g.r.a,
// c1alis, m-o-r-t-g-a-g-e). Matched whole after the obfuscation is undone.
var spamWords = []string{
	"viagra", "cialis", "levitra", "valium", "xanax", "vicodin", "phentermine", "pharmacy",
	"prescription", "penis", "enlargement", "erection", "porn", "casino", "mortgage",
	"refinance", "loan", "credit", "money", "cash", "free", "rolex", "replica", "weight",
	"income", "profit", "million", "dollars", "lottery", "winner", "bitcoin", "investment",
	"sexy", "viagr", "meds", "unsecured", "guaranteed", "debt", "offer", "click",
}

// leet maps the digits and signs spam puts for letters to the letters.
func leet(c byte) byte {
	switch c {
	case '0':
		return 'o'
	case '1', '!', '|':
		return 'i'
	case '3':
		return 'e'
	case '4', '@':
		return 'a'
	case '5', '$':
		return 's'
	case '7':
		return 't'
	}
	return c | 0x20
}

// byteSet returns a table of the bytes of s.
func byteSet(s string) (t [256]bool) {
	for i := 0; i < len(s); i++ {
		t[s[i]] = true
	}
	return t
}

var (
	// separators are what spam puts between the letters of a word.
	separators = byteSet(".-_* ,'/|~+")
	// leetSigns are the signs spam puts for letters.
	leetSigns = byteSet("@$!|")
)

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return 'a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9'
}

// isSpamWord reports whether w (lower case) is one of spamWords.
func isSpamWord(w string) bool {
	for _, s := range spamWords {
		if w == s {
			return true
		}
	}
	return false
}

// maxScan bounds the text the word rules read: obfuscation that matters
// sits near the top.
const maxScan = 64 << 10

// scanText returns the subject and the text the word rules read, built
// once.
func (m *msg) scanText() string {
	if !m.scanDone {
		m.scanDone = true
		t := m.c.Text
		if len(t) > maxScan {
			t = t[:maxScan]
		}
		m.scan = m.subjectText() + "\n" + t
	}
	return m.scan
}

// scanNear is findNear over scanText, whose lower-case form is made once
// for every rule that searches it.
func (m *msg) scanNear(re *regexp.Regexp, keys []string) string {
	t := m.scanText()
	if !m.scanLowerDone {
		m.scanLowerDone = true
		m.scanLower = lowerIndexable(t)
	}
	return findNearLower(t, m.scanLower, re, keys)
}

// obfuscatedWord: a spam word written letter by letter with separators
// ("v.i.a.g.r.a", "V I A G R A", "c-i-a-l-i-s") or with digits and signs
// for letters ("v1agra", "c!alis", "m0rtgage"). Words that are that way in
// ordinary text ("4x4", "b2b") are not in the list.
func obfuscatedWord(m *msg) (string, bool) {
	t := m.scanText()
	if w, ok := separatedWord(t); ok {
		return "spelt with separators: " + w, true
	}
	if w, ok := leetWord(t); ok {
		return "spelt with digits or signs: " + w, true
	}
	return "", false
}

// separatedWord finds a run of single letters each followed by the same
// separator (one or two of '.', '-', '_', '*', ' ', ',', '\”, '/', '|',
// '~', '+') that spells a spam word.
func separatedWord(t string) (string, bool) {
	var buf [32]byte
	for i := 0; i < len(t); i++ {
		if !isAlnum(t[i]) || i > 0 && isAlnum(t[i-1]) || i+1 >= len(t) || isAlnum(t[i+1]) {
			continue
		}
		sep := t[i+1]
		if !separators[sep] {
			continue
		}
		n, j := 0, i
		for j < len(t) && n < len(buf) && isAlnum(t[j]) && (j+1 >= len(t) || !isAlnum(t[j+1])) {
			buf[n] = leet(t[j])
			n++
			j++
			k := j
			for k < len(t) && k-j < 2 && t[k] == sep {
				k++
			}
			if k == j {
				break
			}
			j = k
		}
		if n >= 4 {
			w := string(buf[:n])
			for _, s := range spamWords {
				if len(s) >= 4 && strings.Contains(w, s) {
					return w, true
				}
			}
		}
		if j > i {
			i = j - 1
		}
	}
	return "", false
}

// leetWord finds a word of letters mixed with digits or signs that reads
// as a spam word once they are read as letters.
func leetWord(t string) (string, bool) {
	var buf [24]byte
	for i := 0; i < len(t); {
		if !isAlnum(t[i]) && !leetSigns[t[i]] {
			i++
			continue
		}
		j := i
		n, letters, others := 0, 0, 0
		for j < len(t) && (isAlnum(t[j]) || leetSigns[t[j]]) {
			if n < len(buf) {
				buf[n] = leet(t[j])
			}
			n++
			if 'a' <= t[j]|0x20 && t[j]|0x20 <= 'z' {
				letters++
			} else {
				others++
			}
			j++
		}
		// Signs at the end are punctuation ("free!"), not letters.
		for n > 0 && n <= len(buf) && j > i && leetSigns[t[i+n-1]] {
			n--
			others--
		}
		if n >= 4 && n <= len(buf) && letters >= 2 && others >= 1 && isSpamWord(string(buf[:n])) {
			return t[i : i+n], true
		}
		i = j
	}
	return "", false
}

// confusable reports whether r, a Cyrillic or Greek letter, looks like a
// Latin one (Unicode's confusables.txt, the letters spam uses).
func confusable(r rune) bool {
	return strings.ContainsRune("аеорсухіјѕԁԛԝӏАВЕКМНОРСТХІЈЅԌαεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", r)
}

// mixedScriptWord: a word of Latin letters with Cyrillic or Greek letters
// that look like Latin ones among them ("vіagra" with a Cyrillic і), or
// the other way round: written to look like one word to the reader and to
// be another to a filter (Unicode TR 39 §5, mixed-script detection).
func mixedScriptWord(m *msg) (string, bool) {
	t := m.scanText()
	start := -1
	latin, other, conf := 0, 0, 0
	check := func(end int) (string, bool) {
		defer func() { start, latin, other, conf = -1, 0, 0, 0 }()
		if start < 0 || latin == 0 || other == 0 || latin+other < 4 {
			return "", false
		}
		// The minority script must be made only of look-alikes.
		if other <= latin && conf == other || latin < other && latin <= 2 {
			return t[start:end], true
		}
		return "", false
	}
	for i := 0; i < len(t); {
		r, n := utf8.DecodeRuneInString(t[i:])
		switch {
		case r < utf8.RuneSelf && ('a' <= r|0x20 && r|0x20 <= 'z'):
			if start < 0 {
				start = i
			}
			latin++
		case r >= 0x370 && r < 0x530 && unicode.IsLetter(r):
			if start < 0 {
				start = i
			}
			other++
			if confusable(r) {
				conf++
			}
		case unicode.IsLetter(r):
			if start < 0 {
				start = i
			}
			if unicode.Is(unicode.Latin, r) {
				latin++
			} else {
				other += 100 // another script: not this trick
			}
		default:
			if w, ok := check(i); ok {
				return "mixed Latin and Cyrillic or Greek letters in " + w, true
			}
		}
		i += n
	}
	if w, ok := check(len(t)); ok {
		return "mixed Latin and Cyrillic or Greek letters in " + w, true
	}
	return "", false
}
