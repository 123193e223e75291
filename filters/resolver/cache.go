package resolver

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// key identifies a cached answer: a normalised name and a query type.
type key struct {
	name  string
	qtype uint16
}

// answer is the outcome of a query that can be cached: the records that
// answer the question (CNAMEs already followed), or, for a negative
// answer, its cause (ErrNXDomain or ErrNoData).
type answer struct {
	rrs []dns.RR
	neg error
}

// cacheEntry is one element of the LRU list.
type cacheEntry struct {
	key     key
	ans     answer
	expires time.Time
}

// cache is a bounded LRU of answers that honours their TTLs. It is safe
// for concurrent use. The records it holds are shared read-only.
type cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used; values are *cacheEntry
	items map[key]*list.Element
}

// newCache returns a cache of at most max entries.
func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), items: make(map[key]*list.Element, min(max, 1024))}
}

// get returns the answer stored under k if it has not expired at now.
func (c *cache) get(k key, now time.Time) (answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return answer{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, k)
		return answer{}, false
	}
	c.order.MoveToFront(el)
	return e.ans, true
}

// put stores a under k until expires, evicting the least recently used
// entry when the cache is full.
func (c *cache) put(k key, a answer, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*cacheEntry)
		e.ans, e.expires = a, expires
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
	c.items[k] = c.order.PushFront(&cacheEntry{key: k, ans: a, expires: expires})
}

// len returns the number of entries, expired ones included.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
