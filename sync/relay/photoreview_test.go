package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A facility that reviews photos holds a family's letter with photos: no terminal gets the
// letter, nor its photos even by hash, until staff approve it; then the letter comes with its
// photos, fetchable. A rejected letter is never sent and its photos are deleted, unless
// another letter holds the same photo. Staff see a held letter's photos.
func TestPhotoReviewHoldsLetterAndPhotos(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(k.item(wire.UpContactRequest, kiosk.Contact{ID: "c-ana", InmateID: "A1", Name: "Ana", Email: "ana@example.org", State: kiosk.ContactPending}))
	e.approveAccepted("c-ana")

	status, b := e.call("PUT", "/admin/v1/facilities/north/monitoring", map[string]any{"hold_outbound": true, "photo_review": "maybe"})
	if status != http.StatusBadRequest || !bytes.Contains(b, []byte("photo_review")) {
		t.Fatalf("photo_review maybe: %d %s; want 400 naming photo_review", status, b)
	}
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/monitoring", map[string]any{"hold_outbound": true, "photo_review": "hold"}, nil)
	if m, err := e.r.MonitoringOf("north"); err != nil || m.PhotoReview != PhotoReviewHold {
		t.Fatalf("monitoring %+v, %v; want photo review hold", m, err)
	}

	jp, other := testJPEG(t, 64, 48, 1), testJPEG(t, 32, 32, 2)
	post := func(photos ...[]byte) kiosk.Message {
		var ups []map[string]any
		for _, p := range photos {
			ups = append(ups, map[string]any{"data": p})
		}
		var m kiosk.Message
		e.must(http.StatusCreated, "POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "c-ana", "body": "Look", "photos": ups}, &m)
		return m
	}
	held := post(jp)
	list, err := e.r.HeldInbound()
	if err != nil || len(list) != 1 || list[0].ID != held.ID || list[0].FacilityID != "north" || list[0].Status != vocab.MsgHeld ||
		len(list[0].Photos) != 1 || list[0].Photos[0].Width != 64 {
		t.Fatalf("held inbound = %+v, %v; want the letter, held with its photo", list, err)
	}
	obj, _ := content.ParseHash(held.Photos[0].SHA256)
	send(t, c.c, wire.ContentWant{Object: obj, Manifest: true})
	if f := c.readContent(); f.ContentMissing == nil || f.ContentMissing.Reason != wire.ContentNotYours {
		t.Fatalf("a held letter's photo asked for by hash: %s, want not_yours", f.Type)
	}
	for _, it := range c.down {
		if it.Kind == wire.DownInboundMessage {
			t.Fatalf("the kiosk got a letter held for photo review: %s", it.Body)
		}
	}
	if status, b := e.call("GET", fmt.Sprintf("/admin/v1/inbound/%s/photos/0", held.ID), nil); status != http.StatusOK || !bytes.Equal(b, jp) {
		t.Fatalf("staff GET the held photo: %d, %d bytes", status, len(b))
	}

	if _, err := e.r.ApproveInbound(held.ID); err != nil {
		t.Fatal(err)
	}
	got := decodeAs[kiosk.Message](t, c.waitDown(wire.DownInboundMessage, nil).Body)
	if got.ID != held.ID || len(got.Photos) != 1 || got.Photos[0] != held.Photos[0] {
		t.Fatalf("after approval the kiosk got %+v", got)
	}
	send(t, c.c, wire.ContentWant{Object: obj, Manifest: true})
	if f := c.readContent(); f.ContentManifest == nil || content.Sum(f.ContentManifest.Manifest).String() != held.Photos[0].Manifest {
		t.Fatalf("the approved letter's photo: %s, want its manifest", f.Type)
	}
	if _, err := e.r.ApproveInbound(held.ID); err == nil || vocab.KindOf(err) != vocab.KindConflict {
		t.Fatalf("approve twice: %v; want a conflict", err)
	}

	// Rejected: the photo only this letter held is deleted; the one an approved letter holds stays.
	rej := post(other, jp)
	if _, err := e.r.RejectInbound(rej.ID, vocab.ReviewContentPolicy); err != nil {
		t.Fatal(err)
	}
	st, _ := e.r.contentStore()
	if s, _ := st.State(mustParseHash(t, rej.Photos[0].SHA256)); s != content.Absent {
		t.Fatalf("the rejected letter's own photo is %s on the relay; want deleted", s)
	}
	if s, _ := st.State(obj); s != content.Whole {
		t.Fatalf("a photo an approved letter holds is %s after another letter with it was rejected", s)
	}
	if status, _ := e.call("GET", fmt.Sprintf("/admin/v1/inbound/%s/photos/0", rej.ID), nil); status != http.StatusNotFound {
		t.Fatalf("GET a rejected letter's deleted photo: %d, want 404", status)
	}
	if list, _ := e.r.HeldInbound(); len(list) != 0 {
		t.Fatalf("held after the decisions: %+v", list)
	}
	if _, err := e.r.ApproveInbound(rej.ID); vocab.KindOf(err) != vocab.KindConflict {
		t.Fatalf("approve a rejected letter: %v; want a conflict", err)
	}
	// A letter with no photo is not held.
	var plain kiosk.Message
	e.must(http.StatusCreated, "POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "c-ana", "body": "no photo"}, &plain)
	if got := decodeAs[kiosk.Message](t, c.waitDown(wire.DownInboundMessage, func(b json.RawMessage) bool {
		return bytes.Contains(b, []byte(plain.ID))
	}).Body); got.Body != "no photo" {
		t.Fatalf("plain letter: %+v", got)
	}
	for _, it := range c.down {
		if it.Kind == wire.DownInboundMessage && bytes.Contains(it.Body, []byte(rej.ID)) {
			t.Fatal("the kiosk got the rejected letter")
		}
	}
}

func mustParseHash(t *testing.T, s string) content.Hash {
	t.Helper()
	h, err := content.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// An inmate moved to another facility while their letter waited: approval sends it, with
// photos fetchable, to the facility they are in now, and the old facility's kiosk gets neither.
func TestPhotoReviewFollowsAMovedInmate(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if err := e.r.PutPolicy("south", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	e.letterContact("A1", "c-pal")
	if err := e.r.SetMonitoring("north", Monitoring{HoldOutbound: true, PhotoReview: PhotoReviewHold}); err != nil {
		t.Fatal(err)
	}
	var m kiosk.Message
	e.must(http.StatusCreated, "POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "c-pal", "body": "Look",
		"photos": []map[string]any{{"data": testJPEG(t, 40, 30, 5)}}}, &m)
	if err := e.r.PutRoster("south", Roster{Inmates: []RosterInmate{{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234",
		Language: "en", Status: kiosk.StatusActive}}}); err != nil {
		t.Fatal(err)
	}
	south := e.enrollAt("south", wire.ModeKiosk, "")
	sc := south.connect(t, 0)
	if _, err := e.r.ApproveInbound(m.ID); err != nil {
		t.Fatal(err)
	}
	got := decodeAs[kiosk.Message](t, sc.waitDown(wire.DownInboundMessage, nil).Body)
	if got.ID != m.ID {
		t.Fatalf("south's kiosk got %+v", got)
	}
	obj := mustParseHash(t, m.Photos[0].SHA256)
	send(t, sc.c, wire.ContentWant{Object: obj, Manifest: true})
	if f := sc.readContent(); f.ContentManifest == nil {
		t.Fatalf("south's kiosk asking for the approved photo: %s, want its manifest", f.Type)
	}
	north := e.enroll(wire.ModeKiosk, "")
	nc := north.connect(t, 0)
	send(t, nc.c, wire.ContentWant{Object: obj, Manifest: true})
	if f := nc.readContent(); f.ContentMissing == nil || f.ContentMissing.Reason != wire.ContentNotYours {
		t.Fatalf("north's kiosk asking for the photo of a letter to an inmate gone south: %s, want not_yours", f.Type)
	}
}
