// Command moat is the moat mail gateway: an SMTP front that judges mail,
// a mailbox store served over IMAP, and the tools to run them.
//
//	moat serve [-config FILE]
//	moat check-config [-config FILE]
//	moat user add|passwd|list|delete [-config FILE] [ADDRESS]
//	moat user allowlist [-config FILE] [-add SENDER] [-remove SENDER] ADDRESS
//	moat quarantine list|show|release|delete [-config FILE] [ID]
//	moat queue list|show|retry|delete|bounce [-config FILE] [ID]
//	moat import [-config FILE] [-mailbox NAME] ADDRESS MAILDIR
//	moat backup [-config FILE] DEST
//	moat restore SRC DATADIR
//	moat verify [-config FILE] [-orphan-age D] [DIR]
//	moat dkim keygen [-config FILE] [-selector S] [-algo ed25519|rsa] [-bits N] DOMAIN
//	moat version
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/moatmail/moat/delivery/queue"
	"github.com/moatmail/moat/filters/greylist"
	"github.com/moatmail/moat/filters/resolver"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: moat <command> [flags]

commands:
  serve                       run the gateway (embedded default config without -config)
  check-config                validate a configuration file
  user add ADDRESS            create a user (password from stdin when not a terminal)
  user passwd ADDRESS         set a user's password
  user list                   list users
  user delete ADDRESS         delete a user and all their mail
  user allowlist ADDRESS      list a user's allowed senders (-add S, -remove S to edit)
  quarantine list [-rcpt A]   list quarantined messages
  quarantine show ID          print a quarantined message and its verdict
  quarantine release ID       deliver a quarantined message to its recipients' INBOX
  quarantine delete ID        delete a quarantined message
  queue list                  list the outbound queue
  queue show ID               print a queued message and its recipients' state
  queue retry [ID]            retry a queued message (all without ID) now
  queue delete ID             remove a queued message without a bounce
  queue bounce ID             give up a queued message, bouncing it to its sender
  import ADDRESS MAILDIR      copy a Maildir folder into a user's mailbox (-mailbox NAME)
  bayes train|eval|stats      train the classifier, cross-validate it, show its state
  rules fit --spam P --ham P  fit symbol scores on labelled mail (-out FILE: a scores_file)
  greylist list [NET]         list greylisting records (-limit N)
  greylist allow IP|NET       stop greylisting a client network (-days N: for a while)
  greylist delete IP|NET      forget the greylisting records of a network
  backup DEST                 copy the data consistently into DEST while moat runs
  restore SRC DATADIR         verify the backup SRC and restore it into the empty DATADIR
  verify [DIR]                check a data folder or a backup (exit 1 on problems)
  dkim keygen DOMAIN          write a DKIM signing key and print its DNS record
                              (-selector S, -algo ed25519|rsa, -bits N)
  version                     print the version

every command but version takes -config FILE
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = cmdServe(rest, stdout, stderr)
	case "check-config":
		err = cmdCheckConfig(rest, stdout)
	case "user":
		err = cmdUser(rest, stdin, stdout)
	case "quarantine":
		err = cmdQuarantine(rest, stdout)
	case "queue":
		err = cmdQueue(rest, stdout)
	case "import":
		err = cmdImport(rest, stdout)
	case "bayes":
		err = cmdBayes(rest, stdout)
	case "rules":
		err = cmdRules(rest, stdout)
	case "greylist":
		err = cmdGreylist(rest, stdout)
	case "backup":
		err = cmdBackup(rest, stdout)
	case "restore":
		err = cmdRestore(rest, stdout)
	case "verify":
		err = cmdVerify(rest, stdout)
	case "dkim":
		err = cmdDKIM(rest, stdout)
	case "version":
		fmt.Fprintln(stdout, "moat", versionString())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "moat: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "moat: %v\n\n%s", err, usage)
			return 2
		}
		fmt.Fprintf(stderr, "moat: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		v += " " + bi.GoVersion
	}
	return v
}

// flags parses the common -config flag and returns the remaining arguments.
func flags(name string, args []string, extra func(*flag.FlagSet)) (string, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", "", "configuration file (default: the embedded default)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", nil, usageError{fmt.Sprintf("%s: %v", name, err)}
	}
	return *config, fs.Args(), nil
}

func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdServe(args []string, stdout, stderr io.Writer) error {
	path, _, err := flags("serve", args, nil)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	a, err := start(cfg, log, stdout)
	if err != nil {
		return err
	}
	printQuickStart(stdout, a)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	var runErr error
wait:
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				if path == "" {
					log.Warn("SIGHUP ignored: running on the embedded default configuration")
				} else if err := a.reload(path); err != nil {
					log.Error("configuration reload failed; the running configuration stays", "err", err)
				}
				continue
			}
			log.Info("stopping", "signal", s.String())
			break wait
		case runErr = <-a.errc:
			log.Error("stopping", "err", runErr)
			break wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(runErr, a.Close(ctx))
}

func printQuickStart(w io.Writer, a *app) {
	fmt.Fprintf(w, "moat %s is running; data in %s\n", version, a.cfg.DataDir)
	for _, l := range []struct{ name, note string }{
		{"smtp", "(STARTTLS)"}, {"smtps", "(implicit TLS)"}, {"imap", "(STARTTLS)"},
		{"imaps", "(implicit TLS)"}, {"pop3", "(STLS)"}, {"pop3s", "(implicit TLS)"}, {"metrics", "(/metrics)"},
		{"submission", "(STARTTLS, AUTH)"}, {"submissions", "(implicit TLS, AUTH)"},
	} {
		if addr := a.Addr(l.name); addr != "" {
			fmt.Fprintf(w, "  %-8s %-21s %s\n", l.name, addr, l.note)
		}
	}
	if u := a.cfg.Demo.User; u != "" && a.Addr("smtp") != "" {
		fmt.Fprintf(w, "try: swaks --server %s --tls --to %s --from someone@example.org\n", a.Addr("smtp"), u)
	}
}

func cmdCheckConfig(args []string, stdout io.Writer) error {
	path, _, err := flags("check-config", args, nil)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	// Build what start would build, short of opening files and ports, so
	// that a config that passes here also starts.
	dns, err := resolver.New(cfg.DNS)
	if err != nil {
		return err
	}
	// The greylist filter is built over a throwaway store, so that its
	// configuration and rules are checked as start would check them.
	tmp, err := os.MkdirTemp("", "moat-check-config-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	grey, err := greylist.OpenSQLite(filepath.Join(tmp, "greylist.db"))
	if err != nil {
		return err
	}
	defer grey.Close()
	j, err := buildJudge(cfg, builtOnce{dns: dns, greylist: grey})
	if err != nil {
		return err
	}
	// The routes' files (CA, client certificate, password, address
	// lists) are read as start reads them.
	routes, err := queue.NewRoutes(cfg.Routes)
	if err != nil {
		j.filters.close()
		return err
	}
	if _, err := queue.NewVerifier(routes, queue.VerifierOptions{}); err != nil {
		j.filters.close()
		return err
	}
	j.filters.close()
	fmt.Fprintf(stdout, "configuration OK: data in %s, local domains %v\n", cfg.DataDir, cfg.SMTP.LocalDomains)
	return nil
}

func tlsListener(l net.Listener, c *tls.Config) net.Listener { return tls.NewListener(l, c) }
