// Package attachments is the data-stage filter "attachments": it finds
// attachments that run code when opened, or that hide what they are.
//
// Every attachment of the shared MIME walk (filters.Message.Content) is
// judged by its file names (Content-Disposition's and Content-Type's, all
// of them), by its declared media type, and by its content's magic bytes:
//
//   - executables (PE, ELF, Mach-O, Windows shortcuts, installers, Java)
//     → ATTACH_EXECUTABLE;
//   - scripts that run when opened (JavaScript, VBScript, PowerShell,
//     batch, HTML applications, macOS .command, ...) → ATTACH_SCRIPT;
//   - Unix shell scripts (a #! line, .sh and kin, a shell media type),
//     which run only when the reader saves them and runs them on purpose:
//     a sign, not a threat → ATTACH_UNIX_SCRIPT, weak, and nothing inside
//     an archive (every source tarball holds some);
//   - Office documents with macros: .docm/.xlsm/.pptm and kin, an Office
//     Open XML zip holding a VBA project (by its content type, whatever
//     its part is named, or a vbaProject.bin) or an Excel 4.0 macro
//     sheet, an OLE2 file with a VBA or Macros storage → ATTACH_MACRO;
//   - disk images (ISO 9660/UDF, VHD, VHDX, DMG, .img), which mount as a
//     drive and shed the Mark-of-the-Web of the files in them
//     → ATTACH_DISK_IMAGE;
//   - a dangerous extension behind a harmless-looking one
//     ("invoice.pdf.exe", "invoice.pdf      .exe"), or a name holding a
//     bidirectional control such as U+202E that reorders how it is shown
//     → ATTACH_DOUBLE_EXT;
//   - executable content under a name or declared type that says it is
//     something else (a PE named report.pdf) → ATTACH_TYPE_MISMATCH.
//
// Archives (zip, including Office Open XML; gzip; tar) are opened, and
// archives in them, up to Config.MaxArchiveDepth levels: anything of the
// above inside is ATTACH_ARCHIVE_DANGEROUS. An encrypted entry, or an
// encrypted Office document, cannot be looked into: ATTACH_ARCHIVE_ENCRYPTED.
// An archive that would take more than Config.MaxArchiveBytes to unpack,
// holds more than Config.MaxArchiveEntries entries, nests deeper than the
// depth limit, or unpacks to more than it declares, is
// ATTACH_ARCHIVE_BOMB: a symbol, never an outage.
//
// # Actions
//
// A filter returns scored symbols, never an action. The score is the
// operator's lever: under the default policy (tag 5, quarantine 10,
// reject 20) the default ATTACH_EXECUTABLE (15) quarantines on its own.
// To make a class refuse or quarantine whatever else the message scores,
// and even for senders on an allow list, add a rule:
//
//	[[rules.rule]]
//	name   = "EXECUTABLE_REFUSED"
//	expr   = 'has("ATTACH_EXECUTABLE") || has("ATTACH_ARCHIVE_DANGEROUS")'
//	action = "reject"
//
//	[[rules.rule]]
//	name   = "ENCRYPTED_HELD"
//	expr   = 'has("ATTACH_ARCHIVE_ENCRYPTED")'
//	action = "quarantine"
//
// and to count a class as information only, set its score to 0 (the
// symbol is still reported and logged).
package attachments

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/content"
)

// The symbol names the filter returns.
const (
	SymExecutable       = "ATTACH_EXECUTABLE"
	SymScript           = "ATTACH_SCRIPT"
	SymMacro            = "ATTACH_MACRO"
	SymDoubleExt        = "ATTACH_DOUBLE_EXT"
	SymTypeMismatch     = "ATTACH_TYPE_MISMATCH"
	SymDiskImage        = "ATTACH_DISK_IMAGE"
	SymArchiveDangerous = "ATTACH_ARCHIVE_DANGEROUS"
	SymArchiveEncrypted = "ATTACH_ARCHIVE_ENCRYPTED"
	SymArchiveBomb      = "ATTACH_ARCHIVE_BOMB"
	// SymArchiveUnreadable: an archive entry compressed by a method the
	// filter cannot unpack (zip's Deflate64, bzip2, LZMA, Zstandard, xz,
	// which unpackers such as Windows Explorer or 7-Zip read), or an
	// archive that claims a format and is broken (a gzip or deflate
	// stream that is cut or fails its checksum, a tar that ends inside an
	// entry or has a bad header): what cannot be read is judged by its
	// name only.
	SymArchiveUnreadable = "ATTACH_ARCHIVE_UNREADABLE"
	// SymUnixScript: a Unix shell script attached as itself. Mailing
	// lists of Unix users pass scripts around (three of the corpus's ham
	// carry one); Outlook and Gmail do not block them, as no mail client
	// runs them when opened.
	SymUnixScript = "ATTACH_UNIX_SCRIPT"
)

// finding is the index of a symbol in Symbols.
type finding int

const (
	findExecutable finding = iota
	findScript
	findMacro
	findDoubleExt
	findTypeMismatch
	findDiskImage
	findArchiveDangerous
	findArchiveEncrypted
	findArchiveBomb
	findArchiveUnreadable
	findUnixScript
	numFindings
)

// Symbols lists every symbol name the filter can return, in the order
// Check returns them.
var Symbols = []string{
	SymExecutable, SymScript, SymMacro, SymDoubleExt, SymTypeMismatch, SymDiskImage,
	SymArchiveDangerous, SymArchiveEncrypted, SymArchiveBomb, SymArchiveUnreadable, SymUnixScript,
}

// Config holds the score of each symbol (the TOML key is the symbol name
// in lower case) and the bounds of archive inspection. Start from
// DefaultConfig: a zero score is a score (the symbol is still reported,
// for logs), not a request for the default.
//
// Defaults: what runs code scores high, alone near the default quarantine
// threshold (10) and, two together, past the reject threshold (20);
// what only hides content scores less, since legitimate senders do it
// too (password-protected zips of invoices):
//
//	attach_executable          15.0
//	attach_script              12.0
//	attach_macro               10.0
//	attach_double_ext          12.0
//	attach_type_mismatch        5.0
//	attach_disk_image           8.0
//	attach_archive_dangerous   12.0
//	attach_archive_encrypted    3.0
//	attach_archive_bomb         5.0
//	attach_archive_unreadable   4.0
//	attach_unix_script          1.0
//	max_archive_depth           3      archive levels opened; 0 opens none
//	max_archive_bytes          64 MiB  bytes unpacked per message, at most
//	max_archive_entries     10000      archive entries read per message
type Config struct {
	Executable        float64 `toml:"attach_executable"`
	Script            float64 `toml:"attach_script"`
	Macro             float64 `toml:"attach_macro"`
	DoubleExt         float64 `toml:"attach_double_ext"`
	TypeMismatch      float64 `toml:"attach_type_mismatch"`
	DiskImage         float64 `toml:"attach_disk_image"`
	ArchiveDangerous  float64 `toml:"attach_archive_dangerous"`
	ArchiveEncrypted  float64 `toml:"attach_archive_encrypted"`
	ArchiveBomb       float64 `toml:"attach_archive_bomb"`
	ArchiveUnreadable float64 `toml:"attach_archive_unreadable"`
	UnixScript        float64 `toml:"attach_unix_script"`

	// MaxArchiveDepth is how many levels of archives are opened: 1 opens
	// an attached zip, 2 a zip in it too. An archive one level deeper is
	// an ATTACH_ARCHIVE_BOMB. 0 opens no archive (names are still read
	// from the message, but no archive's entries).
	MaxArchiveDepth int `toml:"max_archive_depth"`
	// MaxArchiveBytes bounds the bytes unpacked from archives for one
	// message, and the unpacked sizes their entries declare: archives that
	// declare more, or that would unpack to more, are an
	// ATTACH_ARCHIVE_BOMB (whether or not the filter needed to unpack
	// them: it unpacks only the first kilobytes of an entry, unless the
	// entry is itself an archive or an OLE2 file). Must be positive.
	MaxArchiveBytes int64 `toml:"max_archive_bytes"`
	// MaxArchiveEntries bounds the archive entries read for one message;
	// more is an ATTACH_ARCHIVE_BOMB. Must be positive.
	MaxArchiveEntries int `toml:"max_archive_entries"`
}

// Upper bounds Validate accepts for the limits.
const (
	maxDepthLimit   = 16
	maxEntriesLimit = 1_000_000
)

// DefaultConfig returns the configuration documented on Config.
func DefaultConfig() Config {
	return Config{
		Executable:        15,
		Script:            12,
		Macro:             10,
		DoubleExt:         12,
		TypeMismatch:      5,
		DiskImage:         8,
		ArchiveDangerous:  12,
		ArchiveEncrypted:  3,
		ArchiveBomb:       5,
		ArchiveUnreadable: 4,
		UnixScript:        1,
		MaxArchiveDepth:   3,
		MaxArchiveBytes:   64 << 20,
		MaxArchiveEntries: 10000,
	}
}

// scores returns the scores in the order of Symbols.
func (c Config) scores() [numFindings]float64 {
	return [numFindings]float64{c.Executable, c.Script, c.Macro, c.DoubleExt, c.TypeMismatch,
		c.DiskImage, c.ArchiveDangerous, c.ArchiveEncrypted, c.ArchiveBomb, c.ArchiveUnreadable, c.UnixScript}
}

// Validate reports every score that is not a finite number and every
// limit out of its range. It only checks.
func (c Config) Validate() error {
	var errs []error
	for i, s := range c.scores() {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			errs = append(errs, fmt.Errorf("%s: %v is not a finite number", strings.ToLower(Symbols[i]), s))
		}
	}
	if c.MaxArchiveDepth < 0 || c.MaxArchiveDepth > maxDepthLimit {
		errs = append(errs, fmt.Errorf("max_archive_depth: %d is not in 0..%d", c.MaxArchiveDepth, maxDepthLimit))
	}
	if c.MaxArchiveBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_archive_bytes: %d is not positive", c.MaxArchiveBytes))
	}
	if c.MaxArchiveEntries <= 0 || c.MaxArchiveEntries > maxEntriesLimit {
		errs = append(errs, fmt.Errorf("max_archive_entries: %d is not in 1..%d", c.MaxArchiveEntries, maxEntriesLimit))
	}
	return errors.Join(errs...)
}

// Filter is the attachment policy check, a data-stage filter. It is safe
// for concurrent use.
type Filter struct {
	cfg    Config
	scores [numFindings]float64
}

var _ filters.Filter = (*Filter)(nil)

// New returns the filter.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("attachments config: %w", err)
	}
	return &Filter{cfg: cfg, scores: cfg.scores()}, nil
}

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return Symbols }

// Name implements filters.Filter.
func (f *Filter) Name() string { return "attachments" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageData }

// errNoMessage means the pipeline ran the filter before DATA.
var errNoMessage = errors.New("attachments: no message (not at the data stage)")

// Check implements filters.Filter. It reads the attachments of the shared
// MIME walk, opens archives in memory under the configured bounds, and
// returns each symbol at most once, its reason naming the first
// attachment that raised it. It fails only when ctx ends first.
func (f *Filter) Check(ctx context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Msg == nil {
		return filters.Result{}, errNoMessage
	}
	atts := in.Msg.Content().Attachments
	if len(atts) == 0 {
		return filters.Result{}, nil
	}
	insp := newInspection(ctx, &f.cfg)
	defer insp.unzip.release()
	for _, a := range atts {
		insp.attachment(a)
		if err := ctx.Err(); err != nil {
			return filters.Result{}, fmt.Errorf("attachments: %w", err)
		}
	}
	return filters.Result{Symbols: insp.symbols(f.scores)}, nil
}

// inspection is the state of one Check.
type inspection struct {
	ctx      context.Context
	cfg      *Config
	first    [numFindings]string // reason of the first finding of each kind
	more     [numFindings]int    // further findings of each kind
	budget   int64               // bytes that may still be unpacked
	declared int64               // bytes archive entries declare, in all
	entries  int                 // archive entries read so far
	full     bool                // the entry limit was reached: open nothing more
	unzip    unzipper
}

// newInspection starts an inspection under cfg's bounds.
func newInspection(ctx context.Context, cfg *Config) *inspection {
	return &inspection{ctx: ctx, cfg: cfg, budget: cfg.MaxArchiveBytes}
}

// add records a finding.
func (in *inspection) add(f finding, format string, args ...any) {
	if in.first[f] != "" {
		in.more[f]++
		return
	}
	in.first[f] = fmt.Sprintf(format, args...)
}

// symbols returns one symbol per kind found, in the order of Symbols.
func (in *inspection) symbols(scores [numFindings]float64) []filters.Symbol {
	var syms []filters.Symbol
	for f := range numFindings {
		if in.first[f] == "" {
			continue
		}
		reason := in.first[f]
		if in.more[f] > 0 {
			reason += fmt.Sprintf(" (and %d more)", in.more[f])
		}
		syms = append(syms, filters.Symbol{Name: Symbols[f], Score: scores[f], Reason: reason})
	}
	return syms
}

// found says what one file is, for report.
type found struct {
	class  class  // executable, script, macro, disk image or Unix script; classNone when harmless
	why    string // "extension .exe", "content: Windows executable", ...
	double string // a double extension or bidi control, or ""
	// mismatch names what the file claims to be while it is an executable.
	mismatch string
}

// report records what was found of one file at archive level (0 for an
// attachment itself, 1 for an entry of an attached archive, ...): at
// level 0 each class has its own symbol; inside an archive everything is
// ATTACH_ARCHIVE_DANGEROUS, so that one zip of ten executables is one
// clear reason and not a pile of scores.
func (in *inspection) report(path string, level int, f found) {
	if level > 0 {
		switch {
		case f.class.dangerous() && f.mismatch != "":
			in.add(findArchiveDangerous, "%s: %s (%s; %s)", path, f.class, f.why, f.mismatch)
		case f.class.dangerous():
			in.add(findArchiveDangerous, "%s: %s (%s)", path, f.class, f.why)
		case f.double != "":
			in.add(findArchiveDangerous, "%s: %s", path, f.double)
		case f.mismatch != "":
			in.add(findArchiveDangerous, "%s: %s", path, f.mismatch)
		}
		return
	}
	switch f.class {
	case classExecutable:
		in.add(findExecutable, "%s: %s", path, f.why)
	case classScript:
		in.add(findScript, "%s: %s", path, f.why)
	case classMacro:
		in.add(findMacro, "%s: %s", path, f.why)
	case classDiskImage:
		in.add(findDiskImage, "%s: %s", path, f.why)
	case classUnixScript:
		in.add(findUnixScript, "%s: %s", path, f.why)
	}
	if f.double != "" {
		in.add(findDoubleExt, "%s: %s", path, f.double)
	}
	if f.mismatch != "" {
		in.add(findTypeMismatch, "%s: %s", path, f.mismatch)
	}
}

// attachment inspects one attachment of the message.
func (in *inspection) attachment(a content.Attachment) {
	names := make([]string, 0, 1+len(a.OtherNames))
	if a.Filename != "" {
		names = append(names, a.Filename)
	}
	names = append(names, a.OtherNames...)
	path := "(unnamed " + display(a.DeclaredType) + ")"
	if len(names) > 0 {
		path = display(names[0])
	}
	in.file(path, names, a.DeclaredType, a.Data, a.Data != nil, 0)
}

// file inspects one file: an attachment (level 0) or an archive entry.
// data is its content, or a prefix of it when whole is false.
func (in *inspection) file(path string, names []string, declared string, data []byte, whole bool, level int) {
	var f found
	claims := ""
	for _, n := range names {
		nf := examineName(n)
		f.consider(nf.class, "extension ."+display(nf.ext))
		switch {
		case nf.bidi:
			f.double = "bidirectional control character in the name " + nf.displayed
		case nf.decoy != "" && nf.class.dangerous() && f.double == "":
			f.double = fmt.Sprintf("extension .%s hidden behind .%s", display(nf.ext), display(nf.decoy))
		}
		if nf.ext != "" && nf.class != classExecutable && claims == "" {
			claims = "named ." + display(nf.ext)
		}
	}
	dc := typeClass(declared)
	f.consider(dc, "declared "+display(declared))
	if claims == "" && !genericType(declared) && dc != classExecutable {
		claims = "declared " + display(declared)
	}

	t := sniff(data, whole)
	f.consider(t.class(), "content: "+t.String())
	if t.class() == classExecutable && claims != "" {
		f.mismatch = fmt.Sprintf("%s content %s", t, claims)
	}
	switch t {
	case typeOLE2:
		macros, encrypted := ole2Findings(data)
		if macros {
			f.consider(classMacro, "OLE2 file with a VBA project")
		}
		if encrypted {
			in.add(findArchiveEncrypted, "%s: encrypted Office document", path)
		}
	case typeZip, typeGzip, typeTar:
		if whole {
			in.archive(path, t, names, data, level, &f)
		}
	}
	in.report(path, level, f)
}

// consider keeps the most telling class seen for a file: what runs beats
// what mounts, and both beat a Unix script.
func (f *found) consider(c class, why string) {
	if (c.dangerous() || c == classUnixScript) && (f.class == classNone || c < f.class) {
		f.class, f.why = c, why
	}
}
