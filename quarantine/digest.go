package quarantine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/filters/address"
)

// digestKey is where the time of the last digest run is kept.
const digestKey = "quarantine.digest.last"

type digestLine struct {
	when    time.Time
	sender  string
	subject string
	score   float64
	reasons []string
}

// SendDigests delivers to each user who has messages quarantined since the
// last run (or the last interval) a summary in their INBOX: sender,
// subject, score and reasons of each, and how to release one (move it out
// of the Quarantine folder). from is the digest's sender address. It
// returns how many digests were delivered. A run less than interval after
// the previous one does nothing.
func (q *Quarantine) SendDigests(ctx context.Context, from string, interval time.Duration) (int, error) {
	now := q.now()
	since := now.Add(-interval)
	last, ok, err := q.store.State(ctx, digestKey)
	if err == nil && ok {
		if t, perr := strconv.ParseInt(last, 10, 64); perr == nil {
			prev := time.Unix(t, 0)
			if now.Sub(prev) < interval {
				return 0, nil
			}
			since = prev
		}
	}
	users, err := q.digestLines(ctx, since, now)
	if err != nil {
		return 0, fmt.Errorf("digest: %w", err)
	}
	n := 0
	for _, u := range users {
		msg := digestMessage(from, u.addr, now, u.lines)
		if _, err := q.store.Deliver(ctx, &mailstore.Delivery{Body: msg,
			Targets: []mailstore.Target{{UserID: u.id, Mailbox: "INBOX"}}}); err != nil {
			return n, fmt.Errorf("digest for %s: %w", u.addr, err)
		}
		n++
	}
	err = q.store.Update(ctx, func(tx *mailstore.Tx) error {
		return tx.SetState(digestKey, strconv.FormatInt(now.Unix(), 10))
	})
	if err != nil {
		return n, fmt.Errorf("digest: %w", err)
	}
	return n, nil
}

// userDigest is what one user's digest lists.
type userDigest struct {
	id    int64
	addr  string
	lines []digestLine
}

// digestLines returns, by user in the order of their ids, the messages
// quarantined in [since, until) that are still in the user's Quarantine
// folder: a line for each message each time a user holds it
// (digestMessage puts them in time order).
func (q *Quarantine) digestLines(ctx context.Context, since, until time.Time) ([]*userDigest, error) {
	rows, err := q.store.DB().QueryContext(ctx, `SELECT blob_id, created, sender, subject, score, reasons
		FROM quarantine WHERE created >= ? AND created < ? ORDER BY created, id`, since.Unix(), until.Unix())
	if err != nil {
		return nil, err
	}
	var blobs []int64
	records := map[int64][]digestLine{} // by blob
	for rows.Next() {
		var blob, created int64
		var reasons string
		var l digestLine
		if err := rows.Scan(&blob, &created, &l.sender, &l.subject, &l.score, &reasons); err != nil {
			rows.Close()
			return nil, err
		}
		l.when = time.Unix(created, 0)
		l.reasons = decodeReasons(reasons)
		if records[blob] == nil {
			blobs = append(blobs, blob)
		}
		records[blob] = append(records[blob], l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	held, err := q.store.Placements(ctx, mailstore.QuarantineMailbox, blobs)
	if err != nil {
		return nil, err
	}
	var users []*userDigest // held is ordered by user
	for _, p := range held {
		if len(users) == 0 || users[len(users)-1].id != p.UserID {
			users = append(users, &userDigest{id: p.UserID, addr: p.Address})
		}
		u := users[len(users)-1]
		u.lines = append(u.lines, records[p.BlobID]...)
	}
	return users, nil
}

// digestMessage writes the summary as a text/plain UTF-8 message marked
// auto-generated (RFC 3834 §5), so that vacation responders leave it be.
func digestMessage(from, to string, now time.Time, lines []digestLine) []byte {
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].when.Before(lines[j].when) })
	var b bytes.Buffer
	id := make([]byte, 12)
	rand.Read(id)
	subject := fmt.Sprintf("Quarantine: %d new message(s) held for you", len(lines))
	fmt.Fprintf(&b, "From: moat quarantine <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\n", from, to,
		mime.QEncoding.Encode("utf-8", subject), now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.digest@%s>\r\n", hex.EncodeToString(id), domainOf(from))
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "These messages were held in your Quarantine folder. To receive one,\r\n")
	fmt.Fprintf(&b, "move it from Quarantine to your INBOX with your mail program; to report\r\n")
	fmt.Fprintf(&b, "it as spam, move it to Junk or delete it. Held mail is deleted after a while.\r\n\r\n")
	for _, l := range lines {
		sender := l.sender
		if sender == "" {
			sender = "<>"
		}
		fmt.Fprintf(&b, "%s  score %.1f\r\n  From:    %s\r\n  Subject: %s\r\n", l.when.UTC().Format("2006-01-02 15:04 MST"), l.score,
			oneLine(sender), oneLine(l.subject))
		for _, r := range l.reasons {
			fmt.Fprintf(&b, "  Why:     %s\r\n", oneLine(r))
		}
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// oneLine keeps a header-derived text on one line of reasonable length.
func oneLine(s string) string {
	if dec, err := (&mime.WordDecoder{}).DecodeHeader(s); err == nil {
		s = dec
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func domainOf(addr string) string {
	if _, domain, ok := address.Split(addr); ok {
		return domain
	}
	return "localhost"
}

// decodeReasons reads the stored reasons; a record it cannot read gives
// none rather than failing the digest.
func decodeReasons(s string) []string {
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil
	}
	return out
}
