// Package heuristics is a data-stage filter of content heuristics in the
// manner of SpamAssassin's and rspamd's hand-written rules: the shape of
// the HTML (no text alternative, hidden or tiny or invisible text, images
// and little else), the links (text naming another host than the target,
// IP-literal and numeric hosts, shorteners and redirectors), obfuscated
// words, the subject, the From display name, a mailer signature that its
// Message-ID or Date contradicts, a Date far from the first Received,
// bulk mail without List-Unsubscribe, and a declared charset the text
// contradicts.
//
// Every rule reads the message's shared MIME walk (filters/content) or its
// parsed header: no DNS, no disk. Each finding is a symbol from the fixed
// set Symbols with a modest score, so that no single heuristic tags a
// message by itself: they add up with the others and with the
// classifier. docs/detection.md lists the hit rate of each on the
// SpamAssassin corpus.
package heuristics

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

// The symbol names the filter returns.
const (
	SymHTMLOnly         = "HTML_ONLY"
	SymHTMLShortText    = "HTML_SHORT_TEXT_PART"
	SymHTMLHidden       = "HTML_HIDDEN_TEXT"
	SymHTMLTiny         = "HTML_TINY_TEXT"
	SymHTMLInvisible    = "HTML_INVISIBLE_TEXT"
	SymImagesOnly       = "IMAGES_ONLY"
	SymLinkOtherHost    = "LINK_TEXT_OTHER_HOST"
	SymURLIPLiteral     = "URL_IP_LITERAL"
	SymURLNumericHost   = "URL_NUMERIC_HOST"
	SymURLUserinfo      = "URL_USERINFO"
	SymURLShortener     = "URL_SHORTENER"
	SymURLRedirector    = "URL_REDIRECTOR"
	SymObfuscatedWord   = "OBFUSCATED_WORD"
	SymMixedScriptWord  = "MIXED_SCRIPT_WORD"
	SymSubjAllCaps      = "SUBJ_ALL_CAPS"
	SymSubjMoney        = "SUBJ_MONEY"
	SymSubjUrgent       = "SUBJ_URGENT"
	SymSubjTrailingTag  = "SUBJ_TRAILING_TAG"
	SymFromNameAddr     = "FROM_NAME_HAS_ADDR"
	SymForgedMUA        = "FORGED_MUA"
	SymDateFuture       = "DATE_IN_FUTURE"
	SymDatePast         = "DATE_IN_PAST"
	SymBulkNoUnsub      = "BULK_NO_LIST_UNSUB"
	SymCharset8BitASCII = "CHARSET_8BIT_ASCII"
	SymCharsetMismatch  = "CHARSET_SCRIPT_MISMATCH"
	SymForgedFreemail   = "FORGED_FREEMAIL_RCVD"
	SymHELOIPMismatch   = "RCVD_HELO_IP_MISMATCH"
	SymGenericGreeting  = "BODY_GENERIC_GREETING"
	SymEncodedASCII     = "HEADER_ENCODED_ASCII"
	SymBulkExcuse       = "BODY_BULK_EXCUSE"
	SymMillions         = "BODY_MILLIONS"
	SymQPLongLine       = "MIME_QP_LONG_LINE"
	SymWeightLoss       = "BODY_WEIGHT_LOSS"
	SymFontHuge         = "HTML_FONT_SIZE_HUGE"
	SymURLExecutable    = "URL_EXECUTABLE"
	SymMailerRandom     = "XMAILER_RANDOM"
	SymOptOutByReply    = "BODY_OPTOUT_BY_REPLY"
	SymMoneyMaking      = "BODY_MONEY_MAKING"
	SymCharsetUndecl    = "CHARSET_8BIT_UNDECLARED"
	SymSubjAdvert       = "SUBJ_ADVERT_LABEL"
	SymFreemailReplyTo  = "FREEMAIL_REPLYTO"
	SymFreemailDigits   = "FREEMAIL_FROM_DIGITS"
	SymPriorityNoMailer = "XPRIORITY_NO_MAILER"
	SymToNoAddress      = "TO_NO_ADDRESS"
	SymHeaderNameValue  = "HEADER_NAME_IN_VALUE"
)

// Symbols lists every symbol name the filter can return.
var Symbols = []string{
	SymHTMLOnly, SymHTMLShortText, SymHTMLHidden, SymHTMLTiny, SymHTMLInvisible, SymImagesOnly,
	SymLinkOtherHost, SymURLIPLiteral, SymURLNumericHost, SymURLUserinfo, SymURLShortener, SymURLRedirector,
	SymObfuscatedWord, SymMixedScriptWord, SymSubjAllCaps, SymSubjMoney, SymSubjUrgent, SymSubjTrailingTag,
	SymFromNameAddr, SymForgedMUA, SymDateFuture, SymDatePast, SymBulkNoUnsub,
	SymCharset8BitASCII, SymCharsetMismatch,
	SymForgedFreemail, SymHELOIPMismatch, SymGenericGreeting, SymEncodedASCII, SymBulkExcuse, SymMillions,
	SymQPLongLine, SymWeightLoss,
	SymFontHuge, SymURLExecutable, SymMailerRandom, SymOptOutByReply, SymMoneyMaking, SymCharsetUndecl,
	SymSubjAdvert, SymFreemailReplyTo, SymFreemailDigits, SymPriorityNoMailer, SymToNoAddress,
	SymHeaderNameValue,
}

// Config holds the score of each symbol (the TOML key is the symbol name in
// lower case) and the symbols switched off. Start from DefaultConfig: a
// zero score is a score (the symbol is still reported, for logs and for
// `moat rules fit`), not a request for the default.
type Config struct {
	// Disabled names symbols whose rule is not evaluated.
	Disabled []string `toml:"disabled"`

	HTMLOnly         float64 `toml:"html_only"`
	HTMLShortText    float64 `toml:"html_short_text_part"`
	HTMLHidden       float64 `toml:"html_hidden_text"`
	HTMLTiny         float64 `toml:"html_tiny_text"`
	HTMLInvisible    float64 `toml:"html_invisible_text"`
	ImagesOnly       float64 `toml:"images_only"`
	LinkOtherHost    float64 `toml:"link_text_other_host"`
	URLIPLiteral     float64 `toml:"url_ip_literal"`
	URLNumericHost   float64 `toml:"url_numeric_host"`
	URLUserinfo      float64 `toml:"url_userinfo"`
	URLShortener     float64 `toml:"url_shortener"`
	URLRedirector    float64 `toml:"url_redirector"`
	ObfuscatedWord   float64 `toml:"obfuscated_word"`
	MixedScriptWord  float64 `toml:"mixed_script_word"`
	SubjAllCaps      float64 `toml:"subj_all_caps"`
	SubjMoney        float64 `toml:"subj_money"`
	SubjUrgent       float64 `toml:"subj_urgent"`
	SubjTrailingTag  float64 `toml:"subj_trailing_tag"`
	FromNameAddr     float64 `toml:"from_name_has_addr"`
	ForgedMUA        float64 `toml:"forged_mua"`
	DateFuture       float64 `toml:"date_in_future"`
	DatePast         float64 `toml:"date_in_past"`
	BulkNoUnsub      float64 `toml:"bulk_no_list_unsub"`
	Charset8BitASCII float64 `toml:"charset_8bit_ascii"`
	CharsetMismatch  float64 `toml:"charset_script_mismatch"`
	ForgedFreemail   float64 `toml:"forged_freemail_rcvd"`
	HELOIPMismatch   float64 `toml:"rcvd_helo_ip_mismatch"`
	GenericGreeting  float64 `toml:"body_generic_greeting"`
	EncodedASCII     float64 `toml:"header_encoded_ascii"`
	BulkExcuse       float64 `toml:"body_bulk_excuse"`
	Millions         float64 `toml:"body_millions"`
	QPLongLine       float64 `toml:"mime_qp_long_line"`
	WeightLoss       float64 `toml:"body_weight_loss"`
	FontHuge         float64 `toml:"html_font_size_huge"`
	URLExecutable    float64 `toml:"url_executable"`
	MailerRandom     float64 `toml:"xmailer_random"`
	OptOutByReply    float64 `toml:"body_optout_by_reply"`
	MoneyMaking      float64 `toml:"body_money_making"`
	CharsetUndecl    float64 `toml:"charset_8bit_undeclared"`
	SubjAdvert       float64 `toml:"subj_advert_label"`
	FreemailReplyTo  float64 `toml:"freemail_replyto"`
	FreemailDigits   float64 `toml:"freemail_from_digits"`
	PriorityNoMailer float64 `toml:"xpriority_no_mailer"`
	ToNoAddress      float64 `toml:"to_no_address"`
	HeaderNameValue  float64 `toml:"header_name_in_value"`
}

// DefaultConfig returns the scores documented in docs/detection.md:
// fitted by `moat rules fit --by-date` on the training part of the
// corpus's date split (docs/bayes.md), rounded to 0.1.
func DefaultConfig() Config {
	return Config{
		// On the corpus, of 2002, shortener links are all in ham
		// (tinyurl.com on mailing lists): the rule is off until an
		// operator's own mail says otherwise.
		Disabled:         []string{SymURLShortener},
		HTMLOnly:         4.1,
		HTMLShortText:    0.5,
		HTMLHidden:       1.5,
		HTMLTiny:         1.0,
		HTMLInvisible:    1.5,
		ImagesOnly:       2.9,
		LinkOtherHost:    1.6,
		URLIPLiteral:     2.9,
		URLNumericHost:   2.5,
		URLUserinfo:      2.0,
		URLShortener:     0.5,
		URLRedirector:    0.5,
		ObfuscatedWord:   2.0,
		MixedScriptWord:  2.4,
		SubjAllCaps:      1.6,
		SubjMoney:        1.5,
		SubjUrgent:       3.1,
		SubjTrailingTag:  2.1,
		FromNameAddr:     0.5,
		ForgedMUA:        2.4,
		DateFuture:       2.4,
		DatePast:         2.0,
		BulkNoUnsub:      2.8,
		Charset8BitASCII: 1.6,
		CharsetMismatch:  1.4,
		ForgedFreemail:   1.6,
		HELOIPMismatch:   1.5,
		GenericGreeting:  1.6,
		EncodedASCII:     1.5,
		BulkExcuse:       1.5,
		Millions:         2.0,
		QPLongLine:       2.1,
		WeightLoss:       1.5,
		FontHuge:         1.9,
		URLExecutable:    1.5,
		MailerRandom:     1.9,
		OptOutByReply:    2.0,
		MoneyMaking:      1.6,
		CharsetUndecl:    1.5,
		SubjAdvert:       1.5,
		FreemailReplyTo:  1.5,
		FreemailDigits:   1.0,
		PriorityNoMailer: 1.0,
		ToNoAddress:      1.5,
		HeaderNameValue:  1.5,
	}
}

// Validate reports a score that is not a finite number and a disabled name
// that is not a symbol of the filter.
func (c Config) Validate() error {
	var errs []error
	if err := filters.ValidateScores(c); err != nil {
		errs = append(errs, err)
	}
	for i, s := range c.Disabled {
		if !slices.Contains(Symbols, s) {
			errs = append(errs, fmt.Errorf("disabled[%d]: %q is not a symbol of the heuristics (known: %s)", i, s, strings.Join(Symbols, ", ")))
		}
	}
	return errors.Join(errs...)
}

// rule is one heuristic: its symbol, its score, and the test that returns
// a reason when it matches.
type rule struct {
	name  string
	score float64
	test  func(m *msg) (string, bool)
}

// Filter runs the heuristics, a data-stage filter. It is safe for
// concurrent use.
type Filter struct {
	rules []rule
}

var _ filters.Filter = (*Filter)(nil)

// New returns the filter.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("heuristics config: %w", err)
	}
	all := []rule{
		{SymHTMLOnly, cfg.HTMLOnly, htmlOnly},
		{SymHTMLShortText, cfg.HTMLShortText, htmlShortText},
		{SymHTMLHidden, cfg.HTMLHidden, htmlHidden},
		{SymHTMLTiny, cfg.HTMLTiny, htmlTiny},
		{SymHTMLInvisible, cfg.HTMLInvisible, htmlInvisible},
		{SymImagesOnly, cfg.ImagesOnly, imagesOnly},
		{SymLinkOtherHost, cfg.LinkOtherHost, linkOtherHost},
		{SymURLIPLiteral, cfg.URLIPLiteral, urlIPLiteral},
		{SymURLNumericHost, cfg.URLNumericHost, urlNumericHost},
		{SymURLUserinfo, cfg.URLUserinfo, urlUserinfo},
		{SymURLShortener, cfg.URLShortener, urlShortener},
		{SymURLRedirector, cfg.URLRedirector, urlRedirector},
		{SymObfuscatedWord, cfg.ObfuscatedWord, obfuscatedWord},
		{SymMixedScriptWord, cfg.MixedScriptWord, mixedScriptWord},
		{SymSubjAllCaps, cfg.SubjAllCaps, subjAllCaps},
		{SymSubjMoney, cfg.SubjMoney, subjMoney},
		{SymSubjUrgent, cfg.SubjUrgent, subjUrgent},
		{SymSubjTrailingTag, cfg.SubjTrailingTag, subjTrailingTag},
		{SymFromNameAddr, cfg.FromNameAddr, fromNameAddr},
		{SymForgedMUA, cfg.ForgedMUA, forgedMUA},
		{SymDateFuture, cfg.DateFuture, dateFuture},
		{SymDatePast, cfg.DatePast, datePast},
		{SymBulkNoUnsub, cfg.BulkNoUnsub, bulkNoUnsub},
		{SymCharset8BitASCII, cfg.Charset8BitASCII, charset8BitASCII},
		{SymCharsetMismatch, cfg.CharsetMismatch, charsetMismatch},
		{SymForgedFreemail, cfg.ForgedFreemail, forgedFreemail},
		{SymHELOIPMismatch, cfg.HELOIPMismatch, rcvdHELOIPMismatch},
		{SymGenericGreeting, cfg.GenericGreeting, bodyGenericGreeting},
		{SymEncodedASCII, cfg.EncodedASCII, encodedASCII},
		{SymBulkExcuse, cfg.BulkExcuse, bodyBulkExcuse},
		{SymMillions, cfg.Millions, bodyMillions},
		{SymQPLongLine, cfg.QPLongLine, qpLongLine},
		{SymWeightLoss, cfg.WeightLoss, bodyWeightLoss},
		{SymFontHuge, cfg.FontHuge, htmlFontHuge},
		{SymURLExecutable, cfg.URLExecutable, urlExecutable},
		{SymMailerRandom, cfg.MailerRandom, mailerRandom},
		{SymOptOutByReply, cfg.OptOutByReply, bodyOptOutByReply},
		{SymMoneyMaking, cfg.MoneyMaking, bodyMoneyMaking},
		{SymCharsetUndecl, cfg.CharsetUndecl, charset8BitUndeclared},
		{SymSubjAdvert, cfg.SubjAdvert, subjAdvertLabel},
		{SymFreemailReplyTo, cfg.FreemailReplyTo, freemailReplyTo},
		{SymFreemailDigits, cfg.FreemailDigits, freemailDigits},
		{SymPriorityNoMailer, cfg.PriorityNoMailer, priorityNoMailer},
		{SymToNoAddress, cfg.ToNoAddress, toNoAddress},
		{SymHeaderNameValue, cfg.HeaderNameValue, headerNameInValue},
	}
	f := &Filter{}
	for _, r := range all {
		if !slices.Contains(cfg.Disabled, r.name) {
			f.rules = append(f.rules, r)
		}
	}
	return f, nil
}

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return Symbols }

// Name implements filters.Filter.
func (f *Filter) Name() string { return "heuristics" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageData }

// errNoMessage means the pipeline ran the filter before DATA.
var errNoMessage = errors.New("heuristics: no message (not at the data stage)")

// Check implements filters.Filter. It reads the shared MIME walk and the
// parsed header; it makes no DNS or disk access.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Msg == nil {
		return filters.Result{}, errNoMessage
	}
	m := newMsg(in)
	var syms []filters.Symbol
	for _, r := range f.rules {
		if err := ctx.Err(); err != nil {
			return filters.Result{}, err
		}
		if reason, ok := r.test(m); ok {
			syms = append(syms, filters.Symbol{Name: r.name, Score: r.score, Reason: printable(reason, 120)})
		}
	}
	return filters.Result{Symbols: syms}, nil
}

// msg is what the rules read, with what several of them need computed
// once.
type msg struct {
	in *filters.Input
	c  *content.Content

	subjectOnce bool
	subject     string

	skewDone, skewOK bool
	skew             time.Duration

	scanDone bool
	scan     string

	scanLowerDone bool
	scanLower     string

	fromDone bool
	from     *mail.Address
}

// fromAddress returns the parsed From address (nil when it does not
// parse), parsed once for the rules that read it.
func (m *msg) fromAddress() *mail.Address {
	if !m.fromDone {
		m.fromDone = true
		m.from = parseAddress(m.header("From"))
	}
	return m.from
}

// parseAddress parses a field of one mailbox, RFC 2047 words decoded;
// nil when it is empty or does not parse.
func parseAddress(v string) *mail.Address {
	if v == "" {
		return nil
	}
	a, err := (&mail.AddressParser{WordDecoder: wordDecoder}).Parse(v)
	if err != nil {
		return nil
	}
	return a
}

// splitAddress returns an address's local part and domain, lower case.
func splitAddress(a *mail.Address) (local, domain string) {
	local, domain, _ = strings.Cut(strings.ToLower(a.Address), "@")
	return local, domain
}

func newMsg(in *filters.Input) *msg {
	return &msg{in: in, c: in.Msg.Content()}
}

// header returns the first field named key, unfolded.
func (m *msg) header(key string) string {
	return m.in.Msg.Header.Get(key)
}

// has reports whether the header holds a field named key.
func (m *msg) has(key string) bool {
	return m.in.Msg.Header.Has(key)
}

// printable returns s cut to at most n bytes with control characters and
// invalid bytes replaced by '?': reasons quote text an attacker wrote.
func printable(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	b := []rune(strings.ToValidUTF8(s, "?"))
	for i, r := range b {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e || r == 0x202d {
			b[i] = '?'
		}
	}
	return string(b)
}
