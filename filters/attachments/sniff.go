package attachments

import (
	"bytes"
	"encoding/binary"
)

// fileType is what a file's content says it is, from its magic bytes.
type fileType int

const (
	typeUnknown fileType = iota
	typePE               // Windows Portable Executable (or an older MZ format)
	typeELF              // Unix executable
	typeMachO            // macOS executable
	typeLNK              // Windows shortcut
	typeShebang          // script with a #! line
	typeHTA              // HTML application
	typeOLE2             // Compound File: old Office, MSI
	typeZip
	typeGzip
	typeTar
	typeISO  // ISO 9660 or UDF
	typeVHD  // Virtual Hard Disk (VHD, VHDX)
	typeDMG  // Apple disk image
	numTypes // for tests
)

// String names the type in reasons.
func (t fileType) String() string {
	return [...]string{"unknown", "Windows executable", "ELF executable", "Mach-O executable",
		"Windows shortcut", "script (#!)", "HTML application", "OLE2 compound file", "zip archive",
		"gzip stream", "tar archive", "ISO 9660/UDF image", "virtual hard disk", "Apple disk image"}[t]
}

// class returns the class of a sniffed type.
func (t fileType) class() class {
	switch t {
	case typePE, typeELF, typeMachO, typeLNK:
		return classExecutable
	case typeHTA:
		return classScript
	case typeShebang:
		return classUnixScript
	case typeISO, typeVHD, typeDMG:
		return classDiskImage
	case typeZip, typeGzip, typeTar:
		return classArchive
	}
	return classNone
}

// container reports whether inspecting the type needs its whole content,
// not only the prefix sniff reads.
func (t fileType) container() bool {
	return t == typeZip || t == typeGzip || t == typeTar || t == typeOLE2
}

// Offsets the sniffer reads at.
const (
	isoOffset   = 0x8001 // ISO 9660 §8.1 (ECMA-119): the first volume descriptor's identifier
	isoNeed     = 0x9001 + 5
	sniffPrefix = 8 << 10 // what is read of an archive entry before deciding
)

// Magic numbers.
var (
	magicOLE2  = []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}
	magicLNK   = []byte{0x4c, 0, 0, 0, 0x01, 0x14, 0x02, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46} // [MS-SHLLINK] §2.1
	magicELF   = []byte("\x7fELF")
	magicZip   = []byte("PK\x03\x04")
	magicEmpty = []byte("PK\x05\x06")
	magicGzip  = []byte{0x1f, 0x8b, 0x08} // RFC 1952 §2.3.1, CM=8 (deflate)
)

// sniff returns the type of data from its magic bytes. data may be a
// prefix of the file; whole is true when it is all of it (a trailer, as
// DMG's, can only be seen then).
func sniff(data []byte, whole bool) fileType {
	switch {
	case isPE(data, whole):
		return typePE
	case bytes.HasPrefix(data, magicELF):
		return typeELF
	case isMachO(data):
		return typeMachO
	case bytes.HasPrefix(data, magicLNK):
		return typeLNK
	case bytes.HasPrefix(data, magicOLE2):
		return typeOLE2
	case bytes.HasPrefix(data, magicZip), bytes.HasPrefix(data, magicEmpty):
		return typeZip
	case bytes.HasPrefix(data, magicGzip):
		return typeGzip
	case len(data) >= 262 && bytes.Equal(data[257:262], []byte("ustar")): // POSIX.1-1988 and GNU tar
		return typeTar
	case bytes.HasPrefix(data, []byte("vhdxfile")), bytes.HasPrefix(data, []byte("conectix")):
		return typeVHD
	case isShebang(data):
		return typeShebang
	case isISO(data):
		return typeISO
	}
	if whole {
		// A zip is read from its end (APPNOTE.TXT §4.3.16): whatever
		// precedes it, a PDF or an image made to look harmless, a zip
		// reader still opens it.
		if dir, _, _, ok := zipDirectory(data); ok && len(dir) > 0 {
			return typeZip
		}
	}
	if whole && len(data) >= 512 {
		trailer := data[len(data)-512:]
		switch {
		case bytes.HasPrefix(trailer, []byte("koly")): // UDIF trailer
			return typeDMG
		case bytes.HasPrefix(trailer, []byte("conectix")): // fixed VHD footer
			return typeVHD
		}
	}
	if containsFold(data[:min(len(data), 4096)], "<hta:application") {
		return typeHTA
	}
	return typeUnknown
}

// isPE reports an MZ header whose e_lfanew (at 0x3C) points at a "PE\0\0",
// "NE", "LE" or "LX" signature. Past the end of a prefix the pointer
// cannot be followed; a DOS header that is complete and points inside the
// first 64 KiB is then taken for an executable.
func isPE(data []byte, whole bool) bool {
	if len(data) < 0x40 || data[0] != 'M' || data[1] != 'Z' {
		return false
	}
	off := int64(binary.LittleEndian.Uint32(data[0x3c:]))
	if off < 0x40 || off > 1<<16 {
		return false
	}
	if off+4 > int64(len(data)) {
		return !whole
	}
	sig := data[off : off+4]
	return bytes.Equal(sig, []byte("PE\x00\x00")) || bytes.HasPrefix(sig, []byte("NE")) ||
		bytes.HasPrefix(sig, []byte("LE")) || bytes.HasPrefix(sig, []byte("LX"))
}

// isMachO reports a Mach-O header, thin (32 or 64 bits, either byte
// order) or fat. The fat magic 0xCAFEBABE is also Java's class file
// magic: a fat binary's architecture count is small, a class file's
// version (at the same place) is 45 or more.
func isMachO(data []byte) bool {
	if len(data) < 8 {
		return false
	}
	switch binary.BigEndian.Uint32(data) {
	case 0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe:
		return true
	case 0xcafebabe:
		n := binary.BigEndian.Uint32(data[4:])
		return n > 0 && n < 30
	}
	return false
}

// isShebang reports a "#!/" line (with optional space, after an optional
// UTF-8 byte order mark).
func isShebang(data []byte) bool {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !bytes.HasPrefix(data, []byte("#!")) {
		return false
	}
	data = bytes.TrimLeft(data[2:], " \t")
	return len(data) > 0 && data[0] == '/'
}

// isISO reports an ISO 9660 or UDF volume descriptor identifier in one of
// the first three descriptor sectors.
func isISO(data []byte) bool {
	for off := isoOffset; off+5 <= len(data) && off <= 0x9001; off += 0x800 {
		id := data[off : off+5]
		if bytes.Equal(id, []byte("CD001")) || bytes.Equal(id, []byte("BEA01")) ||
			bytes.Equal(id, []byte("NSR02")) || bytes.Equal(id, []byte("NSR03")) {
			return true
		}
	}
	return false
}

// mayBeISO reports whether a prefix too short for isISO could still start
// an image: the first 32 KiB of an ISO 9660 image are its system area,
// zeros or a boot record (ECMA-119 §6.2.1).
func mayBeISO(prefix []byte) bool {
	if len(prefix) < 512 {
		return false
	}
	if prefix[510] == 0x55 && prefix[511] == 0xaa {
		return true // an MBR, as hybrid images carry
	}
	for _, c := range prefix[:512] {
		if c != 0 {
			return false
		}
	}
	return true
}

// ole2Names are the directory entry names that mark an OLE2 file with
// macros ([MS-OVBA] §2.2.1: the VBA storage; Word 97's "Macros" storage;
// Excel's "_VBA_PROJECT_CUR") or an encrypted Office document
// ([MS-OFFCRYPTO] §2.3.4.4 "EncryptedPackage").
var ole2Names = [...]string{"vba", "macros", "_vba_project_cur", "_vba_project", "encryptedpackage"}

// ole2Findings reports whether an OLE2 compound file holds macros and
// whether it is an encrypted Office document. It reads the directory
// entries where they can be ([MS-CFB] §2.6: 128-byte entries in sectors
// that follow the 512- or 4096-byte header, so at offsets that are
// multiples of 128): a UTF-16LE name, its length in bytes with the
// terminator at 64, its type (storage 1, stream 2) at 66.
func ole2Findings(data []byte) (macros, encrypted bool) {
	var name [32]byte
	for off := 512; off+128 <= len(data); off += 128 {
		e := data[off : off+128]
		n := int(binary.LittleEndian.Uint16(e[64:]))
		if n < 4 || n > 64 || n%2 != 0 || e[66] < 1 || e[66] > 2 {
			continue
		}
		chars := n/2 - 1
		ok := chars <= len(name)
		for i := 0; ok && i < chars; i++ {
			lo, hi := e[2*i], e[2*i+1]
			if hi != 0 || lo == 0 || lo >= 0x80 {
				ok = false
				break
			}
			if 'A' <= lo && lo <= 'Z' {
				lo += 'a' - 'A'
			}
			name[i] = lo
		}
		if !ok {
			continue
		}
		switch string(name[:chars]) {
		case ole2Names[0], ole2Names[1], ole2Names[2], ole2Names[3]:
			macros = true
		case ole2Names[4]:
			encrypted = true
		}
	}
	return macros, encrypted
}

// containsFold reports whether b holds the lower-case ASCII string s in
// any case.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if b[i]|0x20 == s[0] && bytes.EqualFold(b[i:i+len(s)], []byte(s)) {
			return true
		}
	}
	return false
}
