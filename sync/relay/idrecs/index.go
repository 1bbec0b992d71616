package idrecs

import (
	"container/list"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Index keeps, for the records a holder read lately, the set of ids each holds, so that looking
// an id up costs a map probe rather than a scan of its span's records (a scan of a full record
// is a third of a publish: BenchmarkFindInAFullRecord). It is safe for concurrent use and
// holds at most max records' sets, dropping the least used.
//
// A set is only ever derived from the bytes of a record as a transaction read them: a record
// is known by its length and a hash of those bytes, checked once per transaction, and what
// was appended since is read from its tail. So a transaction that rolled back, a record
// written by another holder, or a kv state restored under the index leaves no set that
// answers for bytes the record no longer has: a record that is not the one indexed is
// indexed again. Nothing tells the index of a commit.
type Index struct {
	seed maphash.Seed
	max  int
	// recordBytes closes a record (RecordBytes unless NewIndex was told otherwise)
	recordBytes int

	mu   sync.Mutex
	sets map[string]*list.Element // of *recSet, by bucket name and record key
	lru  list.List                // most recently used first
}

// recSet is the ids of one record's first n bytes.
type recSet struct {
	name string // bucket name and record key
	n    int
	sum  uint64         // maphash of those n bytes
	at   map[uint64]int // hash of an id -> offset of its entry; -1: two ids share the hash
}

// NewIndex is an index of at most max records' sets (a full record's is under 2 KB), whose
// Records close a record at recordBytes (RecordBytes if 0).
func NewIndex(max, recordBytes int) *Index {
	if recordBytes <= 0 {
		recordBytes = RecordBytes
	}
	return &Index{seed: maphash.MakeSeed(), max: max, recordBytes: recordBytes, sets: map[string]*list.Element{}}
}

// idHash hashes id's text, as extend hashes each entry's (whatever shape the entry gave it).
func (ix *Index) idHash(id string) uint64 { return maphash.String(ix.seed, id) }

// set is rec's set: the one kept if it still answers for rec's bytes, extended by what was
// appended to it since, else one made from rec. name is the bucket's and the record's.
func (ix *Index) set(name string, rec []byte) (*recSet, error) {
	ix.mu.Lock()
	var old *recSet
	if e, ok := ix.sets[name]; ok {
		old = e.Value.(*recSet)
		ix.lru.MoveToFront(e)
	}
	ix.mu.Unlock()

	// One pass of the hash over the record: the bytes the set was made of, then the rest.
	var h maphash.Hash
	h.SetSeed(ix.seed)
	s := &recSet{name: name}
	if old != nil && old.n <= len(rec) {
		h.Write(rec[:old.n])
		if h.Sum64() == old.sum {
			if old.n == len(rec) {
				return old, nil // a set kept is never changed: transactions share it
			}
			s.n, s.at = old.n, make(map[uint64]int, len(old.at)+64)
			for k, at := range old.at {
				s.at[k] = at
			}
		} else {
			h.Reset()
		}
	}
	if s.at == nil {
		s.at = map[uint64]int{}
	}
	if err := ix.extend(s, rec, &h); err != nil {
		return nil, err
	}
	ix.keep(s)
	return s, nil
}

// extend adds the entries of rec after s.n to s; h has hashed rec[:s.n].
func (ix *Index) extend(s *recSet, rec []byte, h *maphash.Hash) error {
	var key []byte
	for at := s.n; at < len(rec); {
		end, kb, err := entryAt(rec, at, key[:0])
		if err != nil {
			return fmt.Errorf("idrecs: %s: entry at byte %d %w", s.name, at, err)
		}
		key = kb
		k := maphash.Bytes(ix.seed, key)
		if _, dup := s.at[k]; dup {
			s.at[k] = -1
		} else {
			s.at[k] = at
		}
		at = end
	}
	h.Write(rec[s.n:])
	s.n, s.sum = len(rec), h.Sum64()
	return nil
}

func (ix *Index) keep(s *recSet) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if e, ok := ix.sets[s.name]; ok {
		e.Value = s
		ix.lru.MoveToFront(e)
		return
	}
	ix.sets[s.name] = ix.lru.PushFront(s)
	for ix.lru.Len() > ix.max {
		e := ix.lru.Back()
		ix.lru.Remove(e)
		delete(ix.sets, e.Value.(*recSet).name)
	}
}

// find is id's entry in rec, whose set is s.
func (ix *Index) find(s *recSet, rec []byte, id string) (Ref, bool, error) {
	return ix.findHashed(s, rec, id, ix.idHash(id))
}

// findHashed is find, given id's hash (idHash): a span's records are probed with one.
func (ix *Index) findHashed(s *recSet, rec []byte, id string, h uint64) (Ref, bool, error) {
	at, ok := s.at[h]
	switch {
	case !ok:
		return Ref{}, false, nil
	case at < 0: // two ids of the record share the hash: look for it the slow way
		r, found, err := Find(rec, id)
		if err != nil {
			return Ref{}, false, fmt.Errorf("%s: %w", s.name, err)
		}
		return r, found, nil
	}
	r, _, err := next(rec[at:])
	if err != nil {
		return Ref{}, false, fmt.Errorf("idrecs: %s: entry at byte %d %w", s.name, at, err)
	}
	return r, r.ID == id, nil
}

// Records is one transaction's use of a bucket of id records (a facility's) through an index:
// Find looks ids up, Add queues entries and Flush appends them, a record at a time. It is
// used by one goroutine, within the transaction b belongs to.
type Records struct {
	ix   *Index
	name string
	b    kv.Bucket
	// spans read in this transaction
	spans map[string]*spanRecs
}

// spanRecs is one span's records as this transaction read them, and what it adds.
type spanRecs struct {
	recs []readRec
	// adds: entries queued for the span's records from len(recs)-1 on, by record
	adds [][]byte
	ids  map[string]Ref // the entries queued, by id
}

type readRec struct {
	v   []byte
	set *recSet
}

// In is the records of bucket b through ix; name tells b from the other buckets ix serves
// (the facility's id).
func (ix *Index) In(b kv.Bucket, name string) *Records {
	return &Records{ix: ix, name: name, b: b, spans: map[string]*spanRecs{}}
}

func (r *Records) span(span string) (*spanRecs, error) {
	if s, ok := r.spans[span]; ok {
		return s, nil
	}
	s := &spanRecs{ids: map[string]Ref{}}
	for n := 0; ; n++ {
		k := Key(span, n)
		v := r.b.Get([]byte(k))
		if v == nil {
			break
		}
		set, err := r.ix.set(r.name+"/"+k, v)
		if err != nil {
			return nil, err
		}
		s.recs = append(s.recs, readRec{v: v, set: set})
	}
	r.spans[span] = s
	return s, nil
}

// Find is id's entry: the first its span's records hold, or one queued by Add.
func (r *Records) Find(id string) (Ref, bool, error) {
	s, err := r.span(Span(id))
	if err != nil {
		return Ref{}, false, err
	}
	h := r.ix.idHash(id)
	for _, rec := range s.recs {
		if ref, ok, err := r.ix.findHashed(rec.set, rec.v, id, h); err != nil || ok {
			return ref, ok, err
		}
	}
	ref, ok := s.ids[id]
	return ref, ok, nil
}

// Add queues ref's entry for its span's records. The caller has found no entry of its id
// (Find): Add does not look.
func (r *Records) Add(ref Ref) error {
	s, err := r.span(Span(ref.ID))
	if err != nil {
		return err
	}
	e := Entry(ref)
	if len(s.adds) == 0 {
		s.adds = [][]byte{nil}
	}
	last := len(s.adds) - 1
	held := len(s.adds[last])
	if last == 0 && len(s.recs) > 0 {
		held += len(s.recs[len(s.recs)-1].v)
	}
	if held > 0 && held+len(e) > r.ix.recordBytes {
		s.adds = append(s.adds, nil)
		last++
	}
	s.adds[last] = append(s.adds[last], e...)
	s.ids[ref.ID] = ref
	return nil
}

// Flush appends the entries Add queued to the bucket (kv.Append: on a held facility the log
// entry carries them alone) and forgets them. Within a span the first go to its last record
// read, the rest to records after it.
func (r *Records) Flush() error {
	for span, s := range r.spans {
		first := max(len(s.recs)-1, 0)
		for i, tail := range s.adds {
			if len(tail) == 0 {
				continue
			}
			k := Key(span, first+i)
			if err := kv.Append(r.b, []byte(k), tail); err != nil {
				return fmt.Errorf("idrecs: append to %s: %w", k, err)
			}
		}
		// What was appended is read again by the next Find of this span.
		delete(r.spans, span)
	}
	return nil
}
