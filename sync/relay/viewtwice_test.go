package relay

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// viewsTwice is a bbolt store that runs every View's fn twice and answers with the second
// run, as the JetStream store does when a commit lands while a View reads (kv.Store: fn may
// run more than once). A listing that kept its first run's lines showed them twice.
type viewsTwice struct{ kv.Store }

func (s viewsTwice) View(ctx context.Context, fn func(kv.Tx) error) error {
	if err := s.Store.View(ctx, fn); err != nil {
		return err
	}
	return s.Store.View(ctx, fn)
}

// What staff and inmates read through the relay is the same when every View runs twice:
// letters, PREA reports (every one and a facility's), contacts, inmates, facilities, an
// inmate's statement (its lines and total), refusals, invitations, letters held for photo
// review, replies, the catalog and its owners. TestRestoredTerminalLosesNothing on JetStream
// found a letter listed twice.
func TestListingsWhenAViewRunsAgain(t *testing.T) {
	db, err := boltkv.Open(filepath.Join(t.TempDir(), "relay.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(cfg *Config) { cfg.Store = viewsTwice{db} })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	ack := c.batch(
		k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "dept-medical", Subject: "Tooth", Body: "My tooth hurts"}),
		k.item(wire.UpPREA, kiosk.Message{ID: "p1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: kiosk.PREAChannel, Body: "a report"}),
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c1", InmateID: "A1", Name: "Mom", Email: "mom@example.org", State: kiosk.ContactPending}),
		k.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k.item(wire.UpCharge, charge("A1", "s1", 1, 5)),
		k.item(wire.UpCharge, charge("Z9", "s2", 0, 5)), // nobody's inmate: refused
	)
	if ack.Seq != 6 || len(ack.Rejected) != 1 {
		t.Fatalf("ack = %+v, want 6 items and one refused", ack)
	}
	letters, err := e.r.Outbound(OutboundFilter{InmateID: "A1"})
	if err != nil || len(letters) != 1 {
		t.Errorf("outbound letters: %d (%v), want 1", len(letters), err)
	}
	if prea, err := e.r.PREAReports("A1"); err != nil || len(prea) != 1 {
		t.Errorf("PREA reports: %d (%v), want 1", len(prea), err)
	}
	if prea, err := e.r.PREAReportsOf("north"); err != nil || len(prea) != 1 {
		t.Errorf("north's PREA reports: %d (%v), want 1", len(prea), err)
	}
	if cs, err := e.r.Contacts("", "A1"); err != nil || len(cs) != 1 {
		t.Errorf("contacts: %d (%v), want 1", len(cs), err)
	}
	if ins, err := e.r.Inmates("north"); err != nil || len(ins) != 3 {
		t.Errorf("inmates: %d (%v), want 3", len(ins), err)
	}
	if fs, err := e.r.Facilities(); err != nil || len(fs) != 1 {
		t.Errorf("facilities: %v (%v), want north", fs, err)
	}
	u, err := e.r.Usage("A1")
	if err != nil || len(u.Records) != 2 || u.TotalCents != 10 {
		t.Errorf("A1's statement: %d lines, %d cents (%v); want 2 lines, 10 cents", len(u.Records), u.TotalCents, err)
	}
	if rs, err := e.r.Refusals(RefusalFilter{}); err != nil || len(rs) != 1 {
		t.Errorf("refusals: %d (%v), want 1", len(rs), err)
	}
	// The contact approved and invited, and a family letter with a photo held for review.
	e.approveAccepted("c1")
	if inv, err := e.r.Invitations(false); err != nil || len(inv) != 1 {
		t.Errorf("invitations: %d (%v), want 1", len(inv), err)
	}
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/monitoring", map[string]any{"hold_outbound": false, "photo_review": "hold"}, nil)
	e.must(http.StatusCreated, "POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "c1", "body": "Look",
		"photos": []map[string]any{{"data": testJPEG(t, 32, 32, 1)}}}, nil)
	if held, err := e.r.HeldInbound(); err != nil || len(held) != 1 {
		t.Errorf("letters held for photo review: %d (%v), want 1", len(held), err)
	}
	// The department answers the request, and the facility's catalog has a track.
	if _, _, err := e.r.ReplyToRequest("m1", ReplyRequest{From: "dept-medical", Body: "Tuesday."}); err != nil {
		t.Fatal(err)
	}
	if rp, err := e.r.Replies(); err != nil || len(rp["m1"]) != 1 {
		t.Errorf("replies to m1: %d (%v), want 1", len(rp["m1"]), err)
	}
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t1", e.uploadTrack(testMP3(20, 1)), 0)})
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t2", e.uploadTrack(testMP3(20, 2)), 129)})
	if cat, err := e.r.Catalog("north"); err != nil || len(cat) != 2 {
		t.Errorf("catalog: %d entries (%v), want 2", len(cat), err)
	}
	// A1's tablet buys the priced track.
	tab := e.enroll(wire.ModeTablet, "A1")
	if ack := tab.connect(t, 0).batch(tab.item(wire.UpCharge, kiosk.Charge{RecordID: vocab.PurchaseRecordID("p1"), InmateID: "A1",
		ItemID: "t2", Cents: 129, At: t0})); len(ack.Rejected) != 0 {
		t.Fatalf("purchase: %+v", ack)
	}
	if owners, err := e.r.CatalogOwners("north"); err != nil || owners["t2"] != 1 {
		t.Errorf("owners of t2: %d (%v), want 1", owners["t2"], err)
	}
}

// An invitation waiting to be sent again goes out once when the View that finds it runs twice.
// Two guards keep it so: the View's list starts over, and sendInvitation sends only what is
// still unsent in its own transaction. The test fails only with both gone (checked): then the
// family got two emails with two codes.
func TestRetryInvitationsWhenAViewRunsAgain(t *testing.T) {
	db, err := boltkv.Open(filepath.Join(t.TempDir(), "relay.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(t.TempDir(), "spool")
	if err := os.WriteFile(spool, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(cfg *Config) { cfg.Store = viewsTwice{db}; cfg.Notifier = SpoolNotifier{Dir: spool} })
	e.approvedContact()
	if err := os.Remove(spool); err != nil { // the spool is mended; the invitation waits
		t.Fatal(err)
	}
	sent, failed, err := e.r.RetryInvitations(context.Background())
	if err != nil || sent != 1 || failed != 0 {
		t.Fatalf("retry: %d sent, %d failed (%v); want 1 sent", sent, failed, err)
	}
	if mails, _ := filepath.Glob(filepath.Join(spool, "*.eml")); len(mails) != 1 {
		t.Fatalf("the family got %d invitations, want 1: %v", len(mails), mails)
	}
}
