// Package content walks the MIME structure of a message once and gives every
// content filter (bayes, antivirus, attachments) the same decoded view:
// the text a reader sees, the links, and the attachments.
//
// The walk is bounded: a message nested too deep, with too many parts, or
// that decodes to too much, is cut short and says so in Anomalies (a MIME
// bomb is a symbol, not an outage).
package content

// Limits bound the walk. Zero fields take the defaults of DefaultLimits.
type Limits struct {
	// MaxDepth is the deepest multipart or message/rfc822 nesting walked
	// (default 20).
	MaxDepth int `toml:"max_depth"`
	// MaxParts is the most MIME parts walked (default 1000).
	MaxParts int `toml:"max_parts"`
	// MaxDecodedBytes bounds the bytes decoded from all parts together
	// (default 64 MiB).
	MaxDecodedBytes int64 `toml:"max_decoded_bytes"`
	// MaxTextBytes bounds Content.Text (default 1 MiB): classifiers read
	// no further.
	MaxTextBytes int `toml:"max_text_bytes"`
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
	// Limits.MaxTextBytes.
	Text string
	// HTML is true when some text came from an HTML part.
	HTML bool
	// URLs are the links found in text and HTML parts (href and src
	// attributes, and bare http(s):// URLs in text), in order, without
	// duplicates.
	URLs []string
	// Attachments lists every non-text leaf part and every part with a
	// filename, in walk order.
	Attachments []Attachment
	// Anomalies say what was wrong with the structure; empty for a sound
	// message.
	Anomalies []Anomaly
}

// Attachment is one attached part.
type Attachment struct {
	// Filename from Content-Disposition or Content-Type's name parameter,
	// RFC 2231 / RFC 2047 decoded; may be empty.
	Filename string
	// DeclaredType is the media type the message claims, lower case.
	DeclaredType string
	// Size is the decoded size in bytes.
	Size int64
	// Data is the decoded content, nil when it was cut by the limits.
	Data []byte
	// Depth is the nesting depth of the part (1 for a top-level part).
	Depth int
}

// Anomaly is a fixed kind of structural problem, with a detail for logs.
type Anomaly struct {
	Kind   AnomalyKind
	Detail string
}

// AnomalyKind names a structural problem. The set is fixed so that it can
// become symbol names and metric labels.
type AnomalyKind string

// The anomalies the walk reports.
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
