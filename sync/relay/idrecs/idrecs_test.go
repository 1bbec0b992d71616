package idrecs

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// v7 is a UUIDv7 made at t, its random bits from rng.
func v7(rng *rand.Rand, t time.Time) string {
	var u uuid.UUID
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	for i := 6; i < 16; i++ {
		u[i] = byte(rng.Uint32())
	}
	u[6] = u[6]&0x0f | 0x70
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}

func randomRef(rng *rand.Rand, t time.Time) Ref {
	r := Ref{ID: v7(rng, t), Terminal: fmt.Sprintf("t-%d", rng.IntN(50)), Epoch: fmt.Sprintf("%032x", rng.Uint64()),
		Seq: rng.Uint64N(1 << uint(1+rng.IntN(63))), Hash: fmt.Sprintf("%064x", rng.Uint64())}
	if rng.IntN(5) == 0 {
		r.Refused = "id_conflict"
	}
	return r
}

// What a record is given, entry by entry, it gives back in order.
func TestEachGivesBackWhatWasAppended(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var rec []byte
	var want []Ref
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	for range 500 {
		r := randomRef(rng, at)
		want = append(want, r)
		tail := Entry(r)
		rec = append(rec, tail...) // as kv.Append adds an entry's bytes
	}
	var got []Ref
	if err := Each(rec, func(r Ref) bool { got = append(got, r); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%d entries back, want %d; first differing: %+v", len(got), len(want), firstDiff(got, want))
	}
	if r, ok, err := Find(rec, want[321].ID); err != nil || !ok || r != want[321] {
		t.Fatalf("find entry 321: %+v %v %v", r, ok, err)
	}
	if _, ok, err := Find(rec, v7(rng, at)); err != nil || ok {
		t.Fatalf("find an id never appended: %v %v", ok, err)
	}
}

func firstDiff(a, b []Ref) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("%d: %+v vs %+v", i, a[i], b[i])
		}
	}
	return "none"
}

// A record that does not decode says which entry is wrong, and gives the ones before it.
func TestEachNamesTheEntryThatIsWrong(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	rec := Append(Append(nil, randomRef(rng, at)), randomRef(rng, at))
	for _, c := range []struct {
		what string
		rec  []byte
		says string
	}{
		{"cut short", rec[:len(rec)-3], "entry 1 ends too soon"},
		{"another version", append(slices.Clone(rec), 9), "entry 2 has version 9, want 1 or 2"},
		{"a field of no shape", append(slices.Clone(rec), entryV2, 7), "entry 2 has a field of shape 7"},
		{"no id", append(slices.Clone(rec), Entry(Ref{Terminal: "t"})...), "entry 2 has no id"},
	} {
		n := 0
		err := Each(c.rec, func(Ref) bool { n++; return true })
		if err == nil || err.Error() != "idrecs: "+c.says {
			t.Errorf("%s: %v, want %q", c.what, err, c.says)
		}
		if want := map[bool]int{true: 1, false: 2}[c.what == "cut short"]; n != want {
			t.Errorf("%s: %d entries given before the error, want %d", c.what, n, want)
		}
	}
}

// An id's span is the minute it was made, for a UUIDv7; ids of one minute share it, the next
// minute's follow it in key order; any other id falls in one of the hash spans, the same
// each time.
func TestSpanIsTheSecondTheIDWasMade(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	at := time.Date(2026, 12, 2, 9, 41, 0, 0, time.UTC)
	a, b := Span(v7(rng, at)), Span(v7(rng, at.Add(999*time.Millisecond)))
	next := Span(v7(rng, at.Add(time.Second)))
	if a != b || a != fmt.Sprintf("s%012d", at.Unix()) {
		t.Fatalf("spans of one second: %s, %s; want s%012d", a, b, at.Unix())
	}
	if !(Key(a, 9999) < Key(next, 0)) || !(Key(a, 1) < Key(a, 2)) {
		t.Fatalf("keys out of order: %s %s %s", Key(a, 9999), Key(next, 0), Key(a, 1))
	}
	for _, n := range []int{0, 7, 123, 9999, 10000, 123456} {
		if got, want := Key(a, n), fmt.Sprintf("%s.%04d", a, n); got != want {
			t.Errorf("Key(%s, %d) = %s, want %s", a, n, got, want)
		}
	}
	if s, want := Span(v7(rng, time.UnixMilli(999))), fmt.Sprintf("s%012d", 0); s != want {
		t.Errorf("span of the first second: %s, want %s", s, want)
	}
	// The latest time a UUIDv7 can say still sorts after the earliest.
	var last uuid.UUID
	for i := range 6 {
		last[i] = 0xff
	}
	last[6], last[8] = 0x70, 0x80
	if s := Span(last.String()); !(Key(s, 0) > Key(a, 0)) || len(s) != len(a) {
		t.Errorf("span of the last second a UUIDv7 can say: %s, after %s", s, a)
	}
	for _, id := range []string{uuid.NewString(), "m-A1-000", ""} {
		s := Span(id)
		if s[0] != 'h' || len(s) != 3 || Span(id) != s {
			t.Errorf("span of %q: %q, want a stable hash span", id, s)
		}
	}
}

// Whatever a record's bytes, Each never panics nor reads past the end, and what it gives,
// appended again, reads back the same.
func FuzzEach(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	f.Add(Append(Append(nil, randomRef(rng, at)), Ref{ID: "x"}))
	f.Add([]byte{1, 200})
	f.Add([]byte{2})
	f.Add([]byte{1, 1, 'a', 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, rec []byte) {
		var got []Ref
		err := Each(rec, func(r Ref) bool { got = append(got, r); return true })
		var again []byte
		for _, r := range got {
			again = Append(again, r)
		}
		var back []Ref
		if err2 := Each(again, func(r Ref) bool { back = append(back, r); return true }); err2 != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("%x gave %+v (%v); appended again it gives %+v, %v", rec, got, err, back, err2)
		}
		// Find, which decodes only what it finds, agrees with Each.
		for i, r := range got {
			first := slices.IndexFunc(got, func(o Ref) bool { return o.ID == r.ID })
			if f, ok, ferr := Find(rec, r.ID); !ok || ferr != nil || f != got[first] {
				t.Fatalf("%x: find entry %d's id: %+v %v %v, want %+v", rec, i, f, ok, ferr, got[first])
			}
		}
		if _, ok, ferr := Find(rec, "\x00not there"); ok || (ferr == nil) != (err == nil) {
			t.Fatalf("%x: find an id not there: %v, %v; Each said %v", rec, ok, ferr, err)
		}
		// An index's set of the record agrees too: made whole, and made of a prefix then
		// extended by the rest, as a record appended to is.
		ix := NewIndex(4, 0)
		set, serr := ix.set("north/k", rec)
		if (serr == nil) != (err == nil) {
			t.Fatalf("%x: the index says %v, Each %v", rec, serr, err)
		}
		if serr != nil {
			return
		}
		if len(got) > 1 {
			cut, _, _ := entryAt(rec, 0, nil) // where the first entry ends, however its numbers were written
			ix = NewIndex(4, 0)
			if _, err := ix.set("north/k", rec[:cut]); err != nil {
				t.Fatal(err)
			}
			if set, err = ix.set("north/k", rec); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range got {
			first := slices.IndexFunc(got, func(o Ref) bool { return o.ID == r.ID })
			if f, ok, ferr := ix.find(set, rec, r.ID); !ok || ferr != nil || f != got[first] {
				t.Fatalf("%x: the index finds entry %d's id: %+v %v %v, want %+v", rec, i, f, ok, ferr, got[first])
			}
		}
		if _, ok, ferr := ix.find(set, rec, "\x00not there"); ok || ferr != nil {
			t.Fatalf("%x: the index finds an id not there: %v, %v", rec, ok, ferr)
		}
	})
}

// BenchmarkFindInAFullRecord looks up an id a full record does not hold: the whole record
// read, as for each new item of a span whose record the holder keeps as bytes.
//
//	go test ./sync/relay/idrecs/ -run '^$' -bench FindInAFullRecord
func BenchmarkFindInAFullRecord(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	var rec []byte
	n := 0
	for len(rec) < RecordBytes {
		rec = Append(rec, randomRef(rng, at))
		n++
	}
	missing := v7(rng, at)
	b.SetBytes(int64(len(rec)))
	b.ResetTimer()
	for b.Loop() {
		if _, ok, err := Find(rec, missing); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportMetric(float64(n), "entries/record")
}
