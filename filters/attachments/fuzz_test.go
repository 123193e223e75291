package attachments

import (
	"context"
	"testing"
)

// FuzzZipInspect inspects arbitrary bytes as an attached archive under
// small bounds: no panic, the unpacking budget holds, the entry limit
// holds, and reasons are safe to log.
func FuzzZipInspect(f *testing.F) {
	inner := zipOf(f, zipFile{name: "setup.exe", data: peFile()})
	seeds := [][]byte{
		inner,
		zipOf(f, zipFile{name: "inner.zip", data: inner}, zipFile{name: "a.txt", data: []byte("hello"), store: true}),
		encrypted(inner),
		ooxml(f, true),
		manyEntries(f, 40),
		rawZip(f, "inner.zip", inner, 10),
		rawZip(f, "big.bin", make([]byte, 2000), 1<<40),
		storedZip(f, zipFile{name: "x.txt", data: []byte("text")}, zipFile{name: "y.com", data: []byte("MZ")}),
		gzipOf(f, "t.tar", tarOf(f, zipFile{name: "bin/tool", data: elfFile()})),
		append(pdfFile(), inner...),
		ole2File("VBA", "EncryptedPackage"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	cfg := DefaultConfig()
	cfg.MaxArchiveBytes = 1 << 20
	cfg.MaxArchiveEntries = 32
	cfg.MaxArchiveDepth = 3
	f.Fuzz(func(t *testing.T, data []byte) {
		in := newInspection(context.Background(), &cfg)
		in.file("f.zip", []string{"f.zip"}, "application/zip", data, true, 0)
		if in.budget < -1 {
			t.Errorf("unpacked %d bytes, budget %d", cfg.MaxArchiveBytes-in.budget, cfg.MaxArchiveBytes)
		}
		if in.entries > cfg.MaxArchiveEntries+1 {
			t.Errorf("%d entries read, limit %d", in.entries, cfg.MaxArchiveEntries)
		}
		for _, s := range in.symbols(cfg.scores()) {
			for _, c := range []byte(s.Reason) {
				if c < 0x20 || c == 0x7f {
					t.Errorf("%s reason %q holds a control byte", s.Name, s.Reason)
					break
				}
			}
		}
	})
}
