package heuristics

import (
	"context"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

// plainMessage returns a 10 KB plain-text message with a few Received
// fields and links.
func plainMessage() []byte {
	body := ""
	for len(body) < 10*1024 {
		body += "Lorem ipsum dolor sit amet, see https://docs.example.test/page for the rest.\n"
	}
	return build(nil, body)
}

// htmlMessage returns a 20 KB HTML newsletter: a text alternative, styled
// tables, images and a hundred links.
func htmlMessage() []byte {
	var plain, html strings.Builder
	html.WriteString(`<html><body bgcolor="#ffffff"><table width="600"><tr><td style="font-family: arial; color: #333333">`)
	for i := 0; html.Len() < 16*1024; i++ {
		plain.WriteString("Our new range is in store this week, see https://shop.example.com/item\n")
		html.WriteString(`<p style="font-size:14px; color:#333">Our new range is in <b>store</b> this week, ` +
			`<a href="https://click.example.com/t?id=` + strings.Repeat("x", i%7+1) + `">see the range</a>` +
			`<img src="https://img.example.com/p.gif" width="1" height="1"></p>` + "\n")
	}
	html.WriteString(`<p><a href="https://shop.example.com/unsubscribe">Unsubscribe</a></p></td></tr></table></body></html>`)
	fields, body := alternative(plain.String(), html.String())
	fields["List-Unsubscribe"] = "<https://shop.example.com/u>"
	fields["X-Mailer"] = "Microsoft Outlook Express 6.00.2600.0000"
	fields["Message-ID"] = "<000801c24a1b$3e5f2a40$0a01a8c0@host>"
	return build(fields, body)
}

// benchMessages are the messages the benchmarks run on.
func benchMessages() []struct {
	name string
	raw  []byte
} {
	return []struct {
		name string
		raw  []byte
	}{{"plain10k", plainMessage()}, {"html20k", htmlMessage()}}
}

// BenchmarkCheck measures the heuristics alone, on a message whose MIME
// walk is done (the walk is shared with the other content filters and
// paid once).
func BenchmarkCheck(b *testing.B) { benchCheck(b, true) }

// BenchmarkWalkAndCheck adds the header parse and the MIME walk, for
// scale: what one message costs when the heuristics are the only content
// filter.
func BenchmarkWalkAndCheck(b *testing.B) { benchCheck(b, false) }

func benchCheck(b *testing.B, walked bool) {
	f, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range benchMessages() {
		b.Run(bc.name, func(b *testing.B) {
			in := &filters.Input{Msg: filters.ParseMessage(bc.raw)}
			in.Msg.Content()
			b.SetBytes(int64(len(bc.raw)))
			b.ReportAllocs()
			for b.Loop() {
				if !walked {
					in = &filters.Input{Msg: filters.ParseMessage(bc.raw)}
				}
				if _, err := f.Check(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
