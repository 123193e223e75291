package heuristics

import (
	"encoding/base64"
	"net/netip"
	"regexp"
	"strings"
)

// This file holds the rules added after the date split (docs/bayes.md)
// showed which spam the first set let through: the sender's trace and
// signature (Received fields that contradict the From, a HELO that is
// another address) and the phrases of bulk and advance-fee mail.

// freemailRelays maps the domains of large mailbox providers to the
// names their own servers write in the Received fields of mail their
// users send (Yahoo's "web12.mail.yahoo.com", Hotmail's "hotmail.com"
// pickup service...). Only providers whose own hop is always in the
// trace are listed.
var freemailRelays = map[string][]string{
	"yahoo.com":      {"yahoo.com", "yahoo.net"},
	"yahoo.co.uk":    {"yahoo.com", "yahoo.net", "yahoo.co.uk"},
	"yahoo.ca":       {"yahoo.com", "yahoo.net", "yahoo.ca"},
	"yahoo.fr":       {"yahoo.com", "yahoo.net", "yahoo.fr"},
	"yahoo.de":       {"yahoo.com", "yahoo.net", "yahoo.de"},
	"hotmail.com":    {"hotmail.com", "msn.com", "outlook.com", "hotmail.msn.com"},
	"msn.com":        {"hotmail.com", "msn.com", "outlook.com"},
	"outlook.com":    {"hotmail.com", "msn.com", "outlook.com"},
	"live.com":       {"hotmail.com", "msn.com", "outlook.com", "live.com"},
	"aol.com":        {"aol.com", "aol.net"},
	"gmail.com":      {"google.com", "gmail.com"},
	"googlemail.com": {"google.com", "gmail.com"},
}

// forgedFreemail: the From address is at a large mailbox provider
// (Yahoo, Hotmail, AOL, Gmail) and no Received field names that
// provider's servers: the message never passed through the provider it
// claims (SpamAssassin's FORGED_YAHOO_RCVD, FORGED_HOTMAIL_RCVD2).
// Today DMARC says the same when the provider publishes p=reject; this
// holds where no signature is checked, and for the providers' older mail
// the trace alone shows. A message without a Received field (submitted
// straight to moat) is not judged. The HELO names the trace records
// are not read: a spam tool says "HELO yahoo.com" as easily as it writes
// the From.
func forgedFreemail(m *msg) (string, bool) {
	a := m.fromAddress()
	if a == nil {
		return "", false
	}
	_, dom := splitAddress(a)
	relays, ok := freemailRelays[dom]
	if !ok {
		return "", false
	}
	fields := m.in.Msg.Header.FieldsByKey("Received")
	n := 0
	for ; fields.Next() && n < maxReceived; n++ {
		v := withoutHELO(strings.ToLower(fields.Value()))
		for _, r := range relays {
			if strings.Contains(v, r) {
				return "", false
			}
		}
	}
	if n == 0 {
		return "", false
	}
	return "From is at " + dom + ", no Received field names its servers", true
}

// heloName matches the name a client gave in HELO as Received fields
// record it: the word after "from" when a parenthesis with what the
// server saw follows ("from yahoo.com (dsl-1.example.net [192.0.2.1])"),
// and Exim's "helo=" inside it.
var heloName = regexp.MustCompile(`^\s*from\s+\S+(\s+\()|\bhelo=[^\s)]+`)

// withoutHELO returns a lower-case Received field without the HELO names
// the client chose: anyone can say "HELO yahoo.com", only Yahoo's servers
// are named so in the reverse DNS and the "by" part.
func withoutHELO(v string) string {
	return heloName.ReplaceAllString(v, "$1")
}

// heloIP matches the start of a Received field whose HELO name is an
// IPv4 address ("from 10.1.2.3 (...)" or "from [10.1.2.3] (...)"), and
// bracketIP an address in brackets: the address the receiving server
// saw.
var (
	heloIP    = regexp.MustCompile(`^\s*from\s+\[?(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\]?[\s(]`)
	bracketIP = regexp.MustCompile(`\[(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\]`)
)

// rcvdHELOIPMismatch: a Received field records a HELO that is an IP
// address other than the address the server saw the client connect
// from (SpamAssassin's RCVD_HELO_IP_MISMATCH): a client that names
// itself by an address not its own is ratware or a proxy hiding the
// sender. An address in a private or loopback range on either side is
// not judged (NAT and internal hops say such things honestly).
func rcvdHELOIPMismatch(m *msg) (string, bool) {
	fields := m.in.Msg.Header.FieldsByKey("Received")
	for n := 0; fields.Next() && n < maxReceived; n++ {
		v := fields.Value()
		h := heloIP.FindStringSubmatch(v)
		if h == nil {
			continue
		}
		helo, err := netip.ParseAddr(h[1])
		if err != nil || !publicAddr(helo) {
			continue
		}
		rest := v[len(h[0]):]
		if i := strings.Index(strings.ToLower(rest), " by "); i >= 0 {
			rest = rest[:i]
		}
		b := bracketIP.FindStringSubmatch(rest)
		if b == nil {
			continue
		}
		seen, err := netip.ParseAddr(b[1])
		if err != nil || !publicAddr(seen) || seen == helo {
			continue
		}
		return "HELO " + helo.String() + " from " + seen.String(), true
	}
	return "", false
}

func publicAddr(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback()
}

// genericGreeting matches a salutation without a name at the start of
// a line: "Dear Friend," "Dear Sir/Madam" (SpamAssassin's
// DEAR_SOMETHING): mail that does not know whom it is written to.
var genericGreeting = regexp.MustCompile(`(?im)^[ \t*>-]{0,4}(dear|hello|greetings)\s+(friends?|sirs?|madams?|sirs?\s*/\s*madams?|sirs?\s+or\s+madams?|` +
	`(valued\s+)?(customers?|members?|subscribers?|guests?|clients?)|beneficiary|partner|recipient|colleague|shopper|investor|home\s?owner|` +
	`webmaster|account\s+holder|winner|business\s+owner|entrepreneur|applicant|internet\s+user|e-?mail\s+user)\b`)

// greetingWindow is how much of the text's opening is read for a
// salutation: a line or two of preamble (an opt-out notice) may come
// first.
const greetingWindow = 1000

// bodyGenericGreeting: a line near the start of the shown text opens
// with a salutation that names nobody ("Dear Friend"). Only the opening
// is read, and a quoted line ("> Dear Friend") is not judged: a reply
// quoting such mail is not it.
func bodyGenericGreeting(m *msg) (string, bool) {
	t := m.c.Text
	if len(t) > greetingWindow {
		t = t[:greetingWindow]
	}
	for _, loc := range genericGreeting.FindAllStringIndex(t, 4) {
		g := t[loc[0]:loc[1]]
		if strings.Contains(g, ">") {
			continue
		}
		return "opens with " + strings.Join(strings.Fields(strings.Trim(g, " \t*-")), " "), true
	}
	return "", false
}

// bEncodedWord matches an RFC 2047 encoded word in base64 ("B").
var bEncodedWord = regexp.MustCompile(`=\?[^?\s]{1,40}\?[bB]\?([A-Za-z0-9+/]+={0,2})\?=`)

// encodedASCII: a From or Subject field with base64 encoded words
// (RFC 2047 "B") that all decode to plain ASCII (SpamAssassin's
// FROM_EXCESS_BASE64): mailers encode what ASCII cannot say; bulk tools
// encode to hide words from filters that read the raw header. The words
// are decoded here, not by a header decoder: one glued to other text
// ("=?iso-2022-jp?B?...?=@example.jp", which RFC 2047 does not allow
// and decoders leave as it is) counts too.
func encodedASCII(m *msg) (string, bool) {
	for _, key := range []string{"From", "Subject"} {
		words := bEncodedWord.FindAllStringSubmatch(m.header(key), 8)
		if len(words) == 0 {
			continue
		}
		ascii := true
		for _, w := range words {
			b, err := base64.StdEncoding.DecodeString(w[1])
			if err != nil {
				b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(w[1], "="))
			}
			if err != nil || len(b) == 0 {
				ascii = false
				break
			}
			for _, c := range b {
				if c >= 0x80 || c == 0x1b { // ESC: ISO-2022 text
					ascii = false
					break
				}
			}
		}
		if ascii {
			return key + " holds base64 encoded words of plain ASCII", true
		}
	}
	return "", false
}

// bulkExcuse matches the sentences bulk mail writes to say it is not
// what it is: "this is not spam", a claim of compliance with a bill
// ("Bill S.1618", "Section 301"), "one-time mailing".
var bulkExcuse = regexp.MustCompile(`(?i)\b(this\s+(e-?mail|message|mailing|offer)\s+is\s+not\s+(an?\s+)?(spam|unsolicited)|` +
	`is\s+not\s+unsolicited|(do\s+not|don't)\s+(intend|want|wish|mean)\s+to\s+(send\s+)?(you\s+)?(spam|unsolicited)|bill\s+s\.?\s*1618|section\s+301|one[\s-]time\s+(e-?mail|mailing|message|offer)|` +
	`sent\s+in\s+compliance\s+with|under\s+(the\s+)?(federal|new)\s+(legislation|law|regulations?))`)

// bodyBulkExcuse: the text claims it is not spam, or that a law allows
// it (SpamAssassin's EXCUSE_* and BILL_1618 rules).
func bodyBulkExcuse(m *msg) (string, bool) {
	if w := m.scanNear(bulkExcuse, excuseKeys); w != "" {
		return "the text says " + strings.Join(strings.Fields(w), " "), true
	}
	return "", false
}

// excuseKeys are lower-case words one of which every match of bulkExcuse
// holds.
var excuseKeys = []string{"spam", "unsolicited", "1618", "301", "one", "complian", "legislation", "law", "regulation"}

// millions matches a sum of millions in a currency (advance-fee fraud:
// "US$25.5 million", "$10,000,000", "twenty million dollars").
var millions = regexp.MustCompile(`(?i)((\bus\s?)?\$\s?\d{1,3}(,\d{3}){2,}|\b(us\s?\$|usd|\$|£|€|gbp|eur)\s?\d+([.,]\d+)?\s*(m\b|million|billion)|` +
	`\b\w+(\s\w+)?\s+(million|billion)\s+(united\s+states\s+|us\s+|u\.s\.\s+)?(dollars|pounds|euros?)\b|\b\d+([.,]\d+)?\s*(million|billion)\s+(united\s+states\s+|us\s+|u\.s\.\s+)?(dollars|pounds|euros?|usd)\b)`)

// bodyMillions: the text names a sum of millions in a currency
// (SpamAssassin's LOTS_OF_MONEY without its words for thousands):
// advance-fee fraud promises millions; ham rarely names them.
func bodyMillions(m *msg) (string, bool) {
	if w := m.scanNear(millions, millionKeys); w != "" {
		return "a sum of millions: " + strings.Join(strings.Fields(w), " "), true
	}
	return "", false
}

// millionKeys are lower-case words or signs one of which every match of
// millions holds.
var millionKeys = []string{"million", "billion", ",000,000"}

// qpLongLine: a quoted-printable text/plain part has an encoded line
// longer than the 76 characters RFC 2045 §6.7 allows (SpamAssassin's
// MIME_QP_LONG_LINE, for plain text only): every mail program wraps its
// quoted-printable; bulk tools that write the encoding themselves often
// do not. HTML is not judged: newsletter systems write long HTML lines
// as often as bulk tools do (12 of the 196 newsletters of the corpus's
// training part).
func qpLongLine(m *msg) (string, bool) {
	for _, p := range m.c.Parts {
		if p.QPLongLine && p.Media == "text/plain" {
			return p.Media + " part with a quoted-printable line over 76 characters", true
		}
	}
	return "", false
}

// weightLoss matches the promises of diet-pill spam: a number of pounds
// or kilos to lose, or a diet or weight-loss product
// (SpamAssassin's DIET_1).
var weightLoss = regexp.MustCompile(`(?i)\b((lose|loose|burn|drop|shed)\s+(up\s+to\s+)?\d+([.,-]\d+)?\+?\s*(lbs?|pounds|kilos?|kg)\b|` +
	`(diet|weight[\s-]loss|fat[\s-]burning)\s+(pills?|patch(es)?|formula|breakthrough|supplements?))`)

// bodyWeightLoss: the subject or the text promises weight loss by the
// pound, or sells diet pills.
func bodyWeightLoss(m *msg) (string, bool) {
	if w := m.scanNear(weightLoss, weightKeys); w != "" {
		return "weight loss: " + strings.Join(strings.Fields(w), " "), true
	}
	return "", false
}

// weightKeys are lower-case words one of which every match of
// weightLoss holds.
var weightKeys = []string{"lose", "loose", "burn", "drop", "shed", "diet", "weight", "fat"}
