package heuristics

import (
	"regexp"
	"strings"
)

// This file holds the rules added on the second pass over the date
// split's misses (docs/detection.md): the loud headline, the link to a
// program, the mailer name no mailer has, the opt-out by reply, the
// promise of income, and 8-bit text a MIME-aware sender left without a
// charset; then the advertising label of a subject, and the freemail
// signs of a throwaway sender (a Reply-To elsewhere, a numbered
// mailbox). Each was kept only if it hit the training part's spam far
// more often than its ham.

// hugeLetters is how many letters in a huge font make a headline, not a
// stray large initial.
const hugeLetters = 8

// htmlFontHuge: the shown HTML sets text in a huge font (SpamAssassin's
// HTML_FONT_SIZE_HUGE): <font size=6> and more, or a CSS font-size of
// 32px, 24pt, 2em. Newsletters use headings for that; bulk tools shout.
func htmlFontHuge(m *msg) (string, bool) {
	for _, p := range m.c.Parts {
		if p.Shown && p.Media == "text/html" && p.Huge >= hugeLetters {
			return "HTML sets text in a huge font", true
		}
	}
	return "", false
}

// programExtensions are the file extensions of a link that downloads a
// program Windows runs, or an installer.
var programExtensions = map[string]bool{
	"exe": true, "scr": true, "pif": true, "bat": true, "cmd": true, "vbs": true, "vbe": true,
	"msi": true, "hta": true, "cpl": true, "lnk": true, "jse": true, "wsf": true, "ps1": true, "apk": true,
}

// urlExecutable: a link in the text or HTML points at a program
// ("http://host/videolar.exe"): mail that asks its reader to run
// something from the web (SpamAssassin's URI_EXE, rspamd's
// URL_EXECUTABLE-type phishing checks).
func urlExecutable(m *msg) (string, bool) {
	for _, u := range m.c.URLs {
		if ext := urlExtension(u); programExtensions[ext] {
			return "link to a ." + ext + " file: " + u, true
		}
	}
	return "", false
}

// urlExtension returns the lower-case extension of the last path
// segment of an http, https or ftp URL, or "" (no path, no extension,
// another scheme).
func urlExtension(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	switch strings.ToLower(scheme) {
	case "http", "https", "ftp":
	default:
		return ""
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return "" // a host only: "example.com" is no .com file
	}
	seg := rest[strings.LastIndexByte(rest, '/')+1:]
	dot := strings.LastIndexByte(seg, '.')
	if dot < 0 {
		return ""
	}
	return strings.ToLower(seg[dot+1:])
}

// mailerRandom: the X-Mailer is one long run of letters and digits, upper
// and lower case mixed ("xLihQRz3QwM5E2FMVKYP7zl1QN"): a bulk tool
// filling the field with noise so that no filter can list its name
// (SpamAssassin's XM_RANDOM). Every mailer names itself in words and
// versions.
func mailerRandom(m *msg) (string, bool) {
	v := strings.TrimSpace(m.header("X-Mailer"))
	if len(v) < 12 || len(v) > 80 {
		return "", false
	}
	var upper, lower, digit int
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 'A' && c <= 'Z':
			upper++
		case c >= 'a' && c <= 'z':
			lower++
		case c >= '0' && c <= '9':
			digit++
		default:
			return "", false
		}
	}
	if upper < 3 || lower < 3 || digit < 2 {
		return "", false
	}
	return "X-Mailer is a run of random characters: " + v, true
}

// optOutByReply matches the opt-out of bulk mail sent from addresses
// that do not read what comes back: "reply with REMOVE in the subject",
// "send a blank e-mail to ... with remove", "subject: remove", "type
// remove in the subject", "in the subject line type: Remove", "reply to
// ... with "remove"".
var optOutByReply = regexp.MustCompile(`(?i)(\b(reply|respond|send|e-?mail|write)\b[^\n]{0,80}?\bremove\b[^\n]{0,40}?\bsubject\b|` +
	`\bsubject(\s+line)?\s*(:|of)\s*["'*]?remove\b|\bwith\s+["'*]?remove["'*]?\s+(in|as)\s+the\s+subject|` +
	`\b(type|put|write|enter)\s+["'*]?remove["'*]?\s+(in|into|as)\s+(the\s+)?subject|` +
	`\bin\s+the\s+subject(\s+line)?,?\s+(type|put|write|enter)\s*:?\s*["'*]?remove\b|` +
	`\breply\b[^\n]{0,80}?\bwith\s+["'*]?remove\b)`)

// removeKeys are lower-case words one of which every match of
// optOutByReply holds.
var removeKeys = []string{"remove"}

// bodyOptOutByReply: the text asks for "remove" in the subject of a
// reply to be taken off a list (SpamAssassin's REMOVE_SUBJ and kin).
// Lists that honour their subscribers link to an unsubscribe page or
// name a list server's command; "remove" by reply is the opt-out of
// mail sent to bought addresses.
func bodyOptOutByReply(m *msg) (string, bool) {
	if w := m.scanNear(optOutByReply, removeKeys); w != "" {
		return "opt-out by reply: " + strings.Join(strings.Fields(w), " "), true
	}
	return "", false
}

// moneyMaking matches the promise of income: a sum a day, week or month
// to earn, work from home, financial freedom.
var moneyMaking = regexp.MustCompile(`(?i)(\b(earn|earning|make|making|income\s+of|generate)\b[^\n]{0,30}?\$\s?\d[\d,]*(\.\d+)?\s*(k\b|\+)?\s*(per|a|an|every|each|/)\s*(day|week|month|hour)\b|` +
	`\b(work|working)\s+(from|at)\s+home\b|\bhome[\s-]based\s+business\b|\bbe\s+your\s+own\s+boss\b|\bfinancial\s+(freedom|independence)\b|` +
	`\bresidual\s+income\b|\bno\s+(recruiting|selling|experience)\s+(needed|required|necessary)\b|\bmulti[\s-]?level\s+marketing\b)`)

// moneyKeys are lower-case words one of which every match of moneyMaking
// holds.
var moneyKeys = []string{"$", "home", "boss", "financial", "residual", "needed", "required", "necessary", "level"}

// bodyMoneyMaking: the text promises an income by the day or month, work
// from home, or financial freedom (SpamAssassin's MONEY_* and
// WORK_AT_HOME-type rules).
func bodyMoneyMaking(m *msg) (string, bool) {
	if w := m.scanNear(moneyMaking, moneyKeys); w != "" {
		return "promises income: " + strings.Join(strings.Fields(w), " "), true
	}
	return "", false
}

// charset8BitUndeclared: a text part with a quoted-printable or base64
// transfer encoding, so written by a MIME-aware sender, declares no
// charset and decodes to 8-bit bytes (SpamAssassin's
// PP_MIME_FAKE_ASCII_TEXT): without a charset the part is US-ASCII
// (RFC 2045 §5.2), so its reader sees noise where the sender wrote
// windows-1252 quotes or another script. Unencoded 8-bit text without
// MIME at all is old mail, not judged.
func charset8BitUndeclared(m *msg) (string, bool) {
	for _, p := range m.c.Parts {
		if p.Encoded && p.EightBit && p.Charset == "" {
			return p.Media + " part encoded with 8-bit text and no charset", true
		}
	}
	return "", false
}

// adLabel matches the labels laws asked of unsolicited advertising in a
// subject: "ADV:" (several US states, the CAN-SPAM debate), "未承諾広告"
// (Japan's Act on Specified Commercial Transactions), "(광고)" (Korea's
// Information and Communications Network Act).
var adLabel = regexp.MustCompile(`(?i)((^|[\s\]:])adv(ertisement)?\s*:|[\[(](adv|advertisement)[\])]|未承諾広告|[\[((]\s*광\s*고\s*[\]))])`)

// subjAdvertLabel: the subject carries the label a law requires of
// unsolicited advertising (SpamAssassin's ADVERT_CODE kin): the sender
// says what the mail is.
func subjAdvertLabel(m *msg) (string, bool) {
	if w := adLabel.FindString(m.subjectText()); w != "" {
		return "subject labelled as an advertisement: " + strings.TrimSpace(w), true
	}
	return "", false
}

// freemailReplyTo: Reply-To is at a large mailbox provider and From is
// at another domain (SpamAssassin's FREEMAIL_FORGED_REPLYTO): answers go
// to a throwaway mailbox, not to the sender the From names.
func freemailReplyTo(m *msg) (string, bool) {
	ra, fa := parseAddress(m.header("Reply-To")), m.fromAddress()
	if ra == nil || fa == nil {
		return "", false
	}
	_, rdom := splitAddress(ra)
	if !freemailDomains[rdom] {
		return "", false
	}
	_, fdom := splitAddress(fa)
	if fdom == rdom {
		return "", false
	}
	return "Reply-To at " + rdom + ", From at " + fdom, true
}

// freemailDigits: the From address is at a large mailbox provider and
// its local part ends in three digits or more ("publicservice2002_121@",
// SpamAssassin's FREEMAIL_ENVFROM_END_DIGIT): the mailbox a bulk tool
// signs up for by the hundred.
func freemailDigits(m *msg) (string, bool) {
	a := m.fromAddress()
	if a == nil {
		return "", false
	}
	local, dom := splitAddress(a)
	if !freemailDomains[dom] {
		return "", false
	}
	n := 0
	for i := len(local) - 1; i >= 0 && local[i] >= '0' && local[i] <= '9'; i-- {
		n++
	}
	if n < 3 {
		return "", false
	}
	return "From " + a.Address + " ends in digits at a mailbox provider", true
}

// normalPriority matches an X-Priority field that states the default,
// normal priority: "3", "3 (Normal)", "Normal".
var normalPriority = regexp.MustCompile(`(?i)^\s*(3\b|normal\b)`)

// priorityNoMailer: the header has an X-Priority and names no mailer,
// neither X-Mailer nor User-Agent (the reasoning of SpamAssassin's
// MISSING_MIMEOLE: Outlook's fields without the rest of Outlook's
// header): a desktop mailer that writes a priority names itself,
// and none writes the normal priority unasked; bulk tools copy
// Outlook's priority fields without its name. A raised or lowered
// priority is judged only without an Importance field: Exchange turns
// a user's importance into both, without naming a mailer, as
// MS-OXCMAIL §2.2.3.2.5 asks of its clients.
func priorityNoMailer(m *msg) (string, bool) {
	p := m.header("X-Priority")
	if p == "" || m.has("X-Mailer") || m.has("User-Agent") {
		return "", false
	}
	if !normalPriority.MatchString(p) && m.has("Importance") {
		return "", false
	}
	return "X-Priority " + strings.TrimSpace(p) + " and no X-Mailer or User-Agent", true
}

// toNoAddress: the header has a To field without an address in it and
// without a group ("undisclosed-recipients:;"): blank, `""<>`, a bare
// name. RFC 5322 §3.6.3 asks for an
// address or a group in a To field; mail for hidden recipients leaves To
// out or names a group, and a bulk tool that puts every address in the
// Bcc leaves To blank.
func toNoAddress(m *msg) (string, bool) {
	if !m.has("To") {
		return "", false
	}
	if v := m.header("To"); strings.Contains(v, "@") || strings.Contains(v, ":") {
		return "", false
	}
	return "To field without an address or group", true
}

// freemailDomains are the mailbox providers anyone can sign up at for
// free, the large ones of each region (the shape of SpamAssassin's
// freemail_domains list, much shorter): those of freemailRelays and
// the others whose trace is not judged.
var freemailDomains = func() map[string]bool {
	set := map[string]bool{}
	for d := range freemailRelays {
		set[d] = true
	}
	for _, d := range []string{
		// North America and international
		"yahoo.es", "yahoo.it", "yahoo.com.br", "yahoo.co.in", "yahoo.co.jp", "yahoo.com.au", "ymail.com", "rocketmail.com",
		"hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it", "hotmail.es", "live.co.uk", "live.fr",
		"aim.com", "icloud.com", "me.com", "mac.com", "mail.com", "email.com", "usa.net", "zoho.com",
		"protonmail.com", "proton.me", "tutanota.com", "hushmail.com", "fastmail.fm", "fastmail.com",
		"excite.com", "lycos.com", "netscape.net", "juno.com", "netzero.net", "netzero.com", "flashmail.com", "zzn.com",
		// Europe
		"gmx.net", "gmx.de", "gmx.com", "web.de", "t-online.de", "freenet.de", "libero.it", "virgilio.it", "tiscali.it",
		"free.fr", "laposte.net", "orange.fr", "wanadoo.fr", "sfr.fr", "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "onet.pl",
		"mail.ru", "bk.ru", "list.ru", "inbox.ru", "yandex.ru", "yandex.com", "rambler.ru", "ukr.net",
		// Asia
		"qq.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.com.cn", "sohu.com", "tom.com", "21cn.com",
		"btamail.net.cn", "china.com", "naver.com", "hanmail.net", "daum.net", "rediffmail.com",
	} {
		set[d] = true
	}
	return set
}()

// addressField reports whether k names a field of addresses or of MIME
// structure, whose value never opens with a field name.
func addressField(k string) bool {
	for _, f := range []string{"To", "Cc", "From", "Reply-To", "Sender", "Message-ID", "Content-Type", "MIME-Version"} {
		if strings.EqualFold(k, f) {
			return true
		}
	}
	return false
}

// maxFields bounds the header fields headerNameInValue reads.
const maxFields = 200

// headerNameValue matches a field value that opens with a field name of
// its own: "X-Mailer: X-Mailer: ...", "X-Mailer: X-MSMail-Priority:
// Normal", "X-Header: Reply-To: ...".
var headerNameValue = regexp.MustCompile(`(?i)^\s*(x-[a-z0-9-]+|reply-to|from|to|cc|sender|date|message-id|content-type|mime-version|return-path)\s*:`)

// headerNameInValue: a structured or X- field's value opens with a
// field name ("X-Mailer: X-Mailer: QUALCOMM Windows Eudora"): the
// template of a bulk tool that writes a field name into what it
// fills in. Fields of free text (Subject, Comments, Keywords...) are
// not judged: "To: all staff" is a subject.
func headerNameInValue(m *msg) (string, bool) {
	fields := m.in.Msg.Header.Fields()
	for n := 0; fields.Next() && n < maxFields; n++ {
		if k := fields.Key(); !(len(k) > 2 && k[1] == '-' && (k[0] == 'x' || k[0] == 'X')) && !addressField(k) {
			continue
		}
		if v := fields.Value(); headerNameValue.MatchString(v) {
			return fields.Key() + ": " + v, true
		}
	}
	return "", false
}
