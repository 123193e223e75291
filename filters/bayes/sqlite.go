package bayes

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)
)

// SQLiteStore is the embedded Store: one SQLite database file of its own
// (not the mail index), so that training never waits on deliveries.
//
// Tables: models (one row per model: user, learned spam and ham, and
// how many of them the logistic model learned), tokens (model, feature
// hash, spam and ham counts, logistic weight, last-learned time;
// a WITHOUT ROWID table keyed by model and hash, so that a lookup is one
// B-tree probe) and learned (model, message digest, class).
type SQLiteStore struct {
	wdb, rdb *sql.DB
	path     string

	mir mirror
}

var _ Store = (*SQLiteStore)(nil)

// sqliteMigrations[v] takes the database from schema version v to v+1;
// the schema version is the number of migrations applied.
var sqliteMigrations = [][]string{
	{
		`CREATE TABLE models (
			id   INTEGER PRIMARY KEY,
			user TEXT NOT NULL UNIQUE,
			spam INTEGER NOT NULL DEFAULT 0,
			ham  INTEGER NOT NULL DEFAULT 0
		)`,
		`INSERT INTO models (id, user) VALUES (0, '')`,
		// gen counts committed training transactions: a reader whose
		// mirror is of an older generation reloads (another process
		// trained).
		`CREATE TABLE meta (gen INTEGER NOT NULL)`,
		`INSERT INTO meta (gen) VALUES (0)`,
		`CREATE TABLE tokens (
			model INTEGER NOT NULL,
			hash  INTEGER NOT NULL,
			spam  INTEGER NOT NULL,
			ham   INTEGER NOT NULL,
			seen  INTEGER NOT NULL,
			PRIMARY KEY (model, hash)
		) WITHOUT ROWID`,
		`CREATE TABLE learned (
			model  INTEGER NOT NULL,
			digest BLOB NOT NULL,
			class  INTEGER NOT NULL,
			at     INTEGER NOT NULL,
			PRIMARY KEY (model, digest)
		) WITHOUT ROWID`,
	},
	// 2: the logistic model, a weight per feature and a count of the
	// messages it learned.
	{
		`ALTER TABLE tokens ADD COLUMN weight REAL NOT NULL DEFAULT 0`,
		`ALTER TABLE models ADD COLUMN logistic INTEGER NOT NULL DEFAULT 0`,
	},
}

// OpenSQLite opens (creating if needed) the token database at path. The
// file is created private to moat's user: it holds what users' mail
// looks like.
func OpenSQLite(path string) (*SQLiteStore, error) {
	// synchronous(NORMAL) in WAL mode: a crash of moat loses nothing, a
	// power cut may lose the last training events, which users repeat.
	return openSQLite(path, "journal_mode(WAL)&_pragma=synchronous(NORMAL)")
}

// openScratch opens a database for a throw-away model (cross-validation
// folds): no journal, no sync.
func openScratch(path string) (*SQLiteStore, error) {
	return openSQLite(path, "journal_mode(OFF)&_pragma=synchronous(OFF)")
}

func openSQLite(path, durability string) (*SQLiteStore, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open bayes database: %w", err)
	}
	f.Close()
	wdb, err := sql.Open("sqlite", "file:"+path+"?_pragma="+durability+
		"&_pragma=busy_timeout(10000)&_pragma=cache_size(-65536)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open bayes database: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetConnMaxIdleTime(0)
	if err := migrateSQLite(wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open bayes database %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=cache_size(-65536)")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open bayes database: %w", err)
	}
	rdb.SetMaxOpenConns(8)
	rdb.SetMaxIdleConns(8)
	rdb.SetConnMaxIdleTime(0)
	return &SQLiteStore{wdb: wdb, rdb: rdb, path: path, mir: newMirror()}, nil
}

func migrateSQLite(db *sql.DB) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	latest := len(sqliteMigrations)
	if v > latest {
		return fmt.Errorf("schema version %d is newer than this moat (%d)", v, latest)
	}
	if v == latest {
		return nil
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	for _, m := range sqliteMigrations[v:] {
		for _, stmt := range m {
			if _, err := tx.Exec(stmt); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", latest)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return tx.Commit()
}

// Close closes the database.
func (s *SQLiteStore) Close() error {
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

// modelID implements source: the id of a user's model, or -1 when it
// does not exist. The mirror remembers the answer, absence included.
func (s *SQLiteStore) modelID(ctx context.Context, user string) (int64, error) {
	var id int64
	err := s.rdb.QueryRowContext(ctx, `SELECT id FROM models WHERE user = ?`, user).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bayes model of %q: %w", user, err)
	}
	return id, nil
}

// Totals implements Store.
func (s *SQLiteStore) Totals(ctx context.Context, user string) (Totals, error) {
	return s.mir.totals(ctx, s, user)
}

// Lookup implements Store, from the in-memory mirror of the model
// (mirror.go): a message's features cost map probes, not B-tree walks.
func (s *SQLiteStore) Lookup(ctx context.Context, user string, features []uint64, out []Counts) error {
	return s.mir.lookup(ctx, s, user, features, out)
}

type tokenKey struct {
	model int64
	hash  uint64
}

type tokenDelta struct {
	spam, ham int32
	weight    float64
	seen      int64
}

type learnedKey struct {
	model  int64
	digest Digest
}

// Train implements Store. The events' effects are summed per feature in
// memory first (planTrain), so that a batch (`moat bayes train` of a
// whole folder) writes each feature row once.
func (s *SQLiteStore) Train(ctx context.Context, events []Event) (int, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("bayes train: %w", err)
	}
	defer tx.Rollback()
	p, err := planTrain(events, func(user string, create bool) (int64, error) {
		return ensureModel(ctx, tx, user, create)
	}, func(k learnedKey) (Class, error) {
		var c int
		err := tx.QueryRowContext(ctx, `SELECT class FROM learned WHERE model = ? AND digest = ?`, k.model, k.digest[:]).Scan(&c)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return Forget, nil
		case err != nil:
			return Forget, fmt.Errorf("bayes train: %w", err)
		}
		return Class(c), nil
	})
	if err != nil || p.changed == 0 && !p.stepped {
		return 0, err
	}
	if err := writeLearned(ctx, tx, p.state); err != nil {
		return 0, err
	}
	if err := writeDeltas(ctx, tx, p.deltas); err != nil {
		return 0, err
	}
	for id, t := range p.totals {
		if _, err := tx.ExecContext(ctx, `UPDATE models SET spam = max(0, spam + ?), ham = max(0, ham + ?),
			logistic = max(0, logistic + ?) WHERE id = ?`, t.Spam, t.Ham, t.Logistic, id); err != nil {
			return 0, fmt.Errorf("bayes train: %w", err)
		}
	}
	var gen int64
	if err := tx.QueryRowContext(ctx, `UPDATE meta SET gen = gen + 1 RETURNING gen`).Scan(&gen); err != nil {
		return 0, fmt.Errorf("bayes train: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("bayes train: %w", err)
	}
	s.mir.known(p.ids)
	s.mir.apply(gen, p.deltas, p.totals)
	return p.changed, nil
}

func ensureModel(ctx context.Context, tx *sql.Tx, user string, create bool) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM models WHERE user = ?`, user).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("bayes model of %q: %w", user, err)
	}
	if !create {
		return -1, nil
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO models (user) VALUES (?)`, user)
	if err != nil {
		return 0, fmt.Errorf("bayes model of %q: %w", user, err)
	}
	if id, err = res.LastInsertId(); err != nil {
		return 0, fmt.Errorf("bayes model of %q: %w", user, err)
	}
	return id, nil
}

func writeLearned(ctx context.Context, tx *sql.Tx, state map[learnedKey]Class) error {
	put, err := tx.PrepareContext(ctx, `INSERT INTO learned (model, digest, class, at) VALUES (?, ?, ?, ?)
		ON CONFLICT (model, digest) DO UPDATE SET class = excluded.class, at = excluded.at`)
	if err != nil {
		return fmt.Errorf("bayes train: %w", err)
	}
	defer put.Close()
	del, err := tx.PrepareContext(ctx, `DELETE FROM learned WHERE model = ? AND digest = ?`)
	if err != nil {
		return fmt.Errorf("bayes train: %w", err)
	}
	defer del.Close()
	now := time.Now().Unix()
	for k, c := range state {
		if c == Forget {
			_, err = del.ExecContext(ctx, k.model, k.digest[:])
		} else {
			_, err = put.ExecContext(ctx, k.model, k.digest[:], int(c), now)
		}
		if err != nil {
			return fmt.Errorf("bayes train: %w", err)
		}
	}
	return nil
}

func writeDeltas(ctx context.Context, tx *sql.Tx, deltas map[tokenKey]tokenDelta) error {
	// A row that does not exist counts as zero; counts never go below
	// zero (a row pruned while its message was learned); a row whose
	// counts a forgetting brings to zero and zero goes, weight and all.
	// The mirror (mirror.go) applies the same rules.
	up, err := tx.PrepareContext(ctx, `INSERT INTO tokens (model, hash, spam, ham, weight, seen)
		VALUES (?1, ?2, max(0, ?3), max(0, ?4), ?5, ?6)
		ON CONFLICT (model, hash) DO UPDATE SET spam = max(0, spam + ?3), ham = max(0, ham + ?4),
			weight = weight + ?5, seen = max(seen, ?6)`)
	if err != nil {
		return fmt.Errorf("bayes train: %w", err)
	}
	defer up.Close()
	gone, err := tx.PrepareContext(ctx, `DELETE FROM tokens WHERE model = ? AND hash = ? AND spam = 0 AND ham = 0`)
	if err != nil {
		return fmt.Errorf("bayes train: %w", err)
	}
	defer gone.Close()
	// In key order: B-tree inserts then append to the same pages.
	keys := make([]tokenKey, 0, len(deltas))
	for k := range deltas {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b tokenKey) int {
		if a.model != b.model {
			return cmp.Compare(a.model, b.model)
		}
		return cmp.Compare(int64(a.hash), int64(b.hash))
	})
	for _, k := range keys {
		d := deltas[k]
		if d.spam == 0 && d.ham == 0 && d.weight == 0 {
			continue
		}
		_, err = up.ExecContext(ctx, k.model, int64(k.hash), d.spam, d.ham, d.weight, d.seen)
		if err == nil && (d.spam < 0 || d.ham < 0) {
			_, err = gone.ExecContext(ctx, k.model, int64(k.hash))
		}
		if err != nil {
			return fmt.Errorf("bayes train: %w", err)
		}
	}
	return nil
}

// Prune implements Store.
func (s *SQLiteStore) Prune(ctx context.Context, maxRows int, olderThan time.Time) (int, error) {
	// The records of learned messages (what makes learning idempotent)
	// are bounded too, to a quarter as many rows, oldest first: a message
	// learned before the oldest record kept would count again if learned
	// again, and can no longer be unlearned.
	keep := max(1, maxRows/4)
	var records int
	if err := s.wdb.QueryRowContext(ctx, `SELECT count(*) FROM learned`).Scan(&records); err != nil {
		return 0, fmt.Errorf("bayes prune learned: %w", err)
	}
	if records > keep {
		if _, err := s.wdb.ExecContext(ctx, `DELETE FROM learned WHERE (model, digest) IN
			(SELECT model, digest FROM learned ORDER BY at DESC LIMIT -1 OFFSET ?)`, keep); err != nil {
			return 0, fmt.Errorf("bayes prune learned: %w", err)
		}
	}
	var n int
	if err := s.wdb.QueryRowContext(ctx, `SELECT count(*) FROM tokens`).Scan(&n); err != nil {
		return 0, fmt.Errorf("bayes prune: %w", err)
	}
	if n <= maxRows {
		return 0, nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("bayes prune: %w", err)
	}
	defer tx.Rollback()
	// The rows deleted are returned, so that the mirror drops the same
	// ones instead of reloading whole models.
	gone, err := deleteTokens(ctx, tx, nil, `DELETE FROM tokens WHERE spam + ham <= 1 AND seen < ? RETURNING model, hash`, olderThan.Unix())
	if err != nil {
		return 0, err
	}
	// Still too many: drop the rarest, oldest rows down to 90 % of the
	// bound, so that pruning does not run again at the next message.
	if left := n - len(gone); left > maxRows {
		if gone, err = deleteTokens(ctx, tx, gone, `DELETE FROM tokens WHERE (model, hash) IN
			(SELECT model, hash FROM tokens ORDER BY spam + ham, seen LIMIT ?) RETURNING model, hash`, left-maxRows*9/10); err != nil {
			return 0, err
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	var gen int64
	if err := tx.QueryRowContext(ctx, `UPDATE meta SET gen = gen + 1 RETURNING gen`).Scan(&gen); err != nil {
		return 0, fmt.Errorf("bayes prune: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("bayes prune: %w", err)
	}
	s.mir.remove(gen, gone)
	return len(gone), nil
}

// deleteTokens runs a DELETE ... RETURNING model, hash and appends the
// rows it deleted to gone.
func deleteTokens(ctx context.Context, tx *sql.Tx, gone []tokenKey, query string, args ...any) ([]tokenKey, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("bayes prune: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k tokenKey
		var h int64
		if err := rows.Scan(&k.model, &h); err != nil {
			return nil, fmt.Errorf("bayes prune: %w", err)
		}
		k.hash = uint64(h)
		gone = append(gone, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bayes prune: %w", err)
	}
	return gone, nil
}

// Stats implements Store.
func (s *SQLiteStore) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	rows, err := s.rdb.QueryContext(ctx, `SELECT m.user, m.spam, m.ham, m.logistic,
		(SELECT count(*) FROM tokens t WHERE t.model = m.id) FROM models m ORDER BY m.user`)
	if err != nil {
		return st, fmt.Errorf("bayes stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m ModelStats
		if err := rows.Scan(&m.User, &m.Spam, &m.Ham, &m.Logistic, &m.Features); err != nil {
			return st, fmt.Errorf("bayes stats: %w", err)
		}
		st.Models = append(st.Models, m)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("bayes stats: %w", err)
	}
	for _, p := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			st.Bytes += fi.Size()
		}
	}
	return st, nil
}
