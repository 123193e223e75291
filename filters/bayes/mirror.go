package bayes

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// mirror is the in-memory copy of the models a store (SQLiteStore,
// RedisStore) has been asked about. A message has thousands of features, most of them never seen
// before; probing SQLite's B-tree for each costs about 3 µs (pure Go
// SQLite), a map probe about 50 ns. So a model is read whole on first use
// (a million features take some 30 MB and a second or two) and kept in
// step with the database:
//
//   - this store's own training and pruning apply the same changes to
//     the mirror right after their transactions commit (a prune does not
//     make the next message wait for a model to reload);
//   - the store's generation counter (bumped by every training
//     transaction and prune) is compared at most once a second: when
//     another process (`moat bayes train` beside `moat serve`) or another
//     node (a shared Redis) trained, the mirror applies that training
//     from the store's change log when the store keeps one (RedisStore),
//     or is dropped and models reload on next use (SQLiteStore).
//
// The mirror also remembers which users have a model and which have
// none, so that a message to a user without a model (every user, on an
// install not yet trained) costs no query: the absences are forgotten
// when the generation moves (another writer may have made the model).
type mirror struct {
	mu      sync.RWMutex
	gen     int64 // the store generation the models reflect; -1: none
	checked time.Time
	models  map[int64]*memModel
	ids     map[string]int64 // user → model id, -1: no model
	loadMu  sync.Mutex       // one model load at a time
}

// source is what a mirror reads its store through.
type source interface {
	// generation returns the store's generation.
	generation(ctx context.Context) (int64, error)
	// modelID returns a user's model id, -1 when there is none.
	modelID(ctx context.Context, user string) (int64, error)
	// load reads one model whole, with the generation it reflects.
	load(ctx context.Context, id int64) (*memModel, int64, error)
	// changes returns the changes that made the generations after gen,
	// oldest first; ok false when the store cannot tell (it keeps no
	// log, or no longer holds that part of it).
	changes(ctx context.Context, gen int64) (_ []change, ok bool, _ error)
}

// change is one logged training or prune of the store.
type change struct {
	gen    int64
	deltas map[tokenKey]tokenDelta // a training's
	totals map[int64]Totals        // a training's
	gone   []tokenKey              // a prune's
}

func newMirror() mirror {
	return mirror{gen: -1, models: make(map[int64]*memModel), ids: map[string]int64{"": 0}}
}

type memModel struct {
	totals Totals
	counts map[uint64]Counts
}

// refreshEvery bounds how stale a mirror may be after another process
// trained the database.
const refreshEvery = time.Second

// advance moves the mirror to generation gen, made by a transaction of
// this store (or logged by another writer), before its changes are
// patched in. It reports whether to
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
	m.reset(gen)
	return false
}

// reset drops the models and the remembered absences, at generation gen.
// m.mu must be held.
func (m *mirror) reset(gen int64) {
	m.models = make(map[int64]*memModel)
	for u, id := range m.ids {
		if id < 0 {
			delete(m.ids, u)
		}
	}
	m.gen = gen
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
		m.reset(gen)
	}
	m.models[id] = mm
}

// apply mirrors a committed training transaction that made generation
// gen.
func (m *mirror) apply(gen int64, deltas map[tokenKey]tokenDelta, totals map[int64]Totals) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.advance(gen) {
		m.patch(deltas, totals)
	}
}

// patch applies a training's changes to the models. m.mu must be held.
func (m *mirror) patch(deltas map[tokenKey]tokenDelta, totals map[int64]Totals) {
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
	if m.advance(gen) {
		m.forget(gone)
	}
}

// forget removes a prune's rows from the models. m.mu must be held.
func (m *mirror) forget(gone []tokenKey) {
	for _, k := range gone {
		if mm := m.models[k.model]; mm != nil {
			delete(mm.counts, k.hash)
		}
	}
}

// refresh catches the mirror up when the store moved on without it: from
// the store's change log when it has the changes, else by dropping the
// models.
func (m *mirror) refresh(ctx context.Context, src source) error {
	m.mu.RLock()
	fresh := time.Since(m.checked) < refreshEvery
	m.mu.RUnlock()
	if fresh {
		return nil
	}
	gen, err := src.generation(ctx)
	if err != nil {
		return err
	}
	m.mu.RLock()
	from := m.gen
	m.mu.RUnlock()
	var log []change
	ok := false
	if gen > from && from >= 0 {
		if log, ok, err = src.changes(ctx, from); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checked = time.Now()
	if gen == m.gen {
		return nil
	}
	if ok {
		for _, c := range log {
			if c.gen != m.gen+1 {
				continue // applied already (this store's own), or a gap: checked below
			}
			m.gen = c.gen
			m.patch(c.deltas, c.totals)
			m.forget(c.gone)
		}
		if m.gen >= gen {
			return nil
		}
	}
	m.reset(gen)
	return nil
}

// loaded returns the mirrored model of a user, loading it if needed; nil
// when the user has no model. When the store cannot be asked whether it
// moved on (Redis is down), a model the mirror holds is used as it is:
// classification goes on with what the node knew.
func (m *mirror) loaded(ctx context.Context, src source, user string) (*memModel, error) {
	if err := m.refresh(ctx, src); err != nil {
		m.mu.RLock()
		id, ok := m.ids[user]
		mm := m.models[id]
		m.mu.RUnlock()
		if ok && (id < 0 || mm != nil) {
			return mm, nil
		}
		return nil, err
	}
	m.mu.RLock()
	id, ok := m.ids[user]
	gen := m.gen
	m.mu.RUnlock()
	if !ok {
		var err error
		if id, err = src.modelID(ctx, user); err != nil {
			return nil, err
		}
		m.mu.Lock()
		if m.gen == gen || id >= 0 {
			m.ids[user] = id
		}
		m.mu.Unlock()
	}
	if id < 0 {
		return nil, nil
	}
	m.mu.RLock()
	mm := m.models[id]
	m.mu.RUnlock()
	if mm != nil {
		return mm, nil
	}
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	m.mu.RLock()
	mm = m.models[id]
	m.mu.RUnlock()
	if mm != nil {
		return mm, nil
	}
	mm, gen, err := src.load(ctx, id)
	if err != nil {
		return nil, err
	}
	m.keep(id, mm, gen)
	return mm, nil
}

// known records the model ids a training of this store used (made).
func (m *mirror) known(ids map[string]int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for u, id := range ids {
		if id >= 0 {
			m.ids[u] = id
		}
	}
}

// generation implements source.
func (s *SQLiteStore) generation(ctx context.Context) (int64, error) {
	var gen int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT gen FROM meta`).Scan(&gen); err != nil {
		return 0, fmt.Errorf("bayes generation: %w", err)
	}
	return gen, nil
}

// changes implements source: SQLite keeps no log; another process's
// training reloads the models.
func (s *SQLiteStore) changes(context.Context, int64) ([]change, bool, error) { return nil, false, nil }

// load implements source: one model whole, with the generation of the
// same snapshot.
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

// totals is Store.Totals of a store that keeps this mirror of src.
func (m *mirror) totals(ctx context.Context, src source, user string) (Totals, error) {
	mm, err := m.loaded(ctx, src, user)
	if err != nil || mm == nil {
		return Totals{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return mm.totals, nil
}

// lookup is Store.Lookup of a store that keeps this mirror of src: a
// message's features cost map probes, not queries.
func (m *mirror) lookup(ctx context.Context, src source, user string, features []uint64, out []Counts) error {
	if len(out) != len(features) {
		return fmt.Errorf("bayes lookup: %d slots for %d features", len(out), len(features))
	}
	mm, err := m.loaded(ctx, src, user)
	if err != nil {
		return err
	}
	if mm == nil {
		clear(out)
		return nil
	}
	m.mu.RLock()
	for i, f := range features {
		out[i] = mm.counts[f]
	}
	m.mu.RUnlock()
	return nil
}
