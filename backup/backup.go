// Package backup makes a consistent copy of a running moat's data (moat
// backup), checks a copy or a data folder (moat verify) and restores a
// copy into an empty data folder (moat restore).
//
// A backup is a folder: data/ mirrors the data folder (the index, the
// message files, the classifier and greylisting databases, the generated
// TLS material), external/ holds files named by the configuration from
// outside the data folder (the configuration file itself, a certificate
// and its key), and manifest.json, written last, lists every file with
// its size and SHA-256. A folder without a manifest is an unfinished
// backup and is refused.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
)

// ManifestName is the manifest's file name in a backup.
const ManifestName = "manifest.json"

// Format is the version of the backup layout this package writes.
const Format = 1

// Source is what a backup copies.
type Source struct {
	// DataDir is the data folder (the store: index.db and blobs/).
	DataDir string
	// Databases are further SQLite databases (the classifier's, the
	// greylisting state), copied with VACUUM INTO; a missing one is
	// skipped (its filter has not run yet).
	Databases []string
	// Files are further files (the configuration, TLS certificate and
	// key, the generated TLS folder's files); a missing one is skipped.
	Files []string
	// Spools are folders of files written once and replaced whole, never
	// changed in place (the outbound queue's spool): the files directly in
	// them are copied as they are, skipping those removed meanwhile (a
	// queued message delivered during the backup). Subfolders (tmp/,
	// ctl/) and lock files are not copied.
	Spools []string
	// Version is the moat version written into the manifest.
	Version string
}

// File is one file of a backup.
type File struct {
	// Path is its place in the backup, slash-separated: data/... or
	// external/...
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Origin is where a file of external/ came from.
	Origin string `json:"origin,omitempty"`
}

// Manifest describes a backup.
type Manifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	Version string    `json:"moat_version"`
	DataDir string    `json:"data_dir"`
	// Messages are the message files and the inline messages copied;
	// Dropped those expunged between the index snapshot and their copy.
	MessageFiles   int    `json:"message_files"`
	InlineMessages int    `json:"inline_messages"`
	Dropped        int    `json:"dropped_expunged"`
	Files          []File `json:"files"`
}

// Create writes a backup of src into dest, which must not exist or be
// empty. The store is copied first (mailstore.Snapshot: the index, then
// the message files it references), so every message acknowledged before
// Create began is in the backup.
func Create(ctx context.Context, src Source, dest string) (Manifest, error) {
	if err := emptyDir(dest); err != nil {
		return Manifest{}, err
	}
	m := Manifest{Format: Format, Created: time.Now().UTC(), Version: src.Version, DataDir: src.DataDir}
	snap, err := mailstore.Snapshot(ctx, src.DataDir, filepath.Join(dest, "data"))
	if err != nil {
		return Manifest{}, err
	}
	m.MessageFiles, m.InlineMessages, m.Dropped = snap.Files, snap.Inline, snap.Dropped
	origins := map[string]string{}
	place := func(path string) (string, error) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		if rel, err := filepath.Rel(src.DataDir, abs); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.Join(dest, "data", rel), nil
		}
		to := filepath.Join(dest, "external", filepath.Base(abs))
		for i := 2; ; i++ {
			if _, ok := origins[to]; !ok {
				break
			}
			to = filepath.Join(dest, "external", fmt.Sprintf("%d-%s", i, filepath.Base(abs)))
		}
		origins[to] = abs
		return to, nil
	}
	for _, db := range src.Databases {
		if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		to, err := place(db)
		if err != nil {
			return Manifest{}, err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			return Manifest{}, err
		}
		if err := mailstore.VacuumInto(ctx, db, to); err != nil {
			return Manifest{}, fmt.Errorf("backup: %w", err)
		}
	}
	for _, f := range src.Files {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		to, err := place(f)
		if err != nil {
			return Manifest{}, err
		}
		if err := mailstore.CopyFile(f, to); err != nil {
			return Manifest{}, fmt.Errorf("backup: %w", err)
		}
	}
	for _, dir := range src.Spools {
		if err := copySpool(dir, place); err != nil {
			return Manifest{}, fmt.Errorf("backup: %w", err)
		}
	}
	files, err := listFiles(dest)
	if err != nil {
		return Manifest{}, err
	}
	for _, rel := range files {
		size, sum, err := digest(filepath.Join(dest, filepath.FromSlash(rel)))
		if err != nil {
			return Manifest{}, fmt.Errorf("backup: %w", err)
		}
		m.Files = append(m.Files, File{Path: rel, Size: size, SHA256: sum,
			Origin: origins[filepath.Join(dest, filepath.FromSlash(rel))]})
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	// The manifest last, durably: its presence marks a finished backup.
	tmp := filepath.Join(dest, ManifestName+".tmp")
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return Manifest{}, err
	}
	if err := mailstore.SyncPath(tmp); err != nil {
		return Manifest{}, err
	}
	if err := os.Rename(tmp, filepath.Join(dest, ManifestName)); err != nil {
		return Manifest{}, err
	}
	return m, mailstore.SyncPath(dest)
}

// copySpool copies the message and state files of a queue spool. A
// message file comes before its state file: a state written after the
// message was copied only says more recipients are done, and a message
// whose files went meanwhile was delivered (it is not copied, or its
// state is missing and the restored queue delivers it again: at least
// once, never lost).
func copySpool(dir string, place func(string) (string, error)) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".msg")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		for _, name := range []string{id + ".msg", id + ".state"} {
			from := filepath.Join(dir, name)
			to, err := place(from)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
				return err
			}
			if err := mailstore.CopyFile(from, to); errors.Is(err, fs.ErrNotExist) {
				break // delivered meanwhile
			} else if err != nil {
				return err
			}
		}
	}
	return nil
}

// Verify checks a backup without changing it: its manifest, every file
// listed there present with its size and checksum, no file that the
// manifest does not list, and the store in it (mailstore.Check). It
// returns the problems found; an error means it could not look.
func Verify(ctx context.Context, dir string) (Manifest, []mailstore.Problem, error) {
	var problems []mailstore.Problem
	add := func(what, format string, args ...any) {
		problems = append(problems, mailstore.Problem{What: what, Text: fmt.Sprintf(format, args...)})
	}
	m, err := ReadManifest(dir)
	if err != nil {
		add("manifest", "%v", err)
		return m, problems, nil
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Path] = true
		if !fs.ValidPath(f.Path) {
			add("manifest", "file name %q is not a path inside the backup", f.Path)
			continue
		}
		size, sum, err := digest(filepath.Join(dir, filepath.FromSlash(f.Path)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			add("missing", "%s is listed in the manifest and absent", f.Path)
		case err != nil:
			add("missing", "%s: %v", f.Path, err)
		case size != f.Size:
			add("size", "%s has %d bytes, the manifest says %d", f.Path, size, f.Size)
		case sum != f.SHA256:
			add("checksum", "%s: SHA-256 %s, the manifest says %s", f.Path, sum, f.SHA256)
		}
	}
	files, err := listFiles(dir)
	if err != nil {
		return m, nil, err
	}
	for _, rel := range files {
		if !listed[rel] {
			add("unlisted", "%s is not in the manifest", rel)
		}
	}
	store, err := mailstore.Check(ctx, filepath.Join(dir, "data"), mailstore.CheckOptions{})
	if err != nil {
		return m, nil, err
	}
	return m, append(problems, store...), nil
}

// ReadManifest reads a backup's manifest.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return m, fmt.Errorf("no manifest (an unfinished or foreign backup): %w", err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	if m.Format != Format {
		return m, fmt.Errorf("manifest format %d, this moat reads %d", m.Format, Format)
	}
	return m, nil
}

// ErrDamaged is returned by Restore for a backup that does not verify.
var ErrDamaged = errors.New("backup is damaged")

// Restore verifies the backup in src and copies its data folder into
// dataDir, which must not exist or be empty. It returns the files of
// external/ it did not restore (the configuration, a certificate from
// outside the data folder), for the operator to put back. A backup with
// any problem is refused and nothing is written.
func Restore(ctx context.Context, src, dataDir string) ([]File, error) {
	m, problems, err := Verify(ctx, src)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		var b strings.Builder
		for _, p := range problems {
			b.WriteString("\n  " + p.String())
		}
		return nil, fmt.Errorf("%w: %d problems:%s", ErrDamaged, len(problems), b.String())
	}
	if err := emptyDir(dataDir); err != nil {
		return nil, err
	}
	var external []File
	for _, f := range m.Files {
		rel, ok := strings.CutPrefix(f.Path, "data/")
		if !ok {
			external = append(external, f)
			continue
		}
		to := filepath.Join(dataDir, filepath.FromSlash(rel))
		if err := mailstore.CopyFile(filepath.Join(src, filepath.FromSlash(f.Path)), to); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	// The folders' entries durable too.
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return mailstore.SyncPath(p)
	})
	return external, err
}

// emptyDir creates dir, or accepts it when it exists and is empty.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: refusing to write into it", dir)
	}
	return nil
}

// listFiles returns every regular file under dir but the manifest,
// slash-separated and sorted.
func listFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != ManifestName {
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

func digest(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
