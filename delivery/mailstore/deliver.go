package mailstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Target is one place a delivered message goes: a user's mailbox.
type Target struct {
	UserID  int64
	Mailbox string
}

// Placed says where a message landed.
type Placed struct {
	Target
	MailboxID int64
	UID       uint32
}

// Delivery is one message to store in one or more mailboxes. The content is
// written once and shared by every target.
type Delivery struct {
	// Header is prepended to Body (trace and X-Spam- fields added by the
	// gateway); either may be empty.
	Header []byte
	Body   []byte
	// Targets lists the mailboxes; a missing target mailbox is created
	// (a user may have deleted their Quarantine folder).
	Targets []Target
	// Flags are set on every copy; InternalDate defaults to now.
	Flags        []string
	InternalDate time.Time
	// Record, when set, runs inside the delivery transaction with the blob
	// id and the placements, so that a caller can keep its own record
	// (the quarantine's verdict) atomically with the delivery.
	Record func(tx *Tx, blobID int64, placed []Placed) error
}

// Deliver stores a message. When it returns nil the message (inline in the
// index, or a file with its directory entry) and the index rows are all on
// stable storage.
func (s *Store) Deliver(ctx context.Context, d *Delivery) ([]Placed, error) {
	if len(d.Targets) == 0 {
		return nil, errors.New("deliver: no targets")
	}
	c, err := s.putContent(d.Header, d.Body)
	if err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	date := d.InternalDate
	if date.IsZero() {
		date = s.now()
	}
	date = date.Truncate(time.Second)
	flags := joinFlags(d.Flags)
	var placed []Placed
	err = s.Update(ctx, func(tx *Tx) error {
		placed = placed[:0]
		blobID, err := insertBlob(tx, c, s.now())
		if err != nil {
			return err
		}
		for _, t := range d.Targets {
			mb, err := mailboxTx(tx, t.UserID, CanonicalMailboxName(t.Mailbox))
			if errors.Is(err, ErrNoMailbox) {
				mb, err = createMailbox(tx, s.now(), t.UserID, CanonicalMailboxName(t.Mailbox), "")
			}
			if err != nil {
				return fmt.Errorf("mailbox %s of user %d: %w", t.Mailbox, t.UserID, err)
			}
			uid, err := insertMessage(tx, mb.ID, blobID, flags, date, c.size)
			if err != nil {
				return err
			}
			placed = append(placed, Placed{Target: t, MailboxID: mb.ID, UID: uid})
		}
		if d.Record != nil {
			return d.Record(tx, blobID, placed)
		}
		return nil
	})
	if err != nil {
		s.discard(c)
		return nil, fmt.Errorf("deliver: %w", err)
	}
	return placed, nil
}
