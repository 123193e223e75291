package bayes

import (
	"math/bits"
	"mime"
	"net/mail"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/net/publicsuffix"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

// Tokenizer limits. A message yields at most maxWords words of body text
// (a 10 KB message has about 1,500) and at most maxFieldWords from each
// header field, so that a huge folded Subject neither floods the model nor
// crowds the body out; each word is at most maxWordLen bytes long once
// normalised; a longer word becomes a "skip" feature that keeps only its
// first character and length class (as SpamBayes does), so that base64
// noise and long URLs do not flood the model with one-off features.
const (
	maxWords      = 8000
	maxFieldWords = 200
	maxWordLen    = 20
	minWordLen    = 2
	osbWindow     = 5 // a word is paired with each of the 4 words before it
	maxHeaderCh   = 2000
)

// tokenizer turns a message into feature hashes, and, when names is not
// nil, into the readable names of the same features (for tests, fuzzing
// and `moat bayes` diagnostics).
type tokenizer struct {
	feats []uint64
	names []string
	left  int // words the current text may still add
	// ring holds the last osbWindow-1 words of the current stream for the
	// sparse bigrams: their hashes and, in names mode, their text.
	ring  [osbWindow - 1]uint64
	rname [osbWindow - 1]string
	rlen  int
	buf   []byte
}

// Features returns the message's feature hashes, sorted and without
// duplicates: a feature counts once per message. c is the decoded view of
// the message (content.Walk); msg supplies the header.
func Features(msg *filters.Message, c *content.Content) []uint64 {
	t := &tokenizer{feats: make([]uint64, 0, 1024)}
	t.message(msg, c)
	return dedup(t.feats)
}

// Tokens returns readable names of the message's features, in the order
// they were found, with duplicates: "word", "s:subjectword", "a ~2~ b"
// for the bigram of a and b with one word between them, and so on. It is
// for diagnostics; Features is what the classifier uses.
func Tokens(msg *filters.Message, c *content.Content) []string {
	t := &tokenizer{names: make([]string, 0, 1024)}
	t.message(msg, c)
	return t.names
}

func dedup(h []uint64) []uint64 {
	if len(h) == 0 {
		return h
	}
	if len(h) < 512 {
		slices.Sort(h)
	} else {
		radixSort(h)
	}
	out := h[:1]
	for _, v := range h[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

func (t *tokenizer) message(msg *filters.Message, c *content.Content) {
	if msg != nil {
		t.header(msg.Header)
	}
	if c == nil {
		return
	}
	t.text("", c.Text)
	if lang := c.Language(); lang != "" {
		t.feature(langFeature + lang)
	}
	if c.HTML {
		t.feature("meta:html")
	}
	t.feature("meta:urls:" + bucket(len(c.URLs)))
	for _, u := range c.URLs {
		t.url(u)
	}
	for _, a := range c.Attachments {
		t.feature("att:" + clip(strings.ToLower(a.DeclaredType), 60))
		if i := strings.LastIndexByte(a.Filename, '.'); i >= 0 && len(a.Filename)-i <= 8 {
			t.feature("ext:" + strings.ToLower(a.Filename[i+1:]))
		}
	}
	for _, an := range c.Anomalies {
		t.feature("mime:" + string(an.Kind))
	}
}

// header tokenises chosen top-level header fields. The Date field (and
// the date in every Received field) is never tokenised: a corpus from one
// year would teach the model the year. Nor are X-Spam-* fields, which
// moat removes on the way in and writes itself. The mere presence of
// each field name was a feature once; it cost recall in cross-validation
// (list headers make list-relayed spam look like ham), so only the fields
// below speak.
func (t *tokenizer) header(h textproto.Header) {
	received := 0
	fields := h.FieldsByKey("Received")
	for fields.Next() {
		received++
		if received <= 3 {
			t.received(fields.Value())
		}
	}
	t.feature("rcvd:" + bucket(received))

	t.text("s:", decodeHeader(clip(h.Get("Subject"), maxHeaderCh)))
	if h.Get("Subject") == "" {
		t.feature("s:none")
	}
	t.from(h.Get("From"))
	if rt := h.Get("Reply-To"); rt != "" {
		if domainOf(rt) != domainOf(h.Get("From")) {
			t.feature("rt:otherdomain")
		}
	}
	for _, k := range []string{"To", "Cc"} {
		n := 0
		if v := h.Get(k); v != "" {
			n = strings.Count(v, "@")
		}
		t.feature(strings.ToLower(k) + ":" + bucket(n))
	}
	mailer := h.Get("X-Mailer")
	if mailer == "" {
		mailer = h.Get("User-Agent")
	}
	if mailer == "" {
		t.feature("xm:none")
	} else {
		t.text("xm:", clip(mailer, maxHeaderCh))
	}
	ct := strings.ToLower(h.Get("Content-Type"))
	if ct == "" {
		t.feature("ct:none")
	} else {
		mt, params, _ := strings.Cut(ct, ";")
		t.feature("ct:" + clip(strings.TrimSpace(mt), 60))
		if i := strings.Index(params, "charset="); i >= 0 {
			cs := strings.Trim(strings.TrimSpace(params[i+len("charset="):]), `"'`)
			if j := strings.IndexAny(cs, `"'; `); j >= 0 {
				cs = cs[:j]
			}
			t.feature("cs:" + clip(cs, 40))
		}
	}
	if cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte != "" {
		t.feature("cte:" + clip(cte, 40))
	}
	if mid := h.Get("Message-Id"); mid != "" {
		_, right, ok := strings.Cut(strings.Trim(strings.TrimSpace(mid), "<>"), "@")
		if !ok {
			t.feature("mid:noat")
		} else {
			t.feature("mid:" + clip(collapseDigits(strings.ToLower(right)), 60))
		}
	}
}

// from tokenises the author: display-name words, the address's domain
// and registered domain, and the shape of its local part.
func (t *tokenizer) from(v string) {
	if v == "" {
		t.feature("f:none")
		return
	}
	a, err := addressParser.Parse(clip(v, maxHeaderCh))
	if err != nil {
		t.feature("f:invalid")
		t.text("fn:", decodeHeader(clip(v, maxHeaderCh)))
		return
	}
	if a.Name == "" {
		t.feature("fn:none")
	} else {
		t.text("fn:", a.Name)
	}
	local, domain, _ := strings.Cut(strings.ToLower(a.Address), "@")
	t.feature("fl:" + clip(collapseDigits(local), maxWordLen))
	t.host("fd:", domain)
}

// received tokenises one Received field: the words of its from/by/with
// clauses. The date after the last ';' is dropped (RFC 5322 §3.6.7), and
// an IPv4 address keeps only its /16.
func (t *tokenizer) received(v string) {
	if i := strings.LastIndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = strings.ToLower(clip(v, maxHeaderCh))
	for _, w := range strings.FieldsFunc(v, func(r rune) bool {
		return !(r == '.' || r == '-' || r == '_' || r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9'))
	}) {
		if ip, err := netip.ParseAddr(w); err == nil && ip.Is4() {
			b := ip.As4()
			t.feature("r:ip:" + strconv.Itoa(int(b[0])) + "." + strconv.Itoa(int(b[1])))
			continue
		}
		if len(w) > 1 {
			t.feature("r:" + clip(collapseDigits(w), 60))
		}
	}
}

// url adds the host and registered domain of a link.
func (t *tokenizer) url(u string) {
	s := u
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	} else if !strings.HasPrefix(strings.ToLower(s), "www.") {
		return
	}
	if i := strings.IndexAny(s, "/?#\\"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
		t.feature("u:userinfo")
	}
	if h, _, ok := strings.Cut(s, ":"); ok {
		s = h
	}
	t.host("u:", strings.ToLower(s))
}

// host adds a host name and its registered domain under prefix; an IP
// literal is a feature of its own kind.
func (t *tokenizer) host(prefix, h string) {
	h = strings.TrimSuffix(strings.Trim(h, "[]<>\"'"), ".")
	if h == "" {
		t.feature(prefix + "empty")
		return
	}
	if _, err := netip.ParseAddr(h); err == nil {
		t.feature(prefix + "ip")
		return
	}
	h = clip(h, 100)
	t.feature(prefix + h)
	if rd, err := publicsuffix.EffectiveTLDPlusOne(h); err == nil && rd != h {
		t.feature(prefix + "rd:" + rd)
	}
}

// text splits free text into words, adds each (with prefix) and the
// sparse bigrams of each word with the four before it.
func (t *tokenizer) text(prefix, s string) {
	if s == "" {
		return
	}
	t.rlen = 0
	t.left = maxFieldWords
	if prefix == "" {
		t.left = maxWords
	}
	s = strings.ToLower(s)
	for len(s) > 0 && t.left > 0 {
		// Skip spaces, then take one whitespace-separated chunk.
		i := 0
		for i < len(s) {
			r, n := rune(s[i]), 1
			if r >= utf8.RuneSelf {
				r, n = utf8.DecodeRuneInString(s[i:])
			}
			if !unicode.IsSpace(r) {
				break
			}
			i += n
		}
		s = s[i:]
		j := 0
		for j < len(s) {
			r, n := rune(s[j]), 1
			if r >= utf8.RuneSelf {
				r, n = utf8.DecodeRuneInString(s[j:])
			}
			if unicode.IsSpace(r) {
				break
			}
			j += n
		}
		if j == 0 {
			break
		}
		t.chunk(prefix, s[:j])
		s = s[j:]
	}
}

// chunk handles one whitespace-separated piece of text: a link, an email
// address, or one or more words.
func (t *tokenizer) chunk(prefix, c string) {
	if prefix == "" && (strings.Contains(c, "://") || strings.HasPrefix(c, "www.")) {
		t.url(strings.Trim(c, "<>()[]\"',;"))
		t.word(prefix, "<url>")
		return
	}
	if at := strings.IndexByte(c, '@'); at > 0 && strings.IndexByte(c[at:], '.') > 0 && prefix == "" {
		d := strings.TrimRight(c[at+1:], ".,;:>)]\"'")
		t.host("e:", d)
		t.word(prefix, "<email>")
		return
	}
	// Split on punctuation, keeping the characters that belong inside a
	// word: letters, digits, and . - ' $ % when between other characters.
	start := -1
	for i, r := range c {
		if isWordRune(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && isJoiner(r) {
			continue
		}
		if start < 0 && r == '$' {
			start = i // a price: "$#.#"
			continue
		}
		if start >= 0 {
			t.word(prefix, c[start:i])
			start = -1
		}
		if r == '!' {
			t.word(prefix, "!")
		}
		if t.left <= 0 {
			return // "a,b,c,..." is one chunk of any number of words
		}
	}
	if start >= 0 {
		t.word(prefix, c[start:])
	}
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

func isJoiner(r rune) bool {
	return r == '.' || r == '-' || r == '\'' || r == '$' || r == '%' || r == '_'
}

// isCJK reports whether r is a letter of a script written without
// spaces between words.
func isCJK(r rune) bool {
	return r >= 0x2E80 && unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul, unicode.Thai)
}

// cjkWord splits a word holding CJK letters: each run of them gives its
// character bigrams (a lone letter gives itself), other runs are words.
func (t *tokenizer) cjkWord(prefix, w string) {
	var run []rune
	flush := func() {
		if len(run) == 1 {
			t.plainWord(prefix, string(run))
		}
		for i := 0; i+1 < len(run); i++ {
			t.plainWord(prefix, string(run[i:i+2]))
		}
		run = run[:0]
	}
	start := -1
	for i, r := range w {
		if isCJK(r) {
			if start >= 0 {
				t.plainWord(prefix, w[start:i])
				start = -1
			}
			run = append(run, r)
			continue
		}
		if len(run) > 0 {
			flush()
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		t.plainWord(prefix, w[start:])
	}
	flush()
}

// word adds one word (and its bigrams); a word holding letters of a
// script written without spaces (Han, Kana, Hangul, Thai) is split
// first, into bigrams of those letters: a whole Chinese sentence is one
// "word" between spaces, which would be a one-off feature.
func (t *tokenizer) word(prefix, w string) {
	for _, r := range w {
		if isCJK(r) {
			t.cjkWord(prefix, w)
			return
		}
	}
	t.plainWord(prefix, w)
}

// plainWord normalises one word and adds it and its bigrams.
func (t *tokenizer) plainWord(prefix, w string) {
	w = strings.TrimRight(w, ".-'_")
	if w == "" || (len(w) < minWordLen && w != "!" && w != "$") || t.left <= 0 {
		return
	}
	t.left--
	t.buf = appendNorm(t.buf[:0], w)
	var name string
	if len(t.buf) > maxWordLen {
		// SpamBayes's "skip" token: first character and length in tens.
		r, _ := utf8.DecodeRune(t.buf)
		t.buf = append(append(append(t.buf[:0], "skip:"...), string(r)...), strconv.Itoa(len(t.buf)/10*10)...)
	}
	h := hashBytes(prefix, t.buf)
	t.feats = append(t.feats, h)
	if t.names != nil {
		name = prefix + string(t.buf)
		t.names = append(t.names, name)
	}
	// Orthogonal sparse bigrams: the pair (w[i-d], w[i]) for d = 1..4,
	// each distance its own feature.
	for d := 1; d <= t.rlen; d++ {
		prev := t.ring[(t.rlen-d)%len(t.ring)]
		t.feats = append(t.feats, pairHash(prev, h, d))
		if t.names != nil {
			t.names = append(t.names, t.rname[(t.rlen-d)%len(t.ring)]+" ~"+strconv.Itoa(d)+"~ "+name)
		}
	}
	if t.rlen < len(t.ring) {
		t.ring[t.rlen] = h
		t.rname[t.rlen] = name
		t.rlen++
	} else {
		copy(t.ring[:], t.ring[1:])
		copy(t.rname[:], t.rname[1:])
		t.ring[len(t.ring)-1] = h
		t.rname[len(t.ring)-1] = name
	}
}

// radixSort sorts a in place, a byte at a time from the least
// significant (LSD radix sort): for the thousands of features of a
// message it is about four times as fast as pdqsort, which was the
// tokenizer's largest cost.
func radixSort(a []uint64) {
	buf := make([]uint64, len(a))
	src, dst := a, buf
	for shift := uint(0); shift < 64; shift += 8 {
		var count [257]int
		for _, v := range src {
			count[(v>>shift)&0xff+1]++
		}
		if count[(src[0]>>shift)&0xff+1] == len(src) {
			continue // every key has this byte: nothing moves
		}
		for i := 1; i < len(count); i++ {
			count[i] += count[i-1]
		}
		for _, v := range src {
			b := (v >> shift) & 0xff
			dst[count[b]] = v
			count[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}

// feature adds a feature given by its full name.
func (t *tokenizer) feature(name string) {
	t.feats = append(t.feats, hashBytes(name, nil))
	if t.names != nil {
		t.names = append(t.names, name)
	}
}

// appendNorm appends w with every run of digits collapsed to one '#':
// prices, dates, phone numbers and counters differ in every message, the
// fact that a number stood there does not.
func appendNorm(dst []byte, w string) []byte {
	digits := false
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= '0' && c <= '9' {
			if !digits {
				dst = append(dst, '#')
			}
			digits = true
			continue
		}
		digits = false
		dst = append(dst, c)
	}
	return dst
}

func collapseDigits(s string) string { return string(appendNorm(nil, s)) }

// bucket names a count by a small fixed set of classes.
func bucket(n int) string {
	switch {
	case n <= 2:
		return strconv.Itoa(n)
	case n <= 5:
		return "3-5"
	case n <= 10:
		return "6-10"
	case n <= 50:
		return "11-50"
	}
	return "51+"
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// wordDecoder decodes RFC 2047 encoded words in any charset go-message
// knows.
var (
	wordDecoder   = &mime.WordDecoder{CharsetReader: charset.Reader}
	addressParser = &mail.AddressParser{WordDecoder: wordDecoder}
)

func decodeHeader(v string) string { return content.DecodeHeader(v) }

func domainOf(v string) string {
	if a, err := addressParser.Parse(v); err == nil {
		_, d, _ := strings.Cut(strings.ToLower(a.Address), "@")
		return d
	}
	return ""
}

// FNV-1a, 64 bits, finished with a bit mixer so that similar names spread
// over the whole key space (the store's B-tree and cache care).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashBytes(prefix string, w []byte) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(prefix); i++ {
		h ^= uint64(prefix[i])
		h *= fnvPrime
	}
	for _, c := range w {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix(h)
}

func pairHash(a, b uint64, d int) uint64 {
	return mix(a*0x9e3779b97f4a7c15 ^ bits.RotateLeft64(b, 23) ^ uint64(d)*0xbf58476d1ce4e5b9)
}

// mix is the finaliser of SplitMix64.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// langFeature prefixes the feature of the message's language
// (content.Language): learned like any other, and read by the
// classifier to tell a language its ham has never been in.
const langFeature = "lang:"

// langHashes are the hashes of the features of content.Languages, in
// the same order.
var langHashes = func() []uint64 {
	var hs []uint64
	for _, l := range content.Languages {
		hs = append(hs, hashBytes(langFeature+l, nil))
	}
	return hs
}()

// langHashSet holds langHashes.
var langHashSet = func() map[uint64]struct{} {
	m := map[uint64]struct{}{}
	for _, h := range langHashes {
		m[h] = struct{}{}
	}
	return m
}()
