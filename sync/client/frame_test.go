package client

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// wireFrame is what the uplink sent before batches were built from stored bytes: each item
// decoded, then the batch encoded by the wire package.
func wireFrame(t *testing.T, epoch string, items []kiosk.Item) []byte {
	t.Helper()
	b := wire.Batch{Epoch: epoch}
	for _, it := range items {
		b.Items = append(b.Items, wire.Item{Seq: it.Seq, ID: it.ID, Kind: string(it.Kind), CreatedAt: it.CreatedAt, Body: it.Body})
	}
	enc, err := wire.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// The batch frame built by copying the stored items is byte for byte the frame wire.Encode
// writes for them, for every kind of item a terminal queues (text with characters JSON escapes
// included), before and after a new epoch renumbers the queue, and the relay's decoder takes it.
func TestBatchFrameIsWireEncoding(t *testing.T) {
	term, _ := newTestTerminal(t)
	hash, err := kiosk.HashPINWith("4826", kiosk.TestPINParams())
	if err != nil {
		t.Fatal(err)
	}
	in := kiosk.Inmate{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PINHash: hash, Language: "en", Status: kiosk.StatusActive, Messaging: true}
	if err := term.UpsertInmate(in, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := term.SendPREA("A1", "Officer <B> & \"friends\" said \u2028 something\t\n中文 😀"); err != nil {
		t.Fatal(err)
	}
	if _, err := term.SendPREA("", "anonymous"); err != nil {
		t.Fatal(err)
	}
	if err := term.SaveDraft(kiosk.Draft{InmateID: "A1", Peer: kiosk.PREAChannel, Body: "x"}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		store := term.Store()
		epoch, err := store.Epoch()
		if err != nil {
			t.Fatal(err)
		}
		items, err := store.Pending(0, 1000, 1<<30)
		if err != nil || len(items) < 3 {
			t.Fatalf("%s: pending %d items, %v", when, len(items), err)
		}
		qs, err := store.PendingWire(0, 1000, 1<<30)
		if err != nil || len(qs) != len(items) {
			t.Fatalf("%s: PendingWire %d items, %v", when, len(qs), err)
		}
		got, err := batchFrame(nil, epoch, qs)
		if err != nil {
			t.Fatal(err)
		}
		if want := wireFrame(t, epoch, items); !bytes.Equal(got, want) {
			t.Fatalf("%s: frame\n%s\nwant\n%s", when, got, want)
		}
		f, err := wire.DecodeFrame(got)
		if err != nil || f.Batch == nil || len(f.Batch.Items) != len(items) || f.Batch.Items[0].Seq != qs[0].Seq {
			t.Fatalf("%s: relay decodes %+v, %v", when, f.Batch, err)
		}
		// As the uplink reads and builds them: into the buffers of an earlier batch, still
		// holding its bytes (here: the first item alone, then the frame just built).
		arena := bytes.Repeat([]byte{'#'}, 1<<16)
		first, arena, err := store.PendingWireInto(arena, 0, 1, 1<<30)
		if err != nil || len(first) != 1 {
			t.Fatalf("%s: PendingWireInto of one item: %d items, %v", when, len(first), err)
		}
		again, _, err := store.PendingWireInto(arena, 0, 1000, 1<<30)
		if err != nil || len(again) != len(qs) || &again[0].JSON[0] != &arena[0] {
			t.Fatalf("%s: PendingWireInto %d items, %v, arena reused: %v", when, len(again), err, err == nil && len(again) > 0 && &again[0].JSON[0] == &arena[0])
		}
		reused, err := batchFrame(append(got[:0:len(got)], "stale"...), epoch, again)
		if err != nil {
			t.Fatal(err)
		}
		if want := wireFrame(t, epoch, items); !bytes.Equal(reused, want) {
			t.Fatalf("%s: frame in reused buffers\n%s\nwant\n%s", when, reused, want)
		}
	}
	check("as queued")
	if _, err := term.NewEpoch("sequence conflict"); err != nil {
		t.Fatal(err)
	}
	check("after a new epoch")
}

// A frame over the limit is refused with wire.ErrTooLarge, so the uplink splits it.
func TestBatchFrameTooLarge(t *testing.T) {
	big := kiosk.QueuedItem{Seq: 1, JSON: []byte(`{"seq":1,"body":"` + strings.Repeat("x", wire.MaxFrameBytes) + `"}`)}
	if _, err := batchFrame(nil, "e", []kiosk.QueuedItem{big}); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
}
