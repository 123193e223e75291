package attachments

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf16"
)

// The files of the tests, built in Go: real formats, no fixtures.

// peFile returns a minimal Windows PE: a DOS header whose e_lfanew points
// at the "PE\0\0" signature and a COFF header for x86-64.
func peFile() []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x40:], "This program cannot be run in DOS mode.")
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], 0x8664) // Machine
	return b
}

// elfFile returns an ELF header (64-bit, little-endian).
func elfFile() []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF\x02\x01\x01")
	return b
}

// machOFile returns a 64-bit Mach-O header.
func machOFile() []byte {
	b := make([]byte, 32)
	binary.LittleEndian.PutUint32(b, 0xfeedfacf)
	return b
}

// javaClass returns the start of a Java class file (version 52), whose
// magic is Mach-O's fat magic.
func javaClass() []byte {
	return []byte{0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52, 0, 10}
}

// lnkFile returns a Windows shortcut header.
func lnkFile() []byte {
	b := make([]byte, 76)
	copy(b, magicLNK)
	return b
}

// ole2File returns an OLE2 compound file whose directory sector (sector 0,
// at 512) holds a root entry and one storage per name.
func ole2File(names ...string) []byte {
	b := make([]byte, 512+512)
	copy(b, magicOLE2)
	entry := func(i int, name string, typ byte) {
		e := b[512+128*i:]
		u := utf16.Encode([]rune(name))
		for j, c := range u {
			binary.LittleEndian.PutUint16(e[2*j:], c)
		}
		binary.LittleEndian.PutUint16(e[64:], uint16(2*len(u)+2))
		e[66] = typ
	}
	entry(0, "Root Entry", 5)
	for i, n := range names {
		entry(i+1, n, 1)
	}
	return b
}

// pdfFile returns a small, valid PDF.
func pdfFile() []byte {
	return []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
		"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
}

// pngFile returns a 1x1 PNG made by image/png.
func pngFile(t testing.TB) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// isoFile returns the start of an ISO 9660 image: a system area of zeros
// and a primary volume descriptor.
func isoFile() []byte {
	b := make([]byte, 0x8800)
	copy(b[0x8000:], "\x01CD001\x01")
	return b
}

// zipFile is one entry of zipOf.
type zipFile struct {
	name  string
	data  []byte
	store bool // stored rather than deflated
}

// zipOf returns a zip archive made by archive/zip.
func zipOf(t testing.TB, files ...zipFile) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, f := range files {
		m := zip.Deflate
		if f.store {
			m = zip.Store
		}
		fw, err := w.CreateHeader(&zip.FileHeader{Name: f.name, Method: m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encrypted sets the encryption flag (APPNOTE.TXT §4.4.4 bit 0) in every
// local and central header of a zip: the content is not encrypted, but a
// reader must take it for encrypted.
func encrypted(z []byte) []byte {
	z = bytes.Clone(z)
	for _, sig := range []struct {
		magic string
		flags int
	}{{sigLocal, 6}, {sigCentral, 8}} {
		for i := 0; ; {
			j := bytes.Index(z[i:], []byte(sig.magic))
			if j < 0 {
				break
			}
			z[i+j+sig.flags] |= flagEncrypted
			i += j + 4
		}
	}
	return z
}

// rawZip returns a zip with one deflated entry whose header declares
// usize unpacked bytes, whatever data unpacks to.
func rawZip(t testing.TB, name string, data []byte, usize uint64) []byte {
	var comp bytes.Buffer
	fw := zipDeflater(&comp)
	fw.Write(data)
	fw.Close()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	raw, err := w.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate,
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: usize})
	if err != nil {
		t.Fatal(err)
	}
	raw.Write(comp.Bytes())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// methodZip returns a zip of one entry whose compression method is
// method (9 Deflate64, 12 bzip2, 14 LZMA, 93 Zstandard, 95 xz), holding
// the bytes given as its compressed data.
func methodZip(t testing.TB, name string, method uint16, comp []byte) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	raw, err := w.CreateRaw(&zip.FileHeader{Name: name, Method: method,
		CompressedSize64: uint64(len(comp)), UncompressedSize64: uint64(len(comp)) * 3})
	if err != nil {
		t.Fatal(err)
	}
	raw.Write(comp)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// manyEntries returns a zip of n empty stored files.
func manyEntries(t testing.TB, n int) []byte {
	files := make([]zipFile, n)
	for i := range files {
		files[i] = zipFile{name: fmt.Sprintf("f%05d.txt", i), store: true}
	}
	return zipOf(t, files...)
}

// ooxml returns an Office Open XML word processing package, with a VBA
// project when macros is true.
func ooxml(t testing.TB, macros bool) []byte {
	if macros {
		return ooxmlParts(t, `<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>`,
			zipFile{name: "word/vbaProject.bin", data: ole2File("VBA", "PROJECT")})
	}
	return ooxmlParts(t, "")
}

// ooxmlParts returns an Office Open XML word processing package with the
// extra parts, and types (Default and Override elements) in its
// [Content_Types].xml.
func ooxmlParts(t testing.TB, types string, extra ...zipFile) []byte {
	files := []zipFile{
		{name: "[Content_Types].xml", data: []byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
			`<Default Extension="xml" ContentType="application/xml"/>` + types + `</Types>`)},
		{name: "_rels/.rels", data: []byte(`<?xml version="1.0"?><Relationships/>`)},
		{name: "word/document.xml", data: []byte(`<?xml version="1.0"?><w:document/>`)},
	}
	return zipOf(t, append(files, extra...)...)
}

// gzipOf returns data gzipped, with name in the header when not empty.
func gzipOf(t testing.TB, name string, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Name = name
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// tarOf returns a tar archive of the files.
func tarOf(t testing.TB, files ...zipFile) []byte {
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for _, f := range files {
		if err := w.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// part is one attachment of mimeMessage.
type part struct {
	name  string // filename parameter; may be empty
	ctype string // Content-Type value; application/octet-stream if empty
	data  []byte
}

// mimeMessage returns a multipart/mixed message with a text part and the
// parts as base64 attachments, with CRLF line ends, as the gateway
// receives it.
func mimeMessage(parts ...part) []byte {
	var b strings.Builder
	b.WriteString("From: sender@example.test\r\nTo: rcpt@example.net\r\nSubject: documents\r\n" +
		"Date: Mon, 6 Oct 2025 11:14:01 +0200\r\nMessage-ID: <att@example.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_att\"\r\n\r\n" +
		"--=_att\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find the documents attached.\r\n")
	for _, p := range parts {
		ct := p.ctype
		if ct == "" {
			ct = "application/octet-stream"
		}
		b.WriteString("--=_att\r\nContent-Type: " + ct + "\r\nContent-Transfer-Encoding: base64\r\n")
		if p.name != "" {
			b.WriteString("Content-Disposition: attachment; filename*=utf-8''" + pctEncode(p.name) + "\r\n")
		}
		b.WriteString("\r\n")
		enc := base64.StdEncoding.EncodeToString(p.data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--=_att--\r\n")
	return []byte(b.String())
}

// pctEncode percent-encodes a file name for RFC 2231.
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// zipDeflater returns a raw deflate writer at the default level.
func zipDeflater(w *bytes.Buffer) interface {
	Write([]byte) (int, error)
	Close() error
} {
	fw, _ := flate.NewWriter(w, flate.DefaultCompression)
	return fw
}

// storedZip returns a zip of stored entries whose local headers carry
// their sizes (no data descriptors), as CreateRaw writes them.
func storedZip(t testing.TB, files ...zipFile) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, f := range files {
		fw, err := w.CreateRaw(&zip.FileHeader{Name: f.name, Method: zip.Store, CRC32: crc32.ChecksumIEEE(f.data),
			CompressedSize64: uint64(len(f.data)), UncompressedSize64: uint64(len(f.data))})
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(f.data)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// randomBytes returns n bytes that compress to no less and sniff as no
// type, the same on every run.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{'m', 'o', 'a', 't'})
	r.Read(b)
	return b
}
