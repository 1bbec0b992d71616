package relay

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A letter (an outbound message or a PREA report) arrives as an uplink item, and the relay
// keeps every uplink item as it came (bItems). Up to schema 2 the letter's record held its body
// text too, so each letter's text was written twice, the largest part of what the relay wrote
// for it. From schema 3 the letter's record names the item that carried it (BodyItem) and holds
// no body text; the text is read from the item when a letter is shown. A record without
// BodyItem (one migrate2to3 could not match to its item) still holds its text itself.

// From schema 24 a letter is its facility's record (bLetters, under the facility of the
// terminal that sent it, which never changes), so that the facility's holder writes it
// (SCALE.md, "A terminal's letter on a held facility"); an index of the state's, written once
// (bLetterAt, through state_due on a held facility), finds a letter's facility from its id
// for the calls that name only the id (the console's review, a department's reply). Letter
// ids stay one id space with PREA reports'. A letter written on a held state keeps its text
// in its record, as a PREA report does (statedue.go): the item that carried it is the
// facility's, in the kv state only once projected.

// letterRec is a letter as stored in bLetters (bOutbound before v24) and bPREA.
type letterRec struct {
	Outbound
	// BodyItem is the arrival number of the item that carried the letter (0: Body is here).
	BodyItem uint64 `json:"body_item,omitempty"`
}

// putLetter stores o in bucket (bLetters under its facility, bPREA or, in the migrations
// before v24, bOutbound under its id), its body text left to item n (0: kept in the record).
func putLetter(tx kv.Tx, bucket string, o Outbound, n uint64) error {
	raw, err := letterRaw(tx, bucket, o, n)
	if err != nil {
		return err
	}
	key := o.ID
	if bucket == bLetters {
		key = o.FacilityID + "/" + o.ID
	}
	// Letter ids are UUIDv7s, made in time order (kv.HintAppended).
	return putAppended(tx, bucket, key, raw)
}

// letterAt is the facility whose letter id is ("" for none), as a transaction of facility
// viewer sees it (its own letters not yet indexed in the kv state too; "": the kv state's).
func letterAt(tx kv.Tx, viewer, id string) string {
	return string(onceGet(tx, viewer, bLetterAt, id))
}

// letterByID reads letter id, body text filled in, wherever its facility keeps it.
func letterByID(tx kv.Tx, viewer, id string) (letterRec, bool, error) {
	facility := letterAt(tx, viewer, id)
	if facility == "" {
		return letterRec{}, false, nil
	}
	return getLetter(tx, bLetters, facility+"/"+id)
}

// migrate23to24 moves every letter under its facility (bLetters) and indexes it by id
// (bLetterAt). A record that does not decode, or names no valid facility, stays in bOutbound,
// where verify names it (letter_unplaced).
func migrate23to24(tx kv.Tx) error {
	for _, name := range []string{bLetters, bLetterAt} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	type moved struct {
		id, facility string
		raw          []byte
	}
	var all []moved
	if err := forEachRaw(tx, bOutbound, "", func(id string, raw []byte) bool {
		var rec letterRec
		if json.Unmarshal(raw, &rec) == nil && rec.ID == id && checkID("", "", rec.FacilityID) == nil && checkID("", "", id) == nil {
			all = append(all, moved{id, rec.FacilityID, bytes.Clone(raw)})
		}
		return true
	}); err != nil {
		return err
	}
	for _, m := range all {
		if err := putRaw(tx, bLetters, m.facility+"/"+m.id, m.raw); err != nil {
			return err
		}
		if err := putRaw(tx, bLetterAt, m.id, []byte(m.facility)); err != nil {
			return err
		}
		if err := deleteKey(tx, bOutbound, m.id); err != nil {
			return err
		}
	}
	return nil
}

// letterRaw is o's record as putLetter stores it.
func letterRaw(tx kv.Tx, bucket string, o Outbound, n uint64) ([]byte, error) {
	rec := letterRec{Outbound: o, BodyItem: n}
	if n != 0 {
		rec.Body = ""
	}
	var tm *timeMemo // in a batch's transaction, the times its item records wrote
	if ltx, ok := tx.(*logTx); ok {
		tm = &ltx.log.times
	}
	raw, err := encodeLetterRec(rec, tm)
	if err != nil {
		return nil, fmt.Errorf("encode %s record %q: %w", bucket, o.ID, err)
	}
	return raw, nil
}

// getLetter reads one letter record, its body text filled in from its item.
func getLetter(tx kv.Tx, bucket, id string) (letterRec, bool, error) {
	var rec letterRec
	found, err := getJSON(tx, bucket, id, &rec)
	if err != nil || !found {
		return rec, found, err
	}
	return rec, true, fillBody(tx, bucket, id, &rec)
}

// decodeLetter decodes raw, the record of letter key in bucket, its body text filled in.
func decodeLetter(tx kv.Tx, bucket, key string, raw []byte) (letterRec, error) {
	var rec letterRec
	if err := json.Unmarshal(raw, &rec); err != nil {
		return rec, &vocab.Error{Kind: vocab.KindCorrupt, Op: "read " + bucket, Err: fmt.Errorf("record %q: %w", key, err)}
	}
	return rec, fillBody(tx, bucket, key, &rec)
}

// forEachLetter calls fn with every letter of bucket under prefix ("": all; a facility's
// bLetters: facility + "/") in key order, body text filled in, until it returns false.
func forEachLetter(tx kv.Tx, bucket, prefix string, fn func(o Outbound) bool) error {
	var ferr error
	err := forEachJSON(tx, bucket, prefix, func(k string, rec letterRec) bool {
		if ferr = fillBody(tx, bucket, k, &rec); ferr != nil {
			return false
		}
		return fn(rec.Outbound)
	})
	if err != nil {
		return err
	}
	return ferr
}

// itemLetter is what a letter's text is read from: the body of the item that carried it, as
// vocab.Message decodes it (the field is matched as it was when the letter was made).
type itemLetter struct {
	Kind string `json:"kind"`
	Body struct {
		ID   string `json:"id"`
		Body string `json:"body"`
	} `json:"body"`
}

// fillBody sets rec's body text from the item it names.
func fillBody(tx kv.Tx, bucket, key string, rec *letterRec) error {
	if rec.BodyItem == 0 {
		return nil
	}
	il, err := readItemLetter(tx, rec.BodyItem)
	if err == nil && il.Body.ID != rec.ID {
		err = fmt.Errorf("item %d carries message %q", rec.BodyItem, il.Body.ID)
	}
	if err != nil {
		return &vocab.Error{Kind: vocab.KindCorrupt, Op: "read " + bucket, Err: fmt.Errorf("record %q: body: %w", key, err)}
	}
	rec.Body = il.Body.Body
	return nil
}

// readItemLetter reads the letter part of item n.
func readItemLetter(tx kv.Tx, n uint64) (itemLetter, error) {
	var il itemLetter
	raw := storedItemRaw(tx, n)
	if raw == nil {
		return il, fmt.Errorf("item %d is missing", n)
	}
	if err := json.Unmarshal(raw, &il); err != nil {
		return il, fmt.Errorf("item %d: %w", n, err)
	}
	if il.Kind != wire.UpMessage && il.Kind != wire.UpPREA {
		return il, fmt.Errorf("item %d is a %q item, not a letter", n, il.Kind)
	}
	return il, nil
}

// migrate2to3 moves each letter's body text out of its record: the record names the item that
// carried it (the first stored, not refused, message or prea item of that message id whose
// text is the same). A letter no item matches keeps its text.
func migrate2to3(tx kv.Tx) error {
	carrier := map[string]uint64{}
	err := forEachStoredItem(tx, func(n uint64, it StoredItem) bool {
		if it.Refused != "" || (it.Kind != wire.UpMessage && it.Kind != wire.UpPREA) {
			return true
		}
		var m vocab.Message
		if json.Unmarshal(it.Body, &m) != nil {
			return true
		}
		if _, ok := carrier[m.ID]; !ok {
			carrier[m.ID] = n
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, bucket := range []string{bOutbound, bPREA} {
		var recs []letterRec
		if err := forEachJSON(tx, bucket, "", func(_ string, rec letterRec) bool {
			if rec.BodyItem == 0 && carrier[rec.ID] != 0 {
				recs = append(recs, rec)
			}
			return true
		}); err != nil {
			return err
		}
		for _, rec := range recs {
			n := carrier[rec.ID]
			il, err := readItemLetter(tx, n)
			if err != nil || il.Body.Body != rec.Body {
				continue // not the text this record holds: it keeps it
			}
			if err := putLetter(tx, bucket, rec.Outbound, n); err != nil {
				return err
			}
		}
	}
	return nil
}
