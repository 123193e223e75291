package bayes

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
)

func TestChi2Q(t *testing.T) {
	for _, tc := range []struct {
		x2   float64
		v    int
		want float64
	}{
		{0, 2, 1},
		{2, 2, math.Exp(-1)},           // v=2: Q = e^(-x/2)
		{10, 2, math.Exp(-5)},          //
		{4, 4, math.Exp(-2) * (1 + 2)}, // v=4: e^-m (1 + m)
		{6, 6, math.Exp(-3) * (1 + 3 + 4.5)},
		{2000, 2, 0},   // underflows to 0, not NaN
		{1e-9, 300, 1}, // tiny evidence
	} {
		got := chi2Q(tc.x2, tc.v)
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("chi2Q(%v, %d) = %v, want %v", tc.x2, tc.v, got, tc.want)
		}
	}
}

func TestFisher(t *testing.T) {
	for _, tc := range []struct {
		name   string
		probs  []float64
		lo, hi float64
	}{
		{"none", nil, 0.5, 0.5},
		{"balanced", []float64{0.99, 0.01}, 0.45, 0.55},
		{"spammy", []float64{0.99, 0.98, 0.97, 0.95, 0.9}, 0.99, 1},
		{"hammy", []float64{0.01, 0.02, 0.03, 0.05, 0.1}, 0, 0.01},
		{"mostly spammy", []float64{0.99, 0.99, 0.99, 0.99, 0.2}, 0.9, 1},
		{"extreme", []float64{1, 1, 1, 0, 0}, 0.4, 0.6},
	} {
		got := fisher(tc.probs)
		if !(got >= tc.lo && got <= tc.hi) || math.IsNaN(got) {
			t.Errorf("%s: fisher(%v) = %v, want in [%v, %v]", tc.name, tc.probs, got, tc.lo, tc.hi)
		}
	}
}

func TestCombineRobinson(t *testing.T) {
	c := &Classifier{cfg: DefaultConfig()}
	c.cfg.RobinsonS = 1
	tot := Totals{Spam: 100, Ham: 100}
	// A feature seen in one spam message only: f = (1·0.5 + 1·1) / (1 + 1).
	p, n := c.combine([]Counts{{Spam: 1}}, tot)
	if n != 1 {
		t.Fatalf("significant = %d, want 1", n)
	}
	want := fisher([]float64{0.75})
	if math.Abs(p-want) > 1e-12 {
		t.Errorf("p = %v, want %v", p, want)
	}
	// With s = 0.45: (0.45·0.5 + 1) / 1.45.
	c.cfg.RobinsonS = 0.45
	p, _ = c.combine([]Counts{{Spam: 1}}, tot)
	want = fisher([]float64{1.225 / 1.45})
	if math.Abs(p-want) > 1e-12 {
		t.Errorf("p = %v, want %v", p, want)
	}
	// Seen equally in both classes: f = 0.5, not significant.
	if _, n := c.combine([]Counts{{Spam: 10, Ham: 10}, {}}, tot); n != 0 {
		t.Errorf("significant = %d, want 0", n)
	}
	// Class sizes are normalised: 10 of 100 spam vs 10 of 1000 ham is spammy.
	p, _ = c.combine([]Counts{{Spam: 10, Ham: 10}}, Totals{Spam: 100, Ham: 1000})
	if p <= 0.5 {
		t.Errorf("unbalanced classes: p = %v, want > 0.5", p)
	}
	// max_significant keeps the strongest.
	c.cfg.MaxSignificant = 2
	_, n = c.combine([]Counts{{Spam: 50}, {Ham: 50}, {Spam: 2, Ham: 1}, {Spam: 30}}, tot)
	if n != 2 {
		t.Errorf("significant = %d, want 2", n)
	}
}

func TestClassifySynthetic(t *testing.T) {
	c := trainedClassifier(t, DefaultConfig(), 220, 230)
	ctx := context.Background()
	spam, ham := synthCorpus(99, 20, 20, 1500) // unseen messages
	for _, s := range spam {
		r, err := c.Classify(ctx, "", filters.ParseMessage(s.Raw))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Trained || r.Probability < 0.99 {
			t.Errorf("%s: %+v, want trained and p >= 0.99", s.Name, r)
		}
		if syms := c.Symbols(r); len(syms) != 1 || syms[0].Name != SymSpam || syms[0].Score < 7.1 {
			t.Errorf("%s: symbols %v, want BAYES_SPAM 7.1 or 8 (the 0.99 or 0.999 band)", s.Name, syms)
		}
	}
	for _, s := range ham {
		r, err := c.Classify(ctx, "", filters.ParseMessage(s.Raw))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Trained || r.Probability > 0.01 {
			t.Errorf("%s: %+v, want trained and p <= 0.01", s.Name, r)
		}
		if syms := c.Symbols(r); len(syms) != 1 || syms[0].Name != SymHam || syms[0].Score > -2.4 {
			t.Errorf("%s: symbols %v, want BAYES_HAM -2.4 or -2.9 (the 0.01 or 0.001 band)", s.Name, syms)
		}
	}
}

func TestUntrained(t *testing.T) {
	cfg := DefaultConfig()
	c := trainedClassifier(t, cfg, 250, 150) // ham below min_ham
	spam, _ := synthCorpus(5, 1, 0, 1000)
	r, err := c.Classify(context.Background(), "", filters.ParseMessage(spam[0].Raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.Trained || r.Probability != 0.5 {
		t.Errorf("result %+v, want untrained at 0.5", r)
	}
	syms := c.Symbols(r)
	if len(syms) != 1 || syms[0].Name != SymUntrained || syms[0].Score != 0 {
		t.Errorf("symbols %v, want BAYES_UNTRAINED 0", syms)
	}
}

func TestLearnIdempotentAndMove(t *testing.T) {
	c := newTestClassifier(t, DefaultConfig())
	ctx := context.Background()
	raw := synthMessage(rand.New(rand.NewPCG(1, 2)), true, 1, 800)
	msg := filters.ParseMessage(raw)
	feats := Features(msg, msg.Content())
	counts := func() (Totals, Counts) {
		t.Helper()
		tot, err := c.store.Totals(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		out := make([]Counts, 1)
		if err := c.store.Lookup(ctx, "", feats[:1], out); err != nil {
			t.Fatal(err)
		}
		return tot, out[0]
	}
	steps := []struct {
		name        string
		do          func() (bool, error)
		changed     bool
		tot         Totals
		first       Counts // Weight: its sign
		withNewLine bool
	}{
		{"learn spam", func() (bool, error) { return c.LearnMessage(ctx, "", msg, Spam) }, true, Totals{1, 0, 1}, Counts{1, 0, 1}, false},
		{"again", func() (bool, error) { return c.LearnMessage(ctx, "", msg, Spam) }, false, Totals{1, 0, 1}, Counts{1, 0, 1}, false},
		{"CRLF to LF is the same message", func() (bool, error) {
			return c.LearnMessage(ctx, "", filters.ParseMessage([]byte(strings.ReplaceAll(string(raw), "\r\n", "\n"))), Spam)
		}, false, Totals{1, 0, 1}, Counts{1, 0, 1}, false},
		{"moved to ham", func() (bool, error) { return c.LearnMessage(ctx, "", msg, Ham) }, true, Totals{0, 1, 1}, Counts{0, 1, -1}, false},
		{"unlearned", func() (bool, error) { return c.LearnMessage(ctx, "", msg, Forget) }, true, Totals{0, 0, 0}, Counts{0, 0, 0}, false},
		{"unlearned again", func() (bool, error) { return c.LearnMessage(ctx, "", msg, Forget) }, false, Totals{0, 0, 0}, Counts{0, 0, 0}, false},
	}
	for _, st := range steps {
		changed, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		tot, first := counts()
		// The logistic weight moves towards the class learned.
		first.Weight = float32(cmp.Compare(first.Weight, 0))
		if changed != st.changed || tot != st.tot || first != st.first {
			t.Errorf("%s: changed %v totals %+v counts %+v, want %v %+v %+v", st.name, changed, tot, first, st.changed, st.tot, st.first)
		}
	}
	// The database agrees with the mirror once reloaded.
	s := c.store.(*SQLiteStore)
	s.mir.drop()
	if tot, first := counts(); tot != (Totals{}) || first != (Counts{}) {
		t.Errorf("after reload: totals %+v counts %+v, want zero", tot, first)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Models) != 1 || st.Models[0].Features != 0 {
		t.Errorf("stats %+v, want one empty model", st)
	}
}

func TestLearnRawAndUnlearn(t *testing.T) {
	c := newTestClassifier(t, DefaultConfig())
	ctx := context.Background()
	spam, ham := synthCorpus(3, 2, 1, 500)
	for _, s := range spam {
		if err := c.LearnSpam(ctx, "", s.Raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.LearnHam(ctx, "", ham[0].Raw); err != nil {
		t.Fatal(err)
	}
	if err := c.Unlearn(ctx, "", spam[0].Raw); err != nil {
		t.Fatal(err)
	}
	tot, err := c.store.Totals(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if tot != (Totals{Spam: 1, Ham: 1, Logistic: 2}) {
		t.Errorf("totals %+v, want 1 spam 1 ham", tot)
	}
}

func TestPerUserModel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MinSpam, cfg.MinHam = 5, 5
	c := newTestClassifier(t, cfg)
	ctx := context.Background()
	spam, ham := synthCorpus(11, 20, 20, 800)
	// The global model learns spam as spam and ham as ham.
	if _, err := c.LearnBatch(ctx, "", spam[:10], ham[:10]); err != nil {
		t.Fatal(err)
	}
	probe := filters.ParseMessage(spam[15].Raw)
	r, err := c.Classify(ctx, "bob@example.com", probe)
	if err != nil {
		t.Fatal(err)
	}
	if r.User != "" || r.Probability < 0.9 {
		t.Fatalf("untrained user: %+v, want the global model's spam verdict", r)
	}
	// bob likes the "spam": he learns it as ham, and some ham as spam.
	if n, err := c.LearnBatch(ctx, "Bob@Example.com ", ham[10:15], spam[10:15]); err != nil || n != 10 {
		t.Fatalf("learn as bob: %d, %v", n, err)
	}
	r, err = c.Classify(ctx, "bob@example.com", probe)
	if err != nil {
		t.Fatal(err)
	}
	if r.User != "bob@example.com" || r.Probability > 0.1 {
		t.Errorf("trained user: %+v, want bob's model's ham verdict", r)
	}
	// Others still get the global model, which also learned bob's mail.
	r, err = c.Classify(ctx, "carol@example.com", probe)
	if err != nil {
		t.Fatal(err)
	}
	if r.User != "" {
		t.Errorf("other user: model %q, want global", r.User)
	}
	if tot, _ := c.store.Totals(ctx, ""); tot != (Totals{Spam: 15, Ham: 15, Logistic: 30}) {
		t.Errorf("global totals %+v, want 15/15", tot)
	}
}

func TestAutolearn(t *testing.T) {
	spam, _ := synthCorpus(4, 1, 0, 500)
	msg := filters.ParseMessage(spam[0].Raw)
	for _, tc := range []struct {
		name  string
		on    bool
		score float64
		syms  []filters.Symbol
		want  Class
	}{
		{"off", false, 100, nil, Forget},
		{"spam", true, 12, nil, Spam},
		{"in between", true, 5, nil, Forget},
		{"ham", true, -1, nil, Ham},
		{"bayes's own score does not count", true, 13, []filters.Symbol{{Name: SymSpam, Score: 5}}, Forget},
		{"nor does its ham score", true, -3.5, []filters.Symbol{{Name: SymHam, Score: -3}}, Forget},
	} {
		cfg := DefaultConfig()
		cfg.Autolearn = tc.on
		c := newTestClassifier(t, cfg)
		got, err := c.Autolearn(context.Background(), msg, tc.score, tc.syms)
		if err != nil {
			t.Fatal(err)
		}
		tot, _ := c.store.Totals(context.Background(), "")
		wantTot := Totals{}
		switch tc.want {
		case Spam:
			wantTot.Spam, wantTot.Logistic = 1, 1
		case Ham:
			wantTot.Ham, wantTot.Logistic = 1, 1
		}
		if got != tc.want || tot != wantTot {
			t.Errorf("%s: learned %v totals %+v, want %v %+v", tc.name, got, tot, tc.want, wantTot)
		}
	}
}

func TestPrune(t *testing.T) {
	c := newTestClassifier(t, DefaultConfig())
	ctx := context.Background()
	s := c.store.(*SQLiteStore)
	old := time.Now().Add(-60 * 24 * time.Hour)
	mk := func(class Class, at time.Time, id byte, feats ...uint64) Event {
		return Event{Digest: Digest{id}, Features: feats, Class: class, Time: at}
	}
	// Features 1-3: once, long ago; 4-5: once, recently; 6: twice, long ago.
	events := []Event{
		mk(Spam, old, 1, 1, 2, 3, 6),
		mk(Ham, time.Now(), 2, 4, 5),
		mk(Ham, old, 3, 6),
	}
	if _, err := s.Train(ctx, events); err != nil {
		t.Fatal(err)
	}
	mirrored, err := s.mir.loaded(ctx, s, "")
	if err != nil || mirrored == nil {
		t.Fatalf("model: %v %v", mirrored, err)
	}
	for _, tc := range []struct {
		max, removed int
		left         []uint64
	}{
		{10, 0, []uint64{1, 2, 3, 4, 5, 6}},
		{5, 3, []uint64{4, 5, 6}}, // the old singletons go first
		{2, 2, []uint64{6}},       // then the rarest, oldest, down to 90 % of 2
	} {
		n, err := s.Prune(ctx, tc.max, time.Now().Add(-30*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		out := make([]Counts, 6)
		if err := s.Lookup(ctx, "", []uint64{1, 2, 3, 4, 5, 6}, out); err != nil {
			t.Fatal(err)
		}
		var left []uint64
		for i, c := range out {
			if c != (Counts{}) {
				left = append(left, uint64(i+1))
			}
		}
		if n != tc.removed || !equalU64(left, tc.left) {
			t.Errorf("prune to %d: removed %d, left %v; want %d, %v", tc.max, n, left, tc.removed, tc.left)
		}
		// The mirror was patched, not dropped (a reload of a large
		// model stalls every classification behind it), and agrees with
		// a store that reads the database afresh.
		s.mir.mu.RLock()
		same := s.mir.models[0] == mirrored
		s.mir.mu.RUnlock()
		if !same {
			t.Errorf("prune to %d: the mirrored model was reloaded", tc.max)
		}
		fresh, err := OpenSQLite(s.path)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]Counts, 6)
		err = fresh.Lookup(ctx, "", []uint64{1, 2, 3, 4, 5, 6}, want)
		fresh.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out, want) {
			t.Errorf("prune to %d: mirror %+v, database %+v", tc.max, out, want)
		}
	}
	// Learned records are bounded to a quarter of the rows (at least
	// one; the three were learned in one batch, at one time).
	var n int
	if err := s.wdb.QueryRow(`SELECT count(*) FROM learned`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("learned records after pruning to 2 rows: %d, want 1", n)
	}
}

// A batch that forgets a message in a model that does not exist yet and
// then learns one into it learns the second (the model's absence was
// remembered for the batch, and the second event skipped).
func TestTrainForgetThenLearn(t *testing.T) {
	c := newTestClassifier(t, DefaultConfig())
	ctx := context.Background()
	s := c.store.(*SQLiteStore)
	n, err := s.Train(ctx, []Event{
		{User: "new@example.org", Digest: Digest{1}, Features: []uint64{7}, Class: Forget, Time: time.Now()},
		{User: "new@example.org", Digest: Digest{2}, Features: []uint64{7}, Class: Spam, Time: time.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	tot, err := s.Totals(ctx, "new@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || tot.Spam != 1 {
		t.Errorf("changed %d, totals %+v; want 1 change and 1 spam", n, tot)
	}
}

// The mirror keeps a model read whole only when the snapshot is not older
// than what it already reflects, and patches only from the generation
// before.
func TestMirrorGenerations(t *testing.T) {
	m := &mirror{gen: 5, models: map[int64]*memModel{1: {}}}
	stale, fresh := &memModel{}, &memModel{}
	m.keep(2, stale, 4) // read before a training of gen 5 was applied
	if m.models[2] != nil || m.gen != 5 || m.models[1] == nil {
		t.Errorf("older snapshot: models %v gen %d", m.models, m.gen)
	}
	m.keep(2, fresh, 6) // read after another writer's gen 6
	if m.models[2] != fresh || m.models[1] != nil || m.gen != 6 {
		t.Errorf("newer snapshot: models %v gen %d", m.models, m.gen)
	}
	if m.advance(6) || m.models[2] != fresh {
		t.Error("gen 6 applied twice, or the model reading it dropped")
	}
	if !m.advance(7) || m.gen != 7 {
		t.Error("gen 7 after 6 not patched")
	}
	if m.advance(9) || len(m.models) != 0 || m.gen != 9 {
		t.Errorf("gen 9 after 7: models %v gen %d, want dropped at 9", m.models, m.gen)
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A second store on the same file (another process: `moat bayes train`
// beside `moat serve`) sees the first one's training once its mirror is
// due for a check.
func TestMirrorSeesOtherWriter(t *testing.T) {
	c := newTestClassifier(t, DefaultConfig())
	ctx := context.Background()
	a := c.store.(*SQLiteStore)
	b, err := OpenSQLite(a.path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	feats := []uint64{42}
	out := make([]Counts, 1)
	if err := b.Lookup(ctx, "", feats, out); err != nil || out[0] != (Counts{}) {
		t.Fatalf("before: %+v %v", out[0], err)
	}
	if _, err := a.Train(ctx, []Event{{Digest: Digest{9}, Features: feats, Class: Spam, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	b.mir.mu.Lock()
	b.mir.checked = time.Time{} // the second has passed
	b.mir.mu.Unlock()
	if err := b.Lookup(ctx, "", feats, out); err != nil || out[0] != (Counts{Spam: 1}) {
		t.Errorf("after: %+v %v, want 1 spam", out[0], err)
	}
	// The writer's own mirror was patched in place.
	if err := a.Lookup(ctx, "", feats, out); err != nil || out[0] != (Counts{Spam: 1}) {
		t.Errorf("writer: %+v %v, want 1 spam", out[0], err)
	}
}

func TestFilterCheck(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PerUser = true
	c := trainedClassifier(t, cfg, 200, 200)
	f := NewFilter(c)
	if f.Name() != "bayes" || f.Stage() != filters.StageData || len(f.Symbols()) != 4 {
		t.Fatalf("filter identity: %s %v %v", f.Name(), f.Stage(), f.Symbols())
	}
	if _, err := f.Check(context.Background(), &filters.Input{}); err == nil {
		t.Error("no message: want an error")
	}
	spam, _ := synthCorpus(77, 1, 0, 1200)
	res, err := f.Check(context.Background(), &filters.Input{
		Msg: filters.ParseMessage(spam[0].Raw),
		Env: &filters.Envelope{Rcpts: []string{"Bob@Example.com"}},
	})
	syms := res.Symbols
	if err != nil {
		t.Fatal(err)
	}
	if len(syms) != 1 || syms[0].Name != SymSpam || !strings.Contains(syms[0].Reason, "global model") ||
		!strings.Contains(syms[0].Reason, "counts 1.0000, weights 0.9") {
		t.Errorf("symbols %v, want BAYES_SPAM from the global model, saying what both opinions were", syms)
	}
}

// TestLangUnfamiliar: a message in a language the learned ham never was
// in gets LANG_UNFAMILIAR; one in the ham's language does not, and the
// language feature does not move the probability (it is counted, not
// weighed).
func TestLangUnfamiliar(t *testing.T) {
	c := trainedClassifier(t, DefaultConfig(), 200, 200)
	ctx := context.Background()
	judge := func(body string) ([]filters.Symbol, Result) {
		raw := "From: <a@example.net>\r\nTo: <b@example.com>\r\nSubject: hallo\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
		r, err := c.Classify(ctx, "", filters.ParseMessage([]byte(raw)))
		if err != nil {
			t.Fatal(err)
		}
		return c.Symbols(r), r
	}
	de := strings.Repeat("Vielen Dank für die Nachricht. Wir haben das Angebot geprüft und es ist nicht mit dem Plan vereinbar, den wir auch für die nächste Woche haben. ", 4)
	syms, r := judge(de)
	var lang *filters.Symbol
	for i := range syms {
		if syms[i].Name == SymLangUnfamiliar {
			lang = &syms[i]
		}
	}
	if lang == nil || lang.Score != 2 || !strings.Contains(lang.Reason, "text in de: 0 of the global model's 200 ham of a known language") {
		t.Fatalf("German after English training: symbols %v (language %q, %d of %d ham), want LANG_UNFAMILIAR 2", syms, r.Language, r.LanguageHam, r.HamWithLanguage)
	}
	off := DefaultConfig()
	off.FamiliarLanguageShare = 0
	d, err := c.WithConfig(off)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Symbols(r) {
		if s.Name == SymLangUnfamiliar {
			t.Errorf("familiar_language_share = 0 still gave %v", s)
		}
	}
	_, ham := synthCorpus(7, 0, 1, 1500)
	syms, r = judge(string(ham[0].Raw[strings.Index(string(ham[0].Raw), "\r\n\r\n")+4:]))
	for _, s := range syms {
		if s.Name == SymLangUnfamiliar {
			t.Errorf("a message like the learned ham (language %q, %d of %d ham) got %v", r.Language, r.LanguageHam, r.HamWithLanguage, s)
		}
	}
	if r.Language == "" || r.LanguageHam < 100 {
		t.Errorf("the learned ham's language: %q in %d of %d ham, want it in most", r.Language, r.LanguageHam, r.HamWithLanguage)
	}

	// A model learned before languages were counted knows none: it does
	// not call every language new.
	old := newTestClassifier(t, DefaultConfig())
	spam2, ham2 := synthCorpus(7, 200, 200, 1500)
	var evs []Event
	for i, s := range append(spam2, ham2...) {
		m := filters.ParseMessage(s.Raw)
		feats := slices.DeleteFunc(Features(m, m.Content()), func(h uint64) bool {
			_, l := langHashSet[h]
			return l
		})
		class := Spam
		if i >= len(spam2) {
			class = Ham
		}
		evs = append(evs, Event{Digest: MessageDigest(m), Features: feats, Class: class, Time: time.Now()})
	}
	if _, err := old.store.Train(ctx, evs); err != nil {
		t.Fatal(err)
	}
	or, err := old.Classify(ctx, "", filters.ParseMessage([]byte("Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+de)))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range old.Symbols(or) {
		if s.Name == SymLangUnfamiliar {
			t.Errorf("a model without language counts (%d ham of a known language) gave %v", or.HamWithLanguage, s)
		}
	}
	if !or.Trained || or.HamWithLanguage != 0 {
		t.Errorf("old model: trained %v, %d ham of a known language, want trained and 0", or.Trained, or.HamWithLanguage)
	}

	// Counted, not weighed: the same features without the language give
	// the same probability.
	msg := filters.ParseMessage([]byte("Subject: x\r\n\r\n" + de))
	feats := Features(msg, msg.Content())
	with, err := c.ClassifyFeatures(ctx, "", feats)
	if err != nil {
		t.Fatal(err)
	}
	without, err := c.ClassifyFeatures(ctx, "", slices.DeleteFunc(slices.Clone(feats), func(h uint64) bool {
		_, l := langHashSet[h]
		return l
	}))
	if without.Features != with.Features-1 {
		t.Fatalf("the message has %d features, %d without its language: want one fewer", with.Features, without.Features)
	}
	if err != nil || with.Probability != without.Probability {
		t.Errorf("probability %v with the language feature, %v without (%v)", with.Probability, without.Probability, err)
	}
}

func TestWithConfig(t *testing.T) {
	c := trainedClassifier(t, DefaultConfig(), 200, 200)
	cfg := DefaultConfig()
	cfg.SpamBands = []Band{{Probability: 0.6, Score: 9}}
	d, err := c.WithConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d.Close() != nil || d.owned {
		t.Fatal("the reconfigured classifier must not own the store")
	}
	spam, _ := synthCorpus(8, 1, 0, 1000)
	r, err := d.Classify(context.Background(), "", filters.ParseMessage(spam[0].Raw))
	if err != nil {
		t.Fatal(err)
	}
	if syms := d.Symbols(r); len(syms) != 1 || syms[0].Score != 9 {
		t.Errorf("symbols %v, want the new band's score 9", syms)
	}
	cfg.MinStrength = 0.7
	if _, err := c.WithConfig(cfg); err == nil {
		t.Error("invalid config: want an error")
	}
}

func TestStrongest(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct{ n, k int }{{10, 3}, {1000, 100}, {5000, 150}, {200, 199}} {
		p := make([]float64, tc.n)
		for i := range p {
			p[i] = r.Float64()
		}
		if tc.n == 1000 {
			for i := range p[:500] {
				p[i] = 0.9 // many ties at the cut
			}
		}
		dist := func(f float64) float64 { return math.Abs(f - 0.5) }
		want := slices.Clone(p)
		slices.SortFunc(want, func(a, b float64) int { return cmp.Compare(dist(b), dist(a)) })
		got := strongest(slices.Clone(p), tc.k)
		if len(got) != tc.k {
			t.Fatalf("n=%d k=%d: %d results", tc.n, tc.k, len(got))
		}
		slices.SortFunc(got, func(a, b float64) int { return cmp.Compare(dist(b), dist(a)) })
		for i := range got {
			if dist(got[i]) != dist(want[i]) {
				t.Errorf("n=%d k=%d: result %d at distance %v, want %v", tc.n, tc.k, i, dist(got[i]), dist(want[i]))
				break
			}
		}
	}
}

// TestWarm: Warm reads the global model into a fresh store's mirror, so
// that the first message finds it there, and returns its totals.
func TestWarm(t *testing.T) {
	trained := trainedClassifier(t, DefaultConfig(), 220, 230)
	b, err := OpenSQLite(trained.store.(*SQLiteStore).path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := NewClassifier(DefaultConfig(), b)
	if err != nil {
		t.Fatal(err)
	}
	b.mir.mu.RLock()
	before := len(b.mir.models)
	b.mir.mu.RUnlock()
	if before != 0 {
		t.Fatalf("a fresh store mirrors %d models before Warm", before)
	}
	tot, err := c.Warm(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tot.Spam != 220 || tot.Ham != 230 {
		t.Errorf("Warm totals %+v, want 220 spam and 230 ham", tot)
	}
	b.mir.mu.RLock()
	after := len(b.mir.models)
	b.mir.mu.RUnlock()
	if after != 1 {
		t.Errorf("after Warm the mirror holds %d models, want the global one", after)
	}
}
