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
)

// TestAckCrashRecovery kills, with SIGKILL at random moments, a child that bills minutes,
// sends messages and PREA reports, and acknowledges random ranges of its queue (now and then
// starting a new epoch), and checks the store it left: an acknowledgement is all or nothing.
// A message reads "sent" exactly when its item left the queue, a PREA report's text is gone
// exactly when it reads sent, Unsynced is exactly the charges still queued, and Verify (which
// checks the cursor, the follow-up list and the message positions) finds nothing.
func TestAckCrashRecovery(t *testing.T) {
	kills := 40
	if testing.Short() {
		kills = 10
	}
	dir := t.TempDir()
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	r := &rig{tb: t, dir: dir, clk: clock.NewFake(time.Now())}
	r.open()
	if err := r.term.SetPolicy(crashPolicy(), "test"); err != nil {
		t.Fatal(err)
	}
	r.addInmate(crashInmate, 0)
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}
	sent := map[string]bool{}
	var acked, erased, leftWaiting int
	for i := range kills {
		ids, err := runChildTest("TestAckCrashChild", dir, seed+uint64(i)+1, time.Duration(rng.IntN(40))*time.Millisecond)
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
			if rep := verifyTx(tx); len(rep.Problems) > 0 {
				return fmt.Errorf("verify: %+v", rep.Problems)
			}
			a, e, err := ackConsistent(tx, sent)
			if a < len(sent) {
				leftWaiting++
			}
			acked, erased = a, e
			return err
		})
		s.Close()
		if err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
	}
	t.Logf("%d kills (%d left something waiting): %d messages and reports, %d read acknowledged, %d reports erased",
		kills, leftWaiting, len(sent), acked, erased)
	if acked == 0 || erased == 0 || leftWaiting == 0 {
		t.Fatalf("too little happened before the kills to test anything")
	}
}

// ackConsistent checks what an acknowledgement moves against what still waits.
func ackConsistent(tx *bolt.Tx, sent map[string]bool) (acked, erased int, err error) {
	waiting := map[string]bool{}
	var charges Cents
	err = tx.Bucket([]byte(bOutq)).ForEach(func(k, v []byte) error {
		if isAuditItem(v) {
			return nil
		}
		var it Item
		if err := json.Unmarshal(v, &it); err != nil {
			return err
		}
		var body struct {
			ID    string `json:"id"`
			Cents Cents  `json:"cents"`
		}
		if err := json.Unmarshal(it.Body, &body); err != nil {
			return err
		}
		switch it.Kind {
		case ItemMessage, ItemPREA:
			waiting[body.ID] = true
		case ItemCharge:
			charges += body.Cents
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	acc, err := loadAccountTx(tx, crashInmate)
	if err != nil {
		return 0, 0, err
	}
	if acc.Unsynced != charges {
		return 0, 0, fmt.Errorf("unsynced %v, but the charges still queued add up to %v", acc.Unsynced, charges)
	}
	for id := range sent {
		m, found, err := getMessageTx(tx, id)
		switch {
		case err != nil:
			return 0, 0, err
		case !found || m.Box != BoxOutbox:
			return 0, 0, fmt.Errorf("message %s was reported stored but is found %v (box %q)", id, found, m.Box)
		case (m.State == MsgQueued) != waiting[id]:
			return 0, 0, fmt.Errorf("message %s reads %s, its item waiting: %v", id, m.State, waiting[id])
		case !waiting[id] && m.Peer != PREAChannel && m.State != ackedStateOr(id, MsgSent):
			return 0, 0, fmt.Errorf("acknowledged message %s reads %s, its acknowledgement said %s", id, m.State, ackedStateOr(id, MsgSent))
		case m.Peer == PREAChannel && (m.Body == "") == waiting[id]:
			return 0, 0, fmt.Errorf("PREA report %s reads %s with %d bytes of text, waiting: %v", id, m.State, len(m.Body), waiting[id])
		}
		if m.State != MsgQueued {
			acked++
			if m.Peer == PREAChannel {
				erased++
			}
		}
	}
	return acked, erased, nil
}

// ackedState is the state the crash child's "relay" reports for a letter with its
// acknowledgement, fixed by the letter's id so the parent knows it: delivered, held, or none.
func ackedState(id string) string {
	switch c := id[len(id)-1]; {
	case c <= '7':
		return MsgDelivered
	case c <= 'b':
		return MsgHeld
	}
	return ""
}

func ackedStateOr(id, none string) string {
	if st := ackedState(id); st != "" {
		return st
	}
	return none
}

// TestAckCrashChild is the child's body; it runs only under TestAckCrashRecovery.
func TestAckCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("runs only as the ack crash test's child")
	}
	var seed uint64
	fmt.Sscan(os.Getenv("TETHER_CRASH_SEED"), &seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	clk := clock.NewFake(time.Now())
	s, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: clk, PINParams: TestPINParams(), ID: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	say := func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	login := func() {
		if b, _ := term.Balance(crashInmate); b < 100 {
			if err := term.Deposit(crashInmate, 5000, fmt.Sprintf("dep-%d-%d", seed, rng.Uint64())); err != nil {
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
	}
	login()
	say("ready")
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		if _, ok := term.Active(); !ok {
			login()
		}
		switch x := rng.IntN(100); {
		case x < 40:
			clk.Advance(time.Duration(20+rng.IntN(40)) * time.Second)
			term.Touch()
			term.Tick()
		case x < 60:
			m, err := term.Send(crashInmate, crashPeer, "Appointment", fmt.Sprintf("message %d of child %d", n, seed))
			if err != nil {
				t.Fatal(err)
			}
			say("sent %s", m.ID)
		case x < 66:
			m, err := term.SendPREA(crashInmate, fmt.Sprintf("report %d of child %d", n, seed))
			if ReasonOf(err) == ReasonPREABacklog {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			say("sent %s", m.ID)
		case x < 95:
			items, err := s.Pending(0, 1+rng.IntN(40), 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) > 0 {
				// The relay reports states for some letters (ackedState), in the ack's transaction.
				var letters []AckedLetter
				for _, it := range items {
					var ref struct {
						ID string `json:"id"`
					}
					if it.Kind != ItemMessage || json.Unmarshal(it.Body, &ref) != nil {
						continue
					}
					if st := ackedState(ref.ID); st != "" {
						letters = append(letters, AckedLetter{Seq: it.Seq, State: st})
					}
				}
				if _, err := term.MarkForwardedLetters(items[len(items)-1].Seq, letters); err != nil {
					t.Fatal(err)
				}
			}
		case x < 97:
			if _, err := term.NewEpoch("crash test"); err != nil {
				t.Fatal(err)
			}
		default:
			if err := term.Logout(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
