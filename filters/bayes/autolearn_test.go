package bayes

import (
	"context"
	"sync"
	"testing"

	"github.com/moatmail/moat/filters"
)

// TestAutolearner: messages learn in the background, at most inFlight at
// once (the rest are skipped, never queued), not at all without a
// classifier, and Close waits for those under way.
func TestAutolearner(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Autolearn = true
	c := newTestClassifier(t, cfg)
	spam, _ := synthCorpus(5, 8, 0, 500)
	var mu sync.Mutex
	learned := map[Class]int{}
	a := NewAutolearner(c, 1, nil, func(cl Class) {
		mu.Lock()
		learned[cl]++
		mu.Unlock()
	})
	// Hold the only slot, so that every Learn now is skipped.
	a.slots <- struct{}{}
	for _, s := range spam {
		a.Learn(filters.ParseMessage(s.Raw), 50, nil)
	}
	<-a.slots
	a.Learn(filters.ParseMessage(spam[0].Raw), 50, nil)
	a.SetClassifier(nil)
	a.Learn(filters.ParseMessage(spam[1].Raw), 50, nil)
	a.SetClassifier(c)
	a.Close()
	a.Learn(filters.ParseMessage(spam[2].Raw), 50, nil) // after Close: nothing

	tot, err := c.store.Totals(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if tot.Spam != 1 || learned[Spam] != 1 || len(learned) != 1 {
		t.Errorf("learned %v, totals %+v; want exactly one spam (busy, no classifier and closed skip)", learned, tot)
	}
}
