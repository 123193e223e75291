package bayes

import (
	"bytes"
	"html"
	"io"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // charsets for message.Read

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

// walk is a small stand-in for content.Walk, which another change brings:
// the text/plain and text/html parts decoded to UTF-8, HTML turned into
// text, the links, and the other parts as attachments. It is bounded by
// content.DefaultLimits.
//
// TODO(bayes): use (*filters.Message).Content() once it exists and delete
// this file.
func walk(msg *filters.Message) *content.Content {
	lim := content.DefaultLimits()
	c := &content.Content{}
	e, err := message.Read(bytes.NewReader(msg.Raw))
	if e == nil {
		c.Text = clip(string(msg.Body()), lim.MaxTextBytes)
		c.URLs = urlsIn(c.Text, nil)
		return c
	}
	if err != nil && !message.IsUnknownCharset(err) {
		c.Anomalies = append(c.Anomalies, content.Anomaly{Kind: content.MalformedMIME})
	}
	var text strings.Builder
	parts, decoded := 0, int64(0)
	_ = e.Walk(func(path []int, p *message.Entity, err error) error {
		parts++
		if parts > lim.MaxParts || len(path) > lim.MaxDepth {
			return io.EOF
		}
		if err != nil && !message.IsUnknownCharset(err) {
			return nil
		}
		mt, params, _ := p.Header.ContentType()
		if strings.HasPrefix(mt, "multipart/") {
			return nil
		}
		disp, dparams, _ := p.Header.ContentDisposition()
		name := dparams["filename"]
		if name == "" {
			name = params["name"]
		}
		b, _ := io.ReadAll(io.LimitReader(p.Body, lim.MaxDecodedBytes-decoded))
		decoded += int64(len(b))
		isText := mt == "" || mt == "text/plain" || mt == "text/html"
		if !isText || disp == "attachment" || name != "" {
			c.Attachments = append(c.Attachments, content.Attachment{
				Filename: name, DeclaredType: mt, Size: int64(len(b)), Depth: len(path),
			})
			if !isText {
				return nil
			}
		}
		s := string(b)
		if mt == "text/html" {
			c.HTML = true
			s, c.URLs = htmlText(s, c.URLs)
		} else {
			c.URLs = urlsIn(s, c.URLs)
		}
		if text.Len() < lim.MaxTextBytes {
			text.WriteString(s)
			text.WriteByte('\n')
		}
		return nil
	})
	c.Text = clip(text.String(), lim.MaxTextBytes)
	return c
}

var (
	reDrop    = regexp.MustCompile(`(?is)<(script|style)\b.*?</(script|style)\s*>|<!--.*?-->`)
	reTag     = regexp.MustCompile(`(?s)<[^>]*>`)
	reHref    = regexp.MustCompile(`(?i)\b(?:href|src)\s*=\s*["']?([^"'\s>]+)`)
	reBareURL = regexp.MustCompile(`(?i)\bhttps?://[^\s<>"')\]]+`)
)

// htmlText drops tags, keeping link targets as words of the text.
func htmlText(s string, urls []string) (string, []string) {
	s = reDrop.ReplaceAllString(s, " ")
	for _, m := range reHref.FindAllStringSubmatch(s, -1) {
		urls = addURL(urls, html.UnescapeString(m[1]))
	}
	s = reTag.ReplaceAllStringFunc(s, func(tag string) string {
		if m := reHref.FindStringSubmatch(tag); m != nil {
			return " " + html.UnescapeString(m[1]) + " "
		}
		return " "
	})
	s = html.UnescapeString(s)
	return s, urlsIn(s, urls)
}

func urlsIn(s string, urls []string) []string {
	for _, u := range reBareURL.FindAllString(s, 200) {
		urls = addURL(urls, u)
	}
	return urls
}

func addURL(urls []string, u string) []string {
	for _, v := range urls {
		if v == u {
			return urls
		}
	}
	return append(urls, u)
}
