package filters

import (
	"bufio"
	"bytes"
	"fmt"
	"sync"

	"github.com/emersion/go-message/textproto"

	"github.com/moatmail/moat/filters/content"
)

// Message is a received message, read once and parsed once, shared read-only
// by every content filter of a transaction.
type Message struct {
	// Raw is the message as received, with CRLF line endings and without
	// the SMTP dot-stuffing.
	Raw []byte
	// Header is the parsed top-level header. When the header cannot be
	// parsed, Header holds what could be read and HeaderErr says why.
	Header    textproto.Header
	HeaderErr error
	// BodyOffset is the index in Raw where the body starts.
	BodyOffset int
	// Limits bound the MIME walk behind Content; zero fields take
	// content.DefaultLimits. Set it before the first call to Content.
	Limits content.Limits

	contentOnce sync.Once
	content     *content.Content
}

// ParseMessage parses the top-level header of raw. It never fails: a broken
// header is a fact for the header filter to score, not an error.
func ParseMessage(raw []byte) *Message {
	m := &Message{Raw: raw}
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	h, err := textproto.ReadHeader(br)
	m.Header = h
	if err != nil {
		m.HeaderErr = fmt.Errorf("parse header: %w", err)
		// The body still starts after the first empty line, if any, so
		// that content checks see it.
		m.BodyOffset = len(raw)
		if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
			m.BodyOffset = i + 4
		} else if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
			m.BodyOffset = i + 2
		}
		return m
	}
	m.BodyOffset = len(raw) - br.Buffered() - src.Len()
	return m
}

// Body returns the message body (everything after the blank line that ends
// the header).
func (m *Message) Body() []byte {
	return m.Raw[m.BodyOffset:]
}

// Content returns the decoded view of the message (text, links,
// attachments, structural anomalies), walking its MIME structure on the
// first call only: every content filter shares the one walk. It is safe
// for concurrent use, and never nil.
func (m *Message) Content() *content.Content {
	m.contentOnce.Do(func() {
		m.content = content.Walk(m.Raw, m.Limits)
	})
	return m.content
}
