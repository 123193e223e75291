package bayes

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Sample is one message of a training or test corpus.
type Sample struct {
	// Name says where the message came from: a file name, or
	// "mbox-file#n".
	Name string
	// Raw is the message, without an mbox "From " line.
	Raw []byte
}

// ReadCorpus reads the messages at path, which is one of:
//   - an mbox file (its first line starts with "From "): split at each
//     "From " line, ">From " unquoted (mboxrd);
//   - a Maildir (a folder holding cur/ or new/): the files of cur/ and
//     new/;
//   - a folder of message files, read recursively (names starting with
//     "." are skipped);
//   - a single message file.
//
// A message file that starts with an mbox "From " envelope line loses
// it: that line is not part of the message, and corpora hold it in very
// different shares of spam and ham, which a classifier would learn.
func ReadCorpus(path string) ([]Sample, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	if !fi.IsDir() {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		if isMbox(b) {
			return splitMbox(path, b), nil
		}
		return []Sample{{Name: path, Raw: b}}, nil
	}
	dirs := []string{path}
	if isMaildir(path) {
		dirs = []string{filepath.Join(path, "cur"), filepath.Join(path, "new")}
	}
	var out []Sample
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && p == d {
					return nil
				}
				return err
			}
			if strings.HasPrefix(e.Name(), ".") && p != d {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if e.Type()&os.ModeSymlink != 0 {
				// A folder of links to messages (a cross-validation fold).
				if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
					return nil
				}
			} else if !e.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if isMbox(b) && bytes.Count(b, []byte("\nFrom ")) > 0 {
				out = append(out, splitMbox(p, b)...)
				return nil
			}
			out = append(out, Sample{Name: p, Raw: StripFromLine(b)})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

func isMbox(b []byte) bool { return bytes.HasPrefix(b, []byte("From ")) }

// StripFromLine removes a leading mbox "From " envelope line.
func StripFromLine(b []byte) []byte {
	if !isMbox(b) {
		return b
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return nil
}

// splitMbox splits an mbox file at its "From " lines (a "From " line
// starts a message when it follows an empty line or starts the file) and
// unquotes ">From " lines. Lines may end in LF or CRLF (an mbox written on
// or for Windows).
func splitMbox(name string, b []byte) []Sample {
	var out []Sample
	add := func(m []byte) {
		m = StripFromLine(m)
		if len(bytes.TrimSpace(m)) == 0 {
			return
		}
		m = unquoteFrom(m)
		out = append(out, Sample{Name: fmt.Sprintf("%s#%d", name, len(out)+1), Raw: m})
	}
	start := 0
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("\nFrom "))
		if j < 0 {
			add(b[start:])
			return out
		}
		nl := i + j // the line end before "From "
		i = nl + 1
		// Keep the last line's end, drop the separating empty line.
		switch {
		case nl >= 1 && b[nl-1] == '\n':
			add(b[start:nl])
		case nl >= 2 && b[nl-1] == '\r' && b[nl-2] == '\n':
			add(b[start : nl-1])
		default:
			continue // a "From " line inside a message (mboxo leaves it unquoted)
		}
		start = i
	}
}

func unquoteFrom(m []byte) []byte {
	if !bytes.Contains(m, []byte("\n>")) {
		return m
	}
	lines := bytes.SplitAfter(m, []byte("\n"))
	for i, l := range lines {
		t := bytes.TrimLeft(l, ">")
		if len(t) < len(l) && bytes.HasPrefix(t, []byte("From ")) {
			lines[i] = l[1:]
		}
	}
	return bytes.Join(lines, nil)
}
