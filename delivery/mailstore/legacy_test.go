package mailstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
	"github.com/moatmail/moat/quarantine"
)

// legacyV1 is version 1 of the index as moat wrote it up to ca1be25, when
// the index had one schema (PRAGMA user_version) holding the store's
// tables and the quarantine's. Copied from delivery/store.go of that
// commit: these statements must never change.
var legacyV1 = []string{
	`CREATE TABLE users (
		id INTEGER PRIMARY KEY,
		address TEXT NOT NULL UNIQUE,
		password_hash TEXT NOT NULL,
		admin INTEGER NOT NULL DEFAULT 0,
		created INTEGER NOT NULL,
		last_uidvalidity INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE mailboxes (
		id INTEGER PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		name TEXT NOT NULL,
		uidvalidity INTEGER NOT NULL,
		uidnext INTEGER NOT NULL DEFAULT 1,
		modseq INTEGER NOT NULL DEFAULT 1,
		special_use TEXT NOT NULL DEFAULT '',
		subscribed INTEGER NOT NULL DEFAULT 1,
		UNIQUE (user_id, name)
	)`,
	`CREATE TABLE blobs (
		id INTEGER PRIMARY KEY,
		key TEXT UNIQUE,
		size INTEGER NOT NULL,
		created INTEGER NOT NULL,
		data BLOB
	)`,
	`CREATE TABLE messages (
		mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
		uid INTEGER NOT NULL,
		blob_id INTEGER NOT NULL REFERENCES blobs(id),
		flags TEXT NOT NULL DEFAULT '',
		internal_date INTEGER NOT NULL,
		size INTEGER NOT NULL,
		modseq INTEGER NOT NULL,
		PRIMARY KEY (mailbox_id, uid)
	) WITHOUT ROWID`,
	`CREATE INDEX messages_blob ON messages (blob_id)`,
	`CREATE TABLE quarantine (
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
	`CREATE INDEX quarantine_blob ON quarantine (blob_id)`,
	`CREATE INDEX quarantine_created ON quarantine (created)`,
	`CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
}

// legacyV2 is the step from version 1 to 2 of that index (allow lists).
var legacyV2 = []string{
	`CREATE TABLE allowed_senders (
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		sender TEXT NOT NULL,
		added INTEGER NOT NULL,
		PRIMARY KEY (user_id, sender)
	) WITHOUT ROWID`,
}

// writeIndex writes dir/index.db with stmts, as an older moat would have.
func writeIndex(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// versions reads the index format and the version of every schema.
func versions(t *testing.T, st *mailstore.Store) string {
	t.Helper()
	var format int
	if err := st.DB().QueryRow("PRAGMA user_version").Scan(&format); err != nil {
		t.Fatal(err)
	}
	rows, err := st.DB().Query("SELECT name, version FROM schema_versions ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := fmt.Sprintf("format %d", format)
	for rows.Next() {
		var name string
		var v int
		if err := rows.Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf(", %s %d", name, v)
	}
	return out
}

// TestMigrateFromVersion1: an index written by a moat of schema version 1
// (before allow lists) is brought up to date at open, its users kept.
func TestMigrateFromVersion1(t *testing.T) {
	dir := t.TempDir()
	writeIndex(t, dir, append(legacyV1, `PRAGMA user_version = 1`,
		`INSERT INTO users (address, password_hash, created) VALUES ('alice@example.com', 'x', 0)`)...)
	s, err := mailstore.Open(mailstore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	u, err := s.LookupUser(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AllowSender(ctx, u.ID, "bob@example.net"); err != nil {
		t.Fatalf("allow list after the migration: %v", err)
	}
	if got, want := versions(t, s), "format 3, mailstore 4"; got != want {
		t.Errorf("versions = %q, want %q", got, want)
	}
}

// TestMigrateFromVersion2WithQuarantine: an index of the last single-schema
// version, with a quarantined message, opens with the quarantine's table
// now under the quarantine's own schema; the entry reads back whole, the
// store still keeps its content while only the record holds it, and a
// second open changes nothing.
func TestMigrateFromVersion2WithQuarantine(t *testing.T) {
	const (
		content = "Subject: caught\r\n\r\nbody\r\n"
		created = 1767225600 // 2026-01-01
	)
	dir := t.TempDir()
	writeIndex(t, dir, append(append(legacyV1, legacyV2...), `PRAGMA user_version = 2`,
		`INSERT INTO users (id, address, password_hash, created, last_uidvalidity) VALUES (1, 'alice@example.com', 'x', 0, 100)`,
		`INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext, modseq) VALUES (1, 1, 'INBOX', 99, 1, 1), (2, 1, 'Quarantine', 100, 2, 2)`,
		fmt.Sprintf(`INSERT INTO blobs (id, key, size, created, data) VALUES (5, NULL, %d, %d, x'%x')`, len(content), created, content),
		fmt.Sprintf(`INSERT INTO messages (mailbox_id, uid, blob_id, flags, internal_date, size, modseq) VALUES (2, 1, 5, '', %d, %d, 2)`, created, len(content)),
		fmt.Sprintf(`INSERT INTO quarantine (id, blob_id, queue_id, created, sender, recipients, subject, score, action, symbols, reasons, client_ip)
			VALUES (7, 5, 'Q1', %d, 'spammer@example.net', 'alice@example.com', 'caught', 12.5, 'quarantine',
			'[{"name":"GTUBE","score":1000}]', '["score 12.5 >= 10"]', '192.0.2.1')`, created),
		`INSERT INTO allowed_senders (user_id, sender, added) VALUES (1, 'friend@example.org', 0)`,
	)...)
	ctx := context.Background()
	st, err := mailstore.Open(mailstore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	q, err := quarantine.New(quarantine.Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := versions(t, st), "format 3, mailstore 4, quarantine 2"; got != want {
		t.Errorf("versions = %q, want %q", got, want)
	}
	list, err := q.List(ctx, "alice@example.com")
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v; want the one entry", list, err)
	}
	e := list[0]
	if e.ID != 7 || e.QueueID != "Q1" || e.Sender != "spammer@example.net" || e.Subject != "caught" ||
		e.Score != 12.5 || e.Action != "quarantine" || e.ClientIP != "192.0.2.1" || e.Size != int64(len(content)) ||
		e.Created.Unix() != created || len(e.Symbols) != 1 || e.Symbols[0].Name != "GTUBE" ||
		len(e.Reasons) != 1 || e.Reasons[0] != "score 12.5 >= 10" {
		t.Errorf("entry = %+v", e)
	}
	if _, data, err := q.Get(ctx, 7); err != nil || string(data) != content {
		t.Errorf("Get = %q, %v; want %q", data, err, content)
	}
	if allowed, err := st.AllowedSenders(ctx, 1); err != nil || len(allowed) != 1 {
		t.Errorf("allow list = %v, %v; want the one sender", allowed, err)
	}

	// The user expunges the message from Quarantine: the record still
	// holds the content until Tidy drops both.
	if err := st.Update(ctx, func(tx *mailstore.Tx) error { return tx.RemoveMessages(2, []uint32{1}) }); err != nil {
		t.Fatal(err)
	}
	if _, data, err := q.Get(ctx, 7); err != nil || string(data) != content {
		t.Errorf("Get after the expunge = %q, %v; want the content kept for the record", data, err)
	}
	if n, err := q.Tidy(ctx); err != nil || n != 1 {
		t.Errorf("Tidy = %d, %v; want 1", n, err)
	}
	var blobs int
	if err := st.DB().QueryRow("SELECT count(*) FROM blobs").Scan(&blobs); err != nil || blobs != 0 {
		t.Errorf("%d blobs left after Tidy (%v), want 0", blobs, err)
	}
	st.Close()

	st, err = mailstore.Open(mailstore.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := quarantine.New(quarantine.Config{}, st); err != nil {
		t.Fatal(err)
	}
	if got, want := versions(t, st), "format 3, mailstore 4, quarantine 2"; got != want {
		t.Errorf("versions after a second open = %q, want %q", got, want)
	}
}

// TestNewerIndexRefused: an index written by a later moat is not opened.
func TestNewerIndexRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stmts []string
		want  string
	}{
		{"format", []string{`PRAGMA user_version = 4`}, "index format 4 is newer"},
		{"store schema", []string{`PRAGMA user_version = 3`,
			`CREATE TABLE schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID`,
			`INSERT INTO schema_versions VALUES ('mailstore', 99)`}, "schema mailstore version 99 is newer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeIndex(t, dir, tc.stmts...)
			st, err := mailstore.Open(mailstore.Config{Dir: dir})
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSchemaOfAnotherPackage: a package's schema is migrated step by step,
// once, and a table of it that references blobs keeps them alive.
func TestSchemaOfAnotherPackage(t *testing.T) {
	ctx := context.Background()
	st, err := mailstore.Open(mailstore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.AddUser(ctx, "alice@example.com", "pw", mailstore.RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	sc := mailstore.Schema{Name: "pins", Migrations: [][]string{
		{`CREATE TABLE pins (blob_id INTEGER NOT NULL REFERENCES blobs(id))`},
	}}
	for range 2 {
		if err := st.Migrate(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	sc.Migrations = append(sc.Migrations, []string{`CREATE INDEX pins_blob ON pins (blob_id)`})
	if err := st.Migrate(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if got, want := versions(t, st), "format 3, mailstore 4, pins 2"; got != want {
		t.Errorf("versions = %q, want %q", got, want)
	}
	placed, err := st.Deliver(ctx, &mailstore.Delivery{Body: []byte("Subject: x\r\n\r\nx\r\n"),
		Targets: []mailstore.Target{{UserID: u.ID, Mailbox: "INBOX"}},
		Record: func(tx *mailstore.Tx, blobID int64, _ []mailstore.Placed) error {
			_, err := tx.Exec("INSERT INTO pins (blob_id) VALUES (?)", blobID)
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *mailstore.Tx) error {
		return tx.RemoveMessages(placed[0].MailboxID, []uint32{placed[0].UID})
	}); err != nil {
		t.Fatalf("expunging a pinned message: %v", err)
	}
	var blobs int
	if err := st.DB().QueryRow("SELECT count(*) FROM blobs").Scan(&blobs); err != nil || blobs != 1 {
		t.Errorf("%d blobs (%v) after expunging a pinned message, want 1", blobs, err)
	}
	err = st.Migrate(ctx, mailstore.Schema{Name: "broken", Migrations: [][]string{{`CREATE TABLE pins (x)`}}})
	if err == nil || !strings.Contains(err.Error(), "schema broken") {
		t.Errorf("a failing step: %v, want an error naming the schema", err)
	}
	if got, want := versions(t, st), "format 3, mailstore 4, pins 2"; got != want {
		t.Errorf("versions after a failing step = %q, want %q", got, want)
	}
}
