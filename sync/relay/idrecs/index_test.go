package idrecs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
)

func openStore(t testing.TB) kv.Store {
	t.Helper()
	s, err := boltkv.Open(filepath.Join(t.TempDir(), "ids.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// facIDs is the bucket a facility's id records are in, as the relay will keep them.
func facIDs(tx kv.Tx, facility string) (kv.Bucket, error) {
	root, err := tx.CreateBucketIfNotExists([]byte("fac_ids"))
	if err != nil {
		return nil, err
	}
	return root.CreateBucketIfNotExists([]byte(facility))
}

var errRollBack = errors.New("rolled back on purpose")

// Two holders' indexes over one kv state take turns at a facility's ids, as gateways do when
// its home moves: ids new and sent again, in the minutes they were made and by hash, a
// transaction at a time, some rolled back after they appended and read back what they
// appended. Each look-up answers what the transactions committed before it (and the entries
// queued in its own), and the records hold each committed id once, in its span, no record
// past RecordBytes but for its one entry.
func TestRecordsFindWhatWasCommitted(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	rng := rand.New(rand.NewPCG(7, 8))
	// Few sets, so that they are dropped and made again.
	holders := []*Index{NewIndex(6, 0), NewIndex(6, 0)}
	at := time.Date(2026, 12, 2, 21, 0, 0, 0, time.UTC)
	committed := map[string]Ref{}
	var order []string // committed ids, to send again
	var rolledBack []string
	for round := range 60 {
		ix := holders[round/10%2]
		pending := map[string]Ref{}
		roll := rng.IntN(4) == 0
		err := store.Update(ctx, func(tx kv.Tx) error {
			clear(pending)
			b, err := facIDs(tx, "north")
			if err != nil {
				return err
			}
			recs := ix.In(b, "north")
			for range 1 + rng.IntN(90) {
				var id string
				switch p := rng.IntN(10); {
				case p < 2 && len(order) > 0:
					id = order[rng.IntN(len(order))]
				case p < 3 && len(rolledBack) > 0:
					id = rolledBack[rng.IntN(len(rolledBack))]
				case p < 4:
					id = fmt.Sprintf("old-terminal-%d", rng.IntN(400))
				default:
					id = v7(rng, at.Add(time.Duration(rng.IntN(2))*time.Minute))
				}
				got, found, err := recs.Find(id)
				if err != nil {
					return err
				}
				want, held := committed[id]
				if !held {
					want, held = pending[id]
				}
				if found != held || got != want {
					t.Fatalf("round %d: find %s: %+v %v, want %+v %v", round, id, got, found, want, held)
				}
				if found {
					continue
				}
				ref := randomRef(rng, at)
				ref.ID = id
				if err := recs.Add(ref); err != nil {
					return err
				}
				pending[id] = ref
			}
			if err := recs.Flush(); err != nil {
				return err
			}
			// Read back what was appended: the index makes sets of records this
			// transaction may roll back.
			for id, want := range pending {
				if got, found, err := recs.Find(id); err != nil || !found || got != want {
					t.Fatalf("round %d: %s after flush: %+v %v %v, want %+v", round, id, got, found, err, want)
				}
			}
			if roll {
				return errRollBack
			}
			return nil
		})
		if roll {
			if !errors.Is(err, errRollBack) {
				t.Fatalf("round %d: %v", round, err)
			}
			for id := range pending {
				rolledBack = append(rolledBack, id)
			}
			continue
		}
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for id, ref := range pending {
			committed[id] = ref
			order = append(order, id)
		}
	}

	// The records as stored: each committed id once, in its span.
	seen := map[string]int{}
	closed := 0
	err := store.View(ctx, func(tx kv.Tx) error {
		return tx.Bucket([]byte("fac_ids")).Bucket([]byte("north")).ForEach(func(k, v []byte) error {
			span, n, _ := strings.Cut(string(k), ".")
			if n != "0000" {
				closed++
			}
			var last int
			err := Each(v, func(r Ref) bool {
				if Span(r.ID) != span {
					t.Errorf("%s holds %s, of span %s", k, r.ID, Span(r.ID))
				}
				if committed[r.ID] != r {
					t.Errorf("%s holds %+v, committed %+v", k, r, committed[r.ID])
				}
				seen[r.ID]++
				last = len(Entry(r))
				return true
			})
			if len(v)-last > RecordBytes {
				t.Errorf("%s is %d bytes before its last entry, past %d", k, len(v)-last, RecordBytes)
			}
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range committed {
		if seen[id] != 1 {
			t.Errorf("%s is in the records %d times", id, seen[id])
		}
	}
	if len(seen) != len(committed) || closed == 0 || len(rolledBack) == 0 {
		t.Fatalf("%d ids stored of %d committed; %d records after a span's first; %d rolled back",
			len(seen), len(committed), closed, len(rolledBack))
	}
}

// A record that is not the one the index made a set of, though it has as many bytes (a kv
// state restored from another history), is indexed again: its ids are found, the set's are
// not.
func TestIndexNoticesARecordReplaced(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	rng := rand.New(rand.NewPCG(3, 4))
	at := time.Date(2026, 12, 2, 21, 30, 0, 0, time.UTC)
	var first, second []Ref
	for range 40 {
		r := randomRef(rng, at)
		first = append(first, r)
		r2 := r
		r2.ID = v7(rng, at) // the same length, another id
		second = append(second, r2)
	}
	write := func(refs []Ref) {
		t.Helper()
		var rec []byte
		for _, r := range refs {
			rec = Append(rec, r)
		}
		if err := store.Update(ctx, func(tx kv.Tx) error {
			b, err := facIDs(tx, "north")
			if err != nil {
				return err
			}
			return b.Put([]byte(Key(Span(refs[0].ID), 0)), rec)
		}); err != nil {
			t.Fatal(err)
		}
	}
	find := func(ix *Index, id string) bool {
		t.Helper()
		var found bool
		if err := store.View(ctx, func(tx kv.Tx) error {
			var err error
			_, found, err = ix.In(tx.Bucket([]byte("fac_ids")).Bucket([]byte("north")), "north").Find(id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return found
	}
	ix := NewIndex(16, 0)
	write(first)
	if !find(ix, first[17].ID) {
		t.Fatal("an id of the record is not found")
	}
	write(second)
	if find(ix, first[17].ID) {
		t.Error("an id of the record replaced is found")
	}
	if !find(ix, second[17].ID) {
		t.Error("an id of the record that replaced it is not found")
	}
}

// A record that does not decode is named, and nothing is found in it.
func TestIndexNamesARecordThatDoesNotDecode(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	rng := rand.New(rand.NewPCG(5, 6))
	r := randomRef(rng, time.Date(2026, 12, 2, 22, 0, 0, 0, time.UTC))
	rec := Append(Entry(r), r)
	if err := store.Update(ctx, func(tx kv.Tx) error {
		b, err := facIDs(tx, "north")
		if err != nil {
			return err
		}
		return b.Put([]byte(Key(Span(r.ID), 0)), rec[:len(rec)-3])
	}); err != nil {
		t.Fatal(err)
	}
	err := store.View(ctx, func(tx kv.Tx) error {
		_, _, err := NewIndex(4, 0).In(tx.Bucket([]byte("fac_ids")).Bucket([]byte("north")), "north").Find(r.ID)
		return err
	})
	want := fmt.Sprintf("north/%s: entry at byte %d ends too soon", Key(Span(r.ID), 0), len(Entry(r)))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error naming %q", err, want)
	}
}

// The look-up a group commit makes for each new item, in a span of three full records: by
// the sets of an index, within a transaction and as its first look-up of the span (the
// records checked against their sets), against scanning the records (Find).
func BenchmarkLookUpANewID(b *testing.B) {
	ctx := context.Background()
	store := openStore(b)
	rng := rand.New(rand.NewPCG(9, 10))
	at := time.Date(2026, 12, 2, 22, 0, 0, 0, time.UTC)
	ix := NewIndex(64, 0)
	if err := store.Update(ctx, func(tx kv.Tx) error {
		bk, err := facIDs(tx, "north")
		if err != nil {
			return err
		}
		recs := ix.In(bk, "north")
		for range 3 * RecordBytes / len(Entry(randomRef(rng, at))) {
			if err := recs.Add(randomRef(rng, at)); err != nil {
				return err
			}
		}
		return recs.Flush()
	}); err != nil {
		b.Fatal(err)
	}
	absent := v7(rng, at)
	view := func(fn func(bk kv.Bucket)) {
		if err := store.View(ctx, func(tx kv.Tx) error {
			fn(tx.Bucket([]byte("fac_ids")).Bucket([]byte("north")))
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("index/within-a-transaction", func(b *testing.B) {
		view(func(bk kv.Bucket) {
			recs := ix.In(bk, "north")
			for b.Loop() {
				if _, found, err := recs.Find(absent); err != nil || found {
					b.Fatal(found, err)
				}
			}
		})
	})
	b.Run("index/first-of-a-transaction", func(b *testing.B) {
		view(func(bk kv.Bucket) {
			for b.Loop() {
				if _, found, err := ix.In(bk, "north").Find(absent); err != nil || found {
					b.Fatal(found, err)
				}
			}
		})
	})
	b.Run("scan", func(b *testing.B) {
		view(func(bk kv.Bucket) {
			span := Span(absent)
			for b.Loop() {
				for n := 0; ; n++ {
					v := bk.Get([]byte(Key(span, n)))
					if v == nil {
						break
					}
					if _, found, err := Find(v, absent); err != nil || found {
						b.Fatal(found, err)
					}
				}
			}
		})
	})
}

// A group commit's 100 new ids on a bbolt file, the ids made in one minute per group: as the
// relay writes them today (a key each in one bucket, in time order, kv.HintAppended, each
// looked up first) and as a facility's records (looked up through the index, appended a
// record at a time). Pages written a group, from bbolt's counts, say what each costs the disk.
func BenchmarkGroupOfIDsOnBolt(b *testing.B) {
	const perGroup = 100
	ctx := context.Background()
	for _, layout := range []string{"item_ids", "records"} {
		b.Run(layout, func(b *testing.B) {
			store, err := boltkv.Open(filepath.Join(b.TempDir(), "ids.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			rng := rand.New(rand.NewPCG(11, 12))
			ix := NewIndex(64, 0)
			at := time.Date(2026, 12, 2, 22, 0, 0, 0, time.UTC)
			written := func() int64 { st := store.DB().Stats(); return st.TxStats.GetWrite() }
			before := written()
			g := 0
			for b.Loop() {
				g++
				// 2,000 ids a minute, made in the order they are sent, as a status report's are
				made := at.Add(time.Duration(g) * 3 * time.Second)
				err := store.Update(ctx, func(tx kv.Tx) error {
					if layout == "item_ids" {
						ids, err := tx.CreateBucketIfNotExists([]byte("item_ids"))
						if err != nil {
							return err
						}
						kv.HintAppended(ids)
						for i := range perGroup {
							r := randomRef(rng, made.Add(time.Duration(i)*20*time.Millisecond))
							if ids.Get([]byte(r.ID)) != nil {
								return fmt.Errorf("%s held", r.ID)
							}
							ref := fmt.Appendf(nil, `{"hash":"%s","terminal_id":"%s","epoch":"%s","seq":%d}`, r.Hash, r.Terminal, r.Epoch, r.Seq)
							if err := ids.Put([]byte(r.ID), ref); err != nil {
								return err
							}
						}
						return nil
					}
					bk, err := facIDs(tx, "north")
					if err != nil {
						return err
					}
					recs := ix.In(bk, "north")
					for i := range perGroup {
						r := randomRef(rng, made.Add(time.Duration(i)*20*time.Millisecond))
						if _, found, err := recs.Find(r.ID); err != nil || found {
							return fmt.Errorf("%s: %v %v", r.ID, found, err)
						}
						if err := recs.Add(r); err != nil {
							return err
						}
					}
					return recs.Flush()
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(written()-before)/float64(g), "pages/group")
		})
	}
}
