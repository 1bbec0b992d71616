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
	if &v2[0] != &v1[0] {
		t.Errorf("the second addition copied the value: it should grow in the room the first left")
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
}
