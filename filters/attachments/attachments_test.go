package attachments

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

// check runs the filter under cfg on a message built around parts and
// returns the symbols by name.
func check(t *testing.T, cfg Config, raw []byte) map[string]filters.Symbol {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage(raw)})
	syms := res.Symbols
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]filters.Symbol{}
	for _, s := range syms {
		if _, dup := got[s.Name]; dup {
			t.Errorf("%s returned twice", s.Name)
		}
		got[s.Name] = s
	}
	return got
}

// TestCheckMessages runs real files, attached to real messages, through
// the MIME walk and the filter.
func TestCheckMessages(t *testing.T) {
	small := DefaultConfig()
	small.MaxArchiveBytes = 1 << 20
	noArchives := DefaultConfig()
	noArchives.MaxArchiveDepth = 0
	deep := zipOf(t, zipFile{name: "setup.exe", data: peFile()})
	for i := range 3 {
		deep = zipOf(t, zipFile{name: "level" + string(rune('1'+i)) + ".zip", data: deep})
	}
	lyingInner := rawZip(t, "inner.zip", zipOf(t, zipFile{name: "a.txt", data: bytes.Repeat([]byte("x"), 50000)}), 100)

	// Archives broken part way: what follows the break is unseen.
	// A container is read to its end, where gzip checks its CRC-32 (RFC
	// 1952 §2.3.1); a file that is only sniffed is read no further than
	// its type needs.
	files := tarOf(t, zipFile{name: "a.txt", data: randomBytes(20000)}, zipFile{name: "b.txt", data: []byte("b")})
	badHeader := slices.Clone(files)
	badHeader[512+20480+100] ^= 0xff // the second header's mode: its checksum fails
	tgz := gzipOf(t, "", files)
	cutTgz := append(slices.Clone(tgz[:len(tgz)/2]), tgz[len(tgz)-8:]...) // the trailer kept: ISIZE stays true
	badCRC := slices.Clone(tgz)
	badCRC[len(badCRC)-8] ^= 0xff
	tests := []struct {
		name   string
		cfg    *Config
		parts  []part
		want   []string
		reason map[string]string // a part of the reason of a symbol
	}{
		{name: "benign PDF and PNG", parts: []part{
			{name: "report.pdf", ctype: "application/pdf", data: pdfFile()},
			{name: "photo.png", ctype: "image/png", data: pngFile(t)},
		}},
		{name: "benign docx and zip of documents", parts: []part{
			{name: "letter.docx", ctype: "application/vnd.openxmlformats-officedocument.wordprocessingml.document", data: ooxml(t, false)},
			{name: "docs.zip", ctype: "application/zip", data: zipOf(t, zipFile{name: "a.pdf", data: pdfFile()}, zipFile{name: "dir/", data: nil}, zipFile{name: "Main.class", data: javaClass()})},
			{name: "invoice.pdf.zip", ctype: "application/zip", data: zipOf(t, zipFile{name: "invoice.pdf", data: pdfFile()})},
		}},
		{name: "zip in zip with an executable", parts: []part{
			{name: "outer.zip", data: zipOf(t, zipFile{name: "inner.zip", data: zipOf(t, zipFile{name: "setup.exe", data: peFile()})})},
		}, want: []string{SymArchiveDangerous}, reason: map[string]string{SymArchiveDangerous: "outer.zip/inner.zip/setup.exe: executable"}},
		{name: "double extension", parts: []part{{name: "invoice.pdf.exe", data: peFile()}},
			want:   []string{SymExecutable, SymDoubleExt},
			reason: map[string]string{SymDoubleExt: "extension .exe hidden behind .pdf", SymExecutable: "invoice.pdf.exe: extension .exe"}},
		{name: "double extension padded with spaces", parts: []part{{name: "invoice.pdf                              .exe", data: peFile()}},
			want: []string{SymExecutable, SymDoubleExt}},
		{name: "right-to-left override", parts: []part{{name: "invoice\u202efdp.exe", data: peFile()}},
			want: []string{SymExecutable, SymDoubleExt}, reason: map[string]string{SymDoubleExt: "invoice<U+202E>fdp.exe"}},
		{name: "right-to-left override on a script", parts: []part{{name: "photo\u202egpj.js", ctype: "text/plain", data: []byte("WScript.Echo(1)")}},
			want: []string{SymScript, SymDoubleExt}},
		{name: "docm", parts: []part{{name: "report.docm", ctype: "application/vnd.ms-word.document.macroEnabled.12", data: ooxml(t, true)}},
			want: []string{SymMacro}, reason: map[string]string{SymMacro: "report.docm"}},
		{name: "macro document renamed docx", parts: []part{{name: "report.docx", data: ooxml(t, true)}},
			want: []string{SymMacro}, reason: map[string]string{SymMacro: "vbaProject.bin"}},
		{name: "VBA project under another part name", parts: []part{{name: "report.docx", data: ooxmlParts(t,
			`<Override PartName="/word/settings.dat" ContentType="application/vnd.ms-office.vbaProject"/>`,
			zipFile{name: "word/settings.dat", data: ole2File("VBA", "PROJECT")})}},
			want: []string{SymMacro}, reason: map[string]string{SymMacro: "word/settings.dat"}},
		{name: "printer settings beside a VBA project", parts: []part{{name: "book.xlsx", data: ooxmlParts(t,
			`<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>`+
				`<Override PartName="/xl/printerSettings/printerSettings1.bin" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.printerSettings"/>`,
			zipFile{name: "xl/printerSettings/printerSettings1.bin", data: peFile()},
			zipFile{name: "xl/vbaProject.bin", data: ole2File("VBA", "PROJECT")})}},
			want: []string{SymMacro, SymArchiveDangerous}, reason: map[string]string{SymMacro: "xl/vbaProject.bin (VBA project)",
				SymArchiveDangerous: "printerSettings1.bin: executable"}},
		{name: "Excel 4.0 macro sheet", parts: []part{{name: "prices.xlsx", data: ooxmlParts(t,
			`<Override PartName="/xl/macrosheets/sheet1.xml" ContentType="application/vnd.ms-excel.macrosheet+xml"/>`,
			zipFile{name: "xl/macrosheets/sheet1.xml", data: []byte(`<?xml version="1.0"?><xm:macrosheet/>`)})}},
			want: []string{SymMacro}, reason: map[string]string{SymMacro: "macro sheet"}},
		{name: "OLE2 with a VBA storage", parts: []part{{name: "budget.xls", ctype: "application/vnd.ms-excel", data: ole2File("_VBA_PROJECT_CUR", "VBA")}},
			want: []string{SymMacro}, reason: map[string]string{SymMacro: "OLE2 file with a VBA project"}},
		{name: "OLE2 with Word 97 Macros", parts: []part{{name: "old.doc", data: ole2File("Macros")}}, want: []string{SymMacro}},
		{name: "OLE2 without macros", parts: []part{{name: "old.doc", data: ole2File("WordDocument", "VBAish")}}},
		{name: "encrypted Office document", parts: []part{{name: "salary.xlsx", data: ole2File("EncryptionInfo", "EncryptedPackage")}},
			want: []string{SymArchiveEncrypted}},
		{name: "PE named report.pdf", parts: []part{{name: "report.pdf", ctype: "application/pdf", data: peFile()}},
			want:   []string{SymExecutable, SymTypeMismatch},
			reason: map[string]string{SymTypeMismatch: "Windows executable content named .pdf"}},
		{name: "PE declared as a PDF", parts: []part{{ctype: "application/pdf", data: peFile()}},
			want: []string{SymExecutable, SymTypeMismatch}, reason: map[string]string{SymTypeMismatch: "declared application/pdf"}},
		{name: "PE that says what it is", parts: []part{{name: "setup.exe", ctype: "application/x-msdownload", data: peFile()}},
			want: []string{SymExecutable}},
		{name: "ELF and Mach-O without names", parts: []part{{data: elfFile()}, {data: machOFile()}},
			want: []string{SymExecutable}, reason: map[string]string{SymExecutable: "ELF executable (and 1 more)"}},
		{name: "shortcut", parts: []part{{name: "invoice.lnk", data: lnkFile()}}, want: []string{SymExecutable}},
		{name: "jar by name", parts: []part{{name: "tool.jar", data: zipOf(t, zipFile{name: "Main.class", data: javaClass()})}}, want: []string{SymExecutable}},
		{name: "shell script by its #! line", parts: []part{{name: "notes.txt", ctype: "text/plain", data: []byte("#!/bin/sh\ncurl x | sh\n")}},
			want: []string{SymUnixScript}, reason: map[string]string{SymUnixScript: "content: script (#!)"}},
		{name: "shell scripts by name and declared type", parts: []part{{name: "install.sh", data: []byte("make install")},
			{ctype: "application/x-shellscript", data: []byte("ls")}},
			want: []string{SymUnixScript}, reason: map[string]string{SymUnixScript: "install.sh: extension .sh (and 1 more)"}},
		{name: "a #! script named .js is a script", parts: []part{{name: "a.js", data: []byte("#!/usr/bin/env node\n1")}},
			want: []string{SymScript}},
		{name: "macOS .command runs on a double click", parts: []part{{name: "open.command", data: []byte("#!/bin/sh\nrm -rf ~")}},
			want: []string{SymScript}},
		{name: "shell script in a zip is nothing", parts: []part{{name: "src.zip", data: zipOf(t, zipFile{name: "src/configure", data: []byte("#!/bin/sh\n")},
			zipFile{name: "src/build.sh", data: []byte("make")})}}},
		{name: "double extension to a shell script is no lure", parts: []part{{name: "readme.txt.sh", data: []byte("echo")}},
			want: []string{SymUnixScript}},
		{name: "scripts by extension", parts: []part{
			{name: "run.ps1", data: []byte("Get-Process")}, {name: "a.vbs", data: []byte("x")}, {name: "b.bat", data: []byte("@echo off")},
		}, want: []string{SymScript}},
		{name: "HTML application", parts: []part{{name: "page.html", ctype: "text/html", data: []byte("<html><HTA:APPLICATION ID=x><script>1</script>")}},
			want: []string{SymScript}},
		{name: "script by declared type", parts: []part{{ctype: "application/javascript", data: []byte("eval(1)")}}, want: []string{SymScript}},
		{name: "ISO image", parts: []part{{name: "scan.iso", data: isoFile()}}, want: []string{SymDiskImage}},
		{name: "ISO image named as a document", parts: []part{{name: "scan.pdf", ctype: "application/pdf", data: isoFile()}},
			want: []string{SymDiskImage}, reason: map[string]string{SymDiskImage: "ISO 9660"}},
		{name: "img by name", parts: []part{{name: "disk.img", data: []byte("raw")}}, want: []string{SymDiskImage}},
		{name: "ISO in a zip", parts: []part{{name: "scan.zip", data: zipOf(t, zipFile{name: "scan.dat", data: isoFile()})}},
			want: []string{SymArchiveDangerous}, reason: map[string]string{SymArchiveDangerous: "disk image"}},
		{name: "encrypted zip", parts: []part{{name: "secret.zip", data: encrypted(zipOf(t, zipFile{name: "invoice.pdf", data: pdfFile()}))}},
			want: []string{SymArchiveEncrypted}, reason: map[string]string{SymArchiveEncrypted: "secret.zip/invoice.pdf: encrypted"}},
		{name: "encrypted zip with an executable name", parts: []part{{name: "secret.zip", data: encrypted(zipOf(t, zipFile{name: "invoice.exe", data: peFile()}))}},
			want: []string{SymArchiveDangerous, SymArchiveEncrypted}},
		{name: "zip bomb: one entry declaring 10 GiB", parts: []part{{name: "big.zip", data: rawZip(t, "big.bin", make([]byte, 1000), 10<<30)}},
			want: []string{SymArchiveBomb}, reason: map[string]string{SymArchiveBomb: "declares 10737418240 bytes"}},
		{name: "zip bomb: 20,000 entries", parts: []part{{name: "many.zip", data: manyEntries(t, 20000)}},
			want: []string{SymArchiveBomb}, reason: map[string]string{SymArchiveBomb: "more than 10000 archive entries"}},
		{name: "zip bomb: entries declaring too much together", cfg: &small, parts: []part{{name: "sum.zip", data: zipOf(t,
			zipFile{name: "a", data: make([]byte, 600<<10)}, zipFile{name: "b", data: make([]byte, 600<<10)})}},
			want: []string{SymArchiveBomb}, reason: map[string]string{SymArchiveBomb: "declare more than 1048576"}},
		{name: "zip bomb: an archive that unpacks to more than it declares", parts: []part{{name: "lie.zip", data: lyingInner}},
			want: []string{SymArchiveBomb}, reason: map[string]string{SymArchiveBomb: "lie.zip/inner.zip: unpacks to more than its declared size"}},
		{name: "gzip bomb", cfg: &small, parts: []part{{name: "zeros.gz", data: gzipOf(t, "", make([]byte, 4<<20))}},
			want: []string{SymArchiveBomb}},
		{name: "archives nested deeper than the limit", parts: []part{{name: "deep.zip", data: deep}},
			want: []string{SymArchiveBomb}, reason: map[string]string{SymArchiveBomb: "nested deeper than 3"}},
		{name: "archives not opened at depth 0", cfg: &noArchives, parts: []part{{name: "outer.zip", data: deep}}},
		{name: "tar.gz with an executable", parts: []part{{name: "tools.tar.gz", data: gzipOf(t, "", tarOf(t, zipFile{name: "bin/tool", data: elfFile()}, zipFile{name: "README", data: []byte("hi")}))}},
			want: []string{SymArchiveDangerous}, reason: map[string]string{SymArchiveDangerous: "tools.tar.gz/tools.tar/bin/tool: executable (content: ELF executable)"}},
		{name: "gzip of a PE", parts: []part{{name: "update.gz", data: gzipOf(t, "update.bin", peFile())}},
			want: []string{SymArchiveDangerous}},
		{name: "PE named as a photo in a zip", parts: []part{{name: "photos.zip", data: zipOf(t, zipFile{name: "IMG_0001.jpg", data: peFile()})}},
			want: []string{SymArchiveDangerous}, reason: map[string]string{SymArchiveDangerous: "Windows executable content named .jpg"}},
		{name: "zip entry in Deflate64", parts: []part{{name: "invoice.zip", data: methodZip(t, "invoice.pdf", 9, bytes.Repeat([]byte{0x5a}, 300))}},
			want: []string{SymArchiveUnreadable}},
		{name: "zip entry in bzip2 named as an executable", parts: []part{{name: "setup.zip", data: methodZip(t, "setup.exe", 12, []byte("BZh91AY&SY"))}},
			want: []string{SymArchiveDangerous, SymArchiveUnreadable}},
		{name: "broken gzip", parts: []part{{name: "logs.gz", data: []byte("\x1f\x8b\x08\xffbroken")}},
			want: []string{SymArchiveUnreadable}},
		{name: "tar.gz cut short", parts: []part{{name: "files.tar.gz", data: cutTgz}},
			want: []string{SymArchiveUnreadable}, reason: map[string]string{SymArchiveUnreadable: "files.tar.gz/files.tar: broken after"}},
		{name: "tar.gz failing its checksum", parts: []part{{name: "files.tar.gz", data: badCRC}},
			want: []string{SymArchiveUnreadable}, reason: map[string]string{SymArchiveUnreadable: "checksum"}},
		{name: "tar.gz whole", parts: []part{{name: "files.tar.gz", data: tgz}}},
		{name: "tar cut inside an entry", parts: []part{{name: "files.tar", data: files[:15000]}},
			want: []string{SymArchiveUnreadable}, reason: map[string]string{SymArchiveUnreadable: "files.tar: tar broken: unexpected EOF"}},
		{name: "tar with a broken second header", parts: []part{{name: "files.tar", data: badHeader}},
			want: []string{SymArchiveUnreadable}, reason: map[string]string{SymArchiveUnreadable: "files.tar: tar broken: archive/tar: invalid tar header"}},
		{name: "tar whole", parts: []part{{name: "files.tar", data: files}}},
		{name: "zip entry with a corrupt deflate stream", parts: []part{{name: "a.zip", data: methodZip(t, "a.txt", 8, bytes.Repeat([]byte{0xff}, 64))}},
			want: []string{SymArchiveUnreadable}},
		{name: "docm in a zip", parts: []part{{name: "docs.zip", data: zipOf(t, zipFile{name: "report.docm", data: ooxml(t, true)})}},
			want: []string{SymArchiveDangerous}, reason: map[string]string{SymArchiveDangerous: "macro document"}},
		{name: "stored entries", parts: []part{{name: "s.zip", data: zipOf(t, zipFile{name: "x.scr", data: peFile(), store: true})}},
			want: []string{SymArchiveDangerous}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				cfg = *tt.cfg
			}
			got := check(t, cfg, mimeMessage(tt.parts...))
			var names []string
			for n := range got {
				names = append(names, n)
			}
			slices.Sort(names)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(names, want) {
				t.Fatalf("symbols %v, want %v\n%+v", names, want, got)
			}
			scores := cfg.scores()
			for _, s := range got {
				if i := slices.Index(Symbols, s.Name); scores[i] != s.Score {
					t.Errorf("%s scored %v, want %v", s.Name, s.Score, scores[i])
				}
			}
			for sym, part := range tt.reason {
				if !strings.Contains(got[sym].Reason, part) {
					t.Errorf("%s reason %q does not contain %q", sym, got[sym].Reason, part)
				}
			}
		})
	}
}

// TestCutAttachment judges an attachment the walk did not decode by its
// name alone.
func TestCutAttachment(t *testing.T) {
	msg := filters.ParseMessage(mimeMessage(part{name: "setup.exe", data: bytes.Repeat(peFile(), 8)}))
	msg.Limits = content.Limits{MaxDecodedBytes: 1000}
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Check(context.Background(), &filters.Input{Msg: msg})
	syms := res.Symbols
	if err != nil {
		t.Fatal(err)
	}
	if a := msg.Content().Attachments; len(a) != 1 || a[0].Data != nil {
		t.Fatalf("attachment not cut: %+v", a)
	}
	if len(syms) != 1 || syms[0].Name != SymExecutable {
		t.Errorf("symbols %+v", syms)
	}
}

// TestCheckCanceled fails when the context is over, and never before the
// data stage.
func TestCheckCanceled(t *testing.T) {
	f, _ := New(DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	msg := filters.ParseMessage(mimeMessage(part{name: "a.zip", data: zipOf(t, zipFile{name: "a.exe", data: peFile()})}))
	if _, err := f.Check(ctx, &filters.Input{Msg: msg}); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("canceled: err %v", err)
	}
	if _, err := f.Check(context.Background(), &filters.Input{}); err == nil {
		t.Error("no error without a message")
	}
	res, err := f.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage([]byte("Subject: x\r\n\r\nhi\r\n"))})
	syms := res.Symbols
	if err != nil || syms != nil {
		t.Errorf("no attachments: %v %v", syms, err)
	}
}

// TestConfig checks the defaults, Validate and the filter's identity.
func TestConfig(t *testing.T) {
	d := DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	want := [numFindings]float64{15, 12, 10, 12, 5, 8, 12, 3, 5, 4, 1}
	if d.scores() != want || d.MaxArchiveDepth != 3 || d.MaxArchiveBytes != 64<<20 || d.MaxArchiveEntries != 10000 {
		t.Errorf("defaults %+v", d)
	}
	zeroScores := d
	zeroScores.Executable, zeroScores.ArchiveBomb, zeroScores.MaxArchiveDepth = 0, -2, 0
	if err := zeroScores.Validate(); err != nil {
		t.Errorf("zero and negative scores, depth 0: %v", err)
	}
	tests := []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Script = math.NaN() }, "attach_script: NaN is not a finite number"},
		{func(c *Config) { c.ArchiveBomb = math.Inf(-1) }, "attach_archive_bomb: -Inf is not a finite number"},
		{func(c *Config) { c.MaxArchiveDepth = -1 }, "max_archive_depth: -1 is not in 0..16"},
		{func(c *Config) { c.MaxArchiveDepth = 17 }, "max_archive_depth: 17 is not in 0..16"},
		{func(c *Config) { c.MaxArchiveBytes = 0 }, "max_archive_bytes: 0 is not positive"},
		{func(c *Config) { c.MaxArchiveEntries = 0 }, "max_archive_entries: 0 is not in 1..1000000"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.edit(&c)
		err := c.Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("Validate() = %v, want %q", err, tt.want)
		}
		if _, err := New(c); err == nil {
			t.Errorf("New accepted %+v", c)
		}
	}
	f, _ := New(d)
	if f.Name() != "attachments" || f.Stage() != filters.StageData || !slices.Equal(f.Symbols(), Symbols) || len(Symbols) != int(numFindings) {
		t.Errorf("name %q, stage %v, symbols %v", f.Name(), f.Stage(), f.Symbols())
	}
}
