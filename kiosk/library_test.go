package kiosk

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

func libraryPolicy(p *Policy) {
	p.Pricing, p.StampPrice = PricingPerMessage, 25 // sessions unbilled: only purchases move money
	p.OfflineSpendCap = 200
	p.Cooldown = 0
}

// publish applies a catalog item as the relay sends it, at the next downlink seq.
func (r *rig) publish(it CatalogItem) {
	r.tb.Helper()
	r.applyDown(DownCatalogItem, it)
}

func (r *rig) applyDown(kind string, body any) string {
	r.tb.Helper()
	raw, _ := json.Marshal(body)
	seq, err := r.term.DownlinkApplied()
	if err != nil {
		r.tb.Fatal(err)
	}
	refused, err := r.term.ApplyDownlink(seq+1, kind, raw)
	if err != nil {
		r.tb.Fatalf("apply %s: %v", kind, err)
	}
	return refused
}

func libTrack(id string, cents Cents) CatalogItem {
	d := strings.Repeat("ab", 32)
	return CatalogItem{ID: id, Kind: vocab.CatalogTrack, Title: "Song " + id, Artist: "Band", Duration: 60, PriceCents: cents,
		Audio: &vocab.MediaRef{SHA256: d, Manifest: d, Size: 1000, Type: vocab.MediaMP3}}
}

// A purchase is charged once, here and now, offline, within the offline spend cap; each
// refusal says why; a purchase the relay refuses comes back whole, ownership included.
func TestBuyChargedOnceWithinTheOfflineCapAndGivenBackWhenRefused(t *testing.T) {
	r := newRig(t, libraryPolicy)
	r.addInmate("i1", 250)
	r.addInmate("i2", 50)
	r.publish(libTrack("t1", 129))
	r.publish(libTrack("t2", 99))
	r.publish(libTrack("f1", 0))
	if refused := r.applyDown(DownCatalogItem, libTrack("bad", vocab.MaxItemPrice+1)); !strings.Contains(refused, "price_cents") {
		t.Errorf("an item beyond the largest price applied: %q", refused)
	}
	if _, err := r.term.Buy("i1", "t1"); ReasonOf(err) != ReasonNoSession {
		t.Fatalf("buying without a session: %v", err)
	}
	r.mustLogin("i1")
	o, err := r.term.Buy("i1", "t1")
	if err != nil {
		t.Fatal(err)
	}
	if b, a := r.balance("i1"), r.account("i1"); b != 121 || a.Unsynced != 129 {
		t.Fatalf("after buying a 129¢ track: balance %s, unsynced %s", b, a.Unsynced)
	}
	items := r.queued(t, ItemCharge)
	var ch Charge
	if len(items) != 1 || json.Unmarshal(items[0].Body, &ch) != nil || ch.RecordID != vocab.PurchaseRecordID(o.PurchaseID) ||
		ch.ItemID != "t1" || ch.Cents != 129 {
		t.Fatalf("queued %+v", items)
	}
	for _, tc := range []struct {
		item string
		want Reason
	}{{"t1", vocab.ReasonAlreadyOwned}, {"t2", ReasonOfflineLimit}, {"nope", vocab.ReasonNotInCatalog}} {
		if _, err := r.term.Buy("i1", tc.item); ReasonOf(err) != tc.want {
			t.Errorf("buying %s: %v, want %s", tc.item, err, tc.want)
		}
	}
	if _, err := r.term.Buy("i1", "f1"); err != nil {
		t.Fatalf("a free item: %v", err)
	}
	if n := len(r.queued(t, ItemCharge)); n != 1 {
		t.Errorf("a free item queued a charge (%d charges)", n)
	}
	if b := r.balance("i1"); b != 121 {
		t.Errorf("balance %s after the failed and free purchases, want 121", b)
	}
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	r.mustLogin("i2")
	if _, err := r.term.Buy("i2", "t1"); ReasonOf(err) != ReasonInsufficientBalance {
		t.Errorf("a 129¢ track with 50¢: %v", err)
	}

	// The relay refuses the charge (say, the price changed): the money and the track go back.
	if err := r.term.MarkRefused(items[0].Seq, "purchase_price"); err != nil {
		t.Fatal(err)
	}
	if b, a := r.balance("i1"), r.account("i1"); b != 250 || a.Unsynced != 0 {
		t.Errorf("after the refusal: balance %s, unsynced %s; want 250, 0", b, a.Unsynced)
	}
	owned, err := r.term.Owned("i1")
	if err != nil || len(owned) != 1 || owned[0].Item.ID != "f1" {
		t.Errorf("owned after the refusal: %+v %v", owned, err)
	}
	lines, err := r.term.Statement("i1")
	if err != nil {
		t.Fatalf("statement: %v", err)
	}
	var bought, back bool
	for _, l := range lines {
		bought = bought || (l.Kind == LineCharge && l.ItemID == "t1" && l.Cents == -129)
		back = back || (l.Kind == LineCredit && l.ItemID == "t1" && l.Cents == 129 && l.Reason == vocab.CreditPurchaseRefused)
	}
	if !bought || !back {
		t.Errorf("the statement lacks the purchase (%v) or its refund (%v): %+v", bought, back, lines)
	}
	if rep, err := r.term.Verify("test"); err != nil || !rep.OK {
		t.Errorf("verify after a purchase and its refusal: %+v %v", rep.Problems, err)
	}
	// Given back once: the refusal applied again changes nothing.
	if err := r.term.MarkRefused(items[0].Seq, "purchase_price"); err == nil {
		if b := r.balance("i1"); b != 250 {
			t.Errorf("a second refusal gave back again: balance %s", b)
		}
	}

	// Withdrawn: out of the catalog, still owned. Bought elsewhere: owned here too.
	r.applyDown(DownCatalogWithdrawn, vocab.CatalogWithdrawn{ID: "f1", At: rigStart})
	cat, _ := r.term.Catalog()
	for _, it := range cat {
		if it.ID == "f1" {
			t.Error("a withdrawn item is still in the catalog")
		}
	}
	r.applyDown(DownRemoteCharge, Charge{RecordID: vocab.PurchaseRecordID("p-elsewhere"), InmateID: "i1", ItemID: "t2", Cents: 99, At: rigStart})
	if _, err := r.term.Statement("i1"); err != nil {
		t.Errorf("statement after a purchase elsewhere: %v", err)
	}
	owned, _ = r.term.Owned("i1")
	if len(owned) != 2 || r.balance("i1") != 250-99 {
		t.Errorf("after a purchase on another terminal: owned %+v, balance %s", owned, r.balance("i1"))
	}
	for _, o := range owned {
		if o.Item.ID == "t2" && (o.Item.Title != "Song t2" || o.PurchaseID != "p-elsewhere") {
			t.Errorf("the purchase from elsewhere: %+v", o)
		}
	}
}

// Library time is metered per inmate per day by the policy's clock and refused when used up;
// the count survives a restart and starts again the next day.
func TestLibraryMinutesPerDay(t *testing.T) {
	r := newRig(t, func(p *Policy) { libraryPolicy(p); p.LibraryMinutesPerDay = 3 })
	r.addInmate("i1", 100)
	r.mustLogin("i1")
	for want := 2; want >= 0; want-- {
		if left, err := r.term.UseLibraryMinute("i1"); err != nil || left != want {
			t.Fatalf("minute: %d left, %v; want %d", left, err, want)
		}
	}
	_, err := r.term.UseLibraryMinute("i1")
	var e *Error
	if ReasonOf(err) != vocab.ReasonLibraryTimeUsed || !asError(err, &e) || !e.Until.Equal(time.Date(2025, 3, 6, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("a fourth minute: %v", err)
	}
	r.restart()
	if left, err := r.term.LibraryMinutesLeft("i1"); err != nil || left != 0 {
		t.Fatalf("after a restart: %d left, %v", left, err)
	}
	r.clk.Advance(14 * time.Hour) // past midnight
	r.mustLogin("i1")
	if left, err := r.term.UseLibraryMinute("i1"); err != nil || left != 2 {
		t.Fatalf("the next day: %d left, %v", left, err)
	}
	r.setPolicy(func(p *Policy) { p.LibraryMinutesPerDay = 0 })
	if left, err := r.term.UseLibraryMinute("i1"); err != nil || left != -1 {
		t.Fatalf("no limit: %d, %v", left, err)
	}
}

// A quiz attempt is queued for the relay to grade, free, only with one valid answer per question.
func TestSubmitQuizQueuesTheAnswers(t *testing.T) {
	r := newRig(t, libraryPolicy)
	r.addInmate("i1", 0)
	d := strings.Repeat("cd", 32)
	r.publish(CatalogItem{ID: "l1", Kind: vocab.CatalogLesson, Title: "L", Pages: []vocab.MediaRef{{SHA256: d, Manifest: d, Size: 5, Type: vocab.MediaText}}})
	r.publish(CatalogItem{ID: "c1", Kind: vocab.CatalogCourse, Title: "C", Lessons: []string{"l1"},
		Quizzes: []vocab.Quiz{{ID: "q1", PassScore: 1, Questions: []vocab.QuizQuestion{{Text: "?", Choices: []string{"a", "b"}}}}}})
	r.mustLogin("i1")
	if _, err := r.term.SubmitQuiz("i1", "c1", "q1", []int{2}); KindOf(err) != KindInvalid {
		t.Errorf("an answer beyond the choices: %v", err)
	}
	if _, err := r.term.SubmitQuiz("i1", "c1", "q2", []int{0}); ReasonOf(err) != vocab.ReasonNotInCatalog {
		t.Errorf("an unknown quiz: %v", err)
	}
	a, err := r.term.SubmitQuiz("i1", "c1", "q1", []int{1})
	if err != nil {
		t.Fatal(err)
	}
	items := r.queued(t, ItemQuizAttempt)
	var got vocab.QuizAttempt
	if len(items) != 1 || json.Unmarshal(items[0].Body, &got) != nil || got.ID != a.ID || got.Answers[0] != 1 {
		t.Fatalf("queued %+v", items)
	}
}

// A store of schema 4 (no library) opens as the current schema and takes the catalog and a purchase.
func TestSchema4StoreTakesTheLibrary(t *testing.T) {
	r := newRig(t, libraryPolicy)
	r.addInmate("i1", 200)
	if err := r.store.db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{bCatalog, bOwned, bLibraryUse} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(4))
	}); err != nil {
		t.Fatal(err)
	}
	r.restart()
	if info, _ := r.store.Info(); info.Schema != SchemaVersion() {
		t.Fatalf("schema after reopening = %d", info.Schema)
	}
	r.publish(libTrack("t1", 50))
	r.mustLogin("i1")
	if _, err := r.term.Buy("i1", "t1"); err != nil || r.balance("i1") != 150 {
		t.Fatalf("a purchase after the upgrade: %v, balance %s", err, r.balance("i1"))
	}
}
