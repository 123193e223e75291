package attachments

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

// inspect runs the inspection of one attachment under cfg and returns it.
func inspect(cfg Config, name string, data []byte) *inspection {
	in := newInspection(context.Background(), &cfg)
	in.file(name, []string{name}, "", data, true, 0)
	return in
}

// names returns the names of the symbols an inspection found.
func (in *inspection) names() []string {
	var n []string
	for _, s := range in.symbols(DefaultConfig().scores()) {
		n = append(n, s.Name)
	}
	return n
}

// TestZipLayouts reads zips laid out in the ways readers meet them.
func TestZipLayouts(t *testing.T) {
	exeZip := zipOf(t, zipFile{name: "a/b/payload.exe", data: peFile()}, zipFile{name: "readme.txt", data: []byte("hi")})
	dir, _, _, _ := zipDirectory(exeZip)
	noDirectory := exeZip[:bytes.Index(exeZip, dir)] // cut before the central directory
	storedNoDir := storedZip(t, zipFile{name: "x.txt", data: []byte("text")}, zipFile{name: "y.com", data: []byte("MZ")})
	sd, _, _, _ := zipDirectory(storedNoDir)
	storedNoDir = storedNoDir[:bytes.Index(storedNoDir, sd)]
	tests := []struct {
		name    string
		data    []byte
		entries []string
		want    []string
	}{
		{"plain", exeZip, []string{"a/b/payload.exe", "readme.txt"}, []string{SymArchiveDangerous}},
		{"data before the archive (a polyglot)", append(pdfFile(), exeZip...), []string{"a/b/payload.exe", "readme.txt"}, []string{SymArchiveDangerous}},
		{"self-extractor: data before the archive", append(bytes.Repeat([]byte{0x90}, 3000), exeZip...), []string{"a/b/payload.exe", "readme.txt"}, []string{SymArchiveDangerous}},
		{"comment after the directory", append(bytes.Clone(exeZip[:len(exeZip)-2]), append([]byte{5, 0}, "hello"...)...), []string{"a/b/payload.exe", "readme.txt"}, []string{SymArchiveDangerous}},
		// archive/zip writes sizes after the data (flag bit 3): without
		// a directory, the first entry runs to the end and ends the walk.
		{"no central directory, streamed", noDirectory, []string{"a/b/payload.exe"}, []string{SymArchiveDangerous}},
		{"no central directory, stored", storedNoDir, []string{"x.txt", "y.com"}, []string{SymArchiveDangerous}},
		{"empty archive", zipOf(t), nil, nil},
		{"cut in the middle", exeZip[:40], nil, nil},
		{"not a zip", []byte("PK\x03\x04 but nothing else"), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range zipEntries(tt.data, 100) {
				got = append(got, e.name)
			}
			if !slices.Equal(got, tt.entries) {
				t.Errorf("entries %q, want %q", got, tt.entries)
			}
			if n := inspect(DefaultConfig(), "a.zip", tt.data).names(); !slices.Equal(n, tt.want) {
				t.Errorf("symbols %v, want %v", n, tt.want)
			}
		})
	}
}

// TestZip64Extra reads 64-bit sizes from the ZIP64 extra field.
func TestZip64Extra(t *testing.T) {
	extra := make([]byte, 4+24)
	binary.LittleEndian.PutUint16(extra, 0x0001)
	binary.LittleEndian.PutUint16(extra[2:], 24)
	binary.LittleEndian.PutUint64(extra[4:], 5<<32)  // uncompressed
	binary.LittleEndian.PutUint64(extra[12:], 1<<32) // compressed
	binary.LittleEndian.PutUint64(extra[20:], 7)     // offset
	e := zipEntry{usize: 0xffffffff, csize: 0xffffffff, offset: 0xffffffff}
	zip64Extra(&e, append([]byte{0x55, 0x54, 1, 0, 9}, extra...), true) // after another field
	if e.usize != 5<<32 || e.csize != 1<<32 || e.offset != 7 {
		t.Errorf("central: %+v", e)
	}
	e = zipEntry{usize: 0xffffffff, csize: 10, offset: 0xffffffff}
	zip64Extra(&e, extra, true) // only the fields that overflowed are there, in order
	if e.usize != 5<<32 || e.csize != 10 || e.offset != 1<<32 {
		t.Errorf("partial: %+v", e)
	}
	e = zipEntry{usize: 0xffffffff, csize: 0xffffffff}
	zip64Extra(&e, extra[:10], true) // cut short
	if e.usize != 0xffffffff {
		t.Errorf("cut: %+v", e)
	}
}

// TestEntryLimitPerMessage counts entries across all the attachments of
// a message.
func TestEntryLimitPerMessage(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxArchiveEntries = 5
	in := newInspection(context.Background(), &cfg)
	z := manyEntries(t, 3)
	in.file("one.zip", []string{"one.zip"}, "", z, true, 0)
	if len(in.names()) != 0 {
		t.Fatalf("first archive: %v", in.names())
	}
	in.file("two.zip", []string{"two.zip"}, "", z, true, 0)
	if n := in.names(); !slices.Equal(n, []string{SymArchiveBomb}) || !strings.Contains(in.first[findArchiveBomb], "two.zip: more than 5") {
		t.Errorf("second archive: %v %q", n, in.first[findArchiveBomb])
	}
}

// TestBudget checks that unpacking never passes the budget by more than
// the byte that detects it.
func TestBudget(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxArchiveBytes = 100 << 10
	inner := zipOf(t, zipFile{name: "big.txt", data: bytes.Repeat([]byte("a"), 300<<10)})
	in := inspect(cfg, "a.zip", zipOf(t, zipFile{name: "inner.zip", data: inner}, zipFile{name: "z.gz", data: gzipOf(t, "", make([]byte, 1<<20))}))
	if in.budget < -1 {
		t.Errorf("budget %d", in.budget)
	}
	if n := in.names(); !slices.Equal(n, []string{SymArchiveBomb}) {
		t.Errorf("symbols %v", n)
	}
}
