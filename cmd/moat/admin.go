package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/queue"
	"github.com/moatmail/moat/filters/address"
	"github.com/moatmail/moat/quarantine"
)

// openStore opens the store named by the configuration, for the admin
// commands. moat serve may run at the same time: SQLite's WAL lets both
// work on the index.
func openStore(path string) (*Config, *mailstore.Store, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := mailstore.Open(cfg.Store)
	if err != nil {
		return nil, nil, err
	}
	return cfg, st, nil
}

// readPassword reads a password: from the terminal without echo (asked
// twice), or the first line of stdin when it is not a terminal, so that
// scripts can create users.
func readPassword(stdin io.Reader, stdout io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, "password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stdout, "again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password on standard input")
	}
	return pw, nil
}

// userAllowlist edits (-add, -remove) and lists a user's allow list of
// envelope senders.
func userAllowlist(ctx context.Context, w io.Writer, st *mailstore.Store, addr, allow, disallow string) error {
	u, err := st.LookupUser(ctx, addr)
	if err != nil {
		return fmt.Errorf("user allowlist %s: %w", addr, err)
	}
	if allow != "" {
		if err := st.AllowSender(ctx, u.ID, allow); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s allowed for %s\n", address.Normalize(allow), u.Address)
	}
	if disallow != "" {
		removed, err := st.DisallowSender(ctx, u.ID, disallow)
		if err != nil {
			return err
		}
		if !removed {
			return fmt.Errorf("user allowlist %s: %s is not on the allow list", u.Address, address.Normalize(disallow))
		}
		fmt.Fprintf(w, "%s removed from %s's allow list\n", address.Normalize(disallow), u.Address)
	}
	if allow != "" || disallow != "" {
		return nil
	}
	list, err := st.AllowedSenders(ctx, u.ID)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SENDER\tADDED")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\n", a.Sender, a.Added.Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func cmdUser(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"user: want add, passwd, list, delete or allowlist"}
	}
	sub := args[0]
	var admin bool
	var allow, disallow string
	path, rest, err := flags("user "+sub, args[1:], func(fs *flag.FlagSet) {
		switch sub {
		case "add":
			fs.BoolVar(&admin, "admin", false, "the user may review every user's quarantine")
		case "allowlist":
			fs.StringVar(&allow, "add", "", "put this envelope sender on the user's allow list")
			fs.StringVar(&disallow, "remove", "", "take this envelope sender off the user's allow list")
		}
	})
	if err != nil {
		return err
	}
	needAddr := sub != "list"
	if needAddr && len(rest) != 1 || !needAddr && len(rest) != 0 {
		return usageError{fmt.Sprintf("user %s: wrong number of arguments", sub)}
	}
	cfg, st, err := openStore(path)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	switch sub {
	case "add":
		addr := address.Normalize(rest[0])
		if _, domain, ok := address.Split(addr); !ok || !contains(cfg.SMTP.LocalDomains, domain) {
			return fmt.Errorf("user add: %s is not in a local domain (smtp.local_domains: %v)", addr, cfg.SMTP.LocalDomains)
		}
		pw, err := readPassword(stdin, stdout)
		if err != nil {
			return err
		}
		role := mailstore.RoleUser
		if admin {
			role = mailstore.RoleAdmin
		}
		if _, err := st.AddUser(ctx, addr, pw, role); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s created\n", addr)
	case "passwd":
		pw, err := readPassword(stdin, stdout)
		if err != nil {
			return err
		}
		if err := st.SetPassword(ctx, rest[0], pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s changed\n", rest[0])
	case "list":
		users, err := st.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tADMIN\tCREATED")
		for _, u := range users {
			fmt.Fprintf(tw, "%s\t%v\t%s\n", u.Address, u.Admin, u.Created.Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "delete":
		if err := st.DeleteUser(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s deleted\n", rest[0])
	case "allowlist":
		return userAllowlist(ctx, stdout, st, rest[0], allow, disallow)
	default:
		return usageError{fmt.Sprintf("user: unknown subcommand %q", sub)}
	}
	return nil
}

func cmdQuarantine(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"quarantine: want list, show, release or delete"}
	}
	sub := args[0]
	var rcpt string
	path, rest, err := flags("quarantine "+sub, args[1:], func(fs *flag.FlagSet) {
		if sub == "list" {
			fs.StringVar(&rcpt, "rcpt", "", "only messages to this recipient")
		}
	})
	if err != nil {
		return err
	}
	var id int64
	if sub != "list" {
		if len(rest) != 1 {
			return usageError{fmt.Sprintf("quarantine %s: want one ID", sub)}
		}
		if id, err = strconv.ParseInt(rest[0], 10, 64); err != nil {
			return usageError{fmt.Sprintf("quarantine %s: %q is not an ID", sub, rest[0])}
		}
	}
	cfg, st, err := openStore(path)
	if err != nil {
		return err
	}
	defer st.Close()
	q, err := quarantine.New(cfg.Quarantine, st)
	if err != nil {
		return err
	}
	// Held mail of relay domains is released onward through the outbound
	// queue: the running moat's, or the spool at its next start.
	qopts, err := commandQueueOptions(cfg)
	if err != nil {
		return err
	}
	q.SetOnward(queue.Dropper(cfg.Queue, qopts))
	ctx := context.Background()
	switch sub {
	case "list":
		entries, err := q.List(ctx, rcpt)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tSCORE\tFROM\tTO\tSUBJECT")
		for _, e := range entries {
			fmt.Fprintf(tw, "%d\t%s\t%.2f\t%s\t%s\t%s\n", e.ID, e.Created.Format("2006-01-02 15:04"), e.Score,
				orNull(e.Sender), strings.Join(e.Recipients, ","), truncate(e.Subject, 50))
		}
		return tw.Flush()
	case "show":
		e, data, err := q.Get(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "id: %d\nqueue id: %s\ntime: %s\nclient: %s\nfrom: %s\nto: %s\nsubject: %s\nscore: %.2f\naction: %s\n",
			e.ID, e.QueueID, e.Created.Format("2006-01-02 15:04:05 -0700"), e.ClientIP, orNull(e.Sender),
			strings.Join(e.Recipients, ", "), e.Subject, e.Score, e.Action)
		for _, s := range e.Symbols {
			fmt.Fprintf(stdout, "symbol: %s %.2f %s\n", s.Name, s.Score, s.Reason)
		}
		for _, r := range e.Reasons {
			fmt.Fprintf(stdout, "reason: %s\n", r)
		}
		fmt.Fprintf(stdout, "\n%s", data)
	case "release":
		n, err := q.Release(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "released %d to %d recipient(s)\n", id, n)
	case "delete":
		if err := q.Delete(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %d\n", id)
	default:
		return usageError{fmt.Sprintf("quarantine: unknown subcommand %q", sub)}
	}
	return nil
}

func orNull(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
