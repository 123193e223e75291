package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/moatmail/moat/filters/greylist"
)

// cmdGreylist runs `moat greylist list|allow|delete`, beside a running
// moat if need be (SQLite's WAL lets both use the database).
func cmdGreylist(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"greylist: want list, allow or delete"}
	}
	sub := args[0]
	var days int
	var limit int
	path, rest, err := flags("greylist "+sub, args[1:], func(fs *flag.FlagSet) {
		if sub == "allow" {
			fs.IntVar(&days, "days", 0, "allow for this many days (0: until deleted)")
		}
		if sub == "list" {
			fs.IntVar(&limit, "limit", 1000, "list at most this many records of each kind (0: all)")
		}
	})
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	shared, err := openState(cfg.State, nil)
	if err != nil {
		return err
	}
	defer shared.Close()
	st, err := shared.greylist(cfg.Filters.Greylist, cfg.DataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	// within reads an address or a network; an address stands for its
	// client network as greylisting groups it (/24, /64).
	within := func(s string) (netip.Prefix, error) {
		if p, err := netip.ParsePrefix(s); err == nil {
			return p.Masked(), nil
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, usageError{fmt.Sprintf("greylist %s: %q is not an address or a network", sub, s)}
		}
		return cfg.Filters.Greylist.Network(ip.Unmap()), nil
	}
	switch sub {
	case "list":
		var net netip.Prefix
		if len(rest) > 1 {
			return usageError{"greylist list: at most one network"}
		}
		if len(rest) == 1 {
			if net, err = within(rest[0]); err != nil {
				return err
			}
		}
		return listGreylist(ctx, st, net, limit, stdout)
	case "allow":
		if len(rest) != 1 {
			return usageError{"greylist allow: want one address or network"}
		}
		net, err := within(rest[0])
		if err != nil {
			return err
		}
		var until time.Time
		if days > 0 {
			until = time.Now().Add(time.Duration(days) * 24 * time.Hour)
		}
		if err := greylist.Allow(ctx, st, net, until); err != nil {
			return err
		}
		if until.IsZero() {
			fmt.Fprintf(stdout, "%s is no longer greylisted\n", net)
		} else {
			fmt.Fprintf(stdout, "%s is not greylisted until %s\n", net, until.Format(time.RFC3339))
		}
		return nil
	case "delete":
		if len(rest) != 1 {
			return usageError{"greylist delete: want one address or network"}
		}
		net, err := within(rest[0])
		if err != nil {
			return err
		}
		n, err := st.Delete(ctx, net)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d greylisting records within %s deleted\n", n, net)
		return nil
	}
	return usageError{fmt.Sprintf("greylist: unknown command %q (want list, allow or delete)", sub)}
}

// listGreylist prints the client networks, then the triplets, within net.
func listGreylist(ctx context.Context, st greylist.Store, net netip.Prefix, limit int, w io.Writer) error {
	clients, err := st.Clients(ctx, net, limit)
	if err != nil {
		return err
	}
	triplets, err := st.Triplets(ctx, net, limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Local().Format("2006-01-02 15:04")
	}
	fmt.Fprintln(tw, "NETWORK\tPASSES\tALLOWED\tEXPIRES")
	for _, c := range clients {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%s\n", c.Network, c.Passes, c.Allowed, stamp(c.Expires))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NETWORK\tSENDER\tRECIPIENT\tSTATE\tFIRST SEEN\tEXPIRES")
	for _, e := range triplets {
		state := "waiting (" + fmt.Sprint(e.Attempts) + " refused)"
		if e.Passed() {
			state = "passed " + stamp(e.PassedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Network, e.Sender, e.Rcpt, state, stamp(e.FirstSeen), stamp(e.Expires))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if limit > 0 && (len(clients) == limit || len(triplets) == limit) {
		fmt.Fprintf(w, "(at most %d of each kind shown: -limit 0 lists all)\n", limit)
	}
	return nil
}
