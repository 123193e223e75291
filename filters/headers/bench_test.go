package headers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
)

// typical returns a 10 KB message with the header of ordinary mail: a few
// Received fields, a DKIM signature, list headers.
func typical(b *testing.B) []byte {
	b.Helper()
	clean, err := os.ReadFile(filepath.Join(fixtures, "clean.eml"))
	if err != nil {
		b.Fatal(err)
	}
	extra := strings.Repeat("Received: from relay.example.net (relay.example.net [198.51.100.7])\r\n"+
		"\tby mx.example.net (moat) with ESMTPS id 4Xk2Lm9Qz1; Mon, 6 Oct 2025 09:14:02 +0000\r\n", 4) +
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=s1;\r\n" +
		"\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n" +
		"\tb=" + strings.Repeat("A", 340) + "\r\n" +
		"List-Id: <team.example.test>\r\nList-Unsubscribe: <mailto:leave@example.test>\r\n"
	msg := extra + string(clean)
	for len(msg) < 10*1024 {
		msg += "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
	}
	return []byte(msg)
}

// BenchmarkCheck measures the filter alone on a parsed 10 KB message.
func BenchmarkCheck(b *testing.B) {
	f, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	raw := typical(b)
	in := &filters.Input{Env: &filters.Envelope{}, Msg: filters.ParseMessage(raw)}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := f.Check(context.Background(), in)
		syms := res.Symbols
		if err != nil || len(syms) != 0 {
			b.Fatal(syms, err)
		}
	}
}

// BenchmarkParseAndCheck adds the header parse every content filter
// shares.
func BenchmarkParseAndCheck(b *testing.B) {
	f, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	raw := typical(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		in := &filters.Input{Env: &filters.Envelope{}, Msg: filters.ParseMessage(raw)}
		if _, err := f.Check(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
