package bayes

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

const tokMessage = "Received: from mx.spammer.example (mx.spammer.example [203.0.113.9])\r\n" +
	"\tby mx.example.com with ESMTP id 1234; Thu, 22 Aug 2002 08:17:21 -0400\r\n" +
	"From: \"Cheap Pills\" <Sales123@Mail.Deals.co.uk>\r\n" +
	"Reply-To: other@elsewhere.example\r\n" +
	"To: a@example.com, b@example.com, c@example.com\r\n" +
	"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_FREE?= offer\r\n" +
	"Date: Thu, 22 Aug 2002 08:17:21 -0400\r\n" +
	"X-Spam-Status: No, hits=0\r\n" +
	"X-Mailer: Outlook Express 6.00\r\n" +
	"Message-ID: <20020822.123@deals.co.uk>\r\n" +
	"Content-Type: text/html; charset=\"iso-8859-1\"\r\n" +
	"\r\n"

func TestTokens(t *testing.T) {
	msg := filters.ParseMessage([]byte(tokMessage))
	c := &content.Content{
		Text: "Buy CHEAP pills now!!! Only $19.99, visit https://www.shop.deals.co.uk/buy?id=7 " +
			"or write to orders@deals.co.uk. Supercalifragilisticexpialidocious",
		HTML: true,
		URLs: []string{"http://track.example.net:8080/x", "https://user@203.0.113.7/y"},
		Attachments: []content.Attachment{
			{Filename: "invoice.PDF.exe", DeclaredType: "application/octet-stream"},
		},
		Anomalies: []content.Anomaly{{Kind: content.BadEncoding}},
	}
	toks := Tokens(msg, c)
	for _, want := range []string{
		// body words: lower case, numbers collapsed, ! and $ kept
		"buy", "cheap", "pills", "now", "!", "only", "$#.#",
		// links and addresses in the text
		"<url>", "u:www.shop.deals.co.uk", "u:rd:deals.co.uk", "<email>", "e:deals.co.uk",
		// a long word becomes a skip token
		"skip:s30",
		// sparse bigrams: distance 1 and 4
		"buy ~1~ cheap", "buy ~4~ !",
		// subject, RFC 2047 decoded
		"s:grüße", "s:free", "s:offer",
		// From: display name, domain, registered domain, local part shape
		"fn:cheap", "fn:pills", "fd:mail.deals.co.uk", "fd:rd:deals.co.uk", "fl:sales#",
		"rt:otherdomain", "to:3-5", "cc:0",
		"xm:outlook", "xm:express", "xm:#.#",
		"ct:text/html", "cs:iso-8859-1", "mid:deals.co.uk",
		"rcvd:1", "r:mx.spammer.example", "r:ip:203.0", "r:esmtp",
		// content facts
		"meta:html", "meta:urls:2", "u:track.example.net", "u:rd:example.net", "u:userinfo", "u:ip",
		"att:application/octet-stream", "ext:exe", "mime:MIME_BAD_ENCODING",
	} {
		if !slices.Contains(toks, want) {
			t.Errorf("missing token %q", want)
		}
	}
	for _, tok := range toks {
		for _, bad := range []string{"2002", "aug", "x-spam", "h:date", "-0400", "h:received"} {
			if strings.Contains(tok, bad) {
				t.Errorf("token %q holds %q (dates and our own headers are never tokens)", tok, bad)
			}
		}
	}
	feats := Features(msg, c)
	if !slices.IsSorted(feats) || len(slices.Compact(slices.Clone(feats))) != len(feats) {
		t.Error("features are not sorted and unique")
	}
	if len(feats) == 0 || len(feats) > len(toks) {
		t.Errorf("%d features for %d tokens", len(feats), len(toks))
	}
}

func TestTokensNormalise(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"Hello, WORLD.", []string{"hello", "world", "hello ~1~ world"}},
		{"call 555-1234 now", []string{"call", "#-#", "now"}},
		{"don't e-mail", []string{"don't", "e-mail"}},
		{"a I x", nil}, // one-letter words are dropped
		{"ÉTÉ café", []string{"été", "café"}},
		{"www.example.org/page", []string{"u:www.example.org", "u:rd:example.org", "<url>"}},
	} {
		got := slices.DeleteFunc(Tokens(nil, &content.Content{Text: tc.text}), func(s string) bool {
			return strings.HasPrefix(s, "meta:")
		})
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q: tokens %q lack %q", tc.text, got, w)
			}
		}
		if tc.want == nil && len(got) != 0 {
			t.Errorf("%q: tokens %q, want none", tc.text, got)
		}
	}
}

func TestTokensBounded(t *testing.T) {
	text := strings.Repeat("word another ", maxWords) // 2 × maxWords words
	toks := Tokens(nil, &content.Content{Text: text})
	// each word adds itself and up to 4 bigrams
	if len(toks) > maxWords*osbWindow {
		t.Errorf("%d tokens for a capped text, want at most %d", len(toks), maxWords*osbWindow)
	}
	feats := Features(nil, &content.Content{Text: text})
	// two words, the 8 pairs (w,a) (a,w) (w,w) (a,a) at distances 1-4,
	// and meta:urls:0
	if len(feats) != 2+8+1 {
		t.Errorf("%d distinct features, want 11", len(feats))
	}
}

func TestRadixSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 600, 5000} {
		for _, mask := range []uint64{^uint64(0), 0xff, 0xff00ff0000000000} {
			a := make([]uint64, n)
			for i := range a {
				a[i] = r.Uint64() & mask
			}
			want := slices.Clone(a)
			slices.Sort(want)
			radixSort(a)
			if !slices.Equal(a, want) {
				t.Errorf("n=%d mask=%x: not sorted", n, mask)
			}
		}
	}
}

// featureBound is the most features a message can yield: each word adds
// itself and up to four sparse bigrams, a link two host features; the
// body has maxWords words, each of the (at most five) tokenised header
// texts maxFieldWords; Received fields are clipped to maxHeaderCh bytes
// (three of them); each attachment and anomaly adds a few.
func featureBound(c *content.Content) int {
	words := maxWords + 5*maxFieldWords
	n := 7*words + 3*maxHeaderCh + 64
	if c != nil {
		n += 2*len(c.URLs) + 2*len(c.Attachments) + len(c.Anomalies)
	}
	return n
}

// TestTokenizeBounds: a body of comma-joined words (one whitespace chunk)
// and a huge folded Subject are cut at their word budgets, and the
// Subject does not crowd the body's words out.
func TestTokenizeBounds(t *testing.T) {
	var body strings.Builder
	for i := range 200_000 {
		fmt.Fprintf(&body, "w%x,", i)
	}
	subject := strings.Repeat("cheap pills now ", 4000) // 64 KB
	raw := "Subject: " + subject + "\r\nFrom: a@b.example\r\n\r\n"
	msg := filters.ParseMessage([]byte(raw))
	c := &content.Content{Text: "distinctiveword " + body.String()}
	tok := &tokenizer{names: []string{}}
	tok.message(msg, c)
	if n, most := len(tok.feats), featureBound(c); n > most {
		t.Errorf("%d features, more than the bound %d", n, most)
	}
	if !slices.Contains(tok.names, "distinctiveword") {
		t.Error("the body's first word is missing: the Subject used up its budget")
	}
	subjectWords := 0
	for _, n := range tok.names {
		if strings.HasPrefix(n, "s:") && !strings.Contains(n, "~") {
			subjectWords++
		}
	}
	if subjectWords > maxFieldWords {
		t.Errorf("%d Subject words, want at most %d", subjectWords, maxFieldWords)
	}
}
