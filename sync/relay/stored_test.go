package relay

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tether-kiosk/tether/sync/wire"
)

// An item is stored as the bytes of its body checked once: the record reads back as the one
// json.Marshal wrote before, and its hash is the one items stored before still carry, so a
// resend of an item stored by an older relay is still recognised.
func TestStoredItemKeepsTheBodyAsChecked(t *testing.T) {
	for _, body := range []string{
		`{"id":"m1","body":"a < b & c > d"}`,
		"{ \"id\" : \"m2\",\n \"body\" : \"spaced\\u00e9\" }",
		`{"detail":{"k":[1,2.5,null,true]}}`,
	} {
		it := wire.Item{Seq: 7, ID: "i-1", Kind: wire.UpMessage, CreatedAt: t0, Body: json.RawMessage(body)}
		p := prepare(it, nil)
		if !p.valid || p.hash != itemHash(it.Kind, it.Body) {
			t.Fatalf("%s: valid %v, hash %s, want %s", body, p.valid, p.hash, itemHash(it.Kind, it.Body))
		}
		// A body from a decoded frame, compact or not, comes out the same.
		if q := prepare(it, &wire.CheckedBodies([]wire.Item{it})[0]); q.hash != p.hash || string(q.canon) != string(p.canon) || !q.valid {
			t.Fatalf("%s: from a decoded frame %s %s, want %s %s", body, q.canon, q.hash, p.canon, p.hash)
		}
		got, err := storedItemJSON(it, p.canon, "t-1", "ep", t0, "invalid")
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(StoredItem{Item: it, TerminalID: "t-1", Epoch: "ep", ReceivedAt: t0, Refused: "invalid"})
		if err != nil {
			t.Fatal(err)
		}
		var a, b StoredItem
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%s: stored %s does not decode: %v", body, got, err)
		}
		if err := json.Unmarshal(want, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("stored %s\nwant    %s", got, want)
		}
	}
	// A body that is not JSON (no frame yields one; a direct caller might) is stored as null.
	p := prepare(wire.Item{Kind: wire.UpMessage, Body: json.RawMessage(`{"id":`)}, nil)
	if p.valid || string(p.canon) != "null" {
		t.Fatalf("broken body prepared as %+v", p)
	}
}
