package mailstore

import (
	"context"
	"fmt"
	"time"

	"github.com/moatmail/moat/filters/address"
)

// Each user has an allow list of envelope senders: a message released
// from the user's quarantine can put its sender there
// (quarantine.allow_sender_on_release), and an admin can list and edit it
// (`moat user allowlist`). The gateway consults the list of every
// recipient: an allow-listed sender waives the score-based actions for
// that recipient, never a rule's action or the block list.

// AllowedSender is one entry of a user's allow list.
type AllowedSender struct {
	Sender string
	Added  time.Time
}

// AllowSender puts sender on the user's allow list (again: nothing
// changes).
func (s *Store) AllowSender(ctx context.Context, userID int64, sender string) error {
	sender = address.Normalize(sender)
	if !address.Valid(sender) {
		return fmt.Errorf("allow sender: %q is not a mail address", sender)
	}
	err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`INSERT INTO allowed_senders (user_id, sender, added) VALUES (?, ?, ?)
			ON CONFLICT (user_id, sender) DO NOTHING`, userID, sender, s.now().Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("allow sender %s: %w", sender, err)
	}
	return nil
}

// DisallowSender takes sender off the user's allow list and reports
// whether it was there.
func (s *Store) DisallowSender(ctx context.Context, userID int64, sender string) (bool, error) {
	sender = address.Normalize(sender)
	var removed bool
	err := s.Update(ctx, func(tx *Tx) error {
		res, err := tx.Exec(`DELETE FROM allowed_senders WHERE user_id = ? AND sender = ?`, userID, sender)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		removed = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("disallow sender %s: %w", sender, err)
	}
	return removed, nil
}

// SenderAllowed reports whether sender is on the user's allow list. The
// null sender (bounces) never is.
func (s *Store) SenderAllowed(ctx context.Context, userID int64, sender string) (bool, error) {
	sender = address.Normalize(sender)
	if sender == "" {
		return false, nil
	}
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM allowed_senders WHERE user_id = ? AND sender = ?`,
		userID, sender).Scan(&n); err != nil {
		return false, fmt.Errorf("allow list lookup: %w", err)
	}
	return n > 0, nil
}

// AllowedSenders returns the user's allow list, by sender.
func (s *Store) AllowedSenders(ctx context.Context, userID int64) ([]AllowedSender, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT sender, added FROM allowed_senders WHERE user_id = ? ORDER BY sender`, userID)
	if err != nil {
		return nil, fmt.Errorf("allow list: %w", err)
	}
	defer rows.Close()
	var out []AllowedSender
	for rows.Next() {
		var a AllowedSender
		var added int64
		if err := rows.Scan(&a.Sender, &added); err != nil {
			return nil, fmt.Errorf("allow list: %w", err)
		}
		a.Added = time.Unix(added, 0)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("allow list: %w", err)
	}
	return out, nil
}
