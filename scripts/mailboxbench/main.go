// Command mailboxbench measures what a large mailbox costs an IMAP server:
// SELECT, FETCH of the last 10 messages, SEARCH SUBJECT, SEARCH BODY and
// the memory of each additional connection with the mailbox selected. The
// same client measures moat and Dovecot (scripts/mailboxbench.sh sets both
// up and fills them with the same Maildir).
//
//	mailboxbench fill -data DIR -user ADDR -password P MAILDIR
//	mailboxbench measure -target 127.0.0.1:1143 -user ADDR -password P -server-pid PID [-proc-name imap]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/moatmail/moat/delivery/mailstore"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mailboxbench fill|measure [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "fill":
		err = fill(os.Args[2:])
	case "measure":
		err = measure(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailboxbench:", err)
		os.Exit(1)
	}
}

// fill appends every message of a Maildir (cur/ and new/, in name order)
// to the user's INBOX through the store API, from several goroutines so
// that group commit batches them (moat import does one message per
// commit). UIDs follow the name order only roughly.
func fill(args []string) error {
	fs := flag.NewFlagSet("fill", flag.ExitOnError)
	data := fs.String("data", "", "moat data_dir")
	user := fs.String("user", "user@example.test", "address")
	password := fs.String("password", "bench-password", "password")
	fs.Parse(args)
	if fs.NArg() != 1 || *data == "" {
		return fmt.Errorf("fill: want -data DIR MAILDIR")
	}
	st, err := mailstore.Open(mailstore.Config{Dir: *data})
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	u, err := st.LookupUser(ctx, *user)
	if err != nil {
		if u, err = st.AddUser(ctx, *user, *password, mailstore.RoleUser); err != nil {
			return err
		}
	}
	mb, err := st.Mailbox(ctx, u.ID, "INBOX")
	if err != nil {
		return err
	}
	var files []string
	for _, sub := range []string{"cur", "new"} {
		m, _ := filepath.Glob(filepath.Join(fs.Arg(0), sub, "*"))
		files = append(files, m...)
	}
	sort.Strings(files)
	start := time.Now()
	jobs := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				b, err := os.ReadFile(f)
				if err == nil {
					_, err = st.Append(ctx, mb.ID, crlf(b), nil, time.Time{})
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	for _, f := range files {
		jobs <- f
	}
	close(jobs)
	wg.Wait()
	fmt.Fprintf(os.Stderr, "filled %d messages in %.1f s\n", len(files), time.Since(start).Seconds())
	return firstErr
}

func crlf(b []byte) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", "\r\n"))
}

type result struct {
	Label           string  `json:"label"`
	Messages        uint32  `json:"messages"`
	SelectFirstMs   float64 `json:"select_first_ms"`
	SelectMs        float64 `json:"select_ms"`
	FetchLast10Ms   float64 `json:"fetch_last10_ms"`
	SearchSubjFirst float64 `json:"search_subject_first_ms"`
	SearchSubjMs    float64 `json:"search_subject_ms"`
	SearchBodyMs    float64 `json:"search_body_ms"`
	RSSPerConnKiB   float64 `json:"rss_per_conn_kib"`
	PSSPerConnKiB   float64 `json:"pss_per_conn_kib"`
}

func measure(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	target := fs.String("target", "127.0.0.1:1143", "IMAP server")
	user := fs.String("user", "user@example.test", "address")
	password := fs.String("password", "bench-password", "password")
	label := fs.String("label", "server", "label of the figures")
	runs := fs.Int("runs", 10, "timed repetitions (medians)")
	bodyRuns := fs.Int("body-runs", 3, "repetitions of SEARCH BODY (0: skip it)")
	conns := fs.Int("conns", 20, "additional connections for the memory figure")
	pid := fs.Int("server-pid", 0, "server pid: its process tree's RSS is summed")
	procName := fs.String("proc-name", "", "count only processes with this name")
	fs.Parse(args)

	login := func() (*imapclient.Client, error) {
		c, err := imapclient.DialInsecure(*target, nil)
		if err != nil {
			return nil, err
		}
		if err := c.Login(*user, *password).Wait(); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	c, err := login()
	if err != nil {
		return err
	}
	defer c.Close()
	res := result{Label: *label}
	var sel *imap.SelectData
	res.SelectFirstMs = timed(func() error { sel, err = c.Select("INBOX", nil).Wait(); return err })
	if err != nil {
		return err
	}
	n := sel.NumMessages
	res.Messages = n
	res.SelectMs = median(*runs, func() error { _, err := c.Select("INBOX", nil).Wait(); return err })

	last := imap.SeqSet{{Start: max(1, n-9), Stop: n}}
	res.FetchLast10Ms = median(*runs, func() error {
		cmd := c.Fetch(last, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if bs, ok := item.(imapclient.FetchItemDataBodySection); ok {
					io.Copy(io.Discard, bs.Literal)
				}
			}
		}
		return cmd.Close()
	})

	// mail_fetch.py gen: "Subject: <words> #<n>", body "Message <n> of <count>, ...".
	subject := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "#" + strconv.Itoa(int(n)/2) + "9"}}}
	search := func(cr *imap.SearchCriteria) func() error {
		return func() error { _, err := c.UIDSearch(cr, nil).Wait(); return err }
	}
	res.SearchSubjFirst = timed(search(subject))
	res.SearchSubjMs = median(*runs, search(subject))
	if *bodyRuns > 0 {
		body := &imap.SearchCriteria{Body: []string{fmt.Sprintf("Message %d of", n/3)}}
		res.SearchBodyMs = median(*bodyRuns, search(body))
	}

	if *pid != 0 && *conns > 0 {
		time.Sleep(time.Second)
		r0, p0 := memOf(*pid, *procName)
		var extra []*imapclient.Client
		for i := 0; i < *conns; i++ {
			x, err := login()
			if err != nil {
				return err
			}
			extra = append(extra, x)
			if _, err := x.Select("INBOX", nil).Wait(); err != nil {
				return err
			}
		}
		time.Sleep(2 * time.Second)
		r1, p1 := memOf(*pid, *procName)
		res.RSSPerConnKiB = float64(r1-r0) / float64(*conns)
		res.PSSPerConnKiB = float64(p1-p0) / float64(*conns)
		for _, x := range extra {
			x.Logout().Wait()
			x.Close()
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func timed(fn func() error) float64 {
	t := time.Now()
	if err := fn(); err != nil {
		fmt.Fprintln(os.Stderr, "mailboxbench:", err)
		os.Exit(1)
	}
	return float64(time.Since(t).Microseconds()) / 1000
}

func median(runs int, fn func() error) float64 {
	v := make([]float64, runs)
	for i := range v {
		v[i] = timed(fn)
	}
	sort.Float64s(v)
	return v[runs/2]
}

// memOf sums the RSS and PSS (KiB) of a process tree, optionally only of
// processes with a given name (Dovecot's imap processes).
func memOf(root int, name string) (rss, pss int64) {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	todo := []int{root}
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		for c, pp := range parent {
			if pp == p {
				todo = append(todo, c)
			}
		}
		if name != "" {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
			if strings.TrimSpace(string(b)) != name {
				continue
			}
		}
		rss += field(fmt.Sprintf("/proc/%d/status", p), "VmRSS:")
		pss += field(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss:")
	}
	return rss, pss
}

func field(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}
