package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/moatmail/moat/backup"
	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters/bayes"
	"github.com/moatmail/moat/filters/greylist"
)

// errProblems makes verify exit non-zero once it has printed what it found.
var errProblems = errors.New("problems found")

// cmdBackup is `moat backup [-config FILE] DEST`: a consistent copy of the
// running (or stopped) moat's data into DEST.
func cmdBackup(args []string, stdout io.Writer) error {
	path, rest, err := flags("backup", args, nil)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"backup: want DEST"}
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	src := backup.Source{
		DataDir: cfg.DataDir,
		Version: version,
		Databases: []string{
			bayes.DatabasePath(cfg.Filters.Bayes, cfg.DataDir),
			greylist.DatabasePath(cfg.Filters.Greylist, cfg.DataDir),
		},
		Files:  []string{filepath.Join(cfg.DataDir, "demo-password")},
		Spools: []string{filepath.Join(cfg.DataDir, "queue")},
	}
	// Keys and files the configuration names: DKIM signing keys, relay
	// routes' certificates, passwords and recipient lists.
	for _, k := range cfg.DKIMSigning.Domains {
		src.Files = append(src.Files, k.KeyFile)
	}
	for _, r := range cfg.Routes {
		for _, f := range []string{r.CAFile, r.ClientCert, r.ClientKey, r.AuthPasswordFile, r.VerifyFile} {
			if f != "" {
				src.Files = append(src.Files, f)
			}
		}
	}
	if cfg.TLS.CertFile != "" {
		src.Files = append(src.Files, cfg.TLS.CertFile, cfg.TLS.KeyFile)
	} else {
		src.Files = append(src.Files, filepath.Join(cfg.DataDir, "tls", "cert.pem"), filepath.Join(cfg.DataDir, "tls", "key.pem"))
	}
	if path != "" {
		src.Files = append(src.Files, path)
	}
	start := time.Now()
	m, err := backup.Create(context.Background(), src, rest[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup of %s written to %s in %v: %d files, %d message files, %d inline messages",
		cfg.DataDir, rest[0], time.Since(start).Round(time.Millisecond), len(m.Files), m.MessageFiles, m.InlineMessages)
	if m.Dropped > 0 {
		fmt.Fprintf(stdout, ", %d expunged during the backup left out", m.Dropped)
	}
	fmt.Fprintln(stdout)
	return nil
}

// cmdRestore is `moat restore SRC DATADIR`: verify the backup SRC and
// restore its data folder into the empty or new folder DATADIR.
func cmdRestore(args []string, stdout io.Writer) error {
	_, rest, err := flags("restore", args, nil)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return usageError{"restore: want SRC DATADIR"}
	}
	external, err := backup.Restore(context.Background(), rest[0], rest[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s into %s\n", rest[0], rest[1])
	for _, f := range external {
		fmt.Fprintf(stdout, "not restored (outside the data folder): %s, was %s\n", filepath.Join(rest[0], f.Path), f.Origin)
	}
	return nil
}

// cmdVerify is `moat verify [-config FILE] [-orphan-age D] [DIR]`: check a
// backup (DIR holds a manifest) or a data folder (DIR, or the configured
// data_dir) without changing anything; the exit status is 1 when anything
// is wrong.
func cmdVerify(args []string, stdout io.Writer) error {
	var orphanAge time.Duration
	path, rest, err := flags("verify", args, func(fs *flag.FlagSet) {
		fs.DurationVar(&orphanAge, "orphan-age", 10*time.Minute,
			"report a message file no message references only when older than this (a delivery in flight writes its file first)")
	})
	if err != nil {
		return err
	}
	var dir string
	switch len(rest) {
	case 0:
		cfg, err := loadConfig(path)
		if err != nil {
			return err
		}
		dir = cfg.DataDir
	case 1:
		dir = rest[0]
	default:
		return usageError{"verify: want at most one DIR"}
	}
	ctx := context.Background()
	var problems []mailstore.Problem
	what := "data folder"
	if _, err := os.Stat(filepath.Join(dir, backup.ManifestName)); err == nil {
		what = "backup"
		_, problems, err = backup.Verify(ctx, dir)
		if err != nil {
			return err
		}
	} else if problems, err = mailstore.Check(ctx, dir, mailstore.CheckOptions{OrphanAge: orphanAge}); err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "%s %s: %d problems\n", what, dir, len(problems))
		return errProblems
	}
	fmt.Fprintf(stdout, "%s %s: OK\n", what, dir)
	return nil
}
