package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The bodies the tool writes by hand are what json.Marshal writes for the same record: every
// generated item (each kind, every department, seqs across session boundaries) decodes into
// its record and encodes back to the same bytes, and the hand writers give json.Marshal's
// bytes for records with what they leave to it.
func TestGeneratedBodiesAsEncodingJSON(t *testing.T) {
	term := &terminal{idx: 7, id: "t-0007", epoch: "0f3c9a11deadbeef", inmates: []string{"A1", "B-2"},
		mix: Mix{Charge: 1, Message: 1, Status: 1}, rng: rand.New(rand.NewPCG(1, 2))}
	kinds := map[string]int{}
	for range 2000 {
		it := term.newItem(time.Now().UTC())
		kinds[it.Kind]++
		var rec any
		switch it.Kind {
		case wire.UpCharge:
			rec = new(kiosk.Charge)
		case wire.UpMessage:
			rec = new(kiosk.Message)
		default:
			continue
		}
		if err := json.Unmarshal(it.Body, rec); err != nil {
			t.Fatalf("%s body %s: %v", it.Kind, it.Body, err)
		}
		want, _ := json.Marshal(rec)
		if !bytes.Equal(it.Body, want) {
			t.Fatalf("%s body:\n got %s\nwant %s", it.Kind, it.Body, want)
		}
	}
	if kinds[wire.UpCharge] == 0 || kinds[wire.UpMessage] == 0 {
		t.Fatalf("kinds made: %v", kinds)
	}

	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("x", 3600))
	for _, m := range []kiosk.Message{
		{ID: "m", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "d", PeerName: "Medical & Dental", Body: "b", CreatedAt: at, UpdatedAt: at},
		{ID: "m", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "d", PeerName: "Law", Body: "a\nb", CreatedAt: at, UpdatedAt: at},
		{ID: "m", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "d", PeerName: "Law", Body: "<c>", CreatedAt: at, UpdatedAt: at},
		{ID: "m", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "d", PeerName: "Law", Body: `say "hi" \ bye`, CreatedAt: at, UpdatedAt: at},
		{ID: "m", Subject: "s", Body: "b", State: kiosk.MsgQueued, CreatedAt: at},
		{ID: "m", Read: true},
		{ID: "é", InmateID: "\u2028"},
	} {
		want, _ := json.Marshal(m)
		if got := messageBody(m); !bytes.Equal(got, want) {
			t.Fatalf("message %+v:\n got %s\nwant %s", m, got, want)
		}
	}
	for _, c := range []kiosk.Charge{
		{RecordID: "r/1", SessionID: "s", InmateID: "A1", Minute: -3, Cents: 5, At: at},
		{RecordID: "r", MessageID: "m", Pages: 2},
		{RecordID: "r\"", At: at},
	} {
		want, _ := json.Marshal(c)
		if got := chargeBody(c); !bytes.Equal(got, want) {
			t.Fatalf("charge %+v:\n got %s\nwant %s", c, got, want)
		}
	}
}
