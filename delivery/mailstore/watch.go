package mailstore

import "sync"

// watchers fans change notices out to the sessions that watch a mailbox.
type watchers struct {
	mu   sync.Mutex
	byID map[int64]map[chan struct{}]struct{}
}

func (w *watchers) init() { w.byID = make(map[int64]map[chan struct{}]struct{}) }

func (w *watchers) notify(mailboxID int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.byID[mailboxID] {
		select {
		case ch <- struct{}{}:
		default: // a notice is already pending; one is enough
		}
	}
}

// Watch returns a channel that receives a value after every committed change
// to the mailbox (new, expunged or re-flagged messages). Notices coalesce:
// the receiver re-reads the mailbox state, it does not count notices.
// Call stop when done.
func (s *Store) Watch(mailboxID int64) (changes <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	w := &s.watch
	w.mu.Lock()
	set := w.byID[mailboxID]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		w.byID[mailboxID] = set
	}
	set[ch] = struct{}{}
	w.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.byID[mailboxID], ch)
			if len(w.byID[mailboxID]) == 0 {
				delete(w.byID, mailboxID)
			}
			w.mu.Unlock()
		})
	}
}
