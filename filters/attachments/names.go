package attachments

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// class is what a file name's extension or a declared media type says a
// file is.
type class int

const (
	classNone       class = iota
	classExecutable       // runs as a program: PE, installers, shortcuts, Java
	classScript           // runs in a script host when opened (Windows, or a double-clicked .command)
	classMacro            // an Office document that carries macros
	classDiskImage        // mounts as a drive, and hides its files from Mark-of-the-Web
	classUnixScript       // a Unix shell script: runs only when its reader makes it run
	classArchive          // holds other files
	classDocument         // what a lure pretends to be (a double extension's first half)
)

// extensions maps a lower-case extension to its class. The lists follow
// what mail gateways commonly block (Microsoft's Defender for Office 365
// common attachments filter, Google's blocked file types).
var extensions = func() map[string]class {
	m := map[string]class{}
	for c, list := range map[class]string{
		classExecutable: "exe com scr pif dll cpl msi msp mst msc ocx sys drv gadget application " +
			"jar lnk xll wll appx appxbundle msix msixbundle appref-ms apk elf run dylib",
		classScript: "js jse vbs vbe vb wsf wsh wsc ws ps1 ps1xml ps2 ps2xml psc1 psc2 psm1 psd1 " +
			"bat cmd command tool hta reg scf inf chm sct url iqy slk settingcontent-ms library-ms",
		classMacro:      "docm dotm xlsm xltm xlam pptm potm ppam ppsm sldm",
		classDiskImage:  "iso img vhd vhdx udf dmg",
		classUnixScript: "sh bash csh ksh zsh",
		classArchive:    "zip gz tgz tar",
		classDocument: "pdf doc docx xls xlsx ppt pptx rtf txt csv odt ods jpg jpeg png gif bmp tif tiff " +
			"mp3 mp4 wav avi mov htm html xml eml msg",
	} {
		for _, e := range strings.Fields(list) {
			m[e] = c
		}
	}
	return m
}()

// nameFacts is what a file name says.
type nameFacts struct {
	ext       string // the last extension, lower case, without the dot
	class     class  // the class of ext
	decoy     string // the extension before ext, when it is a document's
	bidi      bool   // the name holds a bidirectional control (U+202E ...)
	displayed string // the name as logs show it
}

// examineName reads a file name (from a part or an archive entry). Its
// directory, if any, is dropped; invisible format characters (bidi
// controls, zero-width spaces) are dropped after noting a bidi control;
// trailing dots and spaces are dropped, as Windows does when it creates
// the file, so "a.exe. " is an .exe.
func examineName(name string) nameFacts {
	f := nameFacts{displayed: display(name)}
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if strings.IndexFunc(name, isFormat) >= 0 {
		f.bidi = strings.IndexFunc(name, isBidi) >= 0
		name = strings.Map(func(r rune) rune {
			if isFormat(r) {
				return -1
			}
			return r
		}, name)
	}
	name = strings.ToLower(strings.TrimRight(name, ". \t"))
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return f
	}
	f.ext = strings.TrimSpace(name[dot+1:])
	f.class = extensions[f.ext]
	stem := strings.TrimRight(name[:dot], " \t_")
	if d := strings.LastIndexByte(stem, '.'); d >= 0 {
		if prev := strings.TrimSpace(stem[d+1:]); extensions[prev] == classDocument {
			f.decoy = prev
		}
	}
	return f
}

// isFormat reports whether r is an invisible format character (Unicode
// category Cf: bidi controls, zero-width joiners, soft hyphen).
func isFormat(r rune) bool {
	return unicode.Is(unicode.Cf, r)
}

// isBidi reports whether r is a bidirectional control that can reorder
// how a name is shown: "invoice\u202Efdp.exe" shows as "invoiceexe.pdf"
// (Unicode Technical Report #36 §2.1.2).
func isBidi(r rune) bool {
	return r == '\u200e' || r == '\u200f' || r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069' || r == '\u061c'
}

// dangerous reports whether a name's class runs code when opened.
func (c class) dangerous() bool {
	return c == classExecutable || c == classScript || c == classMacro || c == classDiskImage
}

// String names the class in reasons.
func (c class) String() string {
	switch c {
	case classExecutable:
		return "executable"
	case classScript:
		return "script"
	case classMacro:
		return "macro document"
	case classUnixScript:
		return "Unix shell script"
	case classDiskImage:
		return "disk image"
	case classArchive:
		return "archive"
	case classDocument:
		return "document"
	}
	return "unknown"
}

// mediaTypes maps declared media types to classes.
var mediaTypes = func() map[string]class {
	m := map[string]class{}
	for c, list := range map[class]string{
		classExecutable: "application/x-msdownload application/x-msdos-program application/x-dosexec " +
			"application/x-executable application/vnd.microsoft.portable-executable application/x-ms-installer " +
			"application/x-msi application/x-ms-shortcut application/x-elf application/x-mach-binary " +
			"application/java-archive application/x-java-archive application/vnd.android.package-archive",
		classScript: "application/javascript application/x-javascript text/javascript application/ecmascript " +
			"text/vbscript application/x-vbscript application/x-powershell application/hta " +
			"application/x-bat application/bat application/x-msdos-batch",
		classUnixScript: "application/x-sh text/x-sh application/x-shellscript text/x-shellscript application/x-csh",
		classDiskImage: "application/x-iso9660-image application/x-cd-image application/x-raw-disk-image " +
			"application/x-apple-diskimage application/x-virtualbox-vhd application/x-vhd",
		classArchive: "application/zip application/x-zip-compressed application/gzip application/x-gzip application/x-tar",
	} {
		for _, t := range strings.Fields(list) {
			m[t] = c
		}
	}
	return m
}()

// typeClass returns the class of a declared media type. Office's
// macro-enabled types all say "macroenabled".
func typeClass(t string) class {
	if strings.Contains(t, "macroenabled") {
		return classMacro
	}
	return mediaTypes[t]
}

// genericType reports whether a declared type claims nothing about the
// content, so that an executable under it is no mismatch.
func genericType(t string) bool {
	switch t {
	case "", "application/octet-stream", "application/binary", "application/x-binary",
		"application/x-download", "application/force-download", "application/unknown",
		"application/x-unknown", "binary/octet-stream":
		return true
	}
	return false
}

// display returns a name as a reason may show it: control and format
// characters shown as <U+XXXX>, cut at 80 bytes.
func display(name string) string {
	var b strings.Builder
	for _, r := range name {
		if b.Len() >= 80 {
			b.WriteString("...")
			break
		}
		switch {
		case r == utf8.RuneError:
			b.WriteByte('?')
		case unicode.IsControl(r) || isFormat(r):
			b.WriteString("<U+")
			b.WriteString(hex4(r))
			b.WriteByte('>')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// hex4 returns r in hexadecimal, at least four digits.
func hex4(r rune) string {
	const digits = "0123456789ABCDEF"
	var buf [8]byte
	i := len(buf)
	for v := uint32(r); v > 0 || i > len(buf)-4; v >>= 4 {
		i--
		buf[i] = digits[v&0xf]
	}
	return string(buf[i:])
}
