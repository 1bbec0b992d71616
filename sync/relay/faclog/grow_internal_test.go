package faclog

import "testing"

// A value a transaction adds to again and again grows in place, and what any key, reader or
// later transaction was handed keeps its bytes: a value stored under a second key too (a Put
// of what a Get returned) is not written over by the first key's additions, nor theirs by its,
// and no value handed out leaves room a reader's append could write in.
func TestGrowInPlaceKeepsEveryValueHandedOut(t *testing.T) {
	t1 := &tx{}
	capped := func(name string, v []byte) {
		t.Helper()
		if cap(v) != len(v) {
			t.Fatalf("%s: %d bytes with room for %d: a reader's append would write in the room", name, len(v), cap(v))
		}
	}
	v1 := t1.grow(nil, []byte("ab"))
	v2 := t1.grow(v1, []byte("cd"))
	v3 := t1.grow(v2, []byte("ef"))
	capped("v1", v1)
	capped("v3", v3)
	if string(v1) != "ab" || string(v2) != "abcd" || string(v3) != "abcdef" {
		t.Fatalf("grown: %q %q %q, want ab abcd abcdef", v1, v2, v3)
	}
	if own := t1.grown[&v3[0]]; cap(own) <= len(v3) {
		t.Fatalf("the transaction keeps no room after the value it grew (%d of %d): the next addition would copy it", len(own), cap(own))
	}
	other := v3 // the same bytes stored under another key
	o1 := t1.grow(other, []byte("X"))
	k1 := t1.grow(v3, []byte("Y"))
	o2 := t1.grow(o1, []byte("Z"))
	if string(o1) != "abcdefX" || string(k1) != "abcdefY" || string(o2) != "abcdefXZ" || string(v3) != "abcdef" {
		t.Fatalf("two keys sharing bytes: %q, %q, %q (and the first %q); want abcdefX, abcdefY, abcdefXZ, abcdef", o1, k1, o2, v3)
	}
	// A later transaction adds to what this one committed: a new value, the old one as it was.
	later := &tx{}
	n := later.grow(k1, []byte("!"))
	if string(n) != "abcdefY!" || string(k1) != "abcdefY" || &n[0] == &k1[0] {
		t.Fatalf("a later transaction's addition: %q, the committed value %q (shared: %v)", n, k1, &n[0] == &k1[0])
	}
	if cap(n) != len(n) || cap(later.grown[&n[0]]) != len(n) {
		t.Errorf("a value added to once keeps room for %d bytes, want its own %d", cap(later.grown[&n[0]]), len(n))
	}
	// A hundred additions to one value copy it as append grows a slice: a few times, not a
	// hundred.
	v, arrays := n, map[*byte]bool{}
	for range 100 {
		v = later.grow(v, []byte("0123456789"))
		arrays[&v[0]] = true
	}
	if len(v) != 8+1000 || len(arrays) > 20 {
		t.Fatalf("a hundred additions: %d bytes in %d arrays, want 1,008 in at most 20", len(v), len(arrays))
	}
}
