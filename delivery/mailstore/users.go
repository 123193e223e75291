package mailstore

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/moatmail/moat/filters/address"
)

// User is a mailbox owner.
type User struct {
	ID      int64
	Address string
	Admin   bool
	Created time.Time
}

// DefaultMailboxes are created for every new user, with their RFC 6154
// special-use attributes. Quarantine has no registered attribute.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{"INBOX", ""},
	{"Sent", `\Sent`},
	{"Drafts", `\Drafts`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
	{QuarantineMailbox, ""},
}

// QuarantineMailbox is the folder in which each user sees their quarantined
// mail.
const QuarantineMailbox = "Quarantine"

// Role is what a user may do beyond reading their own mail.
type Role int

// The roles.
const (
	// RoleUser reads and reviews their own mail only.
	RoleUser Role = iota
	// RoleAdmin also reviews every user's quarantine (IMAP shared
	// namespace, docs/flow.md §7).
	RoleAdmin
)

// AddUser creates a user with the default mailboxes.
func (s *Store) AddUser(ctx context.Context, addr, password string, role Role) (User, error) {
	admin := role == RoleAdmin
	addr = address.Normalize(addr)
	if !address.Valid(addr) {
		return User{}, fmt.Errorf("add user: %q is not a mail address", addr)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return User{}, fmt.Errorf("add user: %w", err)
	}
	u := User{Address: addr, Admin: admin, Created: s.now().Truncate(time.Second)}
	err = s.Update(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRow("SELECT count(*) FROM users WHERE address = ?", addr).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrUserExists
		}
		res, err := tx.Exec("INSERT INTO users (address, password_hash, admin, created) VALUES (?, ?, ?, ?)",
			addr, hash, admin, u.Created.Unix())
		if err != nil {
			return err
		}
		u.ID, err = res.LastInsertId()
		if err != nil {
			return err
		}
		for _, mb := range DefaultMailboxes {
			if _, err := createMailbox(tx, s.now(), u.ID, mb.Name, mb.SpecialUse); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("add user %s: %w", addr, err)
	}
	return u, nil
}

// SetPassword replaces a user's password.
func (s *Store) SetPassword(ctx context.Context, addr, password string) error {
	hash, err := HashPassword(password)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return s.Update(ctx, func(tx *Tx) error {
		res, err := tx.Exec("UPDATE users SET password_hash = ? WHERE address = ?", hash, address.Normalize(addr))
		if err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("set password for %s: %w", addr, ErrNoUser)
		}
		return nil
	})
}

// DeleteUser removes a user, their mailboxes and messages.
func (s *Store) DeleteUser(ctx context.Context, addr string) error {
	return s.Update(ctx, func(tx *Tx) error {
		var id int64
		err := tx.QueryRow("SELECT id FROM users WHERE address = ?", address.Normalize(addr)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delete user %s: %w", addr, ErrNoUser)
		}
		if err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		blobs, err := blobsOf(tx, "SELECT DISTINCT blob_id FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?)", id)
		if err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		if _, err := tx.Exec("DELETE FROM users WHERE id = ?", id); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		return dropUnreferenced(tx, blobs)
	})
}

// Users lists every user, ordered by address.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT id, address, admin, created FROM users ORDER BY address")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var created int64
		if err := rows.Scan(&u.ID, &u.Address, &u.Admin, &created); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.Created = time.Unix(created, 0)
		out = append(out, u)
	}
	return out, rows.Err()
}

// LookupUser finds a user by address; it returns ErrNoUser when there is none.
func (s *Store) LookupUser(ctx context.Context, addr string) (User, error) {
	u, _, err := s.lookup(ctx, addr)
	return u, err
}

func (s *Store) lookup(ctx context.Context, addr string) (User, string, error) {
	var u User
	var hash string
	var created int64
	err := s.rdb.QueryRowContext(ctx, "SELECT id, address, admin, created, password_hash FROM users WHERE address = ?",
		address.Normalize(addr)).Scan(&u.ID, &u.Address, &u.Admin, &created, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, "", ErrNoUser
	}
	if err != nil {
		return User{}, "", fmt.Errorf("look up user: %w", err)
	}
	u.Created = time.Unix(created, 0)
	return u, hash, nil
}

// Authenticate checks a password. It returns ErrAuthFailed for an unknown
// user or a wrong password alike, after doing the same hashing work, so that
// timing does not reveal which addresses exist.
func (s *Store) Authenticate(ctx context.Context, addr, password string) (User, error) {
	defer releaseHashMemory()
	u, hash, err := s.lookup(ctx, addr)
	if errors.Is(err, ErrNoUser) {
		VerifyPassword(dummyHash, password)
		return User{}, ErrAuthFailed
	}
	if err != nil {
		return User{}, err
	}
	if !VerifyPassword(hash, password) {
		return User{}, ErrAuthFailed
	}
	return u, nil
}

// argon2id parameters: the OWASP recommendation (19 MiB, 2 passes, 1 lane).
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

var dummyHash, _ = HashPassword("moat-dummy-password")

// HashPassword returns an argon2id hash in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("password is empty")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword checks password against an argon2id (PHC format) or bcrypt
// ($2a$, $2b$, $2y$) hash, so that users can be imported from other systems.
func VerifyPassword(hash, password string) bool {
	if strings.HasPrefix(hash, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem, iter uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iter, &threads); err != nil {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, iter, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
