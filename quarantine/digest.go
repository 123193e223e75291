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
	var last string
	err := q.store.DB().QueryRowContext(ctx, "SELECT value FROM state WHERE key = ?", digestKey).Scan(&last)
	if err == nil {
		if t, perr := strconv.ParseInt(last, 10, 64); perr == nil {
			prev := time.Unix(t, 0)
			if now.Sub(prev) < interval {
				return 0, nil
			}
			since = prev
		}
	}
	rows, err := q.store.DB().QueryContext(ctx, `SELECT mb.user_id, u.address, q.created, q.sender, q.subject, q.score, q.reasons
		FROM quarantine q
		JOIN messages m ON m.blob_id = q.blob_id
		JOIN mailboxes mb ON mb.id = m.mailbox_id AND mb.name = ?
		JOIN users u ON u.id = mb.user_id
		WHERE q.created >= ? AND q.created < ?
		ORDER BY mb.user_id, q.created`, mailstore.QuarantineMailbox, since.Unix(), now.Unix())
	if err != nil {
		return 0, fmt.Errorf("digest: %w", err)
	}
	type userDigest struct {
		id    int64
		addr  string
		lines []digestLine
	}
	var users []*userDigest
	byID := map[int64]*userDigest{}
	for rows.Next() {
		var id, created int64
		var addr, reasons string
		var l digestLine
		if err := rows.Scan(&id, &addr, &created, &l.sender, &l.subject, &l.score, &reasons); err != nil {
			rows.Close()
			return 0, fmt.Errorf("digest: %w", err)
		}
		l.when = time.Unix(created, 0)
		l.reasons = decodeReasons(reasons)
		u := byID[id]
		if u == nil {
			u = &userDigest{id: id, addr: addr}
			byID[id] = u
			users = append(users, u)
		}
		u.lines = append(u.lines, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
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
		_, err := tx.Exec("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
			digestKey, strconv.FormatInt(now.Unix(), 10))
		return err
	})
	if err != nil {
		return n, fmt.Errorf("digest: %w", err)
	}
	return n, nil
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
