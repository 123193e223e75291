package heuristics

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
)

// baseHeader is the header of an ordinary message; fixtures replace or
// add fields.
var baseHeader = map[string]string{
	"Received":   "from mail.example.org (mail.example.org [198.51.100.7]) by mx.example.com; Mon, 5 Aug 2002 10:00:00 +0000",
	"From":       "Alice <alice@example.org>",
	"To":         "bob@example.com",
	"Subject":    "Lunch on Thursday",
	"Date":       "Mon, 5 Aug 2002 09:59:00 +0000",
	"Message-ID": "<20020805095900.GA1234@example.org>",
}

// fieldOrder is the order fixtures write the header in.
var fieldOrder = []string{"Received", "From", "To", "Subject", "Date", "Message-ID", "X-Priority", "Importance", "X-Mailer", "User-Agent", "X-Header",
	"Reply-To", "List-Unsubscribe", "List-Id", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}

// build returns a message with the base header changed by fields ("" drops
// a field) and body; CRLF line ends.
func build(fields map[string]string, body string) []byte {
	h := map[string]string{}
	for k, v := range baseHeader {
		h[k] = v
	}
	for k, v := range fields {
		h[k] = v
	}
	var b strings.Builder
	for _, k := range fieldOrder {
		if v := h[k]; v != "" {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	b.WriteString("\n" + body)
	return []byte(strings.ReplaceAll(strings.ReplaceAll(b.String(), "\r\n", "\n"), "\n", "\r\n"))
}

// html returns the fields of a single-part HTML message.
func htmlPart() map[string]string {
	return map[string]string{"MIME-Version": "1.0", "Content-Type": "text/html; charset=us-ascii"}
}

// qpPart returns the fields of a single-part quoted-printable message of
// the media type.
func qpPart(media string) map[string]string {
	return map[string]string{"MIME-Version": "1.0", "Content-Type": media + "; charset=us-ascii", "Content-Transfer-Encoding": "quoted-printable"}
}

// with returns a copy of a with b's entries added.
func with(a map[string]string, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// alternative returns a multipart/alternative body of plain and html.
func alternative(plain, html string) (map[string]string, string) {
	return map[string]string{"MIME-Version": "1.0", "Content-Type": `multipart/alternative; boundary="b"`},
		"--b\nContent-Type: text/plain; charset=us-ascii\n\n" + plain + "\n--b\nContent-Type: text/html; charset=us-ascii\n\n" + html + "\n--b--\n"
}

const prose = "Thanks for the notes from yesterday. I read them on the train and I think the plan holds, " +
	"though the second milestone looks tight. Can we talk it over on Thursday at noon?\n"

func TestRules(t *testing.T) {
	altFields, altBody := alternative(prose, "<p>"+prose+"</p>")
	shortFields, shortBody := alternative("See the HTML.", "<p>"+strings.Repeat(prose, 10)+"</p>")
	tests := []struct {
		name   string
		sym    string
		fields map[string]string
		body   string
		hit    bool
	}{
		{"yahoo without yahoo's servers", SymForgedFreemail, map[string]string{"From": "Jane <jane123@yahoo.com>"}, prose, true},
		{"yahoo through yahoo", SymForgedFreemail, map[string]string{"From": "Jane <jane123@yahoo.com>",
			"Received": "from [203.0.113.5] by web12.mail.yahoo.com via HTTP; Mon, 5 Aug 2002 09:59:00 +0000"}, prose, false},
		{"hotmail through hotmail", SymForgedFreemail, map[string]string{"From": "jim@hotmail.com",
			"Received": "from mail pickup service by hotmail.com with Microsoft SMTPSVC; Mon, 5 Aug 2002 09:59:00 +0000"}, prose, false},
		{"yahoo by a HELO only", SymForgedFreemail, map[string]string{"From": "BILSAG <bilsag@yahoo.com>",
			"Received": "from abn161-55.kablonet.net.tr ([195.174.161.55] helo=yahoo.com) by list1.example.net with smtp; Sun, 25 Aug 2002 12:19:24 -0700"}, prose, true},
		{"yahoo by a sendmail HELO only", SymForgedFreemail, map[string]string{"From": "BILSAG <bilsag@yahoo.com>",
			"Received": "from yahoo.com (dsl-1.example.net [192.0.2.1]) by mx.example.com; Sun, 25 Aug 2002 12:19:24 -0700"}, prose, true},
		{"other domain", SymForgedFreemail, nil, prose, false},
		{"no Received at all", SymForgedFreemail, map[string]string{"From": "jim@aol.com", "Received": ""}, prose, false},

		{"HELO another address", SymHELOIPMismatch, map[string]string{"Received": "from 203.0.113.9 ([198.51.100.20]) by mx.example.com; Mon, 5 Aug 2002 10:00:00 +0000"}, prose, true},
		{"HELO in brackets", SymHELOIPMismatch, map[string]string{"Received": "from [203.0.113.9] (helo.example [198.51.100.20]) by mx.example.com; Mon, 5 Aug 2002 10:00:00 +0000"}, prose, true},
		{"HELO its own address", SymHELOIPMismatch, map[string]string{"Received": "from 198.51.100.20 ([198.51.100.20]) by mx.example.com; Mon, 5 Aug 2002 10:00:00 +0000"}, prose, false},
		{"HELO a private address", SymHELOIPMismatch, map[string]string{"Received": "from 192.168.1.5 ([198.51.100.20]) by mx.example.com; Mon, 5 Aug 2002 10:00:00 +0000"}, prose, false},
		{"HELO a name", SymHELOIPMismatch, nil, prose, false},

		{"dear friend", SymGenericGreeting, nil, "Dear Friend,\n\nI am writing to you in confidence.\n", true},
		{"dear sir/madam", SymGenericGreeting, nil, "DEAR SIR / MADAM:\nWe offer...\n", true},
		{"dear valued customer", SymGenericGreeting, nil, "  Dear valued customer, your account...\n", true},
		{"dear with a name", SymGenericGreeting, nil, "Dear Bob,\n" + prose, false},
		{"friend further down", SymGenericGreeting, nil, prose + prose + "> Dear Friend, quoted\n", false},

		{"From in base64 ASCII", SymEncodedASCII, map[string]string{"From": "=?iso-8859-1?B?U3BlY2lhbCBEZWFscw==?= <deals@example.net>"}, prose, true},
		{"glued encoded address", SymEncodedASCII, map[string]string{"From": "=?iso-2022-jp?B?am9rb0Bycy4xMjgubmUuanA=?=@example.org"}, prose, true},
		{"Subject in base64 Latin-1", SymEncodedASCII, map[string]string{"Subject": "=?iso-8859-1?B?R3L832U=?="}, prose, false},
		{"Subject in quoted-printable", SymEncodedASCII, map[string]string{"Subject": "=?iso-8859-1?Q?Hello_there?="}, prose, false},

		{"this is not spam", SymBulkExcuse, nil, prose + "This message is not spam: you signed up with a partner.\n", true},
		{"bill 1618", SymBulkExcuse, nil, prose + "Sent under Bill S.1618 Title III passed by the 105th US Congress.\n", true},
		{"one-time mailing", SymBulkExcuse, nil, prose + "This is a one-time mailing.\n", true},
		{"a discussion of spam", SymBulkExcuse, nil, "Is this really not spam? The filter says 5.2.\n", false},

		{"dear sirs or madams after a notice", SymGenericGreeting, nil, "We don't intend to send spam.\n\nDear sirs or Madams,\nWe make bathtubs.\n", true},
		{"quoted dear friend", SymGenericGreeting, nil, "> Dear Friend,\n> send money\n\nNo thanks.\n", false},
		{"don't intend to send spam", SymBulkExcuse, nil, "We don't intend to send spam email to you. Thank you!\n", true},

		{"quoted-printable plain line of 200", SymQPLongLine, qpPart("text/plain"), strings.Repeat("word ", 40) + "\n", true},
		{"quoted-printable plain wrapped", SymQPLongLine, qpPart("text/plain"), strings.Repeat("word word word word word word word word word word word word word wo=\n", 3) + "\n", false},
		{"quoted-printable html line of 200", SymQPLongLine, qpPart("text/html"), "<p>" + strings.Repeat("word ", 40) + "</p>\n", false},
		{"7bit long line", SymQPLongLine, nil, strings.Repeat("word ", 40) + "\n", false},

		{"lose pounds", SymWeightLoss, map[string]string{"Subject": "Lose 22.5lbs in 3 weeks!"}, prose, true},
		{"diet pills", SymWeightLoss, nil, "Order our new diet pills today.\n", true},
		{"lost a bet", SymWeightLoss, nil, "I lose 5 times in a row at chess.\n", false},

		{"millions of dollars", SymMillions, nil, "I have US$25.5 million to transfer to a foreign account.\n", true},
		{"ten millions", SymMillions, nil, "The sum of $10,000,000 is waiting.\n", true},
		{"thousands", SymMillions, nil, "The car cost $25,000 in the end.\n", false},
		{"millions of users", SymMillions, nil, "The site has two million users.\n", false},

		{"font size 7", SymFontHuge, htmlPart(), "<p><font size=\"7\">FREE CASH TODAY</font></p>", true},
		{"font size +4", SymFontHuge, htmlPart(), "<p><FONT SIZE=+4>Act now and win</FONT></p>", true},
		{"css 48px", SymFontHuge, htmlPart(), "<p style=\"font-size: 48px\">Lowest rates ever</p>", true},
		{"huge text made small again", SymFontHuge, htmlPart(), "<font size=7><font size=2>small print here</font></font>", false},
		{"font size 4", SymFontHuge, htmlPart(), "<p><font size=\"4\">Agenda for Thursday</font></p>", false},
		{"a huge initial", SymFontHuge, htmlPart(), "<p><font size=7>O</font>nce upon a time</p>", false},
		{"css 14px", SymFontHuge, htmlPart(), "<p style=\"font-size:14px\">Minutes of the meeting</p>", false},

		{"link to an exe", SymURLExecutable, nil, "Run http://videos.example.net/player.exe?id=3 now.\n", true},
		{"html link to a scr", SymURLExecutable, htmlPart(), "<a href=\"http://x.example/pic.scr\">photo</a>", true},
		{"a .com host is no file", SymURLExecutable, nil, "See http://www.example.com and http://example.com/ today.\n", false},
		{"link to a pdf", SymURLExecutable, nil, "The paper: http://example.org/papers/a.pdf\n", false},

		{"random x-mailer", SymMailerRandom, map[string]string{"X-Mailer": "xLihQRz3QwM5E2FMVKYP7zl1QN"}, prose, true},
		{"outlook x-mailer", SymMailerRandom, map[string]string{"X-Mailer": "Microsoft Outlook Express 6.00.2600.0000"}, prose, false},
		{"one-word mailer", SymMailerRandom, map[string]string{"X-Mailer": "QUALCOMMWindowsEudora"}, prose, false},
		{"version tag", SymMailerRandom, map[string]string{"X-Mailer": "Mutt/1.4i"}, prose, false},

		{"remove in the subject", SymOptOutByReply, nil, "To be taken off our list, reply with REMOVE in the subject line.\n", true},
		{"subject: remove", SymOptOutByReply, nil, "Send an email to offers@example.net, subject: remove\n", true},
		{"list server command", SymOptOutByReply, nil, "To leave the list, send 'unsubscribe' to list-request@example.org.\n", false},
		{"remove a file", SymOptOutByReply, nil, "Please remove the old file and send me the subject of your thesis.\n", false},
		{"type remove in the subject", SymOptOutByReply, nil, "To be removed from this mailing list, please type remove in the subject column.\n", true},
		{"subject line type: remove", SymOptOutByReply, nil, "Send an email to be removed.\nin the subject line type: Remove Me List-1046\n", true},
		{"reply with \"remove\"", SymOptOutByReply, nil, "If this is not for you, please reply to webmaster@example.net with \"remove\".\n", true},
		{"reply with comments", SymOptOutByReply, nil, "Please reply with your comments and I will remove the draft from the wiki.\n", false},
		{"normal priority, no mailer", SymPriorityNoMailer, map[string]string{"X-Priority": "3"}, prose, true},
		{"normal priority spelled out, no mailer", SymPriorityNoMailer, map[string]string{"X-Priority": "3 (Normal)"}, prose, true},
		{"normal priority from a named mailer", SymPriorityNoMailer, map[string]string{"X-Priority": "3", "X-Mailer": "Microsoft Outlook Express 6.00.2800.1106"}, prose, false},
		{"normal priority from a user agent", SymPriorityNoMailer, map[string]string{"X-Priority": "3 (Normal)", "User-Agent": "Mozilla Thunderbird 1.0"}, prose, false},
		{"high priority, no mailer", SymPriorityNoMailer, map[string]string{"X-Priority": "1 (Highest)"}, prose, true},
		{"high importance from Exchange", SymPriorityNoMailer, map[string]string{"X-Priority": "1", "Importance": "high"}, prose, false},
		{"no priority", SymPriorityNoMailer, nil, prose, false},
		{"blank To", SymToNoAddress, map[string]string{"To": " "}, prose, true},
		{"To of empty brackets", SymToNoAddress, map[string]string{"To": `"" <>`}, prose, true},
		{"To of a bare name", SymToNoAddress, map[string]string{"To": "Deal Shopper"}, prose, true},
		{"To of a group", SymToNoAddress, map[string]string{"To": "undisclosed-recipients:;"}, prose, false},
		{"To with an address", SymToNoAddress, nil, prose, false},
		{"no To", SymToNoAddress, map[string]string{"To": ""}, prose, false},
		{"X-Mailer repeating its name", SymHeaderNameValue, map[string]string{"X-Mailer": "X-Mailer: QUALCOMM Windows Eudora Pro Version 4.1"}, prose, true},
		{"X-Mailer holding another field", SymHeaderNameValue, map[string]string{"X-Mailer": "X-MSMail-Priority: Normal"}, prose, true},
		{"X- field holding Reply-To", SymHeaderNameValue, map[string]string{"X-Header": "Reply-To: keegan@example.net"}, prose, true},
		{"subject naming a field", SymHeaderNameValue, map[string]string{"Subject": "To: all staff"}, prose, false},
		{"ordinary X-Mailer", SymHeaderNameValue, map[string]string{"X-Mailer": "Microsoft Outlook Express 6.00.2800.1106"}, prose, false},
		{"X-Mailer with a colon later", SymHeaderNameValue, map[string]string{"X-Mailer": "Lotus Notes Release 5.0.10: March 22, 2002"}, prose, false},
		{"Mozilla User-Agent", SymHeaderNameValue, map[string]string{"User-Agent": "Mozilla/5.0 (X11; U; Linux i686; en-US; rv:1.0.1) Gecko/20020823 Netscape/7.0"}, prose, false},
		{"freemail Reply-To at a regional provider", SymFreemailReplyTo, map[string]string{"From": "Anna <manaqxh@abptrade.com.br>", "Reply-To": "<letmego@bk.ru>"}, prose, true},

		{"dollars a day", SymMoneyMaking, nil, "You can earn up to $1,500 per week from your kitchen table.\n", true},
		{"work from home", SymMoneyMaking, map[string]string{"Subject": "Work from home!"}, prose, true},
		{"a price per month", SymMoneyMaking, nil, "The hosting costs $10 per month.\n", false},
		{"home page", SymMoneyMaking, nil, "I work on the home page from time to time.\n", false},

		{"ADV: subject", SymSubjAdvert, map[string]string{"Subject": "ADV: Lowest mortgage rates"}, prose, true},
		{"[ADV] after a list tag", SymSubjAdvert, map[string]string{"Subject": "[ILUG] [ADV] Cheap toner"}, prose, true},
		{"Japanese unsolicited-ad label", SymSubjAdvert, map[string]string{"Subject": "=?ISO-2022-JP?B?GyRCTCQ+NUJ6OS05cBsoQg==?= sale"}, prose, true},
		{"Korean ad label", SymSubjAdvert, map[string]string{"Subject": "=?UTF-8?B?KOq0keqzoCkg7Yq567OEIO2VoOyduA==?="}, prose, true},
		{"advice is no label", SymSubjAdvert, map[string]string{"Subject": "Advice: use adverbs sparingly"}, prose, false},
		{"advanced course", SymSubjAdvert, map[string]string{"Subject": "Advanced topics, ADV 301"}, prose, false},

		{"residual income", SymMoneyMaking, nil, "Build a residual income with no selling required.\n", true},
		{"dear valued customers", SymGenericGreeting, nil, "Dear Valued Customers,\nOur prices fell.\n", true},

		{"reply-to at yahoo, from elsewhere", SymFreemailReplyTo, map[string]string{"From": "Sales <sales@offers.example.net>", "Reply-To": "offers2002@yahoo.com"}, prose, true},
		{"reply-to at the from's own provider", SymFreemailReplyTo, map[string]string{"From": "Jane <jane@hotmail.com>", "Reply-To": "Jane <jane.doe@hotmail.com>"}, prose, false},
		{"reply-to a list", SymFreemailReplyTo, map[string]string{"Reply-To": "list@lists.example.org"}, prose, false},

		{"yahoo address ending in digits", SymFreemailDigits, map[string]string{"From": "publicservice2002_121@yahoo.com"}, prose, true},
		{"yahoo address with a year inside", SymFreemailDigits, map[string]string{"From": "jane1987x@yahoo.com"}, prose, false},
		{"company address ending in digits", SymFreemailDigits, map[string]string{"From": "support123@example.org"}, prose, false},

		{"qp 8-bit without charset", SymCharsetUndecl, map[string]string{"MIME-Version": "1.0", "Content-Type": "text/plain", "Content-Transfer-Encoding": "quoted-printable"},
			"Grisham=92s first suspense novel =96 free.\n", true},
		{"qp 8-bit with charset", SymCharsetUndecl, map[string]string{"MIME-Version": "1.0", "Content-Type": "text/plain; charset=windows-1252", "Content-Transfer-Encoding": "quoted-printable"},
			"Grisham=92s first suspense novel =96 free.\n", false},
		{"8-bit mail without MIME", SymCharsetUndecl, nil, "Caf\xe9 au lait.\n", false},

		{"html without text part", SymHTMLOnly, htmlPart(), "<p>" + prose + "</p>", true},
		{"html with text part", SymHTMLOnly, altFields, altBody, false},
		{"plain text", SymHTMLOnly, nil, prose, false},

		{"empty text beside long html", SymHTMLShortText, shortFields, shortBody, true},
		{"text twin of the html", SymHTMLShortText, altFields, altBody, false},

		{"display none poison", SymHTMLHidden, htmlPart(), "<p>Buy now</p><div style=\"display: none\">" + prose + "</div>", true},
		{"preheader beside long text", SymHTMLHidden, htmlPart(), "<span style=\"display:none\">Your weekly news</span><p>" + strings.Repeat(prose, 3) + "</p>", false},
		{"visible text", SymHTMLHidden, htmlPart(), "<p>" + prose + "</p>", false},

		{"font-size 1px", SymHTMLTiny, htmlPart(), "<p>Buy now</p><span style=\"font-size:1px\">" + prose + "</span>", true},
		{"font-size 0", SymHTMLTiny, htmlPart(), "<p>Buy now</p><p style=\"FONT-SIZE: 0\">" + prose + "</p>", true},
		{"font-size 12px", SymHTMLTiny, htmlPart(), "<p style=\"font-size:12px\">" + prose + "</p>", false},

		{"white on white", SymHTMLInvisible, htmlPart(), "<p>Buy now</p><font color=\"#FFFFFF\">" + prose + "</font>", true},
		{"colour equal to the cell", SymHTMLInvisible, htmlPart(), "<table><tr><td bgcolor=\"#003366\">Buy<span style=\"color: rgb(0, 51, 102)\">" + prose + "</span></td></tr></table>", true},
		{"white on dark", SymHTMLInvisible, htmlPart(), "<table bgcolor=\"#000000\"><tr><td><font color=\"white\">" + prose + "</font></td></tr></table>", false},
		{"white on an image", SymHTMLInvisible, htmlPart(), "<body background=\"http://img.example/bg.png\"><font color=\"#fff\">" + prose + "</font></body>", false},
		{"white behind a style sheet", SymHTMLInvisible, htmlPart(), "<style>td { background: #333 }</style><table><tr><td><font color=\"#fff\">" + prose + "</font></td></tr></table>", false},

		{"one image and a link", SymImagesOnly, htmlPart(), "<a href=\"http://shop.example/\"><img src=\"http://shop.example/offer.gif\"></a>", true},
		{"image with text", SymImagesOnly, htmlPart(), "<p>" + prose + "</p><img src=\"http://example.org/logo.gif\">", false},
		{"text only", SymImagesOnly, nil, "hi", false},

		{"text names the bank", SymLinkOtherHost, htmlPart(), "<p>Log in at <a href=\"http://evil.example.net/login\">https://www.bank.example.com/login</a></p>", true},
		{"text names the same site", SymLinkOtherHost, htmlPart(), "<p>See <a href=\"https://shop.example.com/x\">www.example.com</a></p>", false},
		{"tracker carries its target", SymLinkOtherHost, htmlPart(), "<a href=\"http://click.example.net/?u=www.shop.example.com\">www.shop.example.com</a>", false},
		{"plain words", SymLinkOtherHost, htmlPart(), "<a href=\"http://evil.example.net/\">click here</a>", false},

		{"dotted quad", SymURLIPLiteral, nil, "Go to http://203.0.113.9/offer now\n", true},
		{"ipv6 literal", SymURLIPLiteral, nil, "Go to http://[2001:db8::1]/offer now\n", true},
		{"private address", SymURLIPLiteral, nil, "The router is at http://192.168.1.1/\n", false},
		{"host name", SymURLIPLiteral, nil, "Go to http://www.example.org/\n", false},

		{"one integer", SymURLNumericHost, nil, "Go to http://3405803785/offer\n", true},
		{"hex parts", SymURLNumericHost, nil, "Go to http://0xcb.0x0.0x71.0x9/offer\n", true},
		{"dotted quad is not numeric", SymURLNumericHost, nil, "Go to http://203.0.113.9/offer\n", false},

		{"host as user", SymURLUserinfo, nil, "Go to http://www.bank.example@203.0.113.9/login\n", true},
		{"user and password", SymURLUserinfo, nil, "ftp://anonymous:guest@ftp.example.org/pub\n", false},

		{"bit.ly", SymURLShortener, nil, "See https://bit.ly/3xYz\n", true},
		{"ordinary link", SymURLShortener, nil, "See https://www.example.org/a\n", false},

		{"google redirector", SymURLRedirector, nil, "See https://www.google.com/url?q=http://evil.example.net/\n", true},
		{"yahoo-style star", SymURLRedirector, nil, "See http://rd.example.net/click/*http://evil.example.net/\n", true},
		{"newsletter tracker", SymURLRedirector, nil, "See http://click.news.example.com/?url=http://www.example.org/\n", false},

		{"dotted letters", SymObfuscatedWord, nil, "Get V.I.A.G.R.A today\n", true},
		{"spaced letters", SymObfuscatedWord, nil, "Cheap c i a l i s here\n", true},
		{"digits for letters", SymObfuscatedWord, nil, "Best v1agra prices\n", true},
		{"digits in subject", SymObfuscatedWord, map[string]string{"Subject": "m0rtgage rates"}, prose, true},
		{"acronym", SymObfuscatedWord, nil, "The U.S.A. and the E.U. met in 2002. Use a 4x4 for b2b.\n", false},
		{"free!", SymObfuscatedWord, nil, "It is free! Come.\n", false},

		{"cyrillic a in a latin word", SymMixedScriptWord, nil, "Buy vi\u0430gra now\n", true},
		{"latin o in a cyrillic word", SymMixedScriptWord, nil, "\u043f\u0440\u0438\u0432e\u0442 \u043c\u0438\u0440\n", true},
		{"russian text", SymMixedScriptWord, nil, "\u043f\u0440\u0438\u0432\u0435\u0442 world\n", false},
		{"greek word in english", SymMixedScriptWord, nil, "The \u03bb calculus and \u03c0\n", false},

		{"capitals", SymSubjAllCaps, map[string]string{"Subject": "MAKE MONEY FAST"}, prose, true},
		{"reply in capitals", SymSubjAllCaps, map[string]string{"Subject": "Re: [list] IMPORTANT NEWS TODAY"}, prose, true},
		{"acronym in subject", SymSubjAllCaps, map[string]string{"Subject": "IBM and HP"}, prose, false},
		{"short capitals", SymSubjAllCaps, map[string]string{"Subject": "FYI: CVS"}, prose, false},

		{"dollars", SymSubjMoney, map[string]string{"Subject": "Earn $5000 a week"}, prose, true},
		{"refinance", SymSubjMoney, map[string]string{"Subject": "Refinance at the lowest rate"}, prose, true},
		{"encoded", SymSubjMoney, map[string]string{"Subject": "=?utf-8?q?Free_cash_inside?="}, prose, true},
		{"ordinary", SymSubjMoney, map[string]string{"Subject": "Minutes of the meeting"}, prose, false},

		{"act now", SymSubjUrgent, map[string]string{"Subject": "Act now: limited time"}, prose, true},
		{"exclamations", SymSubjUrgent, map[string]string{"Subject": "Wow!!!"}, prose, true},
		{"question", SymSubjUrgent, map[string]string{"Subject": "Re: does this work??"}, prose, false},

		{"gap and tag", SymSubjTrailingTag, map[string]string{"Subject": "you don't satisfy me               FGTPRIL"}, prose, true},
		{"gap and number tag", SymSubjTrailingTag, map[string]string{"Subject": "Get the Child Support You Deserve         10.124"}, prose, true},
		{"short gap", SymSubjTrailingTag, map[string]string{"Subject": "Minutes of the meeting   2002"}, prose, false},
		{"trailing blanks only", SymSubjTrailingTag, map[string]string{"Subject": "Minutes of the meeting        "}, prose, false},
		{"gap before words", SymSubjTrailingTag, map[string]string{"Subject": "Re:        minutes of the meeting"}, prose, false},

		{"name holds another address", SymFromNameAddr, map[string]string{"From": `"service@bank.example.com" <x@evil.example.net>`}, prose, true},
		{"name holds the address", SymFromNameAddr, map[string]string{"From": `"alice@example.org" <alice@example.org>`}, prose, false},
		{"plain name", SymFromNameAddr, nil, prose, false},

		{"outlook with a foreign message-id", SymForgedMUA, map[string]string{"X-Mailer": "Microsoft Outlook Express 6.00.2600.0000", "Message-ID": "<20020805.abcdef@example.org>"}, prose, true},
		{"outlook without weekday", SymForgedMUA, map[string]string{"X-Mailer": "Microsoft Outlook, Build 10.0.2616", "Message-ID": "<000801c24a1b$3e5f2a40$0a01a8c0@host>", "Date": "5 Aug 2002 09:59:00 +0000"}, prose, true},
		{"thunderbird with an outlook id", SymForgedMUA, map[string]string{"User-Agent": "Mozilla Thunderbird 1.0 (Windows/20041206)", "Message-ID": "<000801c24a1b$3e5f2a40$0a01a8c0@host>"}, prose, true},
		{"apple mail with a random id", SymForgedMUA, map[string]string{"X-Mailer": "Apple Mail (2.482)", "Message-ID": "<abc123@example.org>"}, prose, true},
		{"real outlook express", SymForgedMUA, map[string]string{"X-Mailer": "Microsoft Outlook Express 6.00.2600.0000", "Message-ID": "<000801c24a1b$3e5f2a40$0a01a8c0@host>"}, prose, false},
		{"real outlook imo", SymForgedMUA, map[string]string{"X-Mailer": "Microsoft Outlook IMO, Build 9.0.2416 (9.0.2910.0)", "Message-ID": "<BCEFLMCEIJHPCPLGADJIGEEFCAAA.kiall@example.org>"}, prose, false},
		{"real thunderbird", SymForgedMUA, map[string]string{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:102.0) Gecko/20100101 Thunderbird/102.0", "Message-ID": "<0f4c3e2a-1b2c-4d5e-8f90-123456789abc@example.org>"}, prose, false},
		{"real mozilla 1.0", SymForgedMUA, map[string]string{"User-Agent": "Mozilla/5.0 (Windows; U; Windows NT 5.0; en-US; rv:1.0.0) Gecko/20020530", "Message-ID": "<3D650A2D.1000301@example.ie>"}, prose, false},
		{"outlook express mac", SymForgedMUA, map[string]string{"X-Mailer": "Microsoft Outlook Express Macintosh Edition - 4.5 (0410)", "Message-ID": "<E17hrT0-0004gj-00@example.com>"}, prose, false},
		{"hotmail gateway", SymForgedMUA, map[string]string{"X-Mailer": "Microsoft Outlook Express 5.50.4133.2400", "Message-ID": "<DAV32l8aii08N8yxdZj00009342@hotmail.com>"}, prose, false},
		{"mutt", SymForgedMUA, map[string]string{"User-Agent": "Mutt/1.4i"}, prose, false},

		{"a day ahead", SymDateFuture, map[string]string{"Date": "Tue, 6 Aug 2002 10:00:00 +0000"}, prose, true},
		{"an hour ahead", SymDateFuture, map[string]string{"Date": "Mon, 5 Aug 2002 11:00:00 +0000"}, prose, false},
		{"a week old", SymDatePast, map[string]string{"Date": "Mon, 29 Jul 2002 10:00:00 +0000"}, prose, true},
		{"a day old", SymDatePast, map[string]string{"Date": "Sun, 4 Aug 2002 10:00:00 +0000"}, prose, false},

		{"reply remove", SymBulkNoUnsub, nil, prose + "To be removed from our list reply with REMOVE in the subject.\n", true},
		{"with list-unsubscribe", SymBulkNoUnsub, map[string]string{"List-Unsubscribe": "<mailto:leave@example.org>"}, prose + "To unsubscribe, write to leave@example.org.\n", false},
		{"with an unsubscribe link", SymBulkNoUnsub, htmlPart(), "<p>" + prose + "</p><a href=\"http://click.example.org/q=1\">Unsubscribe</a>", false},
		{"list mail", SymBulkNoUnsub, map[string]string{"List-Id": "<dev.example.org>"}, prose + "unsubscribe: send a message to dev-leave\n", false},
		{"no instructions", SymBulkNoUnsub, nil, prose, false},

		{"8-bit in us-ascii", SymCharset8BitASCII, map[string]string{"Content-Type": "text/plain; charset=us-ascii", "MIME-Version": "1.0"}, "Caf\xe9 au lait\n", true},
		{"8-bit in latin-1", SymCharset8BitASCII, map[string]string{"Content-Type": "text/plain; charset=iso-8859-1", "MIME-Version": "1.0"}, "Caf\xe9 au lait\n", false},
		{"7-bit in us-ascii", SymCharset8BitASCII, map[string]string{"Content-Type": "text/plain; charset=us-ascii", "MIME-Version": "1.0"}, prose, false},

		{"gb2312 with english only", SymCharsetMismatch, map[string]string{"Content-Type": "text/plain; charset=gb2312", "MIME-Version": "1.0"}, prose, true},
		{"latin-1 label on gb2312 bytes", SymCharsetMismatch, map[string]string{"Content-Type": "text/plain; charset=iso-8859-1", "MIME-Version": "1.0"}, strings.Repeat("\xc4\xe3\xba\xc3\xa3\xac\xc7\xeb\xbf\xb4 ", 12) + "ok\n", true},
		{"gb2312 with chinese", SymCharsetMismatch, map[string]string{"Content-Type": "text/plain; charset=gb2312", "MIME-Version": "1.0"}, strings.Repeat("\xc4\xe3\xba\xc3 hello ", 12) + "\n", false},
		{"french in latin-1", SymCharsetMismatch, map[string]string{"Content-Type": "text/plain; charset=iso-8859-1", "MIME-Version": "1.0"}, "Le caf\xe9 est pr\xe8s de la gare, \xe0 c\xf4t\xe9 du march\xe9 o\xf9 nous allions le dimanche matin.\n", false},
	}
	f, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string][2]bool{}
	for _, tt := range tests {
		t.Run(tt.sym+"/"+tt.name, func(t *testing.T) {
			in := &filters.Input{Msg: filters.ParseMessage(build(tt.fields, tt.body))}
			res, err := f.Check(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			var got *filters.Symbol
			for i := range res.Symbols {
				if res.Symbols[i].Name == tt.sym {
					got = &res.Symbols[i]
				}
			}
			if (got != nil) != tt.hit {
				t.Errorf("%s hit = %v, want %v (symbols %v)", tt.sym, got != nil, tt.hit, res.Symbols)
			}
			if got != nil && got.Reason == "" {
				t.Errorf("%s without a reason", tt.sym)
			}
		})
		c := covered[tt.sym]
		if tt.hit {
			c[0] = true
		} else {
			c[1] = true
		}
		covered[tt.sym] = c
	}
	for _, s := range Symbols {
		if c := covered[s]; !c[0] || !c[1] {
			t.Errorf("%s lacks a fixture that hits (%v) or one that does not (%v)", s, c[0], c[1])
		}
	}
}

// TestCleanMessageHitsNothing: an ordinary plain-text message gets no
// symbol at all.
func TestCleanMessageHitsNothing(t *testing.T) {
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage(build(nil, prose))})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Symbols) != 0 {
		t.Errorf("symbols %v on a clean message", res.Symbols)
	}
}

// TestDateWithoutReceived: without a Received field the Date is compared
// with the time moat received the message.
func TestDateWithoutReceived(t *testing.T) {
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		date string
		want string
	}{
		{"Sat, 5 Dec 2026 11:30:00 +0000", ""},
		{"Mon, 7 Dec 2026 12:00:00 +0000", SymDateFuture},
		{"Sun, 1 Nov 2026 12:00:00 +0000", SymDatePast},
	} {
		msg := build(map[string]string{"Received": "", "Date": tc.date}, prose)
		res, err := f.Check(context.Background(), &filters.Input{Conn: &filters.Connection{Start: start}, Msg: filters.ParseMessage(msg)})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range res.Symbols {
			names = append(names, s.Name)
		}
		if tc.want == "" && len(names) > 0 || tc.want != "" && !slices.Contains(names, tc.want) {
			t.Errorf("Date %s: symbols %v, want %q", tc.date, names, tc.want)
		}
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := DefaultConfig()
	bad.Disabled = []string{"NO_SUCH_SYMBOL"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "disabled[0]") {
		t.Errorf("unknown disabled symbol: error %v", err)
	}
	// A disabled rule is not evaluated; the others are.
	cfg := DefaultConfig()
	cfg.Disabled = []string{SymSubjAllCaps}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage(build(map[string]string{"Subject": "MAKE MONEY FAST NOW"}, prose))})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.Symbols {
		names = append(names, s.Name)
		if s.Name == SymSubjMoney && s.Score != cfg.SubjMoney {
			t.Errorf("%s scored %v, want %v", s.Name, s.Score, cfg.SubjMoney)
		}
	}
	if slices.Contains(names, SymSubjAllCaps) || !slices.Contains(names, SymSubjMoney) {
		t.Errorf("symbols %v: want SUBJ_MONEY and no SUBJ_ALL_CAPS", names)
	}
	if _, err := f.Check(context.Background(), &filters.Input{}); err == nil {
		t.Error("Check without a message: no error")
	}
}
