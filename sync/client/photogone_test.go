package client

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// On a tablet, a letter the relay sends again (its down_ack was lost) retains none of the
// photos the person deleted since, and nothing of a letter they deleted: a deleted photo is
// never fetched again.
func TestDeletedPhotoNotRetainedAgain(t *testing.T) {
	f := newFakeRelay(t, false)
	term, dir := enrolledPlain(t, f)
	store, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	hash, err := kiosk.HashPINWith("2468", kiosk.TestPINParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := term.UpsertInmate(kiosk.Inmate{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PINHash: hash, Language: "en",
		Status: kiosk.StatusActive, Messaging: true, TabletBound: true}, "relay"); err != nil {
		t.Fatal(err)
	}
	if err := term.BindTablet("A1"); err != nil {
		t.Fatal(err)
	}
	eng, err := New(Config{DataDir: dir, Terminal: term, Content: store})
	if err != nil {
		t.Fatal(err)
	}
	photo := func(c string) kiosk.Photo {
		return kiosk.Photo{SHA256: strings.Repeat(c, 64), Manifest: strings.Repeat("e", 64), Size: 1000, Type: vocab.PhotoJPEG}
	}
	kept, deleted, ofDeleted := photo("1"), photo("2"), photo("3")
	letters := []kiosk.Message{
		{ID: "L1", InmateID: "A1", Peer: "c-mom", PeerName: "Mom", Body: "two photos", Photos: []kiosk.Photo{kept, deleted}},
		{ID: "L2", InmateID: "A1", Peer: "c-mom", PeerName: "Mom", Body: "one photo", Photos: []kiosk.Photo{ofDeleted}},
	}
	var items []wire.DownItem
	for i, m := range letters {
		b, _ := json.Marshal(m)
		items = append(items, wire.DownItem{Seq: uint64(i + 1), Kind: wire.DownInboundMessage, Body: b})
	}
	if retained, err := eng.retainPhotos(items); err != nil || !retained {
		t.Fatalf("first delivery: retained %v, %v", retained, err)
	}
	for _, m := range letters {
		if _, err := term.DeliverInbound(m); err != nil {
			t.Fatal(err)
		}
	}
	p, err := term.EnterBoundPIN("2468")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := term.AcceptNotice(p); err != nil {
		t.Fatal(err)
	}
	if err := term.DeletePhoto("A1", "L1", deleted.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := term.DeleteLetter("A1", "L2"); err != nil {
		t.Fatal(err)
	}
	if _, err := term.ReleaseGonePhotos(store); err != nil {
		t.Fatal(err)
	}

	// The relay sends both letters again.
	if _, err := eng.retainPhotos(items); err != nil {
		t.Fatal(err)
	}
	wanted, err := store.Wanted(10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ref := range wanted {
		got = append(got, ref.Object.String())
	}
	if !slices.Equal(got, []string{kept.SHA256}) {
		t.Fatalf("wanted after the letters came again: %v; want only the photo kept", got)
	}
}
