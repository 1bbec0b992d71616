package wire

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// batchEncSamples are batches as a terminal sends them, and ones whose bodies or strings
// encoding/json rewrites (which Encode leaves to it).
func batchEncSamples() []Batch {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	zone := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("x", -5*3600))
	msg := `{"id":"m-1","inmate_id":"A1","box":"outbox","peer":"dept-law","peer_name":"Law Library","body":"Load test letter 1 from terminal 0.","state":"queued","created_at":"2026-03-01T12:00:00Z","updated_at":"2026-03-01T12:00:00Z"}`
	item := func(seq uint64, body string) Item {
		return Item{Seq: seq, ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Kind: UpMessage, CreatedAt: at, Body: json.RawMessage(body)}
	}
	return []Batch{
		{Epoch: "e1", Items: []Item{item(1, msg)}},
		{Epoch: "e1", Items: []Item{item(1, msg), item(2, `{"record_id":"s/1","cents":5}`), {Seq: 3, ID: "i", Kind: UpCharge, CreatedAt: zone, Body: json.RawMessage(`[1,-0.5e3,true,false,null,"x\u00e9\n"]`)}}},
		{Epoch: "e1"},                  // nil items: null
		{Epoch: "e1", Items: []Item{}}, // empty items: []
		{Epoch: "e1", Items: []Item{{Seq: 1, ID: "i", Kind: "k"}}}, // nil body: null, zero time
		{Epoch: "<a&b>\"\\\n\u2028\xff", Items: []Item{{Seq: 1, ID: "a<b", Kind: "\x00", CreatedAt: at, Body: json.RawMessage(`{}`)}}},
		{Epoch: "e", Items: []Item{item(1, `{"a": 1}`)}},             // white space: compacted
		{Epoch: "e", Items: []Item{item(1, ` {"a":1}`)}},             // leading white space
		{Epoch: "e", Items: []Item{item(1, `{"a":"<b>&"}`)}},         // HTML escaped
		{Epoch: "e", Items: []Item{item(1, "{\"a\":\"\u2028\"}")}},   // U+2028 escaped
		{Epoch: "e", Items: []Item{item(1, "{\"a\":\"\xff\xfe\"}")}}, // invalid UTF-8 in a string
		{Epoch: "e", Items: []Item{item(1, `{"a":`)}},                // not JSON: an error
		{Epoch: "e", Items: []Item{item(1, ``)}},                     // empty: an error
		{Epoch: "e", Items: []Item{item(1, `{} {}`)}},                // two values: an error
		{Epoch: "e", Items: []Item{{Seq: 1, ID: "i", Kind: "k", CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Body: json.RawMessage(`{}`)}}},
	}
}

// Encode writes a batch frame by hand (batchenc.go): byte for byte the frame encoding/json
// writes, and the same error where it refuses one.
func TestBatchFrameSameAsReflection(t *testing.T) {
	for _, b := range batchEncSamples() {
		want, werr := encodeReflect(b)
		for _, msg := range []any{b, &b} {
			got, err := Encode(msg)
			if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
				t.Fatalf("Encode(%T %+v): error %v, want %v", msg, b, err, werr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("batch %+v (%T):\n got %s\nwant %s", b, msg, got, want)
			}
		}
	}
	var nilBatch *Batch
	got, err := Encode(nilBatch)
	want, werr := encodeReflect(nilBatch)
	if !bytes.Equal(got, want) || (err == nil) != (werr == nil) {
		t.Fatalf("nil batch: %s, %v; want %s, %v", got, err, want, werr)
	}
	// A frame over the limit is refused as before.
	big := Batch{Epoch: "e", Items: []Item{{Seq: 1, ID: "i", Kind: "k", Body: json.RawMessage(`"` + string(bytes.Repeat([]byte("a"), MaxFrameBytes)) + `"`)}}}
	if _, err := Encode(big); err == nil {
		t.Fatal("a batch over MaxFrameBytes was encoded")
	}
}

// FuzzBatchFrameSame holds the hand-written batch frame to encoding/json's on any strings,
// bodies and times.
func FuzzBatchFrameSame(f *testing.F) {
	for _, b := range batchEncSamples() {
		for _, it := range b.Items {
			f.Add(b.Epoch, it.ID, it.Kind, []byte(it.Body), it.CreatedAt.UnixNano(), it.Seq)
		}
	}
	f.Fuzz(func(t *testing.T, epoch, id, kind string, body []byte, at int64, seq uint64) {
		b := Batch{Epoch: epoch, Items: []Item{
			{Seq: seq, ID: id, Kind: kind, CreatedAt: time.Unix(0, at).UTC(), Body: body},
			{Seq: seq / 2, ID: kind, Kind: id, CreatedAt: time.Unix(at, 0), Body: json.RawMessage(`{"x":1}`)},
		}}
		want, werr := encodeReflect(b)
		got, err := Encode(&b)
		if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
			t.Fatalf("batch %+v: error %v, want %v", b, err, werr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("batch %+v:\n got %s\nwant %s", b, got, want)
		}
	})
}
