package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moatmail/moat/delivery/queue"
)

// cmdQueue is `moat queue list|show ID|retry [ID]|delete ID|bounce ID`.
// list and show read the spool; retry, delete and bounce go through the
// running moat (a command file it answers within a second) or, when none
// runs, act on the spool directly (delivery/queue's admin.go).
func cmdQueue(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"queue: want list, show, retry, delete or bounce"}
	}
	sub := args[0]
	path, rest, err := flags("queue "+sub, args[1:], nil)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.DataDir, "queue")
	switch sub {
	case "list":
		if len(rest) != 0 {
			return usageError{"queue list: no arguments"}
		}
		infos, err := queue.List(dir)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAGE\tSIZE\tFROM\tTO\tSTATUS\tLAST")
		now := time.Now()
		for _, in := range infos {
			for i, r := range in.Rcpts {
				id, age, size, from := "", "", "", ""
				if i == 0 {
					id, age, size, from = in.ID, now.Sub(in.Created).Round(time.Second).String(), fmt.Sprint(in.Size), orNull(in.From)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, age, size, from, r.Addr, r.Status, truncate(r.Last, 60))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d message(s)\n", len(infos))
		return nil
	case "show":
		if len(rest) != 1 {
			return usageError{"queue show: want one ID"}
		}
		in, data, err := queue.Show(dir, rest[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "id: %s\ntime: %s\norigin: %s\nfrom: %s\nsize: %d\n", in.ID,
			in.Created.Local().Format("2006-01-02 15:04:05 -0700"), in.Origin, orNull(in.From), in.Size)
		for _, r := range in.Rcpts {
			fmt.Fprintf(stdout, "to: %s %s attempts=%d", r.Addr, r.Status, r.Attempts)
			if !r.Next.IsZero() && r.Status == "pending" {
				fmt.Fprintf(stdout, " next=%s", r.Next.Local().Format("2006-01-02 15:04:05"))
			}
			if r.Last != "" {
				fmt.Fprintf(stdout, " last=%q", r.Last)
			}
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "\n%s", data)
		return nil
	case "retry", "delete", "bounce":
		if len(rest) > 1 || sub != "retry" && len(rest) != 1 {
			return usageError{fmt.Sprintf("queue %s: want one ID", sub)}
		}
		cmd := strings.Join(append([]string{sub}, rest...), " ")
		opts, err := commandQueueOptions(cfg)
		if err != nil {
			return err
		}
		if err := queue.Command(context.Background(), cfg.Queue, opts, cmd, 30*time.Second); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: done\n", cmd)
		return nil
	}
	return usageError{fmt.Sprintf("queue: unknown subcommand %q", sub)}
}

// commandQueueOptions are the queue's options for a command run beside
// moat (moat queue, moat quarantine release).
func commandQueueOptions(cfg *Config) (queue.Options, error) {
	routes, err := queue.NewRoutes(cfg.Routes)
	if err != nil {
		return queue.Options{}, err
	}
	return queue.Options{Dir: filepath.Join(cfg.DataDir, "queue"), Hostname: cfg.SMTP.Hostname, Routes: routes,
		Log: newLogger(cfg.Log, io.Discard)}, nil
}
