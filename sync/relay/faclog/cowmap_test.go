package faclog

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/tether-kiosk/tether/internal/testseed"
)

// A cowMap reads as a map does through random writes, however many copies were made of it
// on the way, small and split: every copy keeps what it held when the next was made from it,
// as the held state's committed buckets must while their Update's copies are written.
func TestCowMapCopiesKeepWhatTheyHeld(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 1))
	type snap struct {
		m    *cowMap[int]
		want map[string]int
	}
	check := func(step int, s snap) {
		t.Helper()
		if s.m.len() != len(s.want) {
			t.Fatalf("step %d: %d entries, want %d", step, s.m.len(), len(s.want))
		}
		seen := map[string]int{}
		s.m.each(func(k string, v int) bool { seen[k] = v; return true })
		if !maps.Equal(seen, s.want) {
			t.Fatalf("step %d: walked %v, want %v", step, seen, s.want)
		}
		for k, v := range s.want {
			if got, ok := s.m.get(k); !ok || got != v {
				t.Fatalf("step %d: get(%q) = %d, %v, want %d", step, k, got, ok, v)
			}
		}
		if _, ok := s.m.get("never"); ok {
			t.Fatalf("step %d: holds a key never put", step)
		}
	}
	cur := snap{m: &cowMap[int]{}, want: map[string]int{}}
	var kept []snap
	split := false
	for step := range 20000 {
		k := fmt.Sprintf("k%d", rng.IntN(300))
		switch r := rng.IntN(100); {
		case r < 60:
			cur.m.set(k, step)
			cur.want[k] = step
		case r < 90:
			cur.m.del(k)
			delete(cur.want, k)
		case r < 95:
			// Commit: the copy made from now on is written, the map before it never again.
			kept = append(kept, cur)
			next := cur.m.clone()
			cur = snap{m: &next, want: maps.Clone(cur.want)}
		default:
			check(step, cur)
		}
		split = split || cur.m.shards != nil
	}
	check(-1, cur)
	for _, s := range kept {
		check(-2, s)
	}
	if !split || len(kept) < 100 {
		t.Fatalf("the run never split a map (%v) or made few copies (%d): it tests too little", split, len(kept))
	}
}

// A copy of a split map shares its shards: writing a key copies that key's shard alone.
func TestCowMapCopiesOneShardToWriteAKey(t *testing.T) {
	var m cowMap[int]
	for i := range 1000 {
		m.set(fmt.Sprint(i), i)
	}
	c := m.clone()
	c.set("7", -7)
	copied := 0
	for i := range c.shards {
		if c.shards[i] != nil && m.shards[i] != nil && fmt.Sprintf("%p", c.shards[i]) != fmt.Sprintf("%p", m.shards[i]) {
			copied++
		}
	}
	if v, _ := m.get("7"); copied != 1 || v != 7 {
		t.Fatalf("%d shards copied to write one key, the original's 7 is %d; want 1 and 7", copied, v)
	}
}
