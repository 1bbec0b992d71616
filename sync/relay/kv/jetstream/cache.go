package jskv

import (
	"bytes"
	"strings"
	"sync"
)

// readCache holds subjects' committed states as this gateway's Updates last read or wrote
// them, so that an Update reads a key its gateway wrote a moment ago without a round trip to
// the leader. It is bounded by entries (Options.CacheEntries) and by bytes (defaultCacheBytes).
// Nothing in it is trusted: every subject an Update takes from it is validated at commit (its
// expected sequence or a read marker), a conflict drops what the transaction took from it,
// and View and validation read the leader. A cursor's values, which rest on their bucket's
// version instead of being validated, are taken from it only when marked current at that
// version (entry.ver, tx.scanState), and so are a steady bucket's keys in a CurrentView
// (Options.SteadyRoots, steady.go), which validates nothing. Bucket markers are never cached: a marker seen
// present is not validated (see bucket.Bucket), so a stale one would send writes into a
// deleted bucket's generation for good.
type readCache struct {
	mu       sync.Mutex
	max      int // entries
	maxBytes int // what the entries hold, as entrySize counts it
	bytes    int
	m        map[string]entry
}

// defaultCacheBytes bounds a gateway's read cache by memory, whatever its entry bound: at
// 100,000 entries alone it grew with the terminals to some 100 MB a gateway, about 10 KiB a
// connected terminal (docs/SCALE.md, memory per idle terminal). 16 MiB holds the working set
// of a gateway's busy terminals (their records, positions and accounts) many times over.
const defaultCacheBytes = 16 << 20

// entryOverhead is what an entry costs beyond its subject's and value's bytes: its map slot
// (string header, entry) and the allocations' rounding, about.
const entryOverhead = 96

func entrySize(subj string, e entry) int { return len(subj) + cap(e.val) + entryOverhead }

func newReadCache(max int) *readCache {
	return &readCache{max: max, maxBytes: defaultCacheBytes, m: map[string]entry{}}
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
	old, had := c.m[subj]
	if had && old.seq > e.seq {
		return
	}
	if had && old.seq == e.seq && e.ver == 0 {
		// The same state read again (a prefetch, a replica's answer) knows nothing of the
		// version it is current at; what the cache knew stays true of it (tx.scanState).
		e.ver = old.ver
	}
	if len(subj)+len(e.val)+entryOverhead > c.maxBytes/64 {
		// A value this large would push out many small ones: it is read from the leader.
		c.remove(subj)
		return
	}
	// Its own copy, made once the value is known to be kept: a value read from a replica is
	// a slice of its reply's buffer, which holds the reply's headers (subject, sequence,
	// time, the message's own) before the value, often more bytes than the value and counted
	// nowhere (docs/SCALE.md, "10,000 idle kiosks, stop 44").
	e.val = bytes.Clone(e.val)
	size := entrySize(subj, e)
	if had {
		c.bytes -= entrySize(subj, old)
	}
	// Full: forget an eighth of the entries, or of the bytes, whichever bound was reached,
	// in the order the map yields them. A cache miss costs one read; bookkeeping for a true
	// LRU would cost every hit.
	n := 0
	if !had && len(c.m) >= c.max {
		n = max(c.max/8, 1)
	}
	if target := c.maxBytes - c.maxBytes/8 - size; n > 0 || c.bytes+size > c.maxBytes {
		for k, v := range c.m {
			if n <= 0 && c.bytes <= target {
				break
			}
			if k == subj {
				continue
			}
			delete(c.m, k)
			c.bytes -= entrySize(k, v)
			n--
		}
	}
	c.m[subj] = e
	c.bytes += size
}

// remove forgets subj; c.mu is held.
func (c *readCache) remove(subj string) {
	if e, ok := c.m[subj]; ok {
		delete(c.m, subj)
		c.bytes -= entrySize(subj, e)
	}
}

func (c *readCache) drop(subjs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range subjs {
		c.remove(s)
	}
}

// DropCachedMarkers implements kv.MarkerCache: every bucket marker in the read cache is
// forgotten, and the next Update reads each from the stream.
func (s *Store) DropCachedMarkers() {
	if s.cache == nil {
		return
	}
	prefix := s.o.Prefix + ".b."
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	for subj := range s.cache.m {
		if strings.HasPrefix(subj, prefix) {
			s.cache.remove(subj)
		}
	}
}

// cacheable: everything but bucket markers, unless Options.CacheBucketMarkers.
func (s *Store) cacheable(subj string) bool {
	return s.cache != nil && (s.o.CacheBucketMarkers || !s.isMarker(subj))
}

// isMarker reports whether subj is a bucket's marker (P.b.<gen>.<name>).
func (s *Store) isMarker(subj string) bool { return strings.HasPrefix(subj, s.o.Prefix+".b.") }
