package jskv

import (
	"strings"
	"sync"
)

// readCache holds subjects' committed states as this gateway last read or wrote them, so that
// an Update reads a key its gateway wrote a moment ago without a round trip to the leader.
// Nothing in it is trusted: every subject an Update takes from it is validated at commit (its
// expected sequence or a read marker), a conflict drops what the transaction took from it,
// and View and validation read the leader. Bucket markers are never cached: a marker seen
// present is not validated (see bucket.Bucket), so a stale one would send writes into a
// deleted bucket's generation for good.
type readCache struct {
	mu  sync.Mutex
	max int
	m   map[string]entry
}

func newReadCache(max int) *readCache {
	return &readCache{max: max, m: map[string]entry{}}
}

func (c *readCache) get(subj string) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[subj]
	return e, ok
}

// put records e unless the cache holds a later state of subj: answers and commits of
// concurrent transactions arrive in any order, sequences do not go back.
func (c *readCache) put(subj string, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[subj]; ok && old.seq > e.seq {
		return
	}
	if _, ok := c.m[subj]; !ok && len(c.m) >= c.max {
		// Full: forget an eighth, whichever the map yields first. A cache miss costs one
		// read; bookkeeping for a true LRU would cost every hit.
		n := c.max / 8
		for k := range c.m {
			delete(c.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.m[subj] = e
}

func (c *readCache) drop(subjs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range subjs {
		delete(c.m, s)
	}
}

// cacheable: everything but bucket markers, unless Options.CacheBucketMarkers.
func (s *Store) cacheable(subj string) bool {
	return s.cache != nil && (s.o.CacheBucketMarkers || !strings.HasPrefix(subj, s.o.Prefix+".b."))
}
