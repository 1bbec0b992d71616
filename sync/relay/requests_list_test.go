package relay

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

func requestIDs(rs []Request) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, fmt.Sprintf("%s %d", r.ID, len(r.Replies)))
	}
	slices.Sort(ids)
	return ids
}

// The departments page of a facility reads its requests with their answers: a letter to a
// contact is not one, another facility's request is not in it. A store upgraded from schema
// 18 lists them, and verify names an answer not filed under its request.
func TestRequestsListedByFacility(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone })
	e.seed()
	e.seedSouth()
	kn, ks := e.enroll(wire.ModeKiosk, ""), e.enrollAt("south", wire.ModeKiosk, "")
	cn, cs := kn.connect(t, 0), ks.connect(t, 0)
	contactOf(t, kn, cn, "A1", "c-mom", "Mom", "mom@example.org")
	e.approveAccepted("c-mom")
	letter := func(k *term, c *tconn, id, inmate, peer string) {
		t.Helper()
		if ack := c.batch(k.item(wire.UpMessage, kiosk.Message{ID: id, InmateID: inmate, Box: kiosk.BoxOutbox, Peer: peer,
			Subject: "Hi", Body: "a letter", State: kiosk.MsgQueued, CreatedAt: t0, UpdatedAt: t0})); len(ack.Rejected) != 0 {
			t.Fatalf("letter %s: %+v", id, ack)
		}
	}
	letter(kn, cn, "n-req", "A1", "dept-medical")
	letter(kn, cn, "n-mom", "A1", "c-mom")
	letter(ks, cs, "s-req", "S1", "dept-medical")
	if _, _, err := e.r.ReplyToRequest("n-req", ReplyRequest{From: "dept-medical", Body: "Tuesday."}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for fac, want := range map[string][]string{"north": {"n-req 1"}, "south": {"s-req 0"}} {
			got, err := e.r.RequestsOf(fac)
			if err != nil || !slices.Equal(requestIDs(got), want) {
				t.Errorf("%s: %s's requests %v (%v), want %v", when, fac, requestIDs(got), err, want)
			}
		}
		if rq, _ := e.r.RequestsOf("north"); len(rq) == 1 && (len(rq[0].Replies) != 1 || rq[0].Replies[0].Body != "Tuesday.") {
			t.Errorf("%s: the answer to n-req: %+v", when, rq[0].Replies)
		}
		if rep, err := e.r.Verify(); err != nil || !rep.OK {
			t.Errorf("%s: verify %+v (%v)", when, rep, err)
		}
	}
	check("as written")
	if rs, err := e.r.RequestsOf(); err != nil || len(rs) != 0 {
		t.Errorf("the requests of no facility: %v (%v), want none", requestIDs(rs), err)
	}
	if os.Getenv(storeEnv) == "jetstream" {
		return // the rest rewinds the bbolt file
	}
	cn.c.Close(websocket.StatusNormalClosure, "")
	cs.c.Close(websocket.StatusNormalClosure, "")
	e.close()
	e.rewind(func(tx kv.Tx) error { // schema 18 had neither list
		for _, name := range []string{bFacRequests, bRequestReplies} {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(18))
	})
	e.open()
	check("after the upgrade")
	var reply string
	if rq, _ := e.r.RequestsOf("north"); len(rq) == 1 && len(rq[0].Replies) == 1 {
		reply = rq[0].Replies[0].ID
	}
	e.close()
	e.rewind(func(tx kv.Tx) error { return deleteKey(tx, bRequestReplies, "n-req/"+reply) })
	e.open()
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "reply_list" || !strings.Contains(rep.Problems[0].Detail, "n-req") {
		t.Fatalf("verify of an answer not filed under its request: %+v (%v), want one reply_list problem", rep, err)
	}
}
