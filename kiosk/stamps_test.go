package kiosk

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/internal/testseed"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

func stampPolicy(p *Policy) {
	p.Pricing, p.StampPrice = PricingPerMessage, 25
	p.Cooldown = 0
}

// approvedContact gives inmate a contact it may write to.
func (r *rig) approvedContact(inmate, name string) Contact {
	r.tb.Helper()
	c, err := r.term.AddContact(inmate, name, name+"@example.com")
	if err != nil {
		r.tb.Fatalf("add contact: %v", err)
	}
	if err := r.term.SetContactState(inmate, c.ID, ContactApproved, ""); err != nil {
		r.tb.Fatalf("approve contact: %v", err)
	}
	return c
}

func TestStampChargedOnceWithTheLetterAndNeverOnFreeServices(t *testing.T) {
	r := newRig(t, stampPolicy)
	r.addInmate("i1", 60)
	r.mustLogin("i1")
	ana := r.approvedContact("i1", "ana")
	dept := r.term.Policy().Departments[0].ID

	if got := r.term.LetterPrice(ana.ID); got != 25 {
		t.Fatalf("price of a letter to a contact = %s, want 25¢", got)
	}
	for _, peer := range []string{dept, PREAChannel} {
		if got := r.term.LetterPrice(peer); got != 0 {
			t.Fatalf("price of a letter to %s = %s, want free", peer, got)
		}
	}
	r.run(5*time.Minute, true)
	if b := r.balance("i1"); b != 60 {
		t.Fatalf("priced per letter, five minutes logged in cost %s", 60-b)
	}

	m, err := r.term.Send("i1", ana.ID, "Hi", "first letter")
	if err != nil {
		t.Fatal(err)
	}
	if b := r.balance("i1"); b != 35 {
		t.Fatalf("balance after one stamped letter = %s, want 35¢", b)
	}
	if s, ok, err := r.term.StampOf("i1", m.ID); err != nil || !ok || s.Cents != 25 || s.Refunded {
		t.Fatalf("stamp of the letter = %+v %v %v, want 25¢ not refunded", s, ok, err)
	}
	// The charge follows its letter in the queue: the relay must hold the letter first.
	items := r.queued(t, ItemMessage, ItemCharge)
	if len(items) != 2 || items[0].Kind != ItemMessage || items[1].Kind != ItemCharge {
		t.Fatalf("queued %v, want the letter then its stamp", items)
	}
	var ch Charge
	json.Unmarshal(items[1].Body, &ch)
	if ch.RecordID != vocab.StampRecordID(m.ID) || ch.MessageID != m.ID || ch.Cents != 25 {
		t.Fatalf("stamp charge %+v", ch)
	}

	if _, err := r.term.Send("i1", dept, "Sick call", "free request"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.term.SendPREA("i1", "free report"); err != nil {
		t.Fatal(err)
	}
	if b := r.balance("i1"); b != 35 {
		t.Fatalf("a request to a department and a PREA report cost %s", 35-b)
	}
	if _, err := r.term.Send("i1", ana.ID, "Hi", "second letter"); err != nil {
		t.Fatal(err)
	}
	sentBefore, _ := r.term.Sent("i1")
	_, err = r.term.Send("i1", ana.ID, "Hi", "third letter")
	if ReasonOf(err) != ReasonInsufficientBalance {
		t.Fatalf("a letter the balance (10¢) cannot stamp: %v, want %s", err, ReasonInsufficientBalance)
	}
	if sent, _ := r.term.Sent("i1"); len(sent) != len(sentBefore) || r.balance("i1") != 10 {
		t.Fatalf("a refused letter changed something: %d sent (was %d), balance %s", len(sent), len(sentBefore), r.balance("i1"))
	}
	checkLedger(t, r.store, false)

	lines, err := r.term.Statement("i1")
	if err != nil {
		t.Fatal(err)
	}
	stamps := 0
	for _, l := range lines {
		if l.Kind == LineCharge && l.MessageID != "" && l.Cents == -25 {
			stamps++
		}
	}
	if stamps != 2 {
		t.Fatalf("statement shows %d stamps, want 2: %+v", stamps, lines)
	}
}

func TestStampHeldAgainstOfflineCapAndGivenBackWhenRefused(t *testing.T) {
	r := newRig(t, func(p *Policy) { stampPolicy(p); p.OfflineSpendCap = 40 })
	r.addInmate("i1", 500)
	r.mustLogin("i1")
	ana := r.approvedContact("i1", "ana")

	first, err := r.term.Send("i1", ana.ID, "Hi", "one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.term.Send("i1", ana.ID, "Hi", "two"); ReasonOf(err) != ReasonOfflineLimit {
		t.Fatalf("a second stamp past the offline cap (40¢): %v, want %s", err, ReasonOfflineLimit)
	}
	charge := r.queued(t, ItemCharge)[0]
	// The relay refuses the stamp for good (it never took the money): it comes back, once.
	for range 2 {
		if err := r.term.MarkRefused(charge.Seq, "stamp_price"); err != nil {
			t.Fatal(err)
		}
	}
	if b := r.balance("i1"); b != 500 {
		t.Fatalf("balance after the refused stamp = %s, want 500¢ back", b)
	}
	s, ok, err := r.term.StampOf("i1", first.ID)
	if err != nil || !ok || !s.Refunded || s.Reason != CreditStampRefused {
		t.Fatalf("stamp after refusal = %+v %v %v", s, ok, err)
	}
	if _, err := r.term.Send("i1", ana.ID, "Hi", "two"); err != nil {
		t.Fatalf("the refused stamp no longer counts against the cap, yet: %v", err)
	}
	// The relay's refund of the same stamp (a remote credit) must not pay it twice.
	cr, _ := json.Marshal(Credit{RecordID: vocab.StampRecordID(first.ID), InmateID: "i1", Cents: 25,
		Reason: CreditStampRejected, MessageID: first.ID, At: rigStart})
	if refused, err := r.term.ApplyDownlink(1, DownRemoteCredit, cr); err != nil || refused != "" {
		t.Fatalf("remote credit: %q %v", refused, err)
	}
	if b := r.balance("i1"); b != 475 {
		t.Fatalf("balance = %s, want 475¢ (one stamp of two, refunded once)", b)
	}
	checkLedger(t, r.store, true)
}

func TestPerMinutePricingChargesNoStamp(t *testing.T) {
	r := newRig(t, func(p *Policy) { p.Cooldown = 0 })
	r.addInmate("i1", 500)
	r.mustLogin("i1")
	ana := r.approvedContact("i1", "ana")
	before := r.balance("i1")
	m, err := r.term.Send("i1", ana.ID, "Hi", "one")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.term.StampOf("i1", m.ID); ok || r.balance("i1") != before || r.term.LetterPrice(ana.ID) != 0 {
		t.Fatalf("the default (per minute) pricing stamped a letter")
	}
}

// TestStampCrashAllOrNothing kills a child that sends stamped letters at random moments: after
// every kill each letter it was told was stored has exactly one stamp, every stamp its letter,
// and the ledger (balance, offline cap) adds up.
func TestStampCrashAllOrNothing(t *testing.T) {
	kills := 60
	if testing.Short() {
		kills = 15
	}
	dir := t.TempDir()
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	r := &rig{tb: t, dir: dir, clk: clock.NewFake(time.Now())}
	r.open()
	p := crashPolicy()
	stampPolicy(&p)
	if err := r.term.SetPolicy(p, "test"); err != nil {
		t.Fatal(err)
	}
	r.addInmate(crashInmate, 0)
	r.mustLogin(crashInmate)
	r.approvedContact(crashInmate, "ana")
	if err := r.term.Logout(); err != nil {
		t.Fatal(err)
	}
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}
	sent := map[string]bool{}
	for i := range kills {
		ids, err := runChildTest("TestStampCrashChild", dir, seed+uint64(i)+1, time.Duration(rng.IntN(40))*time.Millisecond)
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		for _, id := range ids {
			sent[id] = true
		}
		s, err := OpenStore(dir, StoreOptions{})
		if err != nil {
			t.Fatalf("kill %d: reopen: %v", i, err)
		}
		err = s.view(func(tx *bolt.Tx) error {
			if err := ledgerProblems(tx, false); err != nil {
				return err
			}
			if err := outboxExactlyOnce(tx, sent); err != nil {
				return err
			}
			return stampsMatchLetters(tx, sent)
		})
		s.Close()
		if err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
	}
	if len(sent) < kills/2 {
		t.Fatalf("only %d letters sent over %d kills: too little happened to test anything", len(sent), kills)
	}
}

// stampsMatchLetters: every outbox letter to a contact has one stamp, every stamp a letter.
func stampsMatchLetters(tx *bolt.Tx, sent map[string]bool) error {
	letters := map[string]bool{}
	err := tx.Bucket([]byte(bMessages)).ForEach(func(k, v []byte) error {
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.Box == BoxOutbox {
			letters[m.ID] = true
			if tx.Bucket([]byte(bCharges)).Get([]byte(vocab.StampRecordID(m.ID))) == nil {
				return fmt.Errorf("letter %s was stored without its stamp", m.ID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for id := range sent {
		if !letters[id] {
			return fmt.Errorf("letter %s was reported sent but is not stored", id)
		}
	}
	c := tx.Bucket([]byte(bCharges)).Cursor()
	pfx := []byte(vocab.StampRecordPrefix)
	for k, v := c.Seek(pfx); k != nil && string(k[:min(len(k), len(pfx))]) == string(pfx); k, v = c.Next() {
		var ch Charge
		if err := json.Unmarshal(v, &ch); err != nil {
			return err
		}
		if !letters[ch.MessageID] {
			return fmt.Errorf("stamp %s was charged for no stored letter", k)
		}
	}
	return nil
}

// TestStampCrashChild is the child's body; it runs only under TestStampCrashAllOrNothing.
func TestStampCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("runs only as the stamp crash test's child")
	}
	var seed uint64
	fmt.Sscan(os.Getenv("TETHER_CRASH_SEED"), &seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	s, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: clock.NewFake(time.Now()), PINParams: TestPINParams(), ID: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	recips, err := term.Recipients(crashInmate)
	if err != nil {
		t.Fatal(err)
	}
	var peer string
	for _, rc := range recips {
		if rc.Kind == peerKindHuman {
			peer = rc.ID
		}
	}
	if b, _ := term.Balance(crashInmate); b < 1000 {
		if err := term.Deposit(crashInmate, 50000, fmt.Sprintf("dep-%d-%d", seed, rng.Uint64())); err != nil {
			t.Fatal(err)
		}
	}
	p, err := term.EnterPIN("B-"+crashInmate, rigPIN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := term.AcceptNotice(p); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		m, err := term.Send(crashInmate, peer, "Hi", fmt.Sprintf("letter %d of child %d", n, seed))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("sent %s\n", m.ID)
	}
}
