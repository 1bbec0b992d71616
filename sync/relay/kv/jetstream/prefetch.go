package jskv

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Reads issued together (issue 16, docs/SCALE.md "Isolation"). A transaction reads each
// subject from the stream leader when fn first asks for it, one round trip after another; a
// relay group commit asked for some 300-460 that way, which is what bounded it. Prefetch (and
// a re-run after a conflict) fetches subjects fn is about to read several at a time instead,
// into tx.pre; fetch moves a subject from there into seen when fn reads it, and only then is
// it one of the transaction's reads, validated at commit like any other. So nothing about
// isolation changes: a prefetched read is a leader read made earlier, and a commit is
// checked against the state at commit, whenever its reads were made. What fn never reads is
// never validated, so a hint that was wrong costs a fetch and no conflict.

// prefetchWorkers bounds the reads one prefetch has in flight: enough to hide the round
// trip's latency behind the others, few enough that two gateways prefetching at once do not
// fill the server's JetStream API queue.
const prefetchWorkers = 32

// maxRerunPrefetch bounds the subjects a re-run fetches ahead from the run that conflicted.
const maxRerunPrefetch = 4096

// Prefetch implements kv.Prefetcher. The buckets of the keys' paths are looked up level by
// level, the markers of one level fetched together (from the cache where Updates take
// markers from it), then the keys of the buckets found. A bucket found absent is not
// recorded as read: fn's own lookup of it records that, if fn depends on it.
func (t *tx) Prefetch(keys []kv.Key) {
	if t.err != nil || len(keys) == 0 || t.whole != nil {
		return
	}
	depth := 0
	for _, k := range keys {
		depth = max(depth, len(k.Path))
	}
	// gens: each path's generation, "" for a bucket that is not there (or not known).
	gens := map[string]string{"": rootGen}
	for d := 1; d <= depth; d++ {
		need := map[string]string{} // path -> its marker's subject
		for _, k := range keys {
			if len(k.Path) < d || len(k.Path[d-1]) == 0 {
				continue
			}
			parent := gens[pathKey(k.Path[:d-1])]
			p := pathKey(k.Path[:d])
			if _, done := gens[p]; done || parent == "" {
				continue
			}
			need[p] = t.s.subj('b', parent, tok(k.Path[d-1]))
		}
		markers := make([]string, 0, len(need))
		for _, m := range need {
			markers = append(markers, m)
		}
		t.load(markers, false)
		for p, m := range need {
			gens[p] = ""
			if e, ok := t.peek(m); ok && e.present {
				gens[p] = string(e.val)
			}
		}
	}
	t.noteSteady(gens)
	subjs := make([]string, 0, len(keys))
	for _, k := range keys {
		if len(k.Path) == 0 || len(k.Key) == 0 {
			continue
		}
		if gen := gens[pathKey(k.Path)]; gen != "" {
			subjs = append(subjs, t.s.subj('k', gen, tok(k.Key)))
		}
	}
	t.load(subjs, false)
}

// pathKey is a bucket path as one string: the names' tokens joined by dots (tokens hold none).
func pathKey(path [][]byte) string {
	var sb strings.Builder
	for i, name := range path {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(tok(name))
	}
	return sb.String()
}

// peek is what the transaction already knows of subj without a round trip: its own write,
// what it read, what was prefetched, or (an Update, a cacheable subject) the gateway's cache.
// It takes nothing from the cache: a read that does counts as a cache hit then.
func (t *tx) peek(subj string) (entry, bool) {
	if w, ok := t.writes[subj]; ok {
		return entry{val: w.val, present: !w.del}, true
	}
	if e, ok := t.seen[subj]; ok {
		return e, true
	}
	if e, ok := t.pre[subj]; ok {
		return e, true
	}
	if (t.writable || t.current && t.s.isMarker(subj)) && t.s.cacheable(subj) {
		if e, ok := t.s.cache.get(subj); ok {
			return e, true
		}
	}
	return entry{}, false
}

// load fetches those of subjs the transaction does not know yet (peek), or with fresh every
// one it has not read or written yet, cache or not, and keeps the answers in t.pre (and, for
// an Update, in the cache, as fetch does). Fresh reads (a second run again's, store.run) go
// to the leader; others of an Update to a replica where the rule of replica.go allows. Leader
// reads stop at the first that fails: the read fn then makes fails as reads do, and a
// cluster that does not answer is not asked hundreds of times over.
func (t *tx) load(subjs []string, fresh bool) {
	if t.err != nil || t.whole != nil { // a whole copy answers every read itself
		return
	}
	todo := make([]string, 0, len(subjs))
	dup := make(map[string]struct{}, len(subjs))
	for _, subj := range subjs {
		if _, ok := dup[subj]; ok {
			continue
		}
		dup[subj] = struct{}{}
		if fresh {
			_, written := t.writes[subj]
			_, read := t.seen[subj]
			_, pre := t.pre[subj]
			if !written && !read && !pre {
				todo = append(todo, subj)
			}
		} else if _, known := t.peek(subj); !known {
			todo = append(todo, subj)
		}
	}
	if len(todo) == 0 {
		return
	}
	if !fresh {
		// Hints are read as fn would read them: an Update's from a replica (replica.go).
		var replica []string
		todo, replica = t.splitReplica(todo)
		if len(t.steady) > 0 {
			replica = t.readSteady(replica)
		}
		if len(replica) > 0 {
			got, missed := t.readReplicas(replica, "", 0)
			t.fromReplica = t.fromReplica || len(got) > 0
			t.keep(got)
			todo = append(todo, missed...)
		}
	}
	t.loadLeader(todo)
}

// loadScan reads ahead the values a cursor in bucket gen is about to land on, none of them
// from the cache (scanState): from a replica, in one moment of it where the bucket's version
// is the one the transaction read, or else from the leader (replica.go).
//
// A View's too: it read the version from the leader and reads it there again to validate, so
// a replica's moment with that same version holds the bucket's values as they were all that
// while (every commit that writes a key rewrites the version). A drain walking the tombstones
// of a queue's drained keys (fanouts_due) read them from the leader one request a key.
func (t *tx) loadScan(subjs []string, gen string) {
	if t.err != nil || len(subjs) == 0 || t.whole != nil {
		return
	}
	ver := t.s.subj('v', gen, "")
	v, read := t.seen[ver]
	switch {
	case t.stale:
		ver = "" // any replica's values will do, at any version
	case !read || t.s.o.LeaderReadsOnly:
		t.load(subjs, true)
		return
	}
	todo := make([]string, 0, len(subjs))
	for _, subj := range subjs {
		_, written := t.writes[subj]
		_, seen := t.seen[subj]
		_, pre := t.pre[subj]
		if !written && !seen && !pre {
			todo = append(todo, subj)
		}
	}
	if len(todo) == 0 {
		return
	}
	got, missed := t.readReplicas(todo, ver, v.seq)
	t.keep(got)
	t.loadLeader(missed)
}

// splitReplica parts subjs into those this transaction reads from the leader and those it
// may read from a replica.
func (t *tx) splitReplica(subjs []string) (leader, replica []string) {
	leader = subjs[:0:0]
	for _, subj := range subjs {
		if t.onReplica(subj) {
			replica = append(replica, subj)
		} else {
			leader = append(leader, subj)
		}
	}
	return leader, replica
}

// keep puts what was fetched ahead into t.pre, and an Update's into the cache, as fetch does.
func (t *tx) keep(got map[string]entry) {
	if len(got) == 0 {
		return
	}
	if t.pre == nil {
		t.pre = make(map[string]entry, len(got))
	}
	for subj, e := range got {
		t.pre[subj] = e
		if (t.writable || t.current && t.s.isMarker(subj)) && t.s.cacheable(subj) {
			t.s.cache.put(subj, e)
		}
	}
}

// loadLeader fetches todo from the leader, prefetchWorkers at a time, into t.pre.
func (t *tx) loadLeader(todo []string) {
	if t.err != nil || len(todo) == 0 {
		return
	}
	got := make([]entry, len(todo))
	ok := make([]bool, len(todo))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(prefetchWorkers, len(todo)) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(todo) {
					return
				}
				e, err := t.s.fetch(t.ctx, todo[i])
				if err != nil {
					failed.Store(true)
					return
				}
				got[i], ok[i] = e, true
				t.s.prefetched.Add(1)
			}
		})
	}
	wg.Wait()
	kept := make(map[string]entry, len(todo))
	for i, subj := range todo {
		if ok[i] {
			kept[subj] = got[i]
		}
	}
	t.keep(kept)
}

// readSubjects is what the transaction read (at most maxRerunPrefetch of it): a run again
// after a conflict reads mostly the same, and fetches it together first.
func (t *tx) readSubjects() []string {
	out := make([]string, 0, min(len(t.seen), maxRerunPrefetch))
	for subj := range t.seen {
		if len(out) == maxRerunPrefetch {
			break
		}
		if !t.bornSubj(subj) { // a bucket made by that run: the next makes another
			out = append(out, subj)
		}
	}
	return out
}

// afterVersion is called when a cursor has read the version of bucket gen. The values a
// cursor lands on are not validated one by one: they rest on the version, read before them
// and validated at commit (or by View's second read), so that no commit changed the bucket
// between the version's read and theirs. A value fetched together with the version (a re-run's
// fetch) or before it (a Prefetch before the cursor) may come from before a commit the version
// already shows, so the first time a transaction reads a bucket's version it forgets what it
// prefetched in that bucket; a cursor's reads ahead, made after, stand.
func (t *tx) afterVersion(gen string) {
	if _, done := t.versioned[gen]; done {
		return
	}
	if t.versioned == nil {
		t.versioned = map[string]struct{}{}
	}
	t.versioned[gen] = struct{}{}
	if len(t.pre) == 0 {
		return
	}
	keys, nested := t.s.subj('k', gen, "")+".", t.s.subj('b', gen, "")+"."
	for subj := range t.pre {
		if strings.HasPrefix(subj, keys) || strings.HasPrefix(subj, nested) {
			delete(t.pre, subj)
		}
	}
}
