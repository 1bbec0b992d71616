package relay

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

func heldIDs(hs []HeldInbound) []string {
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID)
	}
	slices.Sort(ids)
	return ids
}

// A facility's photo review queue holds its family letters waiting, and loses each once
// approved or rejected; another facility's is not in it. A store upgraded from schema 16 queues
// the letters it held, and verify names a held letter off its queue.
func TestPhotoQueueByFacility(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.seedSouth()
	e.letterContact("A1", "c-pal")
	ks := e.enrollAt("south", wire.ModeKiosk, "")
	cs := ks.connect(t, 0)
	contactOf(t, ks, cs, "S1", "c-sib", "Sib", "sib@example.org")
	cs.c.Close(websocket.StatusNormalClosure, "")
	e.approveAccepted("c-sib")
	for _, fac := range []string{"north", "south"} {
		if err := e.r.SetMonitoring(fac, Monitoring{HoldOutbound: true, PhotoReview: PhotoReviewHold}); err != nil {
			t.Fatal(err)
		}
	}
	letter := func(inmate, from string, seed uint64) string {
		t.Helper()
		var m kiosk.Message
		e.must(http.StatusCreated, "POST", "/admin/v1/inbound", map[string]any{"inmate_id": inmate, "from": from, "body": "Look",
			"photos": []map[string]any{{"data": testJPEG(t, 40, 30, seed)}}}, &m)
		return m.ID
	}
	n1, n2, s1 := letter("A1", "c-pal", 1), letter("A1", "c-pal", 2), letter("S1", "c-sib", 3)
	queue := func(when string, fac string, want ...string) {
		t.Helper()
		slices.Sort(want)
		got, err := e.r.HeldInboundIn(fac)
		if err != nil || !slices.Equal(heldIDs(got), want) {
			t.Errorf("%s: %s's queue %v (%v), want %v", when, fac, heldIDs(got), err, want)
		}
		if rep, err := e.r.Verify(); err != nil || !rep.OK {
			t.Errorf("%s: verify %+v (%v)", when, rep, err)
		}
	}
	queue("as held", "north", n1, n2)
	queue("as held", "south", s1)
	if _, err := e.r.ApproveInbound(n1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.RejectInbound(s1, "content"); err != nil {
		t.Fatal(err)
	}
	queue("after the decisions", "north", n2)
	queue("after the decisions", "south")
	if all, err := e.r.HeldInbound(); err != nil || !slices.Equal(heldIDs(all), []string{n2}) {
		t.Errorf("every queue: %v (%v), want %s", heldIDs(all), err, n2)
	}
	if _, err := e.r.HeldInboundIn("no/such"); err == nil || !strings.Contains(err.Error(), "facility_id") {
		t.Errorf("a facility id with a slash: %v, want an error naming facility_id", err)
	}
	if os.Getenv(storeEnv) == "jetstream" {
		return // the rest rewinds the bbolt file
	}
	e.close()
	e.rewind(func(tx kv.Tx) error { // schema 16 had no queues
		if err := tx.DeleteBucket([]byte(bPhotoQueue)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(16))
	})
	e.open()
	queue("after the upgrade", "north", n2)
	e.close()
	e.rewind(func(tx kv.Tx) error { return deleteKey(tx, bPhotoQueue, "north/"+n2) })
	e.open()
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "photo_queue" ||
		!strings.Contains(rep.Problems[0].Detail, n2) {
		t.Fatalf("verify of a held letter off its queue: %+v (%v), want one photo_queue problem naming %s", rep, err, n2)
	}
}
