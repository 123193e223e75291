package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Delimiter separates the levels of a mailbox name ("Archive/2026").
const Delimiter = '/'

// Mailbox is one folder of a user.
type Mailbox struct {
	ID          int64
	UserID      int64
	Name        string
	UIDValidity uint32
	UIDNext     uint32
	// ModSeq is the highest modification sequence (RFC 7162) of the mailbox.
	ModSeq     uint64
	SpecialUse string
	Subscribed bool
}

// MailboxStatus counts the messages of a mailbox.
type MailboxStatus struct {
	Mailbox
	Messages uint32
	Unseen   uint32
	Deleted  uint32
	Size     int64
}

// CanonicalMailboxName maps any case of "INBOX" to "INBOX" (RFC 3501 §5.1:
// INBOX is case-insensitive) and trims a trailing delimiter.
func CanonicalMailboxName(name string) string {
	name = strings.TrimSuffix(name, string(Delimiter))
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX/") {
		return "INBOX" + name[5:]
	}
	return name
}

func validMailboxName(name string) error {
	if name == "" {
		return errors.New("mailbox name is empty")
	}
	if len(name) > 512 {
		return errors.New("mailbox name is too long")
	}
	for _, part := range strings.Split(name, string(Delimiter)) {
		if part == "" {
			return errors.New("mailbox name has an empty level")
		}
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f || r == '*' || r == '%' {
			return fmt.Errorf("mailbox name contains %q", r)
		}
	}
	return nil
}

const mailboxCols = "id, user_id, name, uidvalidity, uidnext, modseq, special_use, subscribed"

type scanner interface{ Scan(...any) error }

func scanMailbox(r scanner) (Mailbox, error) {
	var m Mailbox
	err := r.Scan(&m.ID, &m.UserID, &m.Name, &m.UIDValidity, &m.UIDNext, &m.ModSeq, &m.SpecialUse, &m.Subscribed)
	return m, err
}

// Mailboxes lists a user's mailboxes ordered by name.
func (s *Store) Mailboxes(ctx context.Context, userID int64) ([]Mailbox, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+mailboxCols+" FROM mailboxes WHERE user_id = ? ORDER BY name", userID)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	defer rows.Close()
	var out []Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, fmt.Errorf("list mailboxes: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Mailbox finds a user's mailbox by name; ErrNoMailbox when there is none.
func (s *Store) Mailbox(ctx context.Context, userID int64, name string) (Mailbox, error) {
	m, err := scanMailbox(s.mailboxByName.QueryRowContext(ctx, userID, CanonicalMailboxName(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("%s: %w", name, ErrNoMailbox)
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("look up mailbox: %w", err)
	}
	return m, nil
}

// Status returns a mailbox with its message counts.
func (s *Store) Status(ctx context.Context, userID int64, name string) (MailboxStatus, error) {
	m, err := s.Mailbox(ctx, userID, name)
	if err != nil {
		return MailboxStatus{}, err
	}
	st := MailboxStatus{Mailbox: m}
	// The counts are kept by triggers (counts.go): no scan.
	err = s.rdb.QueryRowContext(ctx, `SELECT msg_count, unseen_count, deleted_count, total_size
		FROM mailboxes WHERE id = ?`, m.ID).Scan(&st.Messages, &st.Unseen, &st.Deleted, &st.Size)
	if err != nil {
		return MailboxStatus{}, fmt.Errorf("mailbox status: %w", err)
	}
	return st, nil
}

// CreateMailbox creates a mailbox (and any missing parent levels, RFC 3501
// §6.3.3).
func (s *Store) CreateMailbox(ctx context.Context, userID int64, name, specialUse string) (Mailbox, error) {
	name = CanonicalMailboxName(name)
	if err := validMailboxName(name); err != nil {
		return Mailbox{}, fmt.Errorf("create mailbox: %w", err)
	}
	var m Mailbox
	err := s.Update(ctx, func(tx *Tx) error {
		parts := strings.Split(name, string(Delimiter))
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], string(Delimiter))
			if _, err := mailboxTx(tx, userID, parent); errors.Is(err, ErrNoMailbox) {
				if _, err := createMailbox(tx, s.now(), userID, parent, ""); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
		}
		var err error
		m, err = createMailbox(tx, s.now(), userID, name, specialUse)
		return err
	})
	if err != nil {
		return Mailbox{}, fmt.Errorf("create mailbox %s: %w", name, err)
	}
	return m, nil
}

func createMailbox(tx *Tx, now time.Time, userID int64, name, specialUse string) (Mailbox, error) {
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM mailboxes WHERE user_id = ? AND name = ?", userID, name).Scan(&n); err != nil {
		return Mailbox{}, err
	}
	if n > 0 {
		return Mailbox{}, ErrMailboxExists
	}
	// RFC 3501 §2.3.1.1: UIDVALIDITY must change when a name is reused for
	// a new mailbox. Seconds since the epoch, bumped past the last value
	// handed to this user (kept even when that mailbox is deleted), is
	// unique and strictly ascending.
	var validity uint32
	err := tx.QueryRow(`UPDATE users SET last_uidvalidity = max(last_uidvalidity + 1, ?) WHERE id = ?
		RETURNING last_uidvalidity`, uint32(now.Unix()), userID).Scan(&validity)
	if err != nil {
		return Mailbox{}, fmt.Errorf("allocate uidvalidity: %w", err)
	}
	res, err := tx.Exec("INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)",
		userID, name, validity, specialUse)
	if err != nil {
		return Mailbox{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Mailbox{}, err
	}
	return Mailbox{ID: id, UserID: userID, Name: name, UIDValidity: validity, UIDNext: 1, ModSeq: 1,
		SpecialUse: specialUse, Subscribed: true}, nil
}

func mailboxTx(tx *Tx, userID int64, name string) (Mailbox, error) {
	m, err := scanMailbox(tx.QueryRow("SELECT "+mailboxCols+" FROM mailboxes WHERE user_id = ? AND name = ?", userID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, ErrNoMailbox
	}
	return m, err
}

// DeleteMailbox removes a mailbox and its messages. INBOX cannot be deleted
// (RFC 3501 §6.3.4). Child mailboxes are kept.
func (s *Store) DeleteMailbox(ctx context.Context, userID int64, name string) error {
	name = CanonicalMailboxName(name)
	if name == "INBOX" {
		return errors.New("delete mailbox: INBOX cannot be deleted")
	}
	return s.Update(ctx, func(tx *Tx) error {
		m, err := mailboxTx(tx, userID, name)
		if err != nil {
			return fmt.Errorf("delete mailbox %s: %w", name, err)
		}
		blobs, err := blobsOf(tx, "SELECT DISTINCT blob_id FROM messages WHERE mailbox_id = ?", m.ID)
		if err != nil {
			return fmt.Errorf("delete mailbox: %w", err)
		}
		if _, err := tx.Exec("DELETE FROM mailboxes WHERE id = ?", m.ID); err != nil {
			return fmt.Errorf("delete mailbox: %w", err)
		}
		tx.Touch(m.ID)
		return dropUnreferenced(tx, blobs)
	})
}

// RenameMailbox renames a mailbox and its children (RFC 3501 §6.3.5). The
// renamed mailboxes keep their UIDVALIDITY. Renaming INBOX is refused.
func (s *Store) RenameMailbox(ctx context.Context, userID int64, oldName, newName string) error {
	oldName, newName = CanonicalMailboxName(oldName), CanonicalMailboxName(newName)
	if oldName == "INBOX" {
		return errors.New("rename mailbox: renaming INBOX is not supported")
	}
	if err := validMailboxName(newName); err != nil {
		return fmt.Errorf("rename mailbox: %w", err)
	}
	return s.Update(ctx, func(tx *Tx) error {
		if _, err := mailboxTx(tx, userID, oldName); err != nil {
			return fmt.Errorf("rename mailbox %s: %w", oldName, err)
		}
		if _, err := mailboxTx(tx, userID, newName); err == nil {
			return fmt.Errorf("rename mailbox to %s: %w", newName, ErrMailboxExists)
		}
		prefix := oldName + string(Delimiter)
		_, err := tx.Exec(`UPDATE mailboxes SET name = ? || substr(name, ?) WHERE user_id = ? AND (name = ? OR substr(name, 1, ?) = ?)`,
			newName, len(oldName)+1, userID, oldName, len(prefix), prefix)
		if err != nil {
			return fmt.Errorf("rename mailbox: %w", err)
		}
		return nil
	})
}

// SetSubscribed marks a mailbox as subscribed or not (RFC 3501 §6.3.6).
func (s *Store) SetSubscribed(ctx context.Context, userID int64, name string, subscribed bool) error {
	return s.Update(ctx, func(tx *Tx) error {
		res, err := tx.Exec("UPDATE mailboxes SET subscribed = ? WHERE user_id = ? AND name = ?",
			subscribed, userID, CanonicalMailboxName(name))
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("subscribe %s: %w", name, ErrNoMailbox)
		}
		return nil
	})
}
