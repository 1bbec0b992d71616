package relay

import (
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The relay remembers the facility record its batches read, decoded (recmemo.go): a policy
// changed between two batches of one connection still decides the second. A letter of 150
// characters passes the seeded limit of 200, is refused too_large once staff lower it to 100,
// and passes again once they raise it back.
func TestBatchesSeeThePolicyChangedBetweenThem(t *testing.T) {
	e := newEnv(t)
	e.seed() // north: MaxMessageChars 200
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	body := strings.Repeat("x", 150)
	setLimit := func(n int) {
		t.Helper()
		p := kiosk.DefaultPolicy()
		p.FacilityName = "North"
		p.MaxContacts = 3
		p.MaxMessageChars = n
		if err := e.r.PutPolicy("north", p); err != nil {
			t.Fatal(err)
		}
	}
	for i, step := range []struct {
		limit  int
		reason string
	}{{200, ""}, {100, wire.RefuseTooLarge}, {200, ""}} {
		setLimit(step.limit)
		it := letter(k, "A1", i, body)
		ack := c.batch(it)
		if ack.Seq != it.Seq {
			t.Fatalf("limit %d: ack %+v, want seq %d", step.limit, ack, it.Seq)
		}
		got := ""
		if len(ack.Rejected) > 0 {
			got = ack.Rejected[0].Reason
		}
		if got != step.reason {
			t.Fatalf("limit %d: a letter of %d characters refused %q, want %q", step.limit, len(body), got, step.reason)
		}
	}
}

// A terminal revoked on the store behind the connection's back (as another gateway of a
// shared store does: no kick reaches this relay's hub) has its open connection closed at its
// next batch, revoked, and that batch is not stored, though the relay had read the terminal's
// record, enrolled, for the batch before.
func TestBatchAfterRevocationOnTheStoreIsRefused(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	first := letter(k, "A1", 1, "before")
	if ack := c.batch(first); ack.Seq != first.Seq || len(ack.Rejected) != 0 {
		t.Fatalf("first letter: ack %+v", ack)
	}
	err := e.r.update("revoke behind the hub", func(tx kv.Tx, f *fanout) error {
		return e.r.revokeTx(tx, f, k.id, t0)
	})
	if err != nil {
		t.Fatal(err)
	}
	send(t, c.c, wire.Batch{Epoch: k.epoch, Items: []wire.Item{letter(k, "A1", 2, "after")}})
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonRevoked)
	high, err := e.r.uplinkHigh(k.id, "north", k.epoch)
	if err != nil {
		t.Fatal(err)
	}
	if high != first.Seq {
		t.Fatalf("uplink position after the revoked batch = %d, want %d (the batch before it)", high, first.Seq)
	}
}

// The inmate records batches read are remembered too: an inmate suspended by a roster upload
// between two letters of one connection has the second refused suspended, and the first
// letter after the roster makes them active again passes.
func TestBatchesSeeTheRosterChangedBetweenThem(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	roster := func(status string) {
		t.Helper()
		ro := Roster{Inmates: []RosterInmate{
			{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: status},
			{ID: "A2", Name: "Bo", Badges: []string{"B2"}, PIN: "2345", Language: "es", Status: kiosk.StatusActive},
			{ID: "A3", Name: "Cy", Badges: []string{"B3"}, PIN: "3456", Language: "en", Status: kiosk.StatusSuspended},
		}, Technicians: []RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, PIN: "9999", Role: "installer"}}}
		if err := e.r.PutRoster("north", ro); err != nil {
			t.Fatal(err)
		}
	}
	for i, step := range []struct {
		status string
		reason string
	}{{kiosk.StatusActive, ""}, {kiosk.StatusSuspended, wire.RefuseSuspended}, {kiosk.StatusActive, ""}} {
		roster(step.status)
		it := letter(k, "A1", i, "hello")
		ack := c.batch(it)
		got := ""
		if len(ack.Rejected) > 0 {
			got = ack.Rejected[0].Reason
		}
		if ack.Seq != it.Seq || got != step.reason {
			t.Fatalf("A1 %s: ack %+v, want seq %d refused %q", step.status, ack, it.Seq, step.reason)
		}
	}
}

// A memo past its bound drops an entry for each one it adds, and what it answers is still
// each record's own decoding.
func TestKeyedMemoBound(t *testing.T) {
	e := newEnv(t)
	e.seed()
	m := keyedMemo[inmateRec]{max: 2}
	for round := range 2 {
		err := e.r.view("read inmates", func(tx kv.Tx) error {
			for _, id := range []string{"A1", "A2", "A3", "nobody"} {
				in, found, err := m.read(tx, bInmates, id)
				if err != nil {
					return err
				}
				if found != (id != "nobody") || (found && (in.ID != id || in.FacilityID != "north")) {
					t.Fatalf("round %d: %s read as %+v, found %v", round, id, in, found)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.byKey) != 2 {
			t.Fatalf("round %d: memo holds %d records, want its bound 2", round, len(m.byKey))
		}
	}
}
