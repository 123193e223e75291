package attachments

import (
	"context"
	"testing"

	"github.com/moatmail/moat/filters"
)

// benchCheck runs the walk and the filter on raw b.N times, as the
// pipeline does for each message: a fresh Message, so the walk is
// counted too.
func benchCheck(b *testing.B, raw []byte, want int) {
	f, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := f.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage(raw)})
		syms := res.Symbols
		if err != nil || len(syms) != want {
			b.Fatal(syms, err)
		}
	}
}

// BenchmarkCheckDocuments checks a message with a PDF, a PNG and a docx.
func BenchmarkCheckDocuments(b *testing.B) {
	benchCheck(b, mimeMessage(
		part{name: "report.pdf", ctype: "application/pdf", data: pdfFile()},
		part{name: "photo.png", ctype: "image/png", data: pngFile(b)},
		part{name: "letter.docx", data: ooxml(b, false)},
	), 0)
}

// BenchmarkCheckNestedZip checks a zip in a zip holding an executable.
func BenchmarkCheckNestedZip(b *testing.B) {
	inner := zipOf(b, zipFile{name: "setup.exe", data: peFile()})
	benchCheck(b, mimeMessage(part{name: "outer.zip", data: zipOf(b, zipFile{name: "inner.zip", data: inner})}), 1)
}
