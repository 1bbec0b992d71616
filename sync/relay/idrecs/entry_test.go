package idrecs

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// appendV1 is Append as schema 27 wrote entries (version 1), for records written before.
func appendV1(rec []byte, r Ref) []byte {
	rec = append(rec, entryV1)
	for _, s := range []string{r.ID, r.Terminal, r.Epoch} {
		rec = binary.AppendUvarint(rec, uint64(len(s)))
		rec = append(rec, s...)
	}
	rec = binary.AppendUvarint(rec, r.Seq)
	for _, s := range []string{r.Hash, r.Refused} {
		rec = binary.AppendUvarint(rec, uint64(len(s)))
		rec = append(rec, s...)
	}
	return rec
}

// relayRef is an entry as the relay writes one: a UUIDv7 item id, a terminal "t-" and a
// UUID, a UUID epoch, a SHA-256 in hex.
func relayRef(rng *rand.Rand, at time.Time) Ref {
	return Ref{ID: v7(rng, at), Terminal: "t-" + v7(rng, at), Epoch: v7(rng, at), Seq: rng.Uint64N(100_000),
		Hash: strings.Repeat(v7(rng, at)[:8], 8)}
}

// A record written before schema 28 (version 1 entries) and added to since (version 2) gives
// every entry back as it was given, and Find and an index find each of them, whichever
// version holds it; an id that differs from one held only in its letters' case is not found.
func TestOldAndNewEntriesInOneRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	var rec []byte
	var want []Ref
	for i := range 60 {
		r := relayRef(rng, at)
		if i%7 == 3 {
			r = randomRef(rng, at) // a terminal and an epoch of other shapes
		}
		want = append(want, r)
		if i < 30 {
			rec = appendV1(rec, r)
		} else {
			rec = Append(rec, r)
		}
	}
	var got []Ref
	if err := Each(rec, func(r Ref) bool { got = append(got, r); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("first differing: %s", firstDiff(got, want))
	}
	ix := NewIndex(4, 0)
	set, err := ix.set("north/k", rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 3, 29, 30, 31, 59} {
		if r, ok, err := Find(rec, want[i].ID); err != nil || !ok || r != want[i] {
			t.Errorf("Find entry %d: %+v %v %v", i, r, ok, err)
		}
		if r, ok, err := ix.find(set, rec, want[i].ID); err != nil || !ok || r != want[i] {
			t.Errorf("the index finds entry %d: %+v %v %v", i, r, ok, err)
		}
		upper := strings.ToUpper(want[i].ID)
		if _, ok, err := Find(rec, upper); err != nil || ok {
			t.Errorf("Find %s (entry %d in capitals): %v %v", upper, i, ok, err)
		}
		if _, ok, err := ix.find(set, rec, upper); err != nil || ok {
			t.Errorf("the index finds %s (entry %d in capitals): %v %v", upper, i, ok, err)
		}
	}
}

// An entry as the relay writes one takes about half the bytes it did.
func TestEntriesOfTheRelaysIDsAreDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	r := relayRef(rng, time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC))
	v1, v2 := len(appendV1(nil, r)), len(Entry(r))
	t.Logf("an entry of the relay's ids: %d bytes in version 1, %d in version 2", v1, v2)
	if v2 > 100 || 2*v2 > v1+10 {
		t.Errorf("version 2 entry %d bytes, version 1 %d: want at most 100 and about half", v2, v1)
	}
}

// Whatever strings an entry is given, it gives them back exactly, in either version, and so
// does the look-up's read of its id alone (entryAt).
func FuzzEntryGivesBackItsStrings(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	r := relayRef(rng, at)
	f.Add(r.ID, r.Terminal, r.Epoch, r.Seq, r.Hash, "")
	f.Add(strings.ToUpper(r.ID), "t-"+r.ID+"x", "ab", uint64(0), "0", "id_conflict")
	f.Add("x", "", "abcdef00", uint64(1<<63), "00ff", r.ID)
	f.Fuzz(func(t *testing.T, id, terminal, epoch string, seq uint64, hash, refused string) {
		if id == "" {
			return // an entry without an id is refused (TestEachNamesTheEntryThatIsWrong)
		}
		r := Ref{ID: id, Terminal: terminal, Epoch: epoch, Seq: seq, Hash: hash, Refused: refused}
		for _, rec := range [][]byte{Entry(r), appendV1(nil, r)} {
			var got []Ref
			if err := Each(rec, func(g Ref) bool { got = append(got, g); return true }); err != nil || len(got) != 1 || got[0] != r {
				t.Fatalf("%+v written as %x gave back %+v, %v", r, rec, got, err)
			}
			if _, text, err := entryAt(rec, 0, nil); err != nil || string(text) != id {
				t.Fatalf("%+v written as %x: entryAt gives its id as %q (%v)", r, rec, text, err)
			}
		}
	})
}
