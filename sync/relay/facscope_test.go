package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Every root bucket is placed: a facility's own, its terminals', its inmates', or the
// state's. A new root must be placed before a held facility could write it.
func TestEveryRootHasAnOwnerKind(t *testing.T) {
	for _, root := range allBuckets() {
		if _, known := rootOwner(root); !known {
			t.Errorf("root %q is not placed in rootOwner (facscope.go)", root)
		}
	}
}

// After a day of two facilities' terminals, every record of a root that owners hold names an
// owner the records know, and exactly one facility's scope holds it: the one its terminal,
// inmate or own record belongs to. What the state shares, no facility holds.
func TestEveryRecordHasOneFacility(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.seedSouth()
	holdRequests(t, e)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 900, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	e.letterContact("A1", "pal")
	if _, err := e.r.Inbound(InboundRequest{InmateID: "A1", From: "pal", Body: "from home"}); err != nil {
		t.Fatal(err)
	}
	at := "2026-03-02T10:00:00Z"
	north, tablet := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeTablet, "A1")
	south := e.enrollAt("south", wire.ModeKiosk, "")
	cn, ct, cs := north.connect(t, 0), tablet.connect(t, 0), south.connect(t, 0)
	cn.batch(north.item(wire.UpCharge, charge("A1", "s1", 0, 5)), north.item(wire.UpCharge, charge("S1", "s9", 0, 5)),
		letter(north, "A1", 0, "a letter"),
		north.item(wire.UpSessionEnd, map[string]any{"id": "s1", "inmate_id": "A1", "start": at, "end": "2026-03-02T10:02:00Z",
			"minutes": 1, "rate_cents": 5, "charged_cents": 5, "credited_cents": 0, "end_reason": "logout"}),
		north.item(wire.UpCredit, map[string]any{"record_id": "s1/0", "session_id": "s1", "inmate_id": "A1", "minute": 0, "cents": 5, "reason": "stall", "at": at}),
		north.item(wire.UpPREA, map[string]any{"id": "p-1", "inmate_id": "A1", "box": "outbox", "peer": "prea", "peer_name": "PREA report",
			"body": "report", "state": "queued", "created_at": at, "updated_at": at}),
		north.item(wire.UpAudit, map[string]any{"id": "ev-1", "at": at, "kind": "login_ok", "actor": "A1"}),
		north.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 3}))
	ct.batch(tablet.item(wire.UpCredit, map[string]any{"record_id": "s2/000000", "session_id": "s2", "inmate_id": "A1", "minute": 0, "cents": 5, "reason": "stall", "at": at}),
		tablet.item(wire.UpLibraryUse, map[string]any{"inmate_id": "A1", "day": "2026-03-02", "minutes": 40, "at": at}),
		tablet.item(wire.UpQuizAttempt, map[string]any{"id": "qa-1", "inmate_id": "A1", "course_id": "crs-1", "quiz_id": "q1", "answers": []int{1, 0}, "at": at}))
	cs.batch(south.item(wire.UpCharge, charge("S1", "s3", 0, 7)), south.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 0}))
	for _, c := range []*tconn{cn, ct, cs} {
		c.c.Close(websocket.StatusNormalClosure, "")
	}
	// A2 and the technician leave north's roster; a south kiosk is revoked.
	if err := e.r.PutRoster("north", Roster{Inmates: []RosterInmate{
		{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Revoke(e.enrollAt("south", wire.ModeKiosk, "").id); err != nil {
		t.Fatal(err)
	}

	facilities := map[string]bool{}
	ownerFacility := map[ownerKind]map[string]string{terminalRecords: {}, inmateRecords: {}}
	type record struct{ root, name string }
	var held []record
	if err := e.r.db.View(context.Background(), func(tx kv.Tx) error {
		if err := tx.Bucket([]byte(bFacilities)).ForEach(func(k, _ []byte) error { facilities[string(k)] = true; return nil }); err != nil {
			return err
		}
		for root, kind := range map[string]ownerKind{bTerminals: terminalRecords, bInmates: inmateRecords} {
			if err := tx.Bucket([]byte(root)).ForEach(func(k, v []byte) error {
				var rec struct {
					FacilityID string `json:"facility_id"`
				}
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("%s %s: %w", root, k, err)
				}
				ownerFacility[kind][string(k)] = rec.FacilityID
				return nil
			}); err != nil {
				return err
			}
		}
		for _, root := range allBuckets() {
			if kind, _ := rootOwner(root); kind == sharedRecords {
				continue
			}
			b := tx.Bucket([]byte(root))
			if err := b.ForEach(func(k, _ []byte) error { held = append(held, record{root, string(k)}); return nil }); err != nil {
				return err
			}
			if err := b.ForEachBucket(func(n []byte) error { held = append(held, record{root, string(n)}); return nil }); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(facilities) != 2 {
		t.Fatalf("facilities %v, want north and south", facilities)
	}
	ours := func(facility string) func(ownerKind, string) bool {
		return func(kind ownerKind, id string) bool { return ownerFacility[kind][id] == facility }
	}
	roots := map[string]bool{}
	for _, r := range held {
		roots[r.root] = true
		kind, _ := rootOwner(r.root)
		owner, ok := ownerIn(r.root, []byte(r.name))
		if !ok {
			t.Errorf("%s %q names no owner", r.root, r.name)
			continue
		}
		want := owner
		if kind != facilityRecords {
			want = ownerFacility[kind][owner]
		}
		if !facilities[want] {
			t.Errorf("%s %q: owner %q belongs to no facility (%q)", r.root, r.name, owner, want)
			continue
		}
		var holders []string
		for f := range facilities {
			if facilityScope(f, ours(f))([][]byte{[]byte(r.root), []byte(r.name)}) == faclog.Inside {
				holders = append(holders, f)
			}
		}
		if !slices.Equal(holders, []string{want}) {
			t.Errorf("%s %q (owner %s of %s) is held by %v", r.root, r.name, owner, want, holders)
		}
	}
	// The day touched most of the owners' roots; a root that held nothing tests nothing.
	var missing []string
	for _, root := range allBuckets() {
		if kind, _ := rootOwner(root); kind != sharedRecords && !roots[root] {
			missing = append(missing, root)
		}
	}
	t.Logf("%d records in %d roots; roots left empty: %s", len(held), len(roots), strings.Join(missing, " "))
	if len(roots) < 22 {
		t.Fatalf("only %d roots held records: the day does not exercise the map", len(roots))
	}
	for f := range facilities {
		scope := facilityScope(f, ours(f))
		for _, root := range []string{bTerminals, bEnrollments, bOutbound, bItemIDs, bDeposits} {
			if r := scope([][]byte{[]byte(root), []byte("x")}); r != faclog.Outside {
				t.Errorf("%s holds %s records: %v", f, root, r)
			}
		}
	}
}
