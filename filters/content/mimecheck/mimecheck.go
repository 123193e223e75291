// Package mimecheck is the data-stage filter "mime": it turns the
// structural anomalies that the shared MIME walk (package content) found
// into symbols, one per kind of anomaly present.
//
// It lives beside package content rather than in it because a filter
// imports package filters, and package filters imports content (for
// Message.Content): Go allows no import cycle.
package mimecheck

import (
	"context"
	"errors"
	"fmt"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

// Symbols lists every symbol name the filter can return: the anomaly
// kinds of package content.
var Symbols = func() []string {
	s := make([]string, len(content.AnomalyKinds))
	for i, k := range content.AnomalyKinds {
		s[i] = string(k)
	}
	return s
}()

// Config holds the score of each symbol; the TOML key is the symbol name
// in lower case. Start from DefaultConfig: a zero score is a score (the
// symbol is still reported, for logs), not a request for the default.
//
// Defaults: a structure built to defeat scanners (nesting, part counts)
// scores more than one a sloppy mailer produces (a bad charset name):
//
//	mime_too_deep          3.0  nesting deeper than limits.max_depth
//	mime_too_many_parts    3.0  more parts than limits.max_parts
//	mime_too_large         1.0  decoded parts beyond limits.max_decoded_bytes
//	mime_bad_encoding      1.0  broken base64 or quoted-printable, unknown encoding
//	mime_unknown_charset   0.5  a charset go-message does not know
//	mime_malformed         2.9  broken part header, no close delimiter, ...
//	mime_missing_boundary  2.0  a multipart without its boundary (RFC 2046 §5.1.1)
//	mime_text_truncated    0.0  text beyond limits.max_text_bytes (logged only)
//	mime_attachment_cut    4.0  an attachment or an encoded layer left undecoded by
//	                            the limits: its content was not inspected, and mail
//	                            within smtp.max_message_bytes hardly reaches them
//	                            honestly (with mime_too_large, a tag)
type Config struct {
	TooDeep          float64 `toml:"mime_too_deep"`
	TooManyParts     float64 `toml:"mime_too_many_parts"`
	TooLarge         float64 `toml:"mime_too_large"`
	BadEncoding      float64 `toml:"mime_bad_encoding"`
	UnknownCharset   float64 `toml:"mime_unknown_charset"`
	Malformed        float64 `toml:"mime_malformed"`
	MissingBoundary  float64 `toml:"mime_missing_boundary"`
	TextTruncated    float64 `toml:"mime_text_truncated"`
	AttachmentCutOff float64 `toml:"mime_attachment_cut"`
}

// DefaultConfig returns the scores documented on Config.
func DefaultConfig() Config {
	return Config{
		TooDeep:          3,
		TooManyParts:     3,
		TooLarge:         1,
		BadEncoding:      1,
		UnknownCharset:   0.5,
		Malformed:        2.9,
		MissingBoundary:  2,
		TextTruncated:    0,
		AttachmentCutOff: 4,
	}
}

// Validate reports the first score that is not a finite number.
func (c Config) Validate() error { return filters.ValidateScores(c) }

// score returns the configured score of kind.
func (c Config) score(kind content.AnomalyKind) float64 {
	switch kind {
	case content.TooDeep:
		return c.TooDeep
	case content.TooManyParts:
		return c.TooManyParts
	case content.TooLarge:
		return c.TooLarge
	case content.BadEncoding:
		return c.BadEncoding
	case content.UnknownCharset:
		return c.UnknownCharset
	case content.MalformedMIME:
		return c.Malformed
	case content.MissingBoundary:
		return c.MissingBoundary
	case content.TextTruncated:
		return c.TextTruncated
	case content.AttachmentCutOff:
		return c.AttachmentCutOff
	}
	return 0
}

// Filter is the MIME structure check, a data-stage filter. It is safe for
// concurrent use.
type Filter struct {
	cfg Config
}

var _ filters.Filter = (*Filter)(nil)

// New returns the filter.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mime config: %w", err)
	}
	return &Filter{cfg: cfg}, nil
}

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return Symbols }

// Name implements filters.Filter.
func (f *Filter) Name() string { return "mime" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageData }

// errNoMessage means the pipeline ran the filter before DATA.
var errNoMessage = errors.New("mime: no message (not at the data stage)")

// Check implements filters.Filter. The walk is shared with the other
// content filters (Message.Content); the walk reports each kind once, so
// each symbol comes at most once, with the first occurrence as reason.
func (f *Filter) Check(_ context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Msg == nil {
		return filters.Result{}, errNoMessage
	}
	an := in.Msg.Content().Anomalies
	if len(an) == 0 {
		return filters.Result{}, nil
	}
	syms := make([]filters.Symbol, 0, len(an))
	for _, a := range an {
		syms = append(syms, filters.Symbol{Name: string(a.Kind), Score: f.cfg.score(a.Kind), Reason: a.Detail})
	}
	return filters.Result{Symbols: syms}, nil
}
