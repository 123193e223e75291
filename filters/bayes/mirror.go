package bayes

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// mirror is the in-memory copy of the models a SQLiteStore has been asked
// about. A message has thousands of features, most of them never seen
// before; probing SQLite's B-tree for each costs about 3 µs (pure Go
// SQLite), a map probe about 50 ns. So a model is read whole on first use
// (a million features take some 30 MB and a second or two) and kept in
// step with the database:
//
//   - this store's own training and pruning apply the same changes to
//     the mirror right after their transactions commit (a prune does not
//     make the next message wait for a model to reload);
//   - the database's generation counter (meta.gen, bumped by every
//     training transaction and prune) is compared at most once a second:
//     when another process trained (`moat bayes train` beside `moat
//     serve`), the mirror is dropped and models reload on next use.
type mirror struct {
	mu      sync.RWMutex
	gen     int64 // the database generation the models reflect; -1: none
	checked time.Time
	models  map[int64]*memModel
	loadMu  sync.Mutex // one model load at a time
}

type memModel struct {
	totals Totals
	counts map[uint64]Counts
}

// refreshEvery bounds how stale a mirror may be after another process
// trained the database.
const refreshEvery = time.Second

// advance moves the mirror to generation gen, made by a transaction of
// this store, before its changes are patched in. It reports whether to
// patch them: not when the mirror already reflects gen (a model loaded
// after the commit), nor when another writer came between, which makes
// the models unpatchable: they are dropped. m.mu must be held.
func (m *mirror) advance(gen int64) bool {
	switch {
	case m.gen == gen-1:
		m.gen = gen
		return true
	case m.gen >= gen:
		return false
	}
	m.models = make(map[int64]*memModel)
	m.gen = gen
	return false
}

// keep adds model id, read whole from a snapshot of generation gen, to
// the mirror, unless the mirror is already past that snapshot (a training
// of this store committed and was applied while the model was read):
// then the model serves the one caller and the next use reads it anew.
// A snapshot newer than the mirror makes the other models stale: they
// are dropped.
func (m *mirror) keep(id int64, mm *memModel, gen int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case gen < m.gen:
		return
	case gen > m.gen:
		m.models = make(map[int64]*memModel)
		m.gen = gen
	}
	m.models[id] = mm
}

// apply mirrors a committed training transaction that made generation
// gen.
func (m *mirror) apply(gen int64, deltas map[tokenKey]tokenDelta, totals map[int64]Totals) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.advance(gen) {
		return
	}
	for id, t := range totals {
		if mm := m.models[id]; mm != nil {
			mm.totals.Spam = max(0, mm.totals.Spam+t.Spam)
			mm.totals.Ham = max(0, mm.totals.Ham+t.Ham)
			mm.totals.Logistic = max(0, mm.totals.Logistic+t.Logistic)
		}
	}
	for k, d := range deltas {
		mm := m.models[k.model]
		if mm == nil || d.spam == 0 && d.ham == 0 && d.weight == 0 {
			continue
		}
		c := mm.counts[k.hash]
		c.Spam = uint32(max(0, int64(c.Spam)+int64(d.spam)))
		c.Ham = uint32(max(0, int64(c.Ham)+int64(d.ham)))
		c.Weight = float32(float64(c.Weight) + d.weight)
		if c.Spam == 0 && c.Ham == 0 && (d.spam < 0 || d.ham < 0) {
			delete(mm.counts, k.hash)
		} else {
			mm.counts[k.hash] = c
		}
	}
}

// remove mirrors a committed prune that made generation gen and deleted
// the rows gone.
func (m *mirror) remove(gen int64, gone []tokenKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.advance(gen) {
		return
	}
	for _, k := range gone {
		if mm := m.models[k.model]; mm != nil {
			delete(mm.counts, k.hash)
		}
	}
}

// refresh drops the mirror when the database moved on without it.
func (s *SQLiteStore) refresh(ctx context.Context) error {
	s.mir.mu.RLock()
	fresh := time.Since(s.mir.checked) < refreshEvery
	s.mir.mu.RUnlock()
	if fresh {
		return nil
	}
	var gen int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT gen FROM meta`).Scan(&gen); err != nil {
		return fmt.Errorf("bayes generation: %w", err)
	}
	s.mir.mu.Lock()
	defer s.mir.mu.Unlock()
	s.mir.checked = time.Now()
	if gen != s.mir.gen {
		s.mir.models = make(map[int64]*memModel)
		s.mir.gen = gen
	}
	return nil
}

// loaded returns the mirrored model of a user, loading it if needed; nil
// when the user has no model.
func (s *SQLiteStore) loaded(ctx context.Context, user string) (*memModel, error) {
	id, err := s.modelID(ctx, user)
	if err != nil || id < 0 {
		return nil, err
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	s.mir.mu.RLock()
	m := s.mir.models[id]
	s.mir.mu.RUnlock()
	if m != nil {
		return m, nil
	}
	s.mir.loadMu.Lock()
	defer s.mir.loadMu.Unlock()
	s.mir.mu.RLock()
	m = s.mir.models[id]
	s.mir.mu.RUnlock()
	if m != nil {
		return m, nil
	}
	m, gen, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mir.keep(id, m, gen)
	return m, nil
}

// load reads one model whole, with the generation of the same snapshot.
func (s *SQLiteStore) load(ctx context.Context, id int64) (*memModel, int64, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("bayes load: %w", err)
	}
	defer tx.Rollback()
	var gen, n int64
	m := &memModel{}
	if err := tx.QueryRowContext(ctx, `SELECT gen FROM meta`).Scan(&gen); err != nil {
		return nil, 0, fmt.Errorf("bayes load: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT spam, ham, logistic, (SELECT count(*) FROM tokens WHERE model = ?) FROM models WHERE id = ?`,
		id, id).Scan(&m.totals.Spam, &m.totals.Ham, &m.totals.Logistic, &n); err != nil {
		return nil, 0, fmt.Errorf("bayes load: %w", err)
	}
	m.counts = make(map[uint64]Counts, n)
	rows, err := tx.QueryContext(ctx, `SELECT hash, spam, ham, weight FROM tokens WHERE model = ?`, id)
	if err != nil {
		return nil, 0, fmt.Errorf("bayes load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h int64
		var c Counts
		if err := rows.Scan(&h, &c.Spam, &c.Ham, &c.Weight); err != nil {
			return nil, 0, fmt.Errorf("bayes load: %w", err)
		}
		m.counts[uint64(h)] = c
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("bayes load: %w", err)
	}
	return m, gen, nil
}
