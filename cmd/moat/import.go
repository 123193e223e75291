package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maildirFlags maps the Maildir info letters (after ":2,") to IMAP flags.
var maildirFlags = map[rune]string{
	'S': `\Seen`, 'R': `\Answered`, 'F': `\Flagged`, 'T': `\Deleted`, 'D': `\Draft`,
}

// cmdImport copies a Maildir folder (its cur/ and new/) into a user's
// mailbox, keeping flags and modification times: for moving users over
// from another server such as Dovecot.
func cmdImport(args []string, stdout io.Writer) error {
	var mailbox string
	path, rest, err := flags("import", args, func(fs *flag.FlagSet) {
		fs.StringVar(&mailbox, "mailbox", "INBOX", "the mailbox to import into (created if missing)")
	})
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return usageError{"import: want ADDRESS MAILDIR"}
	}
	addr, dir := rest[0], rest[1]
	_, st, err := openStore(path)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	u, err := st.LookupUser(ctx, addr)
	if err != nil {
		return fmt.Errorf("import: %s: %w", addr, err)
	}
	mb, err := st.Mailbox(ctx, u.ID, mailbox)
	if err != nil {
		if mb, err = st.CreateMailbox(ctx, u.ID, mailbox, ""); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	var files []string
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return fmt.Errorf("import: %s is not a Maildir: %w", dir, err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(dir, sub, e.Name()))
			}
		}
	}
	// Maildir names start with the delivery time: sorted names keep the
	// order the messages arrived in.
	sort.Strings(files)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		var fl []string
		if i := strings.LastIndex(filepath.Base(f), ":2,"); i >= 0 {
			for _, r := range filepath.Base(f)[i+3:] {
				if flag, ok := maildirFlags[r]; ok {
					fl = append(fl, flag)
				}
			}
		}
		if _, err := st.Append(ctx, mb.ID, crlf(data), fl, fi.ModTime()); err != nil {
			return fmt.Errorf("import %s: %w", f, err)
		}
		n++
	}
	fmt.Fprintf(stdout, "imported %d messages into %s of %s\n", n, mailbox, u.Address)
	return nil
}

// crlf turns bare LF line ends, as Maildir files usually have, into CRLF,
// the form moat stores and IMAP serves (RFC 9051 §2.2).
func crlf(b []byte) []byte {
	lf := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			lf++
		}
	}
	if lf == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+lf)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
