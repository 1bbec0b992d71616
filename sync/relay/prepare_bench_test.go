package relay

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// BenchmarkReadBatch256: what a connection's reader does with one batch frame of 256 letters
// of 1 KiB before it queues it for the store (decode, then prepareAll: hash and text check).
func BenchmarkReadBatch256(b *testing.B) {
	text := strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit ", 19)[:1024]
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	batch := wire.Batch{Epoch: "5b0e4f7a9c1d2e3f4a5b6c7d8e9f0a1b"}
	for i := range 256 {
		body, err := json.Marshal(vocab.Message{ID: fmt.Sprintf("01920c6e-8f00-7000-8000-%012d", i), InmateID: "A123456",
			Box: vocab.BoxOutbox, Peer: "dept-medical", Subject: fmt.Sprintf("A1 #%06d", i), Body: text, State: vocab.MsgQueued,
			CreatedAt: at, UpdatedAt: at})
		if err != nil {
			b.Fatal(err)
		}
		batch.Items = append(batch.Items, wire.Item{Seq: uint64(i + 1), ID: fmt.Sprintf("01920c6e-9000-7000-8000-%012d", i),
			Kind: wire.UpMessage, CreatedAt: at, Body: body})
	}
	frame, err := wire.Encode(batch)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, bodies, err := wire.DecodeUplinkFrame(frame)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range prepareAll(f.Batch.Items, bodies) {
			if p.text != textValid {
				b.Fatal("a letter's text was not found valid")
			}
		}
	}
}
