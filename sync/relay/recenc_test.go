package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// fillAll sets every field of the struct v points to (recursively into embedded and nested
// structs) to a value that is not zero, so a field added to a record later, and not written by
// its appender, shows up as a difference with json.Marshal. skip names fields left alone.
func fillAll(t *testing.T, v reflect.Value, s string, skip map[string]bool) {
	t.Helper()
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("x", 3600))))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() && !skip[f.Name] {
				fillAll(t, v.Field(i), s+f.Name, skip)
			}
		}
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(len(s)) + 7)
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		v.SetUint(uint64(len(s)) + 9)
	default:
		t.Fatalf("fillAll: field %s of kind %s: teach the test (and encodeLetterRec) this field", s, v.Kind())
	}
}

func sameAsMarshal(t *testing.T, what string, got []byte, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: json.Marshal: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: appender wrote\n%s\njson.Marshal writes\n%s", what, got, want)
	}
}

// TestRecordEncodersSame: each record appender writes what json.Marshal writes, for a record
// with every field set (a field added to the struct and not to the appender fails here), for
// one with every omitempty field empty, and for strings and times off the fast path.
func TestRecordEncodersSame(t *testing.T) {
	var full letterRec
	fillAll(t, reflect.ValueOf(&full).Elem(), "v", map[string]bool{"Photos": true})
	got, err := encodeLetterRec(full, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameAsMarshal(t, "letter, every field", got, full)

	var ref itemRef
	fillAll(t, reflect.ValueOf(&ref).Elem(), "r", nil)
	sameAsMarshal(t, "item ref, every field", encodeItemRef(ref), ref)
	var sr seqRec
	fillAll(t, reflect.ValueOf(&sr).Elem(), "s", nil)
	sameAsMarshal(t, "seq record", encodeSeqRec(sr), sr)
	var head storedHead
	fillAll(t, reflect.ValueOf(&head).Elem(), "h", nil)
	body := []byte(`{"a":[1,"x"]}`)
	gotItem, err := encodeStoredHead(head, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := headThenBody(t, head, body); !bytes.Equal(gotItem, want) {
		t.Errorf("stored item, every field: appender wrote\n%s\nwant\n%s", gotItem, want)
	}
	if n := reflect.TypeOf(storedHead{}).NumField(); n != reflect.TypeOf(StoredItem{}).NumField()+reflect.TypeOf(wire.Item{}).NumField()-2 {
		t.Errorf("storedHead has %d fields: it must be StoredItem's without the body", n)
	}

	odd := []string{"", "plain", `quote " and \ back`, "<b>&amp;</b>", "tab\tnewline\n", "é ü 中文", "bad \xff utf-8", "\u2028 \u2029", "\x00\x1f\x7f"}
	times := []time.Time{{}, time.Unix(1, 5).UTC(), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("y", -5*3600-30*60)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("s", 17))}
	for _, s := range odd {
		for _, tm := range times {
			rec := letterRec{Outbound: Outbound{Message: vocab.Message{ID: s, Body: s, Subject: s, CreatedAt: tm}, ReceivedAt: tm}}
			got, err := encodeLetterRec(rec, nil)
			want, werr := json.Marshal(rec)
			if (err != nil) != (werr != nil) || !bytes.Equal(got, want) {
				t.Errorf("letter %q at %v: appender wrote %s (%v), json.Marshal %s (%v)", s, tm, got, err, want, werr)
			}
			sameAsMarshal(t, "item ref "+s, encodeItemRef(itemRef{Hash: s, Epoch: s, Refused: s}), itemRef{Hash: s, Epoch: s, Refused: s})
		}
	}
	// A letter with photos is not the appender's: it is json.Marshal's, whole.
	withPhoto := letterRec{Outbound: Outbound{Message: vocab.Message{ID: "m", Photos: []vocab.Photo{{}}}}}
	got, err = encodeLetterRec(withPhoto, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameAsMarshal(t, "letter with a photo", got, withPhoto)
}

// FuzzRecordEncodersSame: for any strings, numbers and times, the appenders write what
// json.Marshal writes (or both refuse).
func FuzzRecordEncodersSame(f *testing.F) {
	f.Add("m1", "body <text> & \"more\"", "held", uint64(7), int64(1700000000), int64(0), 3600)
	f.Add("", "\xff\xfe", "", uint64(0), int64(-62135596800), int64(999999999), -19800)
	f.Add("é", "\u2028", "x", uint64(1<<63), int64(253402300800), int64(1), 17)
	f.Fuzz(func(t *testing.T, id, body, status string, n uint64, sec, nsec int64, off int) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("z", off%(48*3600)))
		rec := letterRec{Outbound: Outbound{Message: vocab.Message{ID: id, Body: body, Subject: status, State: status,
			CreatedAt: tm, UpdatedAt: tm}, Status: status, ReceivedAt: tm, StampDue: vocab.Cents(n)}, BodyItem: n}
		got, err := encodeLetterRec(rec, nil)
		want, werr := json.Marshal(rec)
		if (err != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("letter: appender %s (%v), json.Marshal %s (%v)", got, err, want, werr)
		}
		ref := itemRef{Hash: body, TerminalID: id, Epoch: status, Seq: n, Refused: status}
		if want, _ := json.Marshal(ref); !bytes.Equal(encodeItemRef(ref), want) {
			t.Fatalf("item ref: appender %s, json.Marshal %s", encodeItemRef(ref), want)
		}
		h := storedHead{Seq: n, ID: id, Kind: status, CreatedAt: tm, TerminalID: body, Epoch: id, ReceivedAt: tm, Refused: status}
		got, err = encodeStoredHead(h, []byte("null"))
		if _, herr := json.Marshal(h); (err != nil) != (herr != nil) {
			t.Fatalf("stored item: appender error %v, json.Marshal error %v", err, herr)
		}
		if err == nil && !bytes.Equal(got, headThenBody(t, h, []byte("null"))) {
			t.Fatalf("stored item: appender %s, want %s", got, headThenBody(t, h, []byte("null")))
		}
		if got, want := seqKey(id, status, n), fmtSeqKey(id, status, n); got != want {
			t.Fatalf("seqKey %q, fmt %q", got, want)
		}
	})
}

// fmtSeqKey is seqKey as it was written with fmt.
func fmtSeqKey(termID, epoch string, seq uint64) string {
	return fmt.Sprintf("%s/%s/%020d", termID, epoch, seq)
}

// headThenBody is an item record as the relay has always written it: json.Marshal of the head,
// then the body as the last member.
func headThenBody(t *testing.T, h storedHead, body []byte) []byte {
	head, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(append(head[:len(head)-1:len(head)-1], `,"body":`...), body...), '}')
}

// TestTimeMemoSameAsMarshal: records written through one memo (as a batch's transaction writes
// them, the same receive time again and again) are what json.Marshal writes, for the same
// instant in other zones, the zero time (also in a zone), and times it refuses in between.
func TestTimeMemoSameAsMarshal(t *testing.T) {
	at := time.Date(2026, 12, 1, 3, 4, 5, 600, time.UTC)
	zone := time.FixedZone("x", 5*3600+30*60)
	times := []time.Time{at, at, {}, at.In(zone), at, time.Time{}.In(zone), at.Add(time.Nanosecond),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), at, at.In(zone), time.Time{}.In(zone), {}, at.Round(time.Second)}
	var memo timeMemo
	for i, tm := range times {
		prev := times[(i+len(times)-1)%len(times)]
		rec := letterRec{Outbound: Outbound{Message: vocab.Message{ID: "m", CreatedAt: prev, UpdatedAt: tm},
			ReceivedAt: tm, ReviewedAt: prev}, BodyItem: uint64(i + 1)}
		got, err := encodeLetterRec(rec, &memo)
		want, werr := json.Marshal(rec)
		if (err != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Errorf("letter %d at %v: appender with memory wrote %s (%v), json.Marshal %s (%v)", i, tm, got, err, want, werr)
		}
		h := storedHead{Seq: uint64(i), ID: "i", Kind: "message", CreatedAt: prev, ReceivedAt: tm}
		got, err = appendStoredHead([]byte("x"), h, []byte("null"), &memo)
		if _, herr := json.Marshal(h); (err != nil) != (herr != nil) {
			t.Fatalf("stored item %d: appender error %v, json.Marshal error %v", i, err, herr)
		}
		if err == nil && !bytes.Equal(got, append([]byte("x"), headThenBody(t, h, []byte("null"))...)) {
			t.Errorf("stored item %d at %v: appender with memory wrote %s, want x%s", i, tm, got, headThenBody(t, h, []byte("null")))
		}
	}
}
