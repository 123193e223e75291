package heuristics

import (
	"fmt"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-message/charset"

	"github.com/moatmail/moat/filters/content"
)

// wordDecoder decodes RFC 2047 encoded words in From display names.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeHeader returns v with its encoded words decoded (RFC 2047).
func decodeHeader(v string) string { return content.DecodeHeader(v) }

// subjectText returns the decoded Subject.
func (m *msg) subjectText() string {
	if !m.subjectOnce {
		m.subjectOnce = true
		m.subject = decodeHeader(m.header("Subject"))
	}
	return m.subject
}

// replyPrefix matches the reply and forward prefixes and list tags that
// start a subject.
var replyPrefix = regexp.MustCompile(`^(?i)(\s*((re|fw|fwd|aw|wg|sv|vs|tr)\s*(\[\d+\])?\s*:|\[[^\]]{1,40}\]))+\s*`)

// subjAllCaps: a subject of at least ten letters, none of them lower case
// (SpamAssassin's SUBJ_ALL_CAPS).
func subjAllCaps(m *msg) (string, bool) {
	s := replyPrefix.ReplaceAllString(m.subjectText(), "")
	letters := 0
	for _, r := range s {
		switch {
		case unicode.IsLower(r):
			return "", false
		case unicode.IsUpper(r):
			letters++
		}
	}
	return "subject in capitals", letters >= 10
}

// moneySubject matches a subject about money: amounts, earnings, loans and
// rates, free money.
var moneySubject = regexp.MustCompile(`(?i)(\$\s?\d|\d\s?\$|\d+\s?%\s*(off|discount|free|interest)|` +
	`\b(cash|earn|income|profits?|millions?|dollars|loans?|mortgage|refinanc\w*|debts?|credit\s+(card|rating|report)|` +
	`lowest\s+rates?|free\s+(money|cash|gift|offer|trial|quote|info)|make\s+money|extra\s+money|get\s+paid|` +
	`work\s+(from|at)\s+home|financial\s+freedom|no\s+cost|casino|lottery|jackpot|prize)\b)`)

// subjMoney: a subject about money.
func subjMoney(m *msg) (string, bool) {
	s := m.subjectText()
	if w := moneySubject.FindString(s); w != "" {
		return "subject about money: " + w, true
	}
	return "", false
}

// urgentSubject matches a subject that presses for action.
var urgentSubject = regexp.MustCompile(`(?i)(!!!|\b(urgent|act\s+now|limited\s+time|last\s+chance|final\s+notice|` +
	`expires?\s+(today|soon)|don'?t\s+miss|hurry|immediate(ly)?|respond\s+now|reply\s+now|order\s+now|` +
	`while\s+supplies\s+last|time\s+is\s+running\s+out|once\s+in\s+a\s+lifetime|attn|attention)\b)`)

// subjUrgent: a subject that presses for action.
func subjUrgent(m *msg) (string, bool) {
	s := m.subjectText()
	if w := urgentSubject.FindString(s); w != "" {
		return "subject presses: " + w, true
	}
	return "", false
}

// trailingTag matches a subject that ends in a run of six or more blanks
// and one short token after the words.
var trailingTag = regexp.MustCompile(`\S[ \t]{6,}(\S{1,12})[ \t]*$`)

// subjTrailingTag: the words of the subject, a wide gap, and a short
// token ("you don't satisfy me               FGTPRIL", "Get the Child
// Support You Deserve                      10.124"): a random tag that
// bulk senders append so that no two copies share a subject, pushed out
// of sight by the blanks. On the corpus's training part it is in 12.7 %
// of the spam and no ham.
func subjTrailingTag(m *msg) (string, bool) {
	if w := trailingTag.FindStringSubmatch(m.subjectText()); w != nil {
		return "subject ends in a gap and a tag: " + w[1], true
	}
	return "", false
}

// addrInText finds an e-mail address in a display name.
var addrInText = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+\.)+[A-Za-z]{2,}`)

// fromNameAddr: the From display name holds an address of another
// registered domain than the From address ("service@bank.example"
// <x@elsewhere.example>): the reader sees the name (rspamd's
// SPOOF_DISPLAY_NAME).
func fromNameAddr(m *msg) (string, bool) {
	a := m.fromAddress()
	if a == nil || a.Name == "" {
		return "", false
	}
	inName := addrInText.FindString(a.Name)
	if inName == "" {
		return "", false
	}
	_, nameDom, _ := strings.Cut(strings.ToLower(inName), "@")
	_, fromDom, _ := strings.Cut(strings.ToLower(a.Address), "@")
	if fromDom == "" || registeredDomain(nameDom) == registeredDomain(fromDom) {
		return "", false
	}
	return "display name holds " + inName + ", the address is at " + fromDom, true
}

// Message-ID forms of the mailers whose signature spam forges.
var (
	// Outlook and Outlook Express (5 to 2016, and Windows Mail):
	// "<000801c24a1b$3e5f2a40$0a01a8c0@host>".
	outlookMID = regexp.MustCompile(`^<[0-9A-Fa-f]{12}\$[0-9A-Fa-f]{8}\$[0-9A-Fa-f]{8}@[^>]+>$`)
	// Outlook 98 and 2000 in Internet-Mail-Only mode:
	// "<BCEFLMCEIJHPCPLGADJIGEEFCAAA.user@example.com>".
	outlookIMOMID = regexp.MustCompile(`^<[A-P]{28}\.[^@>]+@[^>]+>$`)
	// Netscape, Mozilla and Thunderbird before 2016: "<3D5E1A2B.5060708@example.com>";
	// Thunderbird since and Apple Mail: a UUID "<0F4C3E2A-...-...@example.com>".
	mozillaMID = regexp.MustCompile(`^<[0-9A-Fa-f]{8}\.[0-9A-Fa-f]{4,8}@[^>]+>$`)
	uuidMID    = regexp.MustCompile(`^<[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}@[^>]+>$`)
	// The Date Outlook writes: "Wed, 21 Aug 2002 10:12:34 +0100".
	outlookDate = regexp.MustCompile(`^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}(:\d{2})? [+-]\d{4}( \([^)]*\))?$`)
)

// webmailMID reports whether a Message-ID was written by a webmail
// service that sends for a desktop mailer (Hotmail's DAV gateway for
// Outlook Express) or by a list server that replaces it.
func webmailMID(mid string) bool {
	l := strings.ToLower(mid)
	return strings.HasSuffix(l, "@hotmail.com>") || strings.HasSuffix(l, "@msn.com>") || strings.HasPrefix(l, "<dav")
}

// forgedMUA: the X-Mailer or User-Agent names Outlook, Outlook Express,
// Netscape, Mozilla, Thunderbird or Apple Mail, and the Message-ID is not
// of the form that mailer writes, or (Outlook) the Date is not
// (SpamAssassin's FORGED_MUA_OUTLOOK, FORGED_MUA_MOZILLA...): bulk tools
// borrow a mailer's name, rarely its habits. Mailers that leave the
// Message-ID to the server (Outlook Express for the Macintosh) and
// Message-IDs written by webmail gateways are not judged. Header order
// is not judged: relays and list servers reorder too much of it.
func forgedMUA(m *msg) (string, bool) {
	ua := m.header("X-Mailer")
	if ua == "" {
		ua = m.header("User-Agent")
	}
	if ua == "" {
		return "", false
	}
	mid := strings.TrimSpace(m.header("Message-ID"))
	if mid == "" || webmailMID(mid) {
		return "", false
	}
	var name string
	var fits func(string) bool
	checkDate := false
	switch l := strings.ToLower(ua); {
	case strings.Contains(l, "macintosh"):
		return "", false
	case strings.HasPrefix(l, "microsoft outlook"), strings.HasPrefix(l, "microsoft office outlook"),
		strings.HasPrefix(l, "microsoft windows mail"):
		name, checkDate = "Outlook", true
		fits = func(s string) bool { return outlookMID.MatchString(s) || outlookIMOMID.MatchString(s) }
	case strings.Contains(l, "thunderbird"), strings.HasPrefix(l, "mozilla 4."), strings.HasPrefix(l, "mozilla/5.0") && strings.Contains(l, "gecko"):
		name = "Mozilla"
		fits = func(s string) bool { return mozillaMID.MatchString(s) || uuidMID.MatchString(s) }
	case strings.HasPrefix(l, "apple mail"), strings.HasPrefix(l, "iphone mail"), strings.HasPrefix(l, "ipad mail"):
		name, fits = "Apple Mail", uuidMID.MatchString
	default:
		return "", false
	}
	if !fits(mid) {
		return "X-Mailer claims " + name + ", the Message-ID is not of its form", true
	}
	if date := strings.TrimSpace(m.header("Date")); checkDate && date != "" && !outlookDate.MatchString(date) {
		return "X-Mailer claims " + name + ", the Date is not of its form", true
	}
	return "", false
}

// parseDate reads an RFC 5322 date-time, with comments and runs of white
// space tolerated.
func parseDate(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if t, err := mail.ParseDate(v); err == nil {
		return t, true
	}
	var b strings.Builder
	depth := 0
	for _, r := range v {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	t, err := mail.ParseDate(strings.Join(strings.Fields(b.String()), " "))
	return t, err == nil
}

// maxReceived bounds the Received fields read.
const maxReceived = 50

// receivedTime returns the time the first hop received the message: the
// date of the bottom Received field that has one (RFC 5321 §4.4: each
// hop prepends its own, so the last field is the first hop), or, when
// none has, the time moat received it. The first hop rather than the
// latest, so that a message held by a list moderator or fetched again
// days later is judged by when it was first sent.
func (m *msg) receivedTime() (time.Time, bool) {
	fields := m.in.Msg.Header.FieldsByKey("Received")
	var first time.Time
	found := false
	for n := 0; fields.Next() && n < maxReceived; n++ {
		v := fields.Value()
		if i := strings.LastIndexByte(v, ';'); i >= 0 {
			if t, ok := parseDate(v[i+1:]); ok {
				first, found = t, true
			}
		}
	}
	if found {
		return first, true
	}
	if m.in.Conn != nil && !m.in.Conn.Start.IsZero() {
		return m.in.Conn.Start, true
	}
	return time.Time{}, false
}

// dateSkew returns Date minus the received time, computed once.
func (m *msg) dateSkew() (time.Duration, bool) {
	if !m.skewDone {
		m.skewDone = true
		m.skew, m.skewOK = m.computeSkew()
	}
	return m.skew, m.skewOK
}

func (m *msg) computeSkew() (time.Duration, bool) {
	d, ok := parseDate(m.header("Date"))
	if !ok {
		return 0, false
	}
	r, ok := m.receivedTime()
	if !ok {
		return 0, false
	}
	return d.Sub(r), true
}

// Bounds of the Date rules: SpamAssassin's DATE_IN_FUTURE_12_24 and
// DATE_IN_PAST_96_XX bands, where its hits are nearly all spam (a clock
// off by an hour or a time zone is a mistake, not a sign).
const (
	futureSkew = 12 * time.Hour
	pastSkew   = 96 * time.Hour
)

// dateFuture: the Date is more than 12 hours after the message was
// received: spamware that dates its mail ahead to stay on top of the
// inbox.
func dateFuture(m *msg) (string, bool) {
	d, ok := m.dateSkew()
	if !ok || d <= futureSkew {
		return "", false
	}
	return fmt.Sprintf("Date %s after the message was received", d.Round(time.Hour)), true
}

// datePast: the Date is more than 96 hours before the message was
// received: a queue that old is rare, a forged date is not.
func datePast(m *msg) (string, bool) {
	d, ok := m.dateSkew()
	if !ok || d >= -pastSkew {
		return "", false
	}
	return fmt.Sprintf("Date %s before the message was received", (-d).Round(time.Hour)), true
}

// unsubscribeText matches the opt-out instructions of bulk mail.
var unsubscribeText = regexp.MustCompile(`(?i)\b(unsubscribe|opt[\s-]?out|to\s+be\s+removed|removed?\s+from\s+(our|this|the|future)\b|` +
	`no\s+longer\s+wish\s+to\s+receive|remove\s+(yourself|me)|(reply|email)\s+with\s+"?remove)`)

// optOutLink reports whether a link looks like an unsubscribe link: an
// honest sender that forgot List-Unsubscribe still gives one.
func optOutLink(u string) bool {
	l := strings.ToLower(u)
	return strings.Contains(l, "unsub") || strings.Contains(l, "optout") || strings.Contains(l, "opt-out") ||
		strings.Contains(l, "opt_out") || strings.Contains(l, "remove")
}

// bulkNoUnsub: the message has the structure of bulk mail (opt-out
// instructions in the text) but no List-Unsubscribe field (RFC 2369), which
// every honest bulk sender writes and RFC 8058 asks for, and no
// unsubscribe link either: the reader is to reply "remove", which confirms
// the address to the sender. Mail through a mailing list (List-Id, RFC
// 2919) is not judged.
func bulkNoUnsub(m *msg) (string, bool) {
	if m.has("List-Unsubscribe") || m.has("List-Id") {
		return "", false
	}
	for _, u := range m.c.URLs {
		if optOutLink(u) {
			return "", false
		}
	}
	for _, a := range m.c.Anchors {
		if unsubscribeText.MatchString(a.Text) {
			return "", false // an unsubscribe link through a click tracker
		}
	}
	t := m.c.Text
	// The opt-out sits at the bottom, or the top: read both ends.
	const window = 8 << 10
	if len(t) > 2*window {
		t = t[:window] + "\n" + t[len(t)-window:]
	}
	if w := findNear(t, unsubscribeText, optOutKeys); w != "" {
		return "opt-out instructions (" + w + ") without List-Unsubscribe", true
	}
	return "", false
}

// optOutKeys are lower-case words one of which every match of
// unsubscribeText holds.
var optOutKeys = []string{"unsub", "opt", "remov", "no longer wish"}

// maxWindows bounds the places findNear runs its expression at.
const maxWindows = 32

// findNear returns the first match of re in t, looking only around the
// places where one of keys (lower case) occurs: a keyword search is
// cheap, running the expression over all of a long text is not.
func findNear(t string, re *regexp.Regexp, keys []string) string {
	return findNearLower(t, lowerIndexable(t), re, keys)
}

// lowerIndexable returns t in lower case such that indexes into it are
// indexes into t.
func lowerIndexable(t string) string {
	lower := strings.ToLower(t)
	if len(lower) != len(t) {
		lower = asciiLower(t)
	}
	return lower
}

// findNearLower is findNear with t's lower-case form (lowerIndexable)
// given, for texts several rules search.
func findNearLower(t, lower string, re *regexp.Regexp, keys []string) string {
	windows := 0
	for _, k := range keys {
		for from := 0; windows < maxWindows; windows++ {
			i := strings.Index(lower[from:], k)
			if i < 0 {
				break
			}
			i += from
			lo, hi := max(i-40, 0), min(i+len(k)+60, len(t))
			if w := re.FindString(t[lo:hi]); w != "" {
				return w
			}
			from = i + len(k)
		}
	}
	return ""
}

// asciiLower returns t with its ASCII letters in lower case and every
// other byte as it is, so that indexes into it are indexes into t.
func asciiLower(t string) string {
	b := []byte(t)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// charset8BitASCII: a text part that declares charset=us-ascii holds 8-bit
// bytes (RFC 2046 §4.1.2: US-ASCII has none): text written so that a
// filter reads it in another charset than the reader's program.
func charset8BitASCII(m *msg) (string, bool) {
	for _, p := range m.c.Parts {
		if p.EightBit && (p.Charset == "us-ascii" || p.Charset == "ascii") {
			return p.Media + " declares us-ascii and holds 8-bit bytes", true
		}
	}
	return "", false
}

// charsetScript returns the script a charset is made for: "cyrillic",
// "cjk", "greek", "latin", or "" for a charset for every script (UTF-8)
// or one not listed.
func charsetScript(cs string) string {
	switch cs {
	case "koi8-r", "koi8-u", "windows-1251", "cp1251", "iso-8859-5", "ibm866", "cp866", "x-mac-cyrillic":
		return "cyrillic"
	case "gb2312", "gbk", "gb18030", "x-gbk", "cp936", "big5", "big5-hkscs", "x-big5", "euc-kr", "ks_c_5601-1987",
		"ks_c_5601", "cp949", "iso-2022-kr", "iso-2022-jp", "shift_jis", "shift-jis", "x-sjis", "euc-jp", "hz-gb-2312", "euc-cn":
		return "cjk"
	case "iso-8859-7", "windows-1253":
		return "greek"
	case "", "us-ascii", "iso-8859-1", "iso-8859-15", "windows-1252", "cp1252", "latin1":
		return "latin"
	}
	return ""
}

// charsetMismatch: a part declares a Cyrillic, CJK or Greek charset and
// its text has none of that script's letters, only Latin ones; or it
// declares a Western charset and decodes to a text made largely of
// accented letters, which is how text of another script looks when it is
// labelled Latin-1. Either way the label was not written by the program
// that wrote the text.
func charsetMismatch(m *msg) (string, bool) {
	for _, p := range m.c.Parts {
		l := p.Letters
		total := l.Total()
		if total < 50 {
			continue
		}
		switch script := charsetScript(p.Charset); script {
		case "cyrillic", "cjk", "greek":
			own := map[string]int{"cyrillic": l.Cyrillic, "cjk": l.CJK, "greek": l.Greek}[script]
			if own == 0 && l.ASCII+l.Latin == total {
				return fmt.Sprintf("%s declares %s and holds only Latin letters", p.Media, p.Charset), true
			}
		case "latin":
			if 10*l.Latin >= 3*total {
				return fmt.Sprintf("%s declares %s and %d of its %d letters are accented", p.Media, charsetLabel(p.Charset), l.Latin, total), true
			}
		}
	}
	return "", false
}

// charsetLabel names a declared charset, "none" for none.
func charsetLabel(cs string) string {
	if cs == "" {
		return "no charset"
	}
	return cs
}
