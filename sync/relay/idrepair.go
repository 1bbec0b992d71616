package relay

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/idrecs"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Repairing a facility's item id records (relayd repair-ids). A record that does not decode
// stops every batch carrying an id of its span, in its facility, for good: the look-up fails,
// the batch with it, and the terminal sends it again (facids.go). Verify names such a record
// (id_records); this rebuilds its span.
//
// A span's records are rebuilt from two sources. What its records still hold is kept as it
// is: each record's entries up to the first that does not decode, those of the span only,
// each id's first. Then every item of the items log that a terminal of the facility sent
// under an id of the span and that no kept entry names is added, in the order the items came
// (arrival time, then number): the first is the one the id was stored as, a later one was
// refused id_conflict against it. Its content hash is the stored body's, as storeItem took it
// (prepare). Only a body that was not JSON at all, which the wire never delivers (a direct
// caller could), was stored as null and hashed as it came: a resend of such an item would be
// refused id_conflict rather than recognised. Ids that are looked up in item_ids and held
// there are not the records' (facIDs.legacy).
//
// A span is damaged where one of its records does not decode, holds an id of another span,
// or its records' numbers have a gap (a look-up stops at the first number missing, so the
// records after it are never read). A record whose key is not span.n is left as it is: no
// look-up reads it.
//
// The records are read whole first, the items log once; each damaged span is then rewritten
// in a transaction of its own, which reads its records again and keeps what they hold then.
// While a span is damaged no batch adds to it (every look-up in it fails), so nothing is
// stored under its ids between the two reads.

// IDSpanRepair is one span of one facility's item id records, rebuilt.
type IDSpanRepair struct {
	Facility string `json:"facility"`
	Span     string `json:"span"`
	// Why is what was found wrong (the first problem of the span).
	Why string `json:"why"`
	// Kept are the entries taken from the span's records as they were; Recovered those
	// rebuilt from the items log.
	Kept      int `json:"kept"`
	Recovered int `json:"recovered"`
}

// IDRepair is what RepairItemIDs did.
type IDRepair struct {
	// ByFacility says the store keeps item ids in its facilities' records. One that keeps
	// them in item_ids (a bbolt file made before the switch) has no such records to repair.
	ByFacility bool           `json:"by_facility"`
	Spans      []IDSpanRepair `json:"spans"`
}

// damagedSpan names one span to rebuild.
type damagedSpan struct{ facility, span, why string }

// RepairItemIDs rebuilds each span of the facilities' item id records that is damaged. A store
// that keeps item ids in item_ids has none, and nothing is done.
func (r *Relay) RepairItemIDs() (IDRepair, error) {
	rep := IDRepair{ByFacility: r.ids.on, Spans: []IDSpanRepair{}}
	if !r.ids.on {
		return rep, nil
	}
	var damaged []damagedSpan
	// refs: for each damaged span, what the items log holds of its ids, in arrival order.
	refs := map[damagedSpan][]idrecs.Ref{}
	err := r.inspect("repair item ids", func(tx kv.Tx) error {
		damaged = findDamagedSpans(tx)
		clear(refs)
		if len(damaged) == 0 {
			return nil
		}
		want := map[[2]string]damagedSpan{}
		for _, d := range damaged {
			want[[2]string{d.facility, d.span}] = d
		}
		facOf := map[string]string{}
		eachRaw(tx, bTerminals, func(string, error) {}, func(k string, t terminalRec) { facOf[k] = t.FacilityID })
		type found struct {
			at  time.Time
			n   uint64
			ref idrecs.Ref
		}
		byspan := map[damagedSpan][]found{}
		legacyIDs := tx.Bucket([]byte(bItemIDs))
		err := forEachStoredItem(tx, func(n uint64, it StoredItem) bool {
			d, ok := want[[2]string{facOf[it.TerminalID], idrecs.Span(it.ID)}]
			if !ok {
				return true
			}
			if r.ids.legacy(it.ID) && legacyIDs != nil && legacyIDs.Get([]byte(it.ID)) != nil {
				return true
			}
			ref := idrecs.Ref{ID: it.ID, Terminal: it.TerminalID, Epoch: it.Epoch, Seq: it.Seq,
				Hash: canonHash(it.Kind, it.Body), Refused: it.Refused}
			byspan[d] = append(byspan[d], found{it.ReceivedAt, n, ref})
			return true
		})
		if err != nil {
			return err
		}
		for d, fs := range byspan {
			slices.SortStableFunc(fs, func(a, b found) int {
				if c := a.at.Compare(b.at); c != 0 {
					return c
				}
				return cmp.Compare(a.n, b.n)
			})
			for _, f := range fs {
				refs[d] = append(refs[d], f.ref)
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, d := range damaged {
		var done IDSpanRepair
		ctx, cancel := context.WithTimeout(r.ctx, txTimeout)
		err := r.db.Update(ctx, func(tx kv.Tx) error {
			// A held facility's id records are its holder's, and its log may hold entries the
			// kv state lacks: rebuilt here, they would be written beside the holder and under
			// entries its projection writes later (heldelsewhere.go).
			if rec, held, err := holdOf(tx, d.facility); err != nil || held {
				return cmp.Or(err, fmt.Errorf("facility %s is held by gateway %q (relayd -hold-facilities), whose log may hold "+
					"entries the kv state lacks: stop that gateway so that it lets the facility go (or, after a crash, let a "+
					"gateway hold it and then stop it), and repair again", d.facility, rec.Holder))
			}
			var err error
			done, err = rebuildSpan(tx, d, refs[d])
			return err
		})
		cancel()
		if err != nil {
			return rep, ioErr("repair item ids", fmt.Errorf("rebuild span %s of facility %s: %w", d.span, d.facility, err))
		}
		r.logf("relay: item id records of facility %s, span %s rebuilt (%s): %d entries kept, %d recovered from the items log",
			d.facility, d.span, d.why, done.Kept, done.Recovered)
		rep.Spans = append(rep.Spans, done)
	}
	return rep, nil
}

// findDamagedSpans is each span of the facilities' id records that needs rebuilding, in key
// order.
func findDamagedSpans(tx kv.Tx) []damagedSpan {
	root := tx.Bucket([]byte(bFacIDs))
	if root == nil {
		return nil
	}
	var out []damagedSpan
	_ = root.ForEachBucket(func(fac []byte) error {
		numbers := map[string][]int{}
		why := map[string]string{}
		var spans []string
		note := func(span, what string) {
			if _, ok := why[span]; !ok {
				why[span] = what
			}
		}
		_ = root.Bucket(fac).ForEach(func(k, v []byte) error {
			n, ok := recordNumber(k)
			if !ok {
				return nil // not span.n: no look-up reads it (verify names it)
			}
			span, _, _ := strings.Cut(string(k), ".")
			if _, seen := numbers[span]; !seen {
				spans = append(spans, span)
			}
			numbers[span] = append(numbers[span], n)
			if err := idrecs.Each(v, func(ref idrecs.Ref) bool {
				if idrecs.Span(ref.ID) != span {
					note(span, fmt.Sprintf("record %s holds an id of span %s", k, idrecs.Span(ref.ID)))
				}
				return true
			}); err != nil {
				note(span, fmt.Sprintf("record %s: %v", k, err))
			}
			return nil
		})
		for _, span := range spans {
			ns := numbers[span]
			slices.Sort(ns)
			for i, n := range ns {
				if n != i {
					note(span, fmt.Sprintf("record %s is missing", idrecs.Key(span, i)))
					break
				}
			}
			if w, ok := why[span]; ok {
				out = append(out, damagedSpan{facility: string(fac), span: span, why: w})
			}
		}
		return nil
	})
	return out
}

// recordNumber is n of a record key span.n, as idrecs.Key writes it; ok is false for any
// other key.
func recordNumber(k []byte) (n int, ok bool) {
	span, num, found := strings.Cut(string(k), ".")
	n, err := strconv.Atoi(num)
	if !found || err != nil || n < 0 || idrecs.Key(span, n) != string(k) {
		return 0, false
	}
	return n, true
}

// rebuildSpan rewrites span d's records: what they hold now that decodes, then what logged
// adds (the items log's refs of the span, in arrival order) of ids they do not name.
func rebuildSpan(tx kv.Tx, d damagedSpan, logged []idrecs.Ref) (IDSpanRepair, error) {
	done := IDSpanRepair{Facility: d.facility, Span: d.span, Why: d.why}
	root := tx.Bucket([]byte(bFacIDs))
	if root == nil {
		return done, fmt.Errorf("no %s bucket", bFacIDs)
	}
	b := root.Bucket([]byte(d.facility))
	if b == nil {
		return done, fmt.Errorf("facility %s has no id records", d.facility)
	}
	var keys [][]byte
	var entries []idrecs.Ref
	have := map[string]bool{}
	prefix := []byte(d.span + ".")
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if _, ok := recordNumber(k); !ok {
			continue
		}
		keys = append(keys, bytes.Clone(k))
		// Up to the first entry that does not decode: those after it cannot be told apart.
		_ = idrecs.Each(v, func(ref idrecs.Ref) bool {
			if idrecs.Span(ref.ID) == d.span && !have[ref.ID] {
				have[ref.ID] = true
				entries = append(entries, ref)
				done.Kept++
			}
			return true
		})
	}
	for _, ref := range logged {
		if have[ref.ID] {
			continue
		}
		have[ref.ID] = true
		entries = append(entries, ref)
		done.Recovered++
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return done, fmt.Errorf("delete %s: %w", k, err)
		}
	}
	var rec []byte
	n := 0
	flush := func() error {
		if len(rec) == 0 {
			return nil
		}
		k := idrecs.Key(d.span, n)
		if err := b.Put([]byte(k), rec); err != nil {
			return fmt.Errorf("write %s: %w", k, err)
		}
		n, rec = n+1, nil
		return nil
	}
	for _, ref := range entries {
		e := idrecs.Entry(ref)
		if len(rec) > 0 && len(rec)+len(e) > idrecs.RecordBytes {
			if err := flush(); err != nil {
				return done, err
			}
		}
		rec = append(rec, e...)
	}
	return done, flush()
}
