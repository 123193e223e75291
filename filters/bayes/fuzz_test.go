package bayes

import (
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

// FuzzTokenize feeds arbitrary messages (walked by the classifier's MIME
// walk) and arbitrary decoded text to the tokenizer. The hash path and the
// readable-name path must agree feature for feature, the output stays
// bounded, and Features is sorted and without duplicates.
func FuzzTokenize(f *testing.F) {
	f.Add([]byte(tokMessage+"<html><a href=\"http://x.example/\">hi</a></html>"), "Buy $19.99 now!!! www.deals.example")
	f.Add([]byte("Subject: =?utf-8?b?w6k=?=\r\nFrom: \"A\" <a@b.example>\r\n\r\nhello world"), "é ü ß 日本語のテキスト")
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n"), "")
	f.Add([]byte("From: broken <\r\nReceived: from [999.1.1.1]; x\r\n\r\n"), "a@b. http://[::1]:80/ https://user@host:99/ \xff\xfe")
	f.Fuzz(func(t *testing.T, raw []byte, text string) {
		msg := filters.ParseMessage(raw)
		c := msg.Content()
		for _, cc := range []*content.Content{c, {Text: text, URLs: []string{text}, Attachments: []content.Attachment{{Filename: text, DeclaredType: text}}}} {
			hashes := &tokenizer{}
			hashes.message(msg, cc)
			names := &tokenizer{names: []string{}}
			names.message(msg, cc)
			if !slices.Equal(hashes.feats, names.feats) || len(names.names) != len(names.feats) {
				t.Fatalf("hash path %d features, name path %d features / %d names", len(hashes.feats), len(names.feats), len(names.names))
			}
			if n, most := len(hashes.feats), featureBound(cc); n > most {
				t.Fatalf("%d features, more than the bound %d", n, most)
			}
			for _, n := range names.names {
				if len(n) > 300 {
					t.Fatalf("token of %d bytes: %q", len(n), n)
				}
				if n == "" {
					t.Fatal("empty token")
				}
			}
			if utf8.ValidString(cc.Text) {
				for _, n := range names.names {
					if !utf8.ValidString(n) && !hasHeaderBytes(raw) {
						t.Fatalf("invalid UTF-8 token %q from valid text", n)
					}
				}
			}
			feats := Features(msg, cc)
			for i := 1; i < len(feats); i++ {
				if feats[i] <= feats[i-1] {
					t.Fatal("features not sorted and unique")
				}
			}
			if !slices.Equal(feats, Features(msg, cc)) {
				t.Fatal("features differ between two runs")
			}
		}
	})
}

// hasHeaderBytes reports whether raw holds bytes that are not UTF-8,
// which header-derived tokens may carry through.
func hasHeaderBytes(raw []byte) bool { return !utf8.Valid(raw) }
