package content

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
)

// typical returns a 10 KB text/plain message with the header of ordinary
// mail (a few Received fields, a DKIM signature) and a few links.
func typical(b *testing.B) []byte {
	b.Helper()
	clean, err := os.ReadFile("../../testdata/messages/clean.eml")
	if err != nil {
		b.Fatal(err)
	}
	extra := strings.Repeat("Received: from relay.example.net (relay.example.net [198.51.100.7])\r\n"+
		"\tby mx.example.net (moat) with ESMTPS id 4Xk2Lm9Qz1; Mon, 6 Oct 2025 09:14:02 +0000\r\n", 4) +
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=s1;\r\n" +
		"\tb=" + strings.Repeat("A", 340) + "\r\n"
	msg := extra + string(clean)
	for len(msg) < 10*1024 {
		msg += "Lorem ipsum dolor sit amet, see https://docs.example.test/page for the rest.\r\n"
	}
	return []byte(msg)
}

// alternative returns a 10 KB multipart/alternative message: the same
// words as text and as HTML with links.
func alternative() []byte {
	var plain, html strings.Builder
	for plain.Len() < 3500 {
		plain.WriteString("Lorem ipsum dolor sit amet, see https://docs.example.test/page now.\r\n")
		html.WriteString(`<p>Lorem <b>ipsum</b> dolor sit amet, see <a href="https://docs.example.test/page">the page</a> now.</p>` + "\r\n")
	}
	return msg("Content-Type: multipart/alternative; boundary=alt\n",
		"--alt\nContent-Type: text/plain; charset=utf-8\n\n"+plain.String()+
			"\n--alt\nContent-Type: text/html; charset=utf-8\n\n<html><body>"+html.String()+"</body></html>\n--alt--\n")
}

// withAttachment returns a text message with a 100 KB base64 attachment.
func withAttachment() []byte {
	data := make([]byte, 100<<10)
	copy(data, "%PDF-1.4\n")
	enc := base64.StdEncoding.EncodeToString(data)
	var lines strings.Builder
	for len(enc) > 76 {
		lines.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	lines.WriteString(enc + "\n")
	return msg("Content-Type: multipart/mixed; boundary=m\n",
		"--m\nContent-Type: text/plain\n\nPlease find the report attached.\n"+
			"--m\nContent-Type: application/pdf; name=report.pdf\nContent-Disposition: attachment; filename=report.pdf\n"+
			"Content-Transfer-Encoding: base64\n\n"+lines.String()+"--m--\n")
}

// benchWalk walks raw b.N times.
func benchWalk(b *testing.B, raw []byte) {
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		c := Walk(raw, Limits{})
		if c.Text == "" || len(c.Anomalies) != 0 {
			b.Fatalf("text %d bytes, anomalies %+v", len(c.Text), c.Anomalies)
		}
	}
}

// BenchmarkWalkText walks a typical 10 KB text message.
func BenchmarkWalkText(b *testing.B) { benchWalk(b, typical(b)) }

// BenchmarkWalkAlternative walks a 10 KB text and HTML alternative.
func BenchmarkWalkAlternative(b *testing.B) { benchWalk(b, alternative()) }

// BenchmarkWalkAttachment walks a short text with a 100 KB attachment.
func BenchmarkWalkAttachment(b *testing.B) { benchWalk(b, withAttachment()) }
