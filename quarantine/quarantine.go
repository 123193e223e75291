// Package quarantine keeps suspect mail out of users' inboxes without losing
// it. A quarantined message is stored once, with the verdict that put it
// there, and appears in the "Quarantine" IMAP folder of each recipient.
// Release moves it into the recipients' INBOX through the mailbox store
// (delivery/mailstore), whose API is all it uses of the store's tables.
//
// Recipients without a mailbox here (those of relay domains, whose mail
// moat sends on to the organisation's servers) are held too: their copy
// sits in the Quarantine folder of a holder, an admin user whose folder is
// the shared view of such mail, and release sends it on through the
// outbound queue (delivery/queue) instead of into an INBOX.
package quarantine

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/delivery/queue"
	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/address"
)

// ErrNotFound is returned for an unknown quarantine id.
var ErrNotFound = errors.New("no such quarantined message")

// Config configures the quarantine.
type Config struct {
	// ExpireAfter is how long a quarantined message is kept before it is
	// deleted (default 720h, 30 days).
	ExpireAfter time.Duration `toml:"expire_after"`
	// Digest turns the quarantine digest on or off (default on): every
	// DigestInterval, each user with newly quarantined mail gets a summary
	// of it in their INBOX.
	Digest *bool `toml:"digest"`
	// DigestInterval is the time between digests (default 24h).
	DigestInterval time.Duration `toml:"digest_interval"`
	// AllowSenderOnRelease puts the envelope sender of a message a user
	// releases from their Quarantine folder on that user's allow list
	// (mailstore.Store.AllowSender): their later mail from it is not
	// tagged, quarantined or rejected on score when the checks
	// authenticate it (rules.Pipeline.Decide: SPF, or DKIM or DMARC
	// aligned with its domain), so a forged address gains nothing. Off
	// by default, since it changes what users' moves do.
	AllowSenderOnRelease bool `toml:"allow_sender_on_release"`
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.ExpireAfter == 0 {
		c.ExpireAfter = 30 * 24 * time.Hour
	}
	if c.ExpireAfter < time.Hour {
		return fmt.Errorf("expire_after: %v is below 1h", c.ExpireAfter)
	}
	if c.Digest == nil {
		on := true
		c.Digest = &on
	}
	if c.DigestInterval == 0 {
		c.DigestInterval = 24 * time.Hour
	}
	if c.DigestInterval < time.Hour {
		return fmt.Errorf("digest_interval: %v is below 1h", c.DigestInterval)
	}
	return nil
}

// Record is what the gateway knows of a message it quarantines.
type Record struct {
	QueueID    string
	Sender     string
	Recipients []string
	Subject    string
	ClientIP   string
	Score      float64
	Action     string
	Symbols    []filters.Symbol
	Reasons    []string
	// Onward are the recipients without a mailbox here (relay domains,
	// or a submitted message's remote recipients): release sends the
	// message on to them through the outbound queue.
	Onward []string
	// Holder is the user whose Quarantine folder holds the copy for the
	// Onward recipients (an admin: the shared view of held relay mail),
	// or 0 when none does or when the holder is a recipient of the
	// message too (then their copy is theirs, and release moves it to
	// their INBOX as any recipient's).
	Holder int64
}

// Entry is a quarantined message as listed.
type Entry struct {
	ID      int64
	Created time.Time
	Record
	// Size is the stored size in bytes.
	Size int64
	// BlobID identifies the stored content.
	BlobID int64
}

// Quarantine is the durable quarantine on top of the mailbox store.
type Quarantine struct {
	cfg    Config
	store  *mailstore.Store
	now    func() time.Time
	onward queue.Enqueuer // nil: no outbound queue (SetOnward)
}

// schema is the quarantine's table in the store's index: one row per
// quarantined message (not per recipient), the verdict that put it there.
// Its blob_id references the store's blobs, so that the store keeps the
// content while the record lasts. Until the index kept a version per
// schema, the store's own schema created this table: the first step
// leaves such a table, and its rows, as they are.
var schema = mailstore.Schema{
	Name: "quarantine",
	Migrations: [][]string{{
		`CREATE TABLE IF NOT EXISTS quarantine (
			id INTEGER PRIMARY KEY,
			blob_id INTEGER NOT NULL REFERENCES blobs(id),
			queue_id TEXT NOT NULL,
			created INTEGER NOT NULL,
			sender TEXT NOT NULL,
			recipients TEXT NOT NULL,
			subject TEXT NOT NULL,
			score REAL NOT NULL,
			action TEXT NOT NULL,
			symbols TEXT NOT NULL,
			reasons TEXT NOT NULL,
			client_ip TEXT NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS quarantine_blob ON quarantine (blob_id)`,
		`CREATE INDEX IF NOT EXISTS quarantine_created ON quarantine (created)`,
	}, {
		// Recipients sent on at release, and whose folder holds them.
		`ALTER TABLE quarantine ADD COLUMN onward TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE quarantine ADD COLUMN holder INTEGER NOT NULL DEFAULT 0`,
	}},
}

// migrateTimeout bounds New's wait for the store to bring the schema up
// to date (another process may hold the index's write lock meanwhile).
const migrateTimeout = time.Minute

// New returns the quarantine kept in store, first bringing its table in
// the store's index up to date, so that no caller has to remember to.
func New(cfg Config, store *mailstore.Store) (*Quarantine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("quarantine config: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), migrateTimeout)
	defer cancel()
	if err := store.Migrate(ctx, schema); err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	return &Quarantine{cfg: cfg, store: store, now: time.Now}, nil
}

// SetOnward gives the quarantine the outbound queue that release sends
// Onward recipients' mail through. Without it, releasing such a message
// fails and leaves it held.
func (q *Quarantine) SetOnward(e queue.Enqueuer) { q.onward = e }

// Put stores a message in the Quarantine folder of each recipient user and
// records the verdict, in one durable transaction.
func (q *Quarantine) Put(ctx context.Context, header, body []byte, rec Record, users []int64) (Entry, error) {
	targets := make([]mailstore.Target, len(users))
	for i, u := range users {
		targets[i] = mailstore.Target{UserID: u, Mailbox: mailstore.QuarantineMailbox}
	}
	e := Entry{Created: q.now().Truncate(time.Second), Record: rec, Size: int64(len(header) + len(body))}
	symbols, err := json.Marshal(rec.Symbols)
	if err != nil {
		return Entry{}, fmt.Errorf("quarantine: %w", err)
	}
	reasons, err := json.Marshal(rec.Reasons)
	if err != nil {
		return Entry{}, fmt.Errorf("quarantine: %w", err)
	}
	_, err = q.store.Deliver(ctx, &mailstore.Delivery{
		Header:       header,
		Body:         body,
		Targets:      targets,
		InternalDate: e.Created,
		Record: func(tx *mailstore.Tx, blobID int64, _ []mailstore.Placed) error {
			e.BlobID = blobID
			res, err := tx.Exec(`INSERT INTO quarantine (blob_id, queue_id, created, sender, recipients, subject,
				score, action, symbols, reasons, client_ip, onward, holder) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				blobID, rec.QueueID, e.Created.Unix(), rec.Sender, strings.Join(rec.Recipients, " "), rec.Subject,
				rec.Score, rec.Action, string(symbols), string(reasons), rec.ClientIP, strings.Join(rec.Onward, " "), rec.Holder)
			if err != nil {
				return fmt.Errorf("record verdict: %w", err)
			}
			e.ID, err = res.LastInsertId()
			return err
		},
	})
	if err != nil {
		return Entry{}, fmt.Errorf("quarantine: %w", err)
	}
	return e, nil
}

const entryCols = `id, created, queue_id, sender, recipients, subject, client_ip, score, action,
	symbols, reasons, blob_id, onward, holder`

// scanEntry reads a record; its Size comes from the store (sized).
func scanEntry(r interface{ Scan(...any) error }) (Entry, error) {
	var e Entry
	var created int64
	var rcpts, symbols, reasons, onward string
	err := r.Scan(&e.ID, &created, &e.QueueID, &e.Sender, &rcpts, &e.Subject, &e.ClientIP, &e.Score, &e.Action,
		&symbols, &reasons, &e.BlobID, &onward, &e.Holder)
	if err != nil {
		return Entry{}, err
	}
	e.Created = time.Unix(created, 0)
	e.Recipients = strings.Fields(rcpts)
	e.Onward = strings.Fields(onward)
	if err := json.Unmarshal([]byte(symbols), &e.Symbols); err != nil {
		return Entry{}, fmt.Errorf("entry %d symbols: %w", e.ID, err)
	}
	if err := json.Unmarshal([]byte(reasons), &e.Reasons); err != nil {
		return Entry{}, fmt.Errorf("entry %d reasons: %w", e.ID, err)
	}
	return e, nil
}

// List returns the quarantined messages, newest first. When recipient is
// not empty, only those addressed to that recipient.
func (q *Quarantine) List(ctx context.Context, recipient string) ([]Entry, error) {
	query := "SELECT " + entryCols + " FROM quarantine"
	var args []any
	if recipient != "" {
		query += " WHERE instr(' '||recipients||' ', ?) > 0"
		args = append(args, " "+address.Normalize(recipient)+" ")
	}
	rows, err := q.store.DB().QueryContext(ctx, query+" ORDER BY created DESC, id DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("list quarantine: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	out, _, err = q.sized(ctx, out)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return out, nil
}

// sized fills the Size of each entry from its blob and returns the blobs.
// An entry whose blob is gone (deleted since the record was read) is left
// out, as it is gone too.
func (q *Quarantine) sized(ctx context.Context, entries []Entry) ([]Entry, map[int64]mailstore.Blob, error) {
	ids := make([]int64, len(entries))
	for i, e := range entries {
		ids[i] = e.BlobID
	}
	blobs, err := q.store.Blobs(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	out := entries[:0]
	for _, e := range entries {
		if b, ok := blobs[e.BlobID]; ok {
			e.Size = b.Size
			out = append(out, e)
		}
	}
	return out, blobs, nil
}

// Get returns one entry and its stored content.
func (q *Quarantine) Get(ctx context.Context, id int64) (Entry, []byte, error) {
	e, err := scanEntry(q.store.DB().QueryRowContext(ctx, "SELECT "+entryCols+" FROM quarantine WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, nil, fmt.Errorf("quarantine %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Entry{}, nil, fmt.Errorf("quarantine %d: %w", id, err)
	}
	found, blobs, err := q.sized(ctx, []Entry{e})
	if err != nil {
		return Entry{}, nil, fmt.Errorf("quarantine %d: %w", id, err)
	}
	if len(found) == 0 {
		return Entry{}, nil, fmt.Errorf("quarantine %d: %w", id, ErrNotFound)
	}
	e = found[0]
	data, err := q.store.ReadMessage(mailstore.Message{BlobID: e.BlobID, BlobKey: blobs[e.BlobID].Key})
	if err != nil {
		return Entry{}, nil, fmt.Errorf("quarantine %d: %w", id, err)
	}
	return e, data, nil
}

// placements lists the messages of a quarantined blob that are still in
// their owners' Quarantine folders: their UIDs by mailbox, and the owner
// of each mailbox.
func placements(tx *mailstore.Tx, blobID int64) (map[int64][]uint32, map[int64]int64, error) {
	held, err := tx.Placements(mailstore.QuarantineMailbox, []int64{blobID})
	if err != nil {
		return nil, nil, err
	}
	uids := make(map[int64][]uint32)
	owner := make(map[int64]int64)
	for _, p := range held {
		uids[p.MailboxID] = append(uids[p.MailboxID], p.UID)
		owner[p.MailboxID] = p.UserID
	}
	return uids, owner, nil
}

// senderOf returns the envelope sender of the quarantined message held in
// blob blobID ("" when its record is gone).
func (q *Quarantine) senderOf(ctx context.Context, blobID int64) (string, error) {
	var sender string
	err := q.store.DB().QueryRowContext(ctx, `SELECT sender FROM quarantine WHERE blob_id = ? LIMIT 1`, blobID).Scan(&sender)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return sender, err
}

// Release moves a quarantined message from each recipient's Quarantine
// folder to their INBOX, sends it on to its Onward recipients through the
// outbound queue (the holder's copy goes), and forgets the verdict. It
// returns how many recipients received it: mailboxes and Onward
// recipients.
//
// The message is queued (durably) before the quarantine lets it go, so
// that a fault between the two leaves it held rather than lost: releasing
// it again may then send it twice, SMTP's at-least-once.
func (q *Quarantine) Release(ctx context.Context, id int64) (int, error) {
	e, data, err := q.Get(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("release %d: %w", id, err)
	}
	if len(e.Onward) > 0 {
		if q.onward == nil {
			return 0, fmt.Errorf("release %d: %d recipient(s) are sent on through the outbound queue, which is not running", id, len(e.Onward))
		}
		if _, err := q.onward.Enqueue(ctx, &queue.Message{From: e.Sender, Rcpts: e.Onward, Body: data, Origin: "release"}); err != nil {
			return 0, fmt.Errorf("release %d: queue: %w", id, err)
		}
	}
	n := 0
	err = q.store.Update(ctx, func(tx *mailstore.Tx) error {
		n = len(e.Onward)
		blobID, err := q.take(tx, id)
		if err != nil {
			return err
		}
		uids, owner, err := placements(tx, blobID)
		if err != nil {
			return err
		}
		for mb, list := range uids {
			if e.Holder != 0 && owner[mb] == e.Holder {
				// The holder's copy was for the Onward recipients,
				// who have it now.
				if err := tx.RemoveMessages(mb, list); err != nil {
					return err
				}
				continue
			}
			inbox, err := tx.EnsureMailbox(owner[mb], "INBOX")
			if err != nil {
				return err
			}
			res, err := tx.MoveMessages(mb, list, inbox.ID)
			if err != nil {
				return err
			}
			n += len(res.DestUIDs)
		}
		return tx.DropBlobIfUnreferenced(blobID)
	})
	if err != nil {
		return 0, fmt.Errorf("release %d: %w", id, err)
	}
	return n, nil
}

// Delete removes a quarantined message from every Quarantine folder and
// forgets it.
func (q *Quarantine) Delete(ctx context.Context, id int64) error {
	err := q.store.Update(ctx, func(tx *mailstore.Tx) error {
		return q.deleteTx(tx, id)
	})
	if err != nil {
		return fmt.Errorf("delete %d: %w", id, err)
	}
	return nil
}

func (q *Quarantine) deleteTx(tx *mailstore.Tx, id int64) error {
	blobID, err := q.take(tx, id)
	if err != nil {
		return err
	}
	uids, _, err := placements(tx, blobID)
	if err != nil {
		return err
	}
	for mb, list := range uids {
		if err := tx.RemoveMessages(mb, list); err != nil {
			return err
		}
	}
	return tx.DropBlobIfUnreferenced(blobID)
}

// take deletes the verdict row and returns its blob.
func (q *Quarantine) take(tx *mailstore.Tx, id int64) (int64, error) {
	var blobID int64
	err := tx.QueryRow("DELETE FROM quarantine WHERE id = ? RETURNING blob_id", id).Scan(&blobID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return blobID, err
}

// Expire deletes the messages quarantined longer than ExpireAfter ago and
// returns how many went.
func (q *Quarantine) Expire(ctx context.Context) (int, error) {
	cutoff := q.now().Add(-q.cfg.ExpireAfter).Unix()
	rows, err := q.store.DB().QueryContext(ctx, "SELECT id FROM quarantine WHERE created < ?", cutoff)
	if err != nil {
		return 0, fmt.Errorf("expire: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("expire: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	n := 0
	for _, id := range ids {
		err := q.Delete(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // released or deleted meanwhile
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// forgetBlob deletes the verdict records of a blob that no Quarantine
// folder holds any more (every recipient released or deleted it).
func (q *Quarantine) forgetBlob(ctx context.Context, blobID int64) error {
	return q.store.Update(ctx, func(tx *mailstore.Tx) error {
		if _, err := forgetUnheld(tx, []int64{blobID}); err != nil {
			return fmt.Errorf("forget quarantined message: %w", err)
		}
		return tx.DropBlobIfUnreferenced(blobID)
	})
}

// forgetUnheld deletes the verdict records of those of blobIDs that no
// Quarantine folder holds, and returns their blobs, one per record
// deleted.
func forgetUnheld(tx *mailstore.Tx, blobIDs []int64) ([]int64, error) {
	held, err := tx.Placements(mailstore.QuarantineMailbox, blobIDs)
	if err != nil {
		return nil, err
	}
	kept := make(map[int64]bool, len(held))
	for _, p := range held {
		kept[p.BlobID] = true
	}
	var gone []int64
	for _, id := range blobIDs {
		if kept[id] {
			continue
		}
		res, err := tx.Exec("DELETE FROM quarantine WHERE blob_id = ?", id)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		for range n {
			gone = append(gone, id)
		}
	}
	return gone, nil
}

// Tidy deletes the verdict records of messages that users removed from
// their Quarantine folders, and returns how many went.
func (q *Quarantine) Tidy(ctx context.Context) (int, error) {
	n := 0
	err := q.store.Update(ctx, func(tx *mailstore.Tx) error {
		n = 0
		rows, err := tx.Query("SELECT DISTINCT blob_id FROM quarantine")
		if err != nil {
			return fmt.Errorf("tidy quarantine: %w", err)
		}
		var all []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("tidy quarantine: %w", err)
			}
			all = append(all, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("tidy quarantine: %w", err)
		}
		gone, err := forgetUnheld(tx, all)
		if err != nil {
			return fmt.Errorf("tidy quarantine: %w", err)
		}
		for _, id := range gone {
			if err := tx.DropBlobIfUnreferenced(id); err != nil {
				return err
			}
		}
		n = len(gone)
		return nil
	})
	return n, err
}

// Stats returns how many messages the quarantine holds and when the
// oldest of them came (zero when it is empty), for the metrics.
func (q *Quarantine) Stats(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	err := q.store.DB().QueryRowContext(ctx, "SELECT count(*), min(created) FROM quarantine").Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("quarantine stats: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, time.Unix(oldest.Int64, 0), nil
}
