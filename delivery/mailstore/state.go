package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The store keeps small named values that must survive restarts, for any
// package (the time of the last quarantine digest). A key starts with the
// name of the package that keeps it ("quarantine.digest.last").

// State returns the value kept under key; ok is false when there is none.
func (s *Store) State(ctx context.Context, key string) (value string, ok bool, err error) {
	err = s.rdb.QueryRowContext(ctx, "SELECT value FROM state WHERE key = ?", key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read state %s: %w", key, err)
	}
	return value, true, nil
}

// SetState keeps value under key, in place of any earlier one.
func (tx *Tx) SetState(key, value string) error {
	_, err := tx.Exec("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
		key, value)
	if err != nil {
		return fmt.Errorf("set state %s: %w", key, err)
	}
	return nil
}
