package attachments

import (
	"bytes"
	"testing"
)

// TestSniff tells file types from their magic bytes.
func TestSniff(t *testing.T) {
	script := []byte("#! /usr/bin/env python\nprint(1)\n")
	dmg := append(make([]byte, 1000), append([]byte("koly"), make([]byte, 508)...)...)
	vhdFooter := append(make([]byte, 1000), append([]byte("conectix"), make([]byte, 504)...)...)
	truncatedPE := peFile()[:0x60] // e_lfanew points past the prefix
	tests := []struct {
		name  string
		data  []byte
		whole bool
		want  fileType
	}{
		{"PE", peFile(), true, typePE},
		{"PE prefix", truncatedPE, false, typePE},
		{"cut PE, whole", truncatedPE, true, typeUnknown},
		{"MZ without a PE header", append([]byte("MZ"), make([]byte, 100)...), true, typeUnknown},
		{"ELF", elfFile(), true, typeELF},
		{"Mach-O", machOFile(), true, typeMachO},
		{"Mach-O fat", []byte{0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2}, true, typeMachO},
		{"Java class", javaClass(), true, typeUnknown},
		{"LNK", lnkFile(), true, typeLNK},
		{"shebang", script, true, typeShebang},
		{"shebang after a BOM", append([]byte("\xef\xbb\xbf"), script...), true, typeShebang},
		{"#! without a path", []byte("#!important"), true, typeUnknown},
		{"HTA", []byte("<html><hta:application/>"), true, typeHTA},
		{"OLE2", ole2File(), true, typeOLE2},
		{"zip", zipOf(t), true, typeZip},
		{"gzip", gzipOf(t, "", []byte("x")), true, typeGzip},
		{"tar", tarOf(t, zipFile{name: "a", data: []byte("b")}), true, typeTar},
		{"ISO", isoFile(), true, typeISO},
		{"VHDX", []byte("vhdxfile\x00\x00"), true, typeVHD},
		{"VHD footer", vhdFooter, true, typeVHD},
		{"DMG", dmg, true, typeDMG},
		{"DMG trailer needs the whole file", dmg, false, typeUnknown},
		{"PDF", pdfFile(), true, typeUnknown},
		{"PNG", pngFile(t), true, typeUnknown},
		{"empty", nil, true, typeUnknown},
	}
	for _, tt := range tests {
		if got := sniff(tt.data, tt.whole); got != tt.want {
			t.Errorf("%s: sniff = %v, want %v", tt.name, got, tt.want)
		}
	}
	for ft := typeUnknown; ft < numTypes; ft++ {
		if ft.String() == "" {
			t.Errorf("type %d has no name", ft)
		}
	}
}

// TestOLE2Findings reads OLE2 directory entries.
func TestOLE2Findings(t *testing.T) {
	misaligned := ole2File()
	copy(misaligned[512+128+3:], ole2File("VBA")[512+128:512+128+70]) // not on a 128-byte boundary
	tests := []struct {
		name              string
		data              []byte
		macros, encrypted bool
	}{
		{"VBA", ole2File("VBA"), true, false},
		{"vba lower case", ole2File("vba"), true, false},
		{"Macros", ole2File("Macros"), true, false},
		{"Excel project", ole2File("_VBA_PROJECT_CUR"), true, false},
		{"encrypted", ole2File("EncryptedPackage"), false, true},
		{"plain document", ole2File("WordDocument", "1Table", "SummaryInformation"), false, false},
		{"a longer name", ole2File("VBA2"), false, false},
		{"misaligned", misaligned, false, false},
		{"header only", ole2File()[:512], false, false},
	}
	for _, tt := range tests {
		m, e := ole2Findings(tt.data)
		if m != tt.macros || e != tt.encrypted {
			t.Errorf("%s: macros %v encrypted %v", tt.name, m, e)
		}
	}
	if !bytes.HasPrefix(ole2File(), magicOLE2) {
		t.Error("ole2File lacks the magic")
	}
}
