// Package content walks the MIME structure of a message once and gives every
// content filter (bayes, antivirus, attachments) the same decoded view:
// the text a reader sees, the links, and the attachments.
//
// The walk is bounded: a message nested too deep, with too many parts, or
// that decodes to too much, is cut short and says so in Anomalies (a MIME
// bomb is a symbol, not an outage). Walk never fails and never panics: a
// broken message gives what could be read, and anomalies that say what was
// wrong.
//
// The filter that turns the anomalies into symbols is in the subpackage
// mimecheck (it imports package filters, which imports this package).
package content

import (
	"errors"
	"fmt"
	"sync"
)

// Limits bound the walk. Zero fields take the defaults of DefaultLimits.
type Limits struct {
	// MaxDepth is the deepest multipart or message/rfc822 nesting walked
	// (default 20).
	MaxDepth int `toml:"max_depth"`
	// MaxParts is the most MIME parts walked (default 1000).
	MaxParts int `toml:"max_parts"`
	// MaxDecodedBytes bounds the bytes decoded from all parts together,
	// with what charset conversion to UTF-8 adds (default 64 MiB).
	MaxDecodedBytes int64 `toml:"max_decoded_bytes"`
	// MaxTextBytes bounds Content.Text (default 1 MiB): classifiers read
	// no further.
	MaxTextBytes int `toml:"max_text_bytes"`
}

// MaxDepthLimit is the largest MaxDepth Validate accepts: each level of
// nesting costs a scan of what it encloses, so depth multiplies the work.
const MaxDepthLimit = 100

// Validate reports a negative limit, or a MaxDepth above MaxDepthLimit.
// It only checks: a zero field is valid and means its default.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxDepth < 0 {
		errs = append(errs, fmt.Errorf("max_depth: %d is negative", l.MaxDepth))
	} else if l.MaxDepth > MaxDepthLimit {
		errs = append(errs, fmt.Errorf("max_depth: %d is above %d", l.MaxDepth, MaxDepthLimit))
	}
	if l.MaxParts < 0 {
		errs = append(errs, fmt.Errorf("max_parts: %d is negative", l.MaxParts))
	}
	if l.MaxDecodedBytes < 0 {
		errs = append(errs, fmt.Errorf("max_decoded_bytes: %d is negative", l.MaxDecodedBytes))
	}
	if l.MaxTextBytes < 0 {
		errs = append(errs, fmt.Errorf("max_text_bytes: %d is negative", l.MaxTextBytes))
	}
	return errors.Join(errs...)
}

// withDefaults returns l with every zero or negative field set to its
// default, so that Walk needs no valid configuration to be safe.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = d.MaxDecodedBytes
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = d.MaxTextBytes
	}
	return l
}

// DefaultLimits returns the limits used where none are configured.
func DefaultLimits() Limits {
	return Limits{MaxDepth: 20, MaxParts: 1000, MaxDecodedBytes: 64 << 20, MaxTextBytes: 1 << 20}
}

// Content is the decoded view of a message.
type Content struct {
	// Text is the readable text of the message: text/plain parts decoded
	// to UTF-8, and text/html parts turned into text (tags dropped, links
	// kept as their URLs), in order, separated by newlines, cut at
	// Limits.MaxTextBytes. Line ends are "\n".
	//
	// Of a multipart/alternative, only the alternative a reader is shown
	// gives text: the last one that is text/plain, text/html or a
	// multipart (RFC 2046 §5.1.4: the last is the sender's preferred
	// form), so that the same words are not counted twice. Links and
	// attachments come from every alternative.
	Text string
	// HTML is true when some text came from an HTML part.
	HTML bool
	// URLs are the links found in text and HTML parts (href and src
	// attributes, and bare http(s):// URLs in text), in order, without
	// duplicates. Only http, https, ftp and mailto links are kept; at most
	// MaxURLs, each cut at MaxURLBytes.
	URLs []string
	// Attachments lists every non-text leaf part and every part with a
	// filename, in walk order.
	Attachments []Attachment
	// Anomalies say what was wrong with the structure; empty for a sound
	// message.
	Anomalies []Anomaly
	// Parts describes each text/plain and text/html part walked, shown
	// or not, in walk order; at most MaxTextParts. Content heuristics
	// compare them (an HTML part without a text twin, a declared charset
	// against the letters it decoded to).
	Parts []TextPart
	// Anchors are the links of HTML <a> elements with the text they show,
	// in order; at most MaxAnchors, each text cut at MaxAnchorText bytes.
	Anchors []Anchor

	// lang is what Language returns, worked out on its first call (only
	// the classifier asks, so the walk does not pay for it when the
	// classifier is off); filters read a Content concurrently.
	langOnce sync.Once
	lang     string
}

// TextPart describes one text/plain or text/html part.
type TextPart struct {
	// Media is "text/plain" or "text/html".
	Media string
	// Charset is the declared charset parameter, lower case without
	// quotes; "" when the part declares none.
	Charset string
	// Shown is true when the part's text is in Content.Text: not an
	// alternative a reader is not shown, not an attachment.
	Shown bool
	// EightBit is true when the part, transfer-decoded but before charset
	// conversion, holds a byte above 0x7F.
	EightBit bool
	// Letters counts the letters a reader sees, by script: for HTML, the
	// text outside script, style and hidden elements.
	Letters Letters
	// Hidden, Tiny and Invisible count the letters of an HTML part that a
	// reader does not see: in an element with display:none,
	// visibility:hidden or the hidden attribute; in a font size below 2
	// pixels or points; in a colour (nearly) equal to its background.
	Hidden, Tiny, Invisible int
	// Images counts the <img> elements of an HTML part.
	Images int
	// QPLongLine is true when the part is quoted-printable and has an
	// encoded line longer than the 76 characters RFC 2045 §6.7 allows:
	// mailers wrap, bulk tools that write the encoding by hand often do
	// not.
	QPLongLine bool
	// Encoded is true when the part has a quoted-printable or base64
	// transfer encoding: its sender wrote MIME on purpose.
	Encoded bool
	// Huge counts the letters a reader sees in a huge font: an HTML
	// <font size> of 6 or more (or +3 and more) or a CSS font-size of at
	// least 32px, 24pt, 2em or 200% (xx-large).
	Huge int
}

// Letters counts letters by script.
type Letters struct {
	// ASCII counts A-Z and a-z; Latin the other Latin letters (é, ß).
	ASCII, Latin int
	// Cyrillic, Greek and CJK (Han, Hiragana, Katakana, Hangul) count
	// letters of those scripts; Other every other letter.
	Cyrillic, Greek, CJK, Other int
}

// Total returns the number of letters counted.
func (l Letters) Total() int { return l.ASCII + l.Latin + l.Cyrillic + l.Greek + l.CJK + l.Other }

// Anchor is an HTML link with the text it shows.
type Anchor struct {
	// Href is the link target as kept in Content.URLs.
	Href string
	// Text is the visible text of the link, white space made single
	// spaces, cut at MaxAnchorText bytes.
	Text string
}

// Attachment is one attached part.
type Attachment struct {
	// Filename from Content-Disposition or Content-Type's name parameter,
	// RFC 2231 / RFC 2047 decoded; may be empty.
	Filename string
	// OtherNames are further, different file names the part declares:
	// Content-Type's name beside Content-Disposition's filename, or a
	// repeated parameter. Mail clients differ in which one they show, so
	// a check on names should look at Filename and all of these.
	OtherNames []string
	// DeclaredType is the media type the message claims, lower case.
	DeclaredType string
	// Size is the decoded size in bytes; when Data is nil because of the
	// limits, an upper bound of it computed from the encoded size.
	Size int64
	// Data is the decoded content, nil when it was cut by the limits. It
	// may share memory with the raw message: read it, never write it.
	Data []byte
	// Depth is the nesting depth of the part: 0 for the body of a
	// single-part message, 1 for a part of the top-level multipart, one
	// more for each multipart or message/rfc822 around it.
	Depth int
}

// Anomaly is a fixed kind of structural problem, with a detail for logs.
type Anomaly struct {
	// Kind is what went wrong.
	Kind AnomalyKind
	// Detail says where, for logs; printable ASCII.
	Detail string
}

// AnomalyKind names a structural problem. The set is fixed so that it can
// become symbol names and metric labels.
type AnomalyKind string

// The anomalies the walk reports. Each kind is reported at most once per
// message, with the detail of its first occurrence.
const (
	TooDeep          AnomalyKind = "MIME_TOO_DEEP"
	TooManyParts     AnomalyKind = "MIME_TOO_MANY_PARTS"
	TooLarge         AnomalyKind = "MIME_TOO_LARGE"
	BadEncoding      AnomalyKind = "MIME_BAD_ENCODING"
	UnknownCharset   AnomalyKind = "MIME_UNKNOWN_CHARSET"
	MalformedMIME    AnomalyKind = "MIME_MALFORMED"
	MissingBoundary  AnomalyKind = "MIME_MISSING_BOUNDARY"
	TextTruncated    AnomalyKind = "MIME_TEXT_TRUNCATED"
	AttachmentCutOff AnomalyKind = "MIME_ATTACHMENT_CUT"
)

// AnomalyKinds lists every kind, in a fixed order.
var AnomalyKinds = []AnomalyKind{
	TooDeep, TooManyParts, TooLarge, BadEncoding, UnknownCharset,
	MalformedMIME, MissingBoundary, TextTruncated, AttachmentCutOff,
}

// Bounds on URLs that Limits does not configure: a link filter is not
// meant to look up more.
const (
	// MaxURLs is the most URLs kept in Content.URLs.
	MaxURLs = 1000
	// MaxURLBytes is the longest URL kept; a longer one is cut.
	MaxURLBytes = 2048
	// MaxTextParts is the most parts described in Content.Parts.
	MaxTextParts = 64
	// MaxAnchors is the most links kept in Content.Anchors.
	MaxAnchors = 256
	// MaxAnchorText is the most bytes of a link's text kept.
	MaxAnchorText = 256
)
