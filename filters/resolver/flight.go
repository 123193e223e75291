package resolver

import (
	"context"
	"sync"
)

// flight coalesces concurrent identical queries: while one query for a key
// is on the wire, later callers wait for its outcome instead of sending
// their own. It is a small singleflight.
type flight struct {
	mu    sync.Mutex
	calls map[key]*call
}

// call is one query in flight.
type call struct {
	done chan struct{} // closed when ans and err are set
	ans  answer
	err  error
}

// do runs fn once per key at a time and gives its outcome to every caller
// that asked for that key meanwhile. fn runs on its own goroutine, under
// its own deadline, so that a caller whose ctx ends can leave without
// cancelling the query for the others; do then returns ctx's error.
func (f *flight) do(ctx context.Context, k key, fn func() (answer, error)) (answer, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[key]*call)
	}
	c, ok := f.calls[k]
	if !ok {
		c = &call{done: make(chan struct{})}
		f.calls[k] = c
		go func() {
			c.ans, c.err = fn()
			f.mu.Lock()
			delete(f.calls, k)
			f.mu.Unlock()
			close(c.done)
		}()
	}
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.ans, c.err
	case <-ctx.Done():
		return answer{}, ctx.Err()
	}
}
