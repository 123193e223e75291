package attachments

import "testing"

// TestExamineName reads file names as Windows would create them.
func TestExamineName(t *testing.T) {
	tests := []struct {
		name  string
		ext   string
		class class
		decoy string
		bidi  bool
	}{
		{"report.pdf", "pdf", classDocument, "", false},
		{"REPORT.PDF", "pdf", classDocument, "", false},
		{"setup.exe", "exe", classExecutable, "", false},
		{"invoice.pdf.exe", "exe", classExecutable, "pdf", false},
		{"invoice.PDF   .Exe", "exe", classExecutable, "pdf", false},
		{"invoice.pdf_.scr", "scr", classExecutable, "pdf", false},
		{"a.exe.", "exe", classExecutable, "", false},     // Windows drops trailing dots
		{"a.exe . . ", "exe", classExecutable, "", false}, // and spaces
		{`C:\Users\x\run.ps1`, "ps1", classScript, "", false},
		{"dir/sub/a.docm", "docm", classMacro, "", false},
		{"invoice\u202efdp.exe", "exe", classExecutable, "", true},
		{"\u202ecod.scr", "scr", classExecutable, "", true},
		{"zero\u200bwidth.js", "js", classScript, "", false}, // format characters dropped
		{"archive.tar.gz", "gz", classArchive, "", false},
		{"photo.jpg.zip", "zip", classArchive, "jpg", false},
		{"noext", "", classNone, "", false},
		{"", "", classNone, "", false},
		{".bashrc", "bashrc", classNone, "", false},
		{"disk.IMG", "img", classDiskImage, "", false},
	}
	for _, tt := range tests {
		f := examineName(tt.name)
		if f.ext != tt.ext || f.class != tt.class || f.decoy != tt.decoy || f.bidi != tt.bidi {
			t.Errorf("examineName(%q) = %+v, want ext %q class %v decoy %q bidi %v", tt.name, f, tt.ext, tt.class, tt.decoy, tt.bidi)
		}
	}
}

// TestTypeClass maps declared media types.
func TestTypeClass(t *testing.T) {
	tests := []struct {
		typ     string
		class   class
		generic bool
	}{
		{"application/x-msdownload", classExecutable, false},
		{"application/vnd.ms-excel.sheet.macroenabled.12", classMacro, false},
		{"text/x-shellscript", classUnixScript, false},
		{"application/x-iso9660-image", classDiskImage, false},
		{"application/pdf", classNone, false},
		{"application/octet-stream", classNone, true},
		{"", classNone, true},
	}
	for _, tt := range tests {
		if c := typeClass(tt.typ); c != tt.class || genericType(tt.typ) != tt.generic {
			t.Errorf("%q: class %v generic %v", tt.typ, c, genericType(tt.typ))
		}
	}
}

// TestDisplay shows names safely in reasons.
func TestDisplay(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain.pdf", "plain.pdf"},
		{"a\u202eb", "a<U+202E>b"},
		{"tab\there", "tab<U+0009>here"},
		{"bad\xffutf8", "bad?utf8"},
		{string(make([]byte, 100)), ""},
	}
	tests[4].want = ""
	for i := 0; i < 20; i++ {
		tests[4].want += "<U+0000>"
	}
	tests[4].want = tests[4].want[:80] + "..."
	for _, tt := range tests {
		if got := display(tt.in); got != tt.want {
			t.Errorf("display(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
