package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The second writer (docs/SCALE.md, "The second writer"): while a gateway holds a facility,
// nothing may write the facility's records in a kv transaction beside its holder. The tests
// here hold north with a projector that never runs, so the kv state's copy of north's records
// must not move at all until north is let go; any record of north's that changes meanwhile
// was written by a second writer.

// heldNorth is an env, seeded with north and south and then given what prepare makes (nil:
// nothing), whose relay holds north over a 3-node cluster's log with a clock of its own that
// never moves, so that nothing is projected until the test lets north go.
func heldNorth(t *testing.T, prepare func(*env)) (*env, *heldFacility) {
	t.Helper()
	e, hf, _ := heldNorthOn(t, prepare)
	return e, hf
}

// heldNorthOn is heldNorth, with the log north is held over, for a claim after it.
func heldNorthOn(t *testing.T, prepare func(*env)) (*env, *heldFacility, faclog.Log) {
	t.Helper()
	c := natstest.Start(t)
	e := newEnv(t, func(c *Config) { c.FacilityIDs = true }) // item ids in facilities' records, which a holder writes
	e.seed()
	e.seedSouth()
	if prepare != nil {
		prepare(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := openFacLog(ctx, t, c, 1)
	hf, err := e.r.holdFacility(ctx, l, "north", "gw-test", faclog.HoldOptions{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.logText())
		}
	})
	return e, hf, l
}

// storedRecords is every key of the kv state under the relay's roots, by its path (nested
// buckets' names between slashes), with its value.
func storedRecords(t *testing.T, db kv.Store) map[string]string {
	t.Helper()
	got := map[string]string{}
	var walk func(b kv.Bucket, path string) error
	walk = func(b kv.Bucket, path string) error {
		if err := b.ForEach(func(k, v []byte) error { got[path+"\x00"+string(k)] = string(v); return nil }); err != nil {
			return err
		}
		return b.ForEachBucket(func(name []byte) error { return walk(b.Bucket(name), path+"\x00"+string(name)) })
	}
	err := db.View(context.Background(), func(tx kv.Tx) error {
		for _, root := range everyRoot() {
			if b := tx.Bucket([]byte(root)); b != nil {
				if err := walk(b, root); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// secondWrites runs do and returns the records of facility's that changed in the kv state
// meanwhile (written, added or deleted), as "root/owner…" paths: each was written beside the
// facility's holder. Whose a record is comes from the terminal and inmate records after do,
// so that what do enrolled or moved counts too.
func secondWrites(t *testing.T, e *env, facility string, do func()) []string {
	t.Helper()
	before := storedRecords(t, e.r.db)
	do()
	after := storedRecords(t, e.r.db)
	_, ownerFacility := owners(t, e.r)
	scope := facilityScope(facility, func(kind ownerKind, id string) bool { return ownerFacility[kind][id] == facility }, nil)
	inside := func(p string) bool {
		parts := strings.Split(p, "\x00")
		path := make([][]byte, len(parts))
		for i, s := range parts {
			path[i] = []byte(s)
		}
		for i := range path {
			switch scope(path[:i+1]) {
			case faclog.Inside:
				return true
			case faclog.Outside:
				return false
			}
		}
		return false
	}
	name := func(p string) string { return strconv.QuoteToASCII(strings.ReplaceAll(p, "\x00", "/")) }
	var wrote []string
	for p, v := range after {
		if was, ok := before[p]; (!ok || was != v) && inside(p) {
			wrote = append(wrote, name(p))
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok && inside(p) {
			wrote = append(wrote, name(p)+" (deleted)")
		}
	}
	slices.Sort(wrote)
	return wrote
}

// A deposit for a held facility's inmate is two transactions: its record, the state's, in a
// kv transaction, and its credit on the facility's held state. None of north's records moves
// in the kv state; the inmate's tablet, connected here, is sent the deposit at once; a retry
// of the same deposit credits nothing more; south's deposit is made as before; let go, each
// inmate's balance holds its deposit once and verify is clean.
func TestADepositForAHeldFacilityIsCreditedByItsHolder(t *testing.T) {
	var tablet *term
	e, _ := heldNorth(t, func(e *env) { tablet = e.enroll(wire.ModeTablet, "A1") })
	a1, s1 := e.balanceOf("A1"), e.balanceOf("S1")
	c := tablet.connect(t, 0)
	deposit := func(inmate, ref string, cents kiosk.Cents) {
		t.Helper()
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: inmate, Cents: cents, Ref: ref}); err != nil {
			t.Fatalf("deposit %s for %s: %v", ref, inmate, err)
		}
	}
	wrote := secondWrites(t, e, "north", func() {
		deposit("A1", "d1", 900)
		deposit("S1", "d2", 700)
		deposit("A1", "d1", 900) // the processor's retry
	})
	noSecondWrites(t, wrote)
	got := c.waitDown(wire.DownDeposit, nil)
	if d := decodeAs[kiosk.Deposit](t, got.Body); d.Ref != "d1" || d.Cents != 900 {
		t.Fatalf("A1's tablet was sent %+v, want deposit d1 of 900", d)
	}
	// Staff see the balance as it stands, before any projection.
	if got := e.balanceOf("A1"); got != a1+900 {
		t.Fatalf("A1's balance on the console while north is held %d, want %d", got, a1+900)
	}
	c.c.Close(websocket.StatusNormalClosure, "")
	if got := e.balanceOf("S1"); got != s1+700 {
		t.Fatalf("S1's balance %d, want %d", got, s1+700)
	}
	letNorthGo(t, e)
	if got := e.balanceOf("A1"); got != a1+900 {
		t.Fatalf("A1's balance %d after north was let go, want %d: deposit d1 credited once", got, a1+900)
	}
	verifyClean(t, e)
}

// A deposit for a held facility cut off between its record and its credit (the relay stopped
// between its two transactions) is credited once: by a retry of the same deposit, by the
// relay's next start, or by a gateway's sweep once it is old enough. Meanwhile verify says
// nothing is wrong, as the deposit is marked due; a deposit neither credited nor marked is a
// problem it names. Where the facility is not held, a deposit is one transaction, leaving
// no mark.
func TestADepositCutInTwoIsFinishedOnce(t *testing.T) {
	e, hf := heldNorth(t, nil)
	cut := func(ref string, cents kiosk.Cents) {
		t.Helper()
		if _, created, due, err := e.r.recordDeposit("deposit", DepositRequest{InmateID: "A1", Cents: cents, Ref: ref}); err != nil || !created || !due {
			t.Fatalf("record deposit %s: created %v, due %v, %v", ref, created, due, err)
		}
	}
	held := func(want kiosk.Cents, when string) {
		t.Helper()
		var tot totals
		if err := hf.holding.Store().View(context.Background(), func(tx kv.Tx) error {
			_, err := getJSON(tx, bBalances, "A1", &tot)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := tot.balance(); got != want {
			t.Fatalf("%s: A1's balance on north's held state %d, want %d", when, got, want)
		}
	}
	balance := func(want kiosk.Cents, when string) {
		t.Helper()
		if got := e.balanceOf("A1"); got != want {
			t.Fatalf("%s: A1's balance %d, want %d", when, got, want)
		}
		if rep, err := e.r.Verify(); err != nil || !rep.OK {
			t.Fatalf("%s: verify: %v %+v", when, err, rep.Problems)
		}
	}

	cut("r1", 100)
	held(0, "cut off")
	// The payment processor heard no answer and sends the deposit again.
	if _, created, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 100, Ref: "r1"}); err != nil || created {
		t.Fatalf("retry: created %v, %v", created, err)
	}
	held(100, "retried")

	// Cut off again, and once more after its credit but before its mark was cleared; then the
	// relay stops (letting north go) and starts, holding nothing.
	cut("r2", 20)
	cut("r3", 3)
	if err := e.r.creditDeposit("deposit", vocab.Deposit{Ref: "r3", InmateID: "A1", Cents: 3, At: t0}); err != nil {
		t.Fatal(err)
	}
	held(103, "cut off twice")
	e.restart()
	balance(123, "restarted")
	if !strings.Contains(e.logText(), "deposit r2 for inmate A1 finished") {
		t.Fatalf("the start does not say it finished r2:\n%s", e.logText())
	}
	e.restart()
	balance(123, "restarted again")
	for ref, cents := range map[string]kiosk.Cents{"r1": 100, "r2": 20, "r3": 3} {
		if _, created, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: cents, Ref: ref}); err != nil || created {
			t.Fatalf("retry %s after the restarts: created %v, %v", ref, created, err)
		}
	}
	balance(123, "retried after the restarts")
	if _, created, due, err := e.r.recordDeposit("deposit", DepositRequest{InmateID: "A1", Cents: 7, Ref: "r0"}); err != nil || !created || due {
		t.Fatalf("a deposit where north is not held: created %v, due %v (%v), want credited in its one transaction", created, due, err)
	}
	balance(130, "one transaction")

	// A gateway's sweep leaves a young mark to the call at work on it. (A record and its mark
	// as a held facility's deposit leaves them.)
	mark := func(ref string, cents kiosk.Cents) {
		t.Helper()
		if err := e.r.update("test", func(tx kv.Tx, _ *fanout) error {
			if err := putJSON(tx, bDeposits, ref, vocab.Deposit{Ref: ref, InmateID: "A1", Cents: cents, At: e.clock.Now()}); err != nil {
				return err
			}
			return markDepositDue(tx, ref, e.clock.Now())
		}); err != nil {
			t.Fatal(err)
		}
	}
	mark("r4", 4000)
	if n, err := e.r.finishDeposits(e.clock.Now(), dueSweepAge); err != nil || n != 0 {
		t.Fatalf("sweep of a young mark finished %d (%v), want none", n, err)
	}
	e.clock.Advance(dueSweepAge)
	if n, err := e.r.finishDeposits(e.clock.Now(), dueSweepAge); err != nil || n != 1 {
		t.Fatalf("sweep of a mark %s old finished %d (%v), want 1", dueSweepAge, n, err)
	}
	balance(4130, "swept")

	// A deposit's mark lost with its credit undone is what verify names.
	mark("r5", 5)
	if err := e.r.update("test", func(tx kv.Tx, _ *fanout) error { return deleteKey(tx, bDepositsDue, "r5") }); err != nil {
		t.Fatal(err)
	}
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "deposit_credit" {
		t.Fatalf("verify of a deposit never to be credited: %v %+v", err, rep)
	}
}

// What writes only a facility's records goes to its holder: a catalog item published and
// withdrawn, and the prune of the facility's downlink log after its kiosk acknowledged it.
// None of north's records moves in the kv state, north's kiosk hears of both at once, and let
// go, the catalog lists the item withdrawn and verify is clean.
func TestAHeldFacilitysOwnCallsGoThroughItsHolder(t *testing.T) {
	var k *term
	e, hf := heldNorth(t, func(e *env) { k = e.enroll(wire.ModeKiosk, "") })
	// North's log was pruned just now, as this relay sees it: its kiosk's acknowledgements
	// prune nothing, and the test's prune below has the log's records to prune.
	e.r.downPruned.Store("north", &prunedLog{at: e.clock.Now(), known: true})
	kc := k.connect(t, 0)
	t1 := track("t1", e.uploadTrack(testMP3(20, 1)), 99)
	wrote := secondWrites(t, e, "north", func() {
		e.publish(CatalogRequest{FacilityID: "north", Item: t1})
		got := kc.waitDown(wire.DownCatalogItem, nil)
		if it := decodeAs[vocab.CatalogItem](t, got.Body); it.ID != "t1" {
			t.Fatalf("north's kiosk heard of %+v, want t1", it)
		}
		if _, err := e.r.WithdrawCatalogItem("north", "t1"); err != nil {
			t.Fatal(err)
		}
		w := kc.waitDown(wire.DownCatalogWithdrawn, nil)
		kc.ackDown(w.Seq)
		kc.c.Close(websocket.StatusNormalClosure, "")
		kc = k.connect(t, w.Seq) // its hello says what it applied, whatever the first connection flushed
		kc.c.Close(websocket.StatusNormalClosure, "")
		before := logged(t, hf)
		if err := e.r.pruneFacility("north", &prunedLog{}); err != nil {
			t.Fatal(err)
		}
		if after := logged(t, hf); after >= before {
			t.Fatalf("north's downlink log holds %d records after its prune, %d before", after, before)
		}
	})
	noSecondWrites(t, wrote)
	if hf.holding.Behind() == 0 {
		t.Fatal("north's log holds nothing the kv state lacks")
	}
	letNorthGo(t, e)
	entries, err := e.r.Catalog("north")
	if err != nil || len(entries) != 1 || !entries[0].Withdrawn {
		t.Fatalf("north's catalog after it was let go: %+v %v, want t1 withdrawn", entries, err)
	}
	verifyClean(t, e)
}

// logged counts the records of north's downlink log in hf's held state.
func logged(t *testing.T, hf *heldFacility) int {
	t.Helper()
	n := 0
	if err := hf.holding.Store().View(context.Background(), func(tx kv.Tx) error {
		b := tx.Bucket([]byte(bFacDown)).Bucket([]byte("north"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, _ []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A call whose records are the state's and whose news is the facility's (a policy, a notice)
// records what it would queue for a held facility, due, and the holder queues it once the
// call commits: north's kiosk hears both at once, in order, and nothing of north's moves in
// the kv state. A record left due, as a crash between the two would leave it, is queued by
// the sweep once it is old enough, through the holder too; let go, verify is clean.
func TestAHeldFacilitysNewsIsQueuedByItsHolder(t *testing.T) {
	var k *term
	e, _ := heldNorth(t, func(e *env) { k = e.enroll(wire.ModeKiosk, "") })
	kc := k.connect(t, 0)
	p := kiosk.DefaultPolicy()
	p.RatePerMinute = 7
	wrote := secondWrites(t, e, "north", func() {
		if err := e.r.PutPolicy("north", p); err != nil {
			t.Fatal(err)
		}
		if _, err := e.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "count at nine"}); err != nil {
			t.Fatal(err)
		}
		// Its snapshot came first, with the policy it was enrolled under.
		got := kc.waitDown(wire.DownPolicy, func(b json.RawMessage) bool { return decodeAs[kiosk.Policy](t, b).RatePerMinute == 7 })
		n := kc.waitDown(wire.DownNotice, nil)
		if notice := decodeAs[wire.Notice](t, n.Body); notice.Text != "count at nine" || n.Seq <= got.Seq {
			t.Fatalf("north's kiosk was sent notice %+v at %d, after the policy at %d", notice, n.Seq, got.Seq)
		}

		// Cut off after its kv transaction: the call's record stays due.
		f := &fanout{r: e.r, kvPath: true}
		if err := e.r.writes.do(&writeCall{f: f, fn: func(tx kv.Tx, f *fanout) error {
			return f.toFacility("north", "", wire.DownNotice, wire.Notice{ID: "n-cut", Text: "cut off", At: t0})
		}}); err != nil {
			t.Fatal(err)
		}
		if err := e.r.finishDue(e.clock.Now(), dueSweepAge); err != nil {
			t.Fatal(err)
		}
		if due := storedBytes(t, e, bFanoutsDue, "north/"+f.dueKey); due == nil {
			t.Fatal("a young record due was queued by the sweep, or never recorded")
		}
		e.clock.Advance(dueSweepAge)
		if err := e.r.finishDue(e.clock.Now(), dueSweepAge); err != nil {
			t.Fatal(err)
		}
		kc.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return decodeAs[wire.Notice](t, b).ID == "n-cut" })
		if due := storedBytes(t, e, bFanoutsDue, "north/"+f.dueKey); due != nil {
			t.Fatal("the record due is still there after the sweep queued it")
		}
		kc.c.Close(websocket.StatusNormalClosure, "")
	})
	noSecondWrites(t, wrote)
	letNorthGo(t, e)
	verifyClean(t, e)
}

// A review of a held facility's letter and a letter in from outside, made while the facility
// is held: the letter's record and the inbound letter are the state's, written at once; the
// facility's list of held letters, the stamp's refund (which reads the inmate's charge and
// account) and the inmate's list of letters in are due, done on the holder. North's kiosk hears
// of the rejection, the refund and the letter at once; nothing of north's moves in the kv
// state; let go, the stamp is refunded once, north lists no letter held, and verify is clean.
func TestAHeldFacilitysLettersAreReviewedThroughItsHolder(t *testing.T) {
	var k *term
	var l1 kiosk.Message
	var before kiosk.Cents
	e, _ := heldNorth(t, func(e *env) {
		holdRequests(t, e)
		e.stampPricing(25)
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 200, Ref: "d1"}); err != nil {
			t.Fatal(err)
		}
		k = e.enroll(wire.ModeKiosk, "")
		c := k.connect(t, 0)
		c.batch(k.item(wire.UpContactRequest, kiosk.Contact{ID: "c-ana", InmateID: "A1", Name: "Ana", Email: "ana@example.org", State: kiosk.ContactPending}))
		e.approveAccepted("c-ana")
		l1 = msg(uuid.Must(uuid.NewV7()).String(), "A1", "c-ana", "a letter")
		if ack := c.batch(k.item(wire.UpMessage, l1), k.item(wire.UpCharge, stamp(l1, 25))); len(ack.Rejected) != 0 {
			t.Fatalf("a letter and its stamp: ack %+v", ack)
		}
		c.c.Close(websocket.StatusNormalClosure, "")
		before = e.balanceOf("A1")
	})
	kc := k.connect(t, 0)
	wrote := secondWrites(t, e, "north", func() {
		if _, err := e.r.RejectOutbound(l1.ID, "not allowed"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.r.Inbound(InboundRequest{InmateID: "A1", From: "c-ana", Body: "from home"}); err != nil {
			t.Fatal(err)
		}
		kc.waitDown(wire.DownMessageStatus, func(b json.RawMessage) bool {
			return decodeAs[wire.MessageStatus](t, b).MessageID == l1.ID && decodeAs[wire.MessageStatus](t, b).State == kiosk.MsgRejected
		})
		kc.waitDown(wire.DownRemoteCredit, func(b json.RawMessage) bool { return decodeAs[kiosk.Credit](t, b).MessageID == l1.ID })
		kc.waitDown(wire.DownInboundMessage, func(b json.RawMessage) bool { return decodeAs[kiosk.Message](t, b).Body == "from home" })
		kc.c.Close(websocket.StatusNormalClosure, "")
	})
	noSecondWrites(t, wrote)
	letNorthGo(t, e)
	if got := e.balanceOf("A1"); got != before+25 {
		t.Fatalf("A1's balance %d after north was let go, want %d: the stamp refunded once", got, before+25)
	}
	if held, err := e.r.Outbound(OutboundFilter{Status: kiosk.MsgHeld}); err != nil || len(held) != 0 {
		t.Fatalf("letters held after the review: %+v %v", held, err)
	}
	verifyClean(t, e)
}

// A refund for a held facility's inmate: recorded by the state, taken from the balance by the
// holder, whose balance is the one that counts. The tablet's charge made while north is held
// is in the held state only, so a refund of the whole deposit, which the kv state's balance
// would allow, is refused (the balance would go negative) and taken back; a smaller one is
// taken once and sent to the tablet; nothing of north's moves in the kv state; let go, the
// balance holds the charge and the refund once, and verify is clean.
func TestARefundForAHeldFacilityIsCheckedByItsHolder(t *testing.T) {
	var tablet *term
	e, _ := heldNorth(t, func(e *env) {
		tablet = e.enroll(wire.ModeTablet, "A1")
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
			t.Fatal(err)
		}
	})
	c := tablet.connect(t, 0)
	wrote := secondWrites(t, e, "north", func() {
		if ack := c.batch(tablet.item(wire.UpCharge, charge("A1", "s1", 0, 5))); len(ack.Rejected) != 0 {
			t.Fatalf("the tablet's charge: ack %+v", ack)
		}
		_, _, err := e.r.Refund(RefundRequest{Ref: "r1", DepositRef: "d1", Cents: 1000})
		if vocab.KindOf(err) != vocab.KindConflict || !strings.Contains(err.Error(), "balance") {
			t.Fatalf("a refund of the whole deposit after a charge: %v, want a conflict naming the balance", err)
		}
		if rf, created, err := e.r.Refund(RefundRequest{Ref: "r2", DepositRef: "d1", Cents: 300}); err != nil || !created || rf.Cents != 300 {
			t.Fatalf("refund r2: %+v %v %v", rf, created, err)
		}
		if _, created, err := e.r.Refund(RefundRequest{Ref: "r2", DepositRef: "d1", Cents: 300}); err != nil || created {
			t.Fatalf("refund r2 again: created %v, %v", created, err)
		}
		c.waitDown(wire.DownRefund, func(b json.RawMessage) bool { return decodeAs[vocab.Refund](t, b).Ref == "r2" })
		c.c.Close(websocket.StatusNormalClosure, "")
		// Staff see the statement and the balance as they stand, before any projection.
		if u, err := e.r.Usage("A1"); err != nil || len(u.Records) != 1 || u.Records[0].Cents != 5 {
			t.Fatalf("A1's statement while north is held: %+v %v, want the tablet's charge", u, err)
		}
		if got := e.balanceOf("A1"); got != 1000-5-300 {
			t.Fatalf("A1's balance on the console while north is held %d, want %d", got, 1000-5-300)
		}
	})
	noSecondWrites(t, wrote)
	if storedBytes(t, e, bRefunds, "r1") != nil {
		t.Fatal("the refused refund r1 is still recorded")
	}
	letNorthGo(t, e)
	if got := e.balanceOf("A1"); got != 1000-5-300 {
		t.Fatalf("A1's balance %d after north was let go, want %d", got, 1000-5-300)
	}
	verifyClean(t, e)
}

// A refund for a held facility cut off between its record and its debit is taken from the
// balance once, at the relay's next start; one the balance no longer allows by then is taken
// back, and its ref may be used again. Verify names a refund neither taken nor marked due.
func TestARefundCutInTwoIsFinishedOrTakenBack(t *testing.T) {
	var k *term
	e, _ := heldNorth(t, func(e *env) {
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
			t.Fatal(err)
		}
		k = e.enroll(wire.ModeKiosk, "")
	})
	cut := func(ref string, cents kiosk.Cents) {
		t.Helper()
		if _, created, due, err := e.r.recordRefund("refund", RefundRequest{Ref: ref, DepositRef: "d1", Cents: cents}); err != nil || !created || !due {
			t.Fatalf("record refund %s: created %v, due %v, %v", ref, created, due, err)
		}
	}
	cut("r1", 300)
	// Spent meanwhile: a kiosk's charges leave less than the next refund.
	kc := k.connect(t, 0)
	var items []wire.Item
	for m := range 9 {
		items = append(items, k.item(wire.UpCharge, charge("A1", "s1", m, 5)))
	}
	if ack := kc.batch(items...); len(ack.Rejected) != 0 {
		t.Fatalf("charges: ack %+v", ack)
	}
	kc.c.Close(websocket.StatusNormalClosure, "")
	cut("r2", 680) // 1000-45 = 955 left, 300 of it refunded at the start first: 655 is too little
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify with two refunds due: %v %+v", err, rep.Problems)
	}
	e.restart() // lets north go: the start finishes on the kv state
	if got := e.balanceOf("A1"); got != 1000-45-300 {
		t.Fatalf("A1's balance after the start %d, want %d: r1 taken once, r2 not", got, 1000-45-300)
	}
	log := e.logText()
	if !strings.Contains(log, "refund r1 for inmate A1 finished") || !strings.Contains(log, "refund r2 for inmate A1 taken back") {
		t.Fatalf("the start does not say what it did with r1 and r2:\n%s", log)
	}
	if storedBytes(t, e, bRefunds, "r2") != nil {
		t.Fatal("r2 is still recorded after it was taken back")
	}
	if _, created, err := e.r.Refund(RefundRequest{Ref: "r2", DepositRef: "d1", Cents: 600}); err != nil || !created {
		t.Fatalf("r2 again, for what the balance allows: created %v, %v", created, err)
	}
	e.restart()
	if got := e.balanceOf("A1"); got != 1000-45-300-600 {
		t.Fatalf("A1's balance after a second start %d, want %d", got, 1000-45-300-600)
	}
	verifyClean(t, e)
	// A refund recorded, not taken and not marked, as no transaction leaves it.
	if err := e.r.update("test", func(tx kv.Tx, _ *fanout) error {
		return putJSON(tx, bRefunds, "r3", Refund{Ref: "r3", DepositRef: "d1", InmateID: "A1", Cents: 5, At: t0})
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "refund_debit" {
		t.Fatalf("verify of a refund never to be taken: %v %+v", err, rep)
	}
}

// Enrollment and revocation while north is held: the terminal's record, the enrollment's and
// the inmate's (whose list of tablets says tablet_bound) are the state's, written at once; the
// route list, the new terminal's downlink start and its snapshot, and a revoked terminal's
// downlink are north's, done by its holder, which takes a terminal enrolled since its claim as
// north's from the state's record. Nothing of north's moves in the kv state; the new tablet
// gets its snapshot, saying its inmate is bound to a tablet, and its charge is taken; the
// revoked kiosk is closed and refused; let go, the fleet and verify agree.
func TestAHeldFacilitysTerminalsEnrollAndAreRevokedThroughItsHolder(t *testing.T) {
	e, hf := heldNorth(t, nil)
	var tablet, k *term
	wrote := secondWrites(t, e, "north", func() {
		tablet, k = e.enroll(wire.ModeTablet, "A1"), e.enroll(wire.ModeKiosk, "")
		tc := tablet.connect(t, 0)
		in := tc.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return decodeAs[kiosk.Inmate](t, b).ID == "A1" })
		if !decodeAs[kiosk.Inmate](t, in.Body).TabletBound {
			t.Fatalf("the tablet's snapshot says A1 is bound to no tablet: %s", in.Body)
		}
		if ack := tc.batch(tablet.item(wire.UpCharge, charge("A1", "s1", 0, 5))); len(ack.Rejected) != 0 {
			t.Fatalf("the new tablet's charge: ack %+v", ack)
		}
		tc.c.Close(websocket.StatusNormalClosure, "")
		kc := k.connect(t, 0)
		if err := e.r.Revoke(k.id); err != nil {
			t.Fatal(err)
		}
		expectClose(t, kc.c, websocket.StatusPolicyViolation, wire.ReasonRevoked)
	})
	noSecondWrites(t, wrote)
	if !hf.ours(terminalRecords, tablet.id) {
		t.Fatal("north's holder does not hold the tablet enrolled since its claim")
	}
	letNorthGo(t, e)
	fleet, err := e.r.Terminals()
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range fleet {
		if ti.ID == k.id && !ti.Revoked || ti.ID == tablet.id && ti.Revoked {
			t.Fatalf("after release the fleet lists %+v", ti)
		}
	}
	if got := e.balanceOf("A1"); got != -5 {
		t.Fatalf("A1's balance %d, want -5: the tablet's charge taken once", got)
	}
	verifyClean(t, e)
}

// Letters in held for photo review while north is held: the held letters are the state's, the
// facility's review queue and the inmate's list of letters in are north's, written by its
// holder after each call; an approved letter reaches north's kiosk at once, a notice to one
// inmate too; nothing of north's moves in the kv state; let go, north's queue is empty and
// verify is clean.
func TestAHeldFacilitysPhotoReviewGoesThroughItsHolder(t *testing.T) {
	var k *term
	e, _ := heldNorth(t, func(e *env) {
		e.letterContact("A1", "c-pal")
		if err := e.r.SetMonitoring("north", Monitoring{PhotoReview: PhotoReviewHold}); err != nil {
			t.Fatal(err)
		}
		k = e.enroll(wire.ModeKiosk, "")
	})
	kc := k.connect(t, 0)
	letter := func(seed uint64) string {
		t.Helper()
		var m kiosk.Message
		e.must(http.StatusCreated, "POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "c-pal", "body": "Look",
			"photos": []map[string]any{{"data": testJPEG(t, 40, 30, seed)}}}, &m)
		return m.ID
	}
	var n1, n2 string
	wrote := secondWrites(t, e, "north", func() {
		n1, n2 = letter(1), letter(2)
		if held, err := e.r.HeldInboundIn("north"); err != nil || len(held) != 2 {
			t.Fatalf("north's photo review queue: %d letters (%v), want 2", len(held), err)
		}
		if _, err := e.r.ApproveInbound(n1); err != nil {
			t.Fatal(err)
		}
		if _, err := e.r.RejectInbound(n2, "content"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.r.PostNotice(NoticeRequest{FacilityID: "north", InmateID: "A1", Text: "see the nurse"}); err != nil {
			t.Fatal(err)
		}
		kc.waitDown(wire.DownInboundMessage, func(b json.RawMessage) bool { return decodeAs[kiosk.Message](t, b).ID == n1 })
		kc.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return decodeAs[wire.Notice](t, b).Text == "see the nurse" })
		kc.c.Close(websocket.StatusNormalClosure, "")
	})
	noSecondWrites(t, wrote)
	letNorthGo(t, e)
	if held, err := e.r.HeldInboundIn("north"); err != nil || len(held) != 0 {
		t.Fatalf("north's photo review queue after release: %+v (%v), want none", held, err)
	}
	verifyClean(t, e)
}

// A roster put for a held facility: the roster (its inmates, those who left, its technicians)
// and the inmate records are the state's, written at once; what it sends north's terminals is
// queued by the holder; an inmate new to the roster is the holder's to write for from the
// state's record. An inmate moved to north from south, which no relay holds, is sent to north's
// kiosk by its holder, their deposit too, and charged there. Nothing of north's moves in the kv
// state. One taken off the roster is no longer the holder's (handed over, which projects what
// the holder wrote); let go, verify is clean.
func TestAHeldFacilitysRosterIsPutBesideItsHolder(t *testing.T) {
	var k *term
	e, hf := heldNorth(t, func(e *env) {
		k = e.enroll(wire.ModeKiosk, "")
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "S1", Cents: 100, Ref: "s-d1"}); err != nil {
			t.Fatal(err)
		}
	})
	kc := k.connect(t, 0)
	ro := Roster{
		Inmates: []RosterInmate{
			{ID: "A1", Name: "Ana Maria", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive},
			{ID: "A2", Name: "Bo", Badges: []string{"B2"}, PIN: "2345", Language: "es", Status: kiosk.StatusActive},
			{ID: "A3", Name: "Cy", Badges: []string{"B3"}, PIN: "3456", Language: "en", Status: kiosk.StatusSuspended},
			{ID: "A4", Name: "Di", Badges: []string{"B4"}, PIN: "4567", Language: "en", Status: kiosk.StatusActive},
		},
		Technicians: []RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, PIN: "9999", Role: "installer"}},
	}
	wrote := secondWrites(t, e, "north", func() {
		if err := e.r.PutRoster("north", ro); err != nil {
			t.Fatal(err)
		}
		kc.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return decodeAs[kiosk.Inmate](t, b).Name == "Ana Maria" })
		kc.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return decodeAs[kiosk.Inmate](t, b).ID == "A4" })
		if ack := kc.batch(k.item(wire.UpCharge, charge("A4", "s4", 0, 5))); len(ack.Rejected) != 0 {
			t.Fatalf("the new inmate's charge: ack %+v", ack)
		}
		// South's S1 onto north's roster: a move from a facility no relay holds, whose
		// arrival north's holder sends its kiosk, S1's deposit with it.
		moved := ro
		moved.Inmates = append(slices.Clone(ro.Inmates), RosterInmate{ID: "S1", Name: "Sam", Badges: []string{"SB1"}, PIN: "1111", Language: "en", Status: kiosk.StatusActive})
		if err := e.r.PutRoster("north", moved); err != nil {
			t.Fatalf("a move into held north: %v", err)
		}
		kc.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return decodeAs[kiosk.Inmate](t, b).ID == "S1" })
		kc.waitDown(wire.DownDeposit, func(b json.RawMessage) bool { return decodeAs[vocab.Deposit](t, b).Ref == "s-d1" })
		if ack := kc.batch(k.item(wire.UpCharge, charge("S1", "s5", 0, 4))); len(ack.Rejected) != 0 {
			t.Fatalf("the moved inmate's charge: ack %+v", ack)
		}
	})
	noSecondWrites(t, wrote)
	// A2 and A3 taken off the roster: north's holder hands their records over (handover.go),
	// projecting what it wrote, and no longer holds them.
	ro.Inmates = append(slices.DeleteFunc(ro.Inmates, func(in RosterInmate) bool { return in.ID == "A2" || in.ID == "A3" }),
		RosterInmate{ID: "S1", Name: "Sam", Badges: []string{"SB1"}, PIN: "1111", Language: "en", Status: kiosk.StatusActive})
	if err := e.r.PutRoster("north", ro); err != nil {
		t.Fatal(err)
	}
	kc.waitDown(wire.DownInmate, func(b json.RawMessage) bool {
		in := decodeAs[kiosk.Inmate](t, b)
		return in.ID == "A2" && in.Status == kiosk.StatusSuspended
	})
	kc.c.Close(websocket.StatusNormalClosure, "")
	if !hf.ours(inmateRecords, "A4") || hf.ours(inmateRecords, "A2") || !hf.ours(inmateRecords, "S1") {
		t.Fatalf("north's holder holds A4 %v, A2 %v, S1 %v; want A4 and S1", hf.ours(inmateRecords, "A4"), hf.ours(inmateRecords, "A2"), hf.ours(inmateRecords, "S1"))
	}
	letNorthGo(t, e)
	if got := e.balanceOf("A4"); got != -5 {
		t.Fatalf("A4's balance %d, want -5", got)
	}
	if got := e.balanceOf("S1"); got != 96 {
		t.Fatalf("S1's balance %d, want 96: 100 deposited at south, 4 charged at north", got)
	}
	if _, of := owners(t, e.r); of[inmateRecords]["S1"] != "north" {
		t.Fatalf("S1 is in %q after the move, want north", of[inmateRecords]["S1"])
	}
	verifyClean(t, e)
}

// Two claims of one facility at once on one relay: one holds it, the other is refused, and the
// relay holds it once (the claim takes round trips, and a second claim meanwhile would depose
// the first from the same relay).
func TestOneClaimOfAFacilityAtATime(t *testing.T) {
	c := natstest.Start(t)
	e := newEnv(t, func(c *Config) { c.FacilityIDs = true })
	e.seed()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := openFacLog(ctx, t, c, 1)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := e.r.holdFacility(ctx, l, "north", "gw-test", faclog.HoldOptions{Clock: clock.NewFake(t0)})
			errs <- err
		}()
	}
	var refused []error
	for range 2 {
		if err := <-errs; err != nil {
			refused = append(refused, err)
		}
	}
	if len(refused) != 1 || !strings.Contains(refused[0].Error(), "already") {
		t.Fatalf("two claims at once: refused %v, want one refused as claimed or held already", refused)
	}
	hf := e.r.held.of("north")
	if hf == nil {
		t.Fatal("north is not held after the claim that stood")
	}
	select {
	case <-hf.holding.Store().Deposed():
		t.Fatal("the hold that stood was deposed by the other claim")
	default:
	}
}

// A held facility's kiosk enrolls again with its store's key (kioskctl reissue): the state's
// records at once, the old terminal's revocation and the new one's route and snapshot by the
// holder. The snapshot holds what the holder took from the old terminal and has not projected;
// what the new terminal resends of it is recognised by item id and not charged twice; new
// downlink goes to the new terminal. Nothing of north's moves in the kv state; let go, three
// charges are stored and verify is clean.
func TestAHeldFacilitysKioskEnrollsAgainWithItsStore(t *testing.T) {
	var old *term
	e, _ := heldNorth(t, func(e *env) {
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 700, Ref: "d-before"}); err != nil {
			t.Fatal(err)
		}
		old = e.enroll(wire.ModeKiosk, "")
	})
	sent := []wire.Item{old.item(wire.UpCharge, charge("A1", "s1", 0, 5)), old.item(wire.UpCharge, charge("A1", "s1", 1, 5))}
	wrote := secondWrites(t, e, "north", func() {
		oc := old.connect(t, 0)
		if ack := oc.batch(sent...); ack.Seq != 2 || len(ack.Rejected) != 0 {
			t.Fatalf("the old terminal's charges: ack %+v", ack)
		}
		er := e.enrollKey("north", wire.ModeKiosk, "", old.priv) // the same key again
		expectClose(t, oc.c, websocket.StatusPolicyViolation, wire.ReasonRevoked)
		nt := &term{e: e, id: er.TerminalID, priv: old.priv, epoch: old.epoch + "-2", mode: wire.ModeKiosk}
		nc := nt.connect(t, 0)
		nc.waitDown(wire.DownDeposit, func(b json.RawMessage) bool { return decodeAs[kiosk.Deposit](t, b).Ref == "d-before" })
		nc.waitDown(wire.DownRemoteCharge, func(b json.RawMessage) bool { return decodeAs[kiosk.Charge](t, b).RecordID == "s1/1" })
		resent := func(it wire.Item) wire.Item { nt.seq++; it.Seq = nt.seq; return it }
		if ack := nc.batch(resent(sent[0]), resent(sent[1]), nt.item(wire.UpCharge, charge("A1", "s2", 0, 5))); ack.Seq != 3 || len(ack.Rejected) != 0 {
			t.Fatalf("the new terminal's resend: ack %+v, want seq 3 and no refusal", ack)
		}
		if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 300, Ref: "d-after"}); err != nil {
			t.Fatal(err)
		}
		nc.waitDown(wire.DownDeposit, func(b json.RawMessage) bool { return decodeAs[kiosk.Deposit](t, b).Ref == "d-after" })
		if b, err := e.r.Balance("A1"); err != nil || b.Charges != 15 || b.BalanceCents != 700+300-15 {
			t.Fatalf("A1's account while north is held: %+v %v, want 15¢ charged and $9.85 left", b, err)
		}
		nc.c.Close(websocket.StatusNormalClosure, "")
	})
	noSecondWrites(t, wrote)
	letNorthGo(t, e)
	if items, err := e.r.Items(ItemFilter{Kind: wire.UpCharge}); err != nil || len(items) != 3 {
		t.Fatalf("%d charges stored (%v), want 3: no resent item twice", len(items), err)
	}
	if oi := e.terminalInfo(old.id); !oi.Revoked {
		t.Fatalf("the replaced terminal is not revoked: %+v", oi)
	}
	verifyClean(t, e)
}

// The claim's moment: a kv-path write for the facility whose transaction ran before the hold
// was entered (a deposit's credit) lands before the held state reads what it writes, so the
// holder's next charge is added to the account with the deposit in it. Let go, the balance
// holds both (without the wait, the charge is written over a balance read before the deposit
// landed, and the projection takes the deposit away).
func TestAClaimWaitsForTheKVWritesUnderWay(t *testing.T) {
	c := natstest.Start(t)
	// On a shared store: a bbolt file's one writer makes the claim's own writes wait for the
	// write under way anyway.
	e := newEnv(t, func(cfg *Config) { cfg.Store = jetStore(t, c, 0, "relay") })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := openFacLog(ctx, t, c, 1)
	running, release := make(chan struct{}), make(chan struct{})
	credited := make(chan error, 1)
	go func() {
		d := vocab.Deposit{Ref: "d1", InmateID: "A1", Cents: 1000, At: t0}
		credited <- e.r.update("deposit", func(tx kv.Tx, f *fanout) error {
			select {
			case <-running:
			default:
				close(running)
			}
			<-release // its transaction under way as the claim begins
			if err := putJSON(tx, bDeposits, d.Ref, d); err != nil {
				return err
			}
			return creditTx(tx, f, "north", d)
		})
	}()
	<-running
	barrier := make(chan struct{})
	e.r.hooks.beforeClaimBarrier = func() { close(barrier) }
	claimed := make(chan error, 1)
	go func() {
		_, err := e.r.holdFacility(ctx, l, "north", "gw-test", faclog.HoldOptions{Clock: clock.NewFake(t0)})
		claimed <- err
	}()
	charged := false
	// The holder's charge, as a batch's transaction writes it.
	charge := func() {
		t.Helper()
		err := e.r.held.of("north").holding.Store().Update(ctx, func(tx kv.Tx) error {
			u := UsageRecord{Kind: "charge", RecordID: "s1/0", SessionID: "s1", InmateID: "A1", Cents: 5, At: t0, TerminalID: k.id}
			if err := putJSON(tx, bCharges, "A1/s1/0", u); err != nil {
				return err
			}
			return addTotals(tx, "A1", func(t *totals) { t.Charges += 5 })
		})
		if err != nil {
			t.Fatalf("the holder's charge: %v", err)
		}
		charged = true
	}
	select {
	case <-barrier: // the claim waits for the write under way
	case err := <-claimed:
		// A claim that did not wait: held while the write is under way, and its charge reads
		// the balance before the write lands.
		if err != nil {
			t.Fatal(err)
		}
		charge()
		claimed <- nil
	}
	close(release)
	if err := <-credited; err != nil {
		t.Fatal(err)
	}
	if err := <-claimed; err != nil {
		t.Fatal(err)
	}
	if !charged {
		charge()
	}
	if err := e.r.releaseFacility(ctx, "north"); err != nil {
		t.Fatal(err)
	}
	if got := e.balanceOf("A1"); got != 1000-5 {
		t.Fatalf("A1's balance %d, want %d: the deposit under way at the claim and the holder's charge", got, 1000-5)
	}
	verifyClean(t, e)
}

// noSecondWrites fails the test with the records of north's written beside its holder.
func noSecondWrites(t *testing.T, wrote []string) {
	t.Helper()
	if len(wrote) != 0 {
		t.Fatalf("written beside north's holder: %s", strings.Join(wrote, " "))
	}
}

// letNorthGo releases north: what its held state appended is projected into the kv state.
func letNorthGo(t *testing.T, e *env) {
	t.Helper()
	if err := e.r.releaseFacility(context.Background(), "north"); err != nil {
		t.Fatal(err)
	}
}

// verifyClean fails the test unless verify finds nothing wrong.
func verifyClean(t *testing.T, e *env) {
	t.Helper()
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
}

// A held facility's refusals and sequence conflicts are listed from its held state, where its
// terminals' batches wrote them (the kv state's copy waits for the projector). The held item a
// conflict names, found by the listing's walk of the item log, is kept in the conflict's
// record by the holder (keepHeld through updateAt), and the next listing reads it there.
// Nothing of north's moves in the kv state; let go, verify is clean.
func TestAHeldFacilitysRefusalsAreListedFromItsHeldState(t *testing.T) {
	var k *term
	var held wire.Item
	e, hf := heldNorth(t, func(e *env) {
		k = e.enroll(wire.ModeKiosk, "")
		c := k.connect(t, 0)
		held = k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"})
		if ack := c.batch(held); ack.Seq != 1 {
			t.Fatalf("ack %+v", ack)
		}
		c.c.Close(websocket.StatusNormalClosure, "")
	})
	wrote := secondWrites(t, e, "north", func() {
		k.seq = 0
		other := k.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev2", At: t0, Kind: "logout", Actor: "A1"})
		c := k.connect(t, 0)
		if ack := c.batch(other); ack.Seq != 0 {
			t.Fatalf("another item at seq 1: ack %+v, want nothing acknowledged", ack)
		}
		expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
		for range 2 { // the second listing reads what the first kept
			if rf := findRefusal(t, e.refusals(k.id), k.id, other.ID); rf.Reason != ConflictSequence || rf.Seq != 1 || rf.HeldItemID != held.ID {
				t.Fatalf("conflict listed as %+v, want seq 1 holding %s", rf, held.ID)
			}
			var kept Refusal
			if err := hf.holding.Store().View(t.Context(), func(tx kv.Tx) error {
				_, err := getJSON(tx, bConflicts, seqKey(k.id, k.epoch, 1), &kept)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if kept.HeldItemID != held.ID {
				t.Fatalf("the conflict in north's held state after the listing: %+v, want it to name %s", kept, held.ID)
			}
		}
		if rs := e.refusals(""); len(rs) != 1 {
			t.Fatalf("every refusal: %+v, want the one conflict, once", rs)
		}
	})
	noSecondWrites(t, wrote)
	letNorthGo(t, e)
	verifyClean(t, e)
}
