package attachments

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"encoding/xml"
	"io"
	"math"
	"path"
	"slices"
	"strings"
	"sync"
)

// archive opens an archive found at level and inspects its entries at
// level+1.
func (in *inspection) archive(p string, t fileType, names []string, data []byte, level int, f *found) {
	if in.cfg.MaxArchiveDepth == 0 || in.full {
		return
	}
	if level+1 > in.cfg.MaxArchiveDepth {
		in.add(findArchiveBomb, "%s: archives nested deeper than %d", p, in.cfg.MaxArchiveDepth)
		return
	}
	switch t {
	case typeZip:
		in.zip(p, data, level, f)
	case typeGzip:
		in.gzip(p, names, data, level)
	case typeTar:
		in.tar(p, data, level)
	}
}

// count counts one archive entry of the archive at p against the entry
// limit, and reports whether it may be read.
func (in *inspection) count(p string) bool {
	if in.full {
		return false
	}
	in.entries++
	if in.entries > in.cfg.MaxArchiveEntries {
		in.add(findArchiveBomb, "%s: more than %d archive entries", p, in.cfg.MaxArchiveEntries)
		in.full = true
		return false
	}
	return true
}

// entry inspects one archive entry: its name, and its content from r,
// which holds size bytes (-1: unknown). It reads a prefix first and all
// of it only when the prefix says it is a container (another archive, an
// OLE2 file) or may be a disk image, so that a zip of photographs costs
// little.
func (in *inspection) entry(parent, name string, size int64, level int, r io.Reader) {
	p := parent + "/" + display(name)
	if in.ctx.Err() != nil {
		return
	}
	names := []string{name}
	if r == nil {
		in.file(p, names, "", nil, false, level)
		return
	}
	if size >= 0 {
		in.declare(p, size)
	}
	lr := lazyReader{r: r}
	want := int64(sniffPrefix)
	if size >= 0 && size < want {
		want = size + 1 // one byte more tells a lie
	}
	if want > in.budget+1 {
		in.add(findArchiveBomb, "%s: unpacking would pass %d bytes", p, in.cfg.MaxArchiveBytes)
		in.file(p, names, "", nil, false, level)
		return
	}
	data := lr.read(want, &in.budget)
	whole := lr.eof || size >= 0 && int64(len(data)) == size
	if size >= 0 && int64(len(data)) > size {
		in.add(findArchiveBomb, "%s: unpacks to more than its declared size", p)
		in.file(p, names, "", data[:size], false, level)
		return
	}
	if !whole {
		container := sniff(data, false).container()
		switch {
		case container:
			// The whole content, and one byte more to catch an entry
			// that unpacks to more than it declares, or than the budget.
			want = in.budget + 1
			if size >= 0 {
				want = size + 1
			}
		case mayBeISO(data):
			want = isoNeed
		}
		switch {
		case want <= int64(len(data)):
		case want-int64(len(data)) > in.budget+1:
			in.add(findArchiveBomb, "%s: unpacking would pass %d bytes", p, in.cfg.MaxArchiveBytes)
		default:
			data = lr.read(want, &in.budget)
			whole = lr.eof || size >= 0 && int64(len(data)) == size
			if container && int64(len(data)) == want {
				in.add(findArchiveBomb, "%s: unpacks to more than %s", p, declaredOrBudget(size))
				data, whole = data[:len(data)-1], false
			}
		}
	}
	if lr.err != nil {
		// A deflate stream cut short, a gzip checksum that fails, a tar
		// entry the archive ends inside: what follows the break is unseen.
		in.add(findArchiveUnreadable, "%s: broken after %d bytes: %v", p, len(lr.buf), lr.err)
		whole = false
	}
	in.file(p, names, "", data, whole, level)
}

// declare counts the size an entry declares against max_archive_bytes:
// what an archive says it unpacks to is a bomb when it passes the bound,
// whether or not the walk unpacks it.
func (in *inspection) declare(p string, size int64) {
	in.declared += size
	switch {
	case size > in.cfg.MaxArchiveBytes:
		in.add(findArchiveBomb, "%s: declares %d bytes unpacked, more than %d", p, size, in.cfg.MaxArchiveBytes)
	case in.declared > in.cfg.MaxArchiveBytes:
		in.add(findArchiveBomb, "%s: archive entries declare more than %d bytes unpacked", p, in.cfg.MaxArchiveBytes)
		in.declared = math.MinInt64 / 2 // said once
	}
}

// declaredOrBudget says which bound an entry passed.
func declaredOrBudget(size int64) string {
	if size >= 0 {
		return "its declared size"
	}
	return "max_archive_bytes"
}

// lazyReader reads an entry's content from its start as far as asked,
// once.
type lazyReader struct {
	r   io.Reader
	buf []byte
	eof bool
	err error // why reading stopped before the end: a broken or cut stream
}

// read returns the first n bytes (fewer at the end), charging what it
// unpacks to budget. The buffer grows as the content comes, so that
// asking for a large n costs only what there is.
func (l *lazyReader) read(n int64, budget *int64) []byte {
	for int64(len(l.buf)) < n && !l.eof {
		size := min(n, max(2*int64(len(l.buf)), 64<<10))
		grown := make([]byte, size)
		copy(grown, l.buf)
		filled := len(l.buf)
		for filled < len(grown) && !l.eof {
			k, err := l.r.Read(grown[filled:])
			filled += k
			*budget -= int64(k)
			if err != nil {
				l.eof = true
				if err != io.EOF {
					l.err = err
				}
			}
		}
		l.buf = grown[:filled]
	}
	return l.buf[:min(n, int64(len(l.buf)))]
}

// unknownSize is the unpacked size of a zip entry whose sizes follow its
// data.
const unknownSize = math.MaxUint64

// zipEntry is one entry of a zip central directory (APPNOTE.TXT §4.3.12).
type zipEntry struct {
	name   string
	flags  uint16
	method uint16
	csize  uint64
	usize  uint64
	offset uint64 // of the local header, from the start of the archive
}

// Zip record signatures and sizes (APPNOTE.TXT §4.3).
const (
	sigCentral    = "PK\x01\x02"
	sigLocal      = "PK\x03\x04"
	sigEnd        = "PK\x05\x06"
	sigEnd64      = "PK\x06\x06"
	sigEnd64Locat = "PK\x06\x07"
	centralLen    = 46
	localLen      = 30
	endLen        = 22
	flagEncrypted = 0x1  // §4.4.4 bit 0
	flagStrong    = 0x40 // §4.4.4 bit 6: strong encryption
	methodStore   = 0
	methodDeflate = 8
	methodAES     = 99 // WinZip AES (APPNOTE.TXT §4.4.5, AE-x)
)

// zipDirectory finds the central directory of z and the offset its
// entries' local headers are counted from (non-zero when data precedes
// the archive, as in a self-extractor). ok is false when there is none.
func zipDirectory(z []byte) (dir []byte, base int64, declared uint64, ok bool) {
	// The record ends the file, but for a comment of up to 0xFFFF bytes.
	lowest := max(0, len(z)-endLen-0xffff)
	for limit := len(z) - endLen + 4; limit-lowest >= 4; {
		i := bytes.LastIndex(z[lowest:limit], []byte(sigEnd))
		if i < 0 {
			break
		}
		i += lowest
		limit = i + 3
		e := z[i:]
		declared = uint64(binary.LittleEndian.Uint16(e[10:]))
		size := uint64(binary.LittleEndian.Uint32(e[12:]))
		off := uint64(binary.LittleEndian.Uint32(e[16:]))
		end := int64(i)
		if (size == 0xffffffff || off == 0xffffffff || declared == 0xffff) && i >= 20 &&
			string(z[i-20:i-16]) == sigEnd64Locat {
			// ZIP64 (§4.3.14, §4.3.15).
			at := binary.LittleEndian.Uint64(z[i-12:])
			if at < uint64(len(z)) && at+56 <= uint64(len(z)) && string(z[at:at+4]) == sigEnd64 {
				e64 := z[at:]
				declared = binary.LittleEndian.Uint64(e64[32:])
				size = binary.LittleEndian.Uint64(e64[40:])
				off = binary.LittleEndian.Uint64(e64[48:])
				end = int64(at)
			}
		}
		if size > uint64(end) || off > uint64(end) {
			continue
		}
		base = end - int64(size) - int64(off)
		if base < 0 {
			base = 0
		}
		for _, b := range []int64{base, 0} {
			start := uint64(b) + off
			if start+size <= uint64(len(z)) && strings.HasPrefix(string(z[start:min(start+4, uint64(len(z)))]), sigCentral) {
				return z[start : start+size], b, declared, true
			}
		}
		if size == 0 {
			return nil, base, declared, true // an empty archive
		}
	}
	return nil, 0, 0, false
}

// nextCentral reads the central directory entry at the start of dir and
// returns the rest.
func nextCentral(dir []byte) (e zipEntry, rest []byte, ok bool) {
	if len(dir) < centralLen || string(dir[:4]) != sigCentral {
		return e, nil, false
	}
	nameLen := int(binary.LittleEndian.Uint16(dir[28:]))
	extraLen := int(binary.LittleEndian.Uint16(dir[30:]))
	commentLen := int(binary.LittleEndian.Uint16(dir[32:]))
	end := centralLen + nameLen + extraLen + commentLen
	if end > len(dir) {
		return e, nil, false
	}
	e = zipEntry{
		name:   string(dir[centralLen : centralLen+nameLen]),
		flags:  binary.LittleEndian.Uint16(dir[8:]),
		method: binary.LittleEndian.Uint16(dir[10:]),
		csize:  uint64(binary.LittleEndian.Uint32(dir[20:])),
		usize:  uint64(binary.LittleEndian.Uint32(dir[24:])),
		offset: uint64(binary.LittleEndian.Uint32(dir[42:])),
	}
	zip64Extra(&e, dir[centralLen+nameLen:centralLen+nameLen+extraLen], true)
	return e, dir[end:], true
}

// zip64Extra reads the ZIP64 extended information extra field (§4.5.3):
// the 64-bit values of the fields whose 32-bit value is 0xFFFFFFFF, in
// order.
func zip64Extra(e *zipEntry, extra []byte, central bool) {
	for len(extra) >= 4 {
		id := binary.LittleEndian.Uint16(extra)
		n := int(binary.LittleEndian.Uint16(extra[2:]))
		if n > len(extra)-4 {
			return
		}
		field := extra[4 : 4+n]
		extra = extra[4+n:]
		if id != 0x0001 {
			continue
		}
		for _, v := range []*uint64{&e.usize, &e.csize, &e.offset} {
			if v == &e.offset && !central {
				break
			}
			if *v != 0xffffffff {
				continue
			}
			if len(field) < 8 {
				return
			}
			*v = binary.LittleEndian.Uint64(field)
			field = field[8:]
		}
		return
	}
}

// zip inspects a zip archive. It walks the central directory, the list a
// zip reader shows; an archive without one (cut short, or made to be
// read by its local headers only) is walked by its local headers. An
// Office Open XML package with macro parts (see macroParts) is a
// document with macros, reported on the package itself; those parts are
// then not entries to judge on their own.
func (in *inspection) zip(p string, z []byte, level int, f *found) {
	entries := zipEntries(z, in.cfg.MaxArchiveEntries-in.entries+1)
	macros := in.macroParts(z, entries)
	if len(macros) > 0 {
		first := macros[0]
		f.consider(classMacro, "Office Open XML package with "+display(first.name)+" ("+first.kind+")")
	}
	for _, e := range entries {
		if !in.count(p) || in.ctx.Err() != nil {
			return
		}
		if strings.HasSuffix(e.name, "/") && e.usize == 0 {
			continue // a directory
		}
		if slices.ContainsFunc(macros, func(m macroPart) bool { return m.name == e.name }) {
			continue
		}
		if e.flags&(flagEncrypted|flagStrong) != 0 || e.method == methodAES {
			in.add(findArchiveEncrypted, "%s/%s: encrypted", p, display(e.name))
			in.entry(p, e.name, -1, level+1, nil)
			continue
		}
		size := int64(-1)
		if e.usize != unknownSize {
			size = int64(min(e.usize, math.MaxInt64/2))
		}
		r := in.zipContent(z, e)
		if r == nil {
			in.add(findArchiveUnreadable, "%s/%s: compression method %d, or no local header where the directory says", p, display(e.name), e.method)
		}
		in.entry(p, e.name, size, level+1, r)
	}
}

// maxContentTypes bounds what is read of an Office package's
// [Content_Types].xml; Office's own are a few kilobytes.
const maxContentTypes = 256 << 10

// Content types of the Office Open XML parts that carry macros.
var macroTypes = map[string]string{
	"application/vnd.ms-office.vbaproject":        "VBA project", // [MS-OFFMACRO2] §2.2.1.4
	"application/vnd.ms-excel.macrosheet+xml":     "Excel 4.0 macro sheet",
	"application/vnd.ms-excel.intlmacrosheet+xml": "Excel 4.0 macro sheet",
	"application/vnd.ms-excel.macrosheet":         "Excel 4.0 macro sheet", // in a binary workbook (.xlsb)
	"application/vnd.ms-excel.intlmacrosheet":     "Excel 4.0 macro sheet",
}

// macroPart is an entry of an Office package that carries macros.
type macroPart struct {
	name string // the zip entry
	kind string // "VBA project" or "Excel 4.0 macro sheet"
}

// macroParts returns the entries of an Office Open XML package (one with
// a "[Content_Types].xml" entry, ECMA-376 Part 2 §10.1.2.4) that carry
// macros: those whose content type, by an Override of their part name or
// the Default of their extension, is a VBA project or an Excel 4.0 macro
// sheet, and any vbaProject.bin. Office finds a VBA project through its
// type, not its name, so a renamed one counts. Part names and media
// types compare without case (§9.1.1.1.2). nil for any other zip.
func (in *inspection) macroParts(z []byte, entries []zipEntry) []macroPart {
	i := slices.IndexFunc(entries, func(e zipEntry) bool { return e.name == "[Content_Types].xml" })
	if i < 0 {
		return nil
	}
	overrides, defaults := map[string]string{}, map[string]string{}
	var types []byte
	if r := in.zipContent(z, entries[i]); r != nil {
		types, _ = io.ReadAll(io.LimitReader(r, maxContentTypes)) // what was read before an error stands
		in.budget -= int64(len(types))
	}
	// Most packages declare no macro type: parse only those that may.
	if lower := bytes.ToLower(types); bytes.Contains(lower, []byte("vbaproject")) || bytes.Contains(lower, []byte("macrosheet")) {
		d := xml.NewDecoder(bytes.NewReader(types))
		for {
			tok, err := d.RawToken()
			if err != nil {
				break // the end, or broken XML: what was read stands
			}
			el, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			attr := func(name string) string {
				for _, a := range el.Attr {
					if a.Name.Local == name {
						return strings.ToLower(strings.TrimSpace(a.Value))
					}
				}
				return ""
			}
			switch el.Name.Local {
			case "Override":
				overrides[strings.TrimPrefix(attr("PartName"), "/")] = attr("ContentType")
			case "Default":
				defaults[attr("Extension")] = attr("ContentType")
			}
		}
	}
	var out []macroPart
	for _, e := range entries {
		name := strings.ToLower(e.name)
		ext := ""
		if j := strings.LastIndexByte(name, '.'); j >= 0 && !strings.Contains(name[j:], "/") {
			ext = name[j+1:]
		}
		ct, ok := overrides[name] // an Override wins over the Default (§10.1.2.4)
		if !ok {
			ct = defaults[ext]
		}
		kind, ok := macroTypes[ct]
		if !ok && path.Base(name) == "vbaproject.bin" {
			kind, ok = "VBA project", true
		}
		if ok {
			out = append(out, macroPart{name: e.name, kind: kind})
		}
	}
	return out
}

// zipEntries lists at most most entries of z: from its central
// directory, else from its local headers. The bound makes a directory of
// a million entries cost no more than the entry limit allows.
func zipEntries(z []byte, most int) []zipEntry {
	var list []zipEntry
	dir, base, _, ok := zipDirectory(z)
	if ok {
		for len(list) < most {
			e, rest, ok := nextCentral(dir)
			if !ok {
				break
			}
			e.offset += uint64(base)
			list = append(list, e)
			dir = rest
		}
		return list
	}
	// No central directory: the local headers (§4.3.7), in order.
	pos := 0
	for len(list) < most && pos+localLen <= len(z) && string(z[pos:pos+4]) == sigLocal {
		h := z[pos:]
		nameLen := int(binary.LittleEndian.Uint16(h[26:]))
		extraLen := int(binary.LittleEndian.Uint16(h[28:]))
		if localLen+nameLen+extraLen > len(h) {
			break
		}
		e := zipEntry{
			name:   string(h[localLen : localLen+nameLen]),
			flags:  binary.LittleEndian.Uint16(h[6:]),
			method: binary.LittleEndian.Uint16(h[8:]),
			csize:  uint64(binary.LittleEndian.Uint32(h[18:])),
			usize:  uint64(binary.LittleEndian.Uint32(h[22:])),
			offset: uint64(pos),
		}
		zip64Extra(&e, h[localLen+nameLen:localLen+nameLen+extraLen], false)
		dataStart := uint64(pos + localLen + nameLen + extraLen)
		if e.flags&0x8 != 0 && e.csize == 0 {
			// Sizes follow the data (§4.3.9): the entry runs to where
			// its deflate stream ends, and the walk ends with it.
			e.csize = uint64(len(z)) - dataStart
			e.usize = unknownSize
			list = append(list, e)
			break
		}
		list = append(list, e)
		if e.csize > uint64(len(z))-dataStart {
			break
		}
		pos = int(dataStart + e.csize)
	}
	return list
}

// zipContent returns a reader of entry e's unpacked content, or nil when
// it cannot be read (a method other than store and deflate, or a local
// header that is not where the directory says).
func (in *inspection) zipContent(z []byte, e zipEntry) io.Reader {
	if e.offset > uint64(len(z)) || uint64(len(z))-e.offset < localLen || string(z[e.offset:e.offset+4]) != sigLocal {
		return nil
	}
	h := z[e.offset:]
	start := uint64(localLen) + uint64(binary.LittleEndian.Uint16(h[26:])) + uint64(binary.LittleEndian.Uint16(h[28:]))
	if start > uint64(len(h)) {
		return nil
	}
	comp := h[start:]
	if e.csize < uint64(len(comp)) {
		comp = comp[:e.csize]
	}
	switch e.method {
	case methodStore:
		return bytes.NewReader(comp)
	case methodDeflate:
		return in.unzip.reader(comp)
	}
	return nil
}

// unzipper keeps one deflate decompressor for the entries of an
// inspection: each costs tens of kilobytes to make. Between inspections
// it waits in flatePool.
type unzipper struct {
	r io.ReadCloser
}

// flatePool holds decompressors between inspections.
var flatePool sync.Pool

// reader returns the decompressor reset to read comp.
func (u *unzipper) reader(comp []byte) io.Reader {
	if u.r == nil {
		if r, ok := flatePool.Get().(io.ReadCloser); ok {
			u.r = r
		} else {
			u.r = flate.NewReader(bytes.NewReader(comp))
			return u.r
		}
	}
	_ = u.r.(flate.Resetter).Reset(bytes.NewReader(comp), nil)
	return u.r
}

// release returns the decompressor to the pool.
func (u *unzipper) release() {
	if u.r != nil {
		flatePool.Put(u.r)
		u.r = nil
	}
}

// gzip inspects a gzip stream (RFC 1952): one entry, named by the
// stream's FNAME field, else by the archive's name without .gz.
func (in *inspection) gzip(p string, names []string, data []byte, level int) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		in.add(findArchiveUnreadable, "%s: broken gzip stream: %v", p, err)
		return
	}
	if !in.count(p) {
		return
	}
	name := zr.Name
	if name == "" {
		base := ""
		if len(names) > 0 {
			base = path.Base(strings.ReplaceAll(names[0], `\`, "/"))
		}
		lower := strings.ToLower(base)
		switch {
		case strings.HasSuffix(lower, ".tgz"):
			name = base[:len(base)-4] + ".tar"
		case strings.HasSuffix(lower, ".gz"):
			name = base[:len(base)-3]
		default:
			name = "(gzip content)"
		}
	}
	// ISIZE, the last four bytes, is the unpacked size modulo 2^32 (RFC
	// 1952 §2.3.1): a hint, counted as declared.
	if len(data) >= 8 {
		in.declare(p+"/"+display(name), int64(binary.LittleEndian.Uint32(data[len(data)-4:])))
	}
	in.entry(p, name, -1, level+1, zr)
}

// tar inspects a tar archive (POSIX.1-2001 ustar and pax, GNU tar).
func (in *inspection) tar(p string, data []byte, level int) {
	tr := tar.NewReader(bytes.NewReader(data))
	for in.ctx.Err() == nil {
		h, err := tr.Next()
		if err != nil {
			if err != io.EOF {
				in.add(findArchiveUnreadable, "%s: tar broken: %v", p, err)
			}
			return
		}
		if !in.count(p) {
			return
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			in.entry(p, h.Name, h.Size, level+1, tr)
		case tar.TypeDir:
		default:
			// Links and devices hold no content; their names still count.
			in.entry(p, h.Name, -1, level+1, nil)
		}
	}
}
