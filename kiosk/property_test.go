package kiosk

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/internal/testseed"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// TestPropertyLedger drives a terminal through random sequences of logins, ticks, sends,
// logouts, deposits, acknowledgements, wall-clock jumps, stalls and restarts, and after every
// step checks the ledger invariants and a model of what must have been billed. The store
// skips fsync here: durability across kills is the crash test's subject.
func TestPropertyLedger(t *testing.T) {
	sequences, steps := 200, 40
	if testing.Short() {
		sequences = 50
	}
	base := testseed.Seed(t) // sequence i uses base+i
	for i := range sequences {
		seed := base + uint64(i)
		if !t.Run(fmt.Sprint(i), func(t *testing.T) { propertySequence(t, seed, steps) }) {
			t.Fatalf("sequence %d failed (seed %d); replay it alone with %s=%d go test -run '^TestPropertyLedger$/^%d$' ./kiosk/",
				i, seed, testseed.Env, base, i)
		}
	}
}

type propModel struct {
	deposits map[string]Deposit // by ref
	sent     map[string]bool
	active   string // session id
	inmate   string
	start    time.Duration // monotonic start of the active session
	acked    bool
}

func propertySequence(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 2))
	r := &rig{tb: t, dir: t.TempDir(), clk: clock.NewFake(rigStart), opts: StoreOptions{NoSync: true}}
	r.open()
	pol := testPolicy(func(p *Policy) {
		p.MaxSession = Duration(time.Duration(6+rng.IntN(55)) * time.Minute)
		p.Cooldown = Duration([]time.Duration{0, time.Minute, 30 * time.Minute}[rng.IntN(3)])
		p.OfflineSpendCap = Cents(20 + rng.IntN(300))
		if rng.IntN(3) == 0 {
			p.Curfew = []CurfewWindow{{Weekday: time.Wednesday, Start: "10:30", End: "11:00"}}
		}
	})
	if err := r.term.SetPolicy(pol, "test"); err != nil {
		t.Fatal(err)
	}
	inmates := []string{"p1", "p2"}
	for _, id := range inmates {
		r.addInmate(id, 0)
	}
	m := &propModel{deposits: map[string]Deposit{}, sent: map[string]bool{}}
	var trace []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, after %v: %s", seed, trace, fmt.Sprintf(format, args...))
	}
	for step := 0; step < steps; step++ {
		who := inmates[rng.IntN(len(inmates))]
		switch op := rng.IntN(100); {
		case op < 15:
			trace = append(trace, "login "+who)
			info, err := r.login(who)
			switch {
			case err == nil:
				if m.active != "" {
					fail("a second session started")
				}
				m.active, m.inmate, m.start = info.SessionID, who, r.clk.Mono()
			case m.active != "" && KindOf(err) == KindConflict:
			case KindOf(err) == KindRefused:
			default:
				fail("login: %v", err)
			}
		case op < 50:
			d := time.Duration(rng.IntN(200)) * time.Second
			trace = append(trace, "tick +"+d.String())
			r.clk.Advance(d)
			if rng.IntN(2) == 0 {
				r.term.Touch()
			}
			r.term.Tick()
		case op < 60:
			trace = append(trace, "send "+who)
			msg, err := r.term.Send(who, crashPeer, "Hello", "a message")
			switch {
			case err == nil:
				m.sent[msg.ID] = true
			case ReasonOf(err) == ReasonNoSession || KindOf(err) == KindRefused:
			default:
				fail("send: %v", err)
			}
		case op < 68:
			trace = append(trace, "logout")
			if err := r.term.Logout(); err != nil {
				fail("logout: %v", err)
			}
		case op < 80:
			amounts := []Cents{-5, 0, 1, 7, 50, 500, pol.MaxDeposit, pol.MaxDeposit + 1}
			c := amounts[rng.IntN(len(amounts))]
			ref := fmt.Sprintf("ref-%d", rng.IntN(6))
			trace = append(trace, fmt.Sprintf("deposit %s %v %s", who, c, ref))
			err := r.term.Deposit(who, c, ref)
			old, used := m.deposits[ref]
			switch {
			case c <= 0 || c > pol.MaxDeposit:
				if KindOf(err) != KindInvalid {
					fail("invalid deposit: %v", err)
				}
			case used && (old.InmateID != who || old.Cents != c):
				if KindOf(err) != KindConflict {
					fail("reused ref: %v", err)
				}
			case err != nil:
				fail("deposit: %v", err)
			default:
				m.deposits[ref] = Deposit{Ref: ref, InmateID: who, Cents: c}
			}
		case op < 86:
			trace = append(trace, "restart")
			r.restart()
			if m.active != "" {
				var s Session
				if err := r.store.view(func(tx *bolt.Tx) (err error) { s, err = loadSessionTx(tx, m.active); return }); err != nil {
					fail("%v", err)
				}
				if s.EndReason != EndTerminalFault || s.Credited < s.Rate {
					fail("session cut by the restart: %+v; want terminal fault with its last minute credited", s)
				}
				m.active = ""
			}
		case op < 91:
			trace = append(trace, "ack")
			items, err := r.store.Pending(0, 1+rng.IntN(20), 1<<20)
			if err != nil {
				fail("%v", err)
			}
			if len(items) > 0 {
				if _, err := r.store.Ack(r.clk.Now(), items[len(items)-1].Seq); err != nil {
					fail("ack: %v", err)
				}
				m.acked = true
			}
		case op < 95:
			d := time.Duration(rng.IntN(48)-24) * time.Hour
			trace = append(trace, "jump "+d.String())
			r.clk.JumpWall(d)
		default:
			d := time.Duration(rng.IntN(40)) * time.Second
			trace = append(trace, "stall "+d.String())
			if err := r.term.ReportStall(d); err != nil {
				fail("stall: %v", err)
			}
		}

		// Whatever happened, the model holds.
		info, ok := r.term.Active()
		if ok {
			if info.SessionID != m.active {
				fail("active session %s, model %s", info.SessionID, m.active)
			}
			if want := int((r.clk.Mono()-m.start)/time.Minute) + 1; info.Minutes != want {
				fail("%d minutes billed, %d begun", info.Minutes, want)
			}
		} else if m.active != "" {
			var s Session
			if err := r.store.view(func(tx *bolt.Tx) (err error) { s, err = loadSessionTx(tx, m.active); return }); err != nil {
				fail("%v", err)
			}
			begun := int((r.clk.Mono()-m.start)/time.Minute) + 1
			if s.End.IsZero() || s.Minutes > begun || s.EndReason == EndLogout && s.Minutes != begun {
				fail("ended session %+v; %d minutes had begun by now", s, begun)
			}
			m.active = ""
		}
		err := r.store.view(func(tx *bolt.Tx) error {
			if err := ledgerProblems(tx, m.acked); err != nil {
				return err
			}
			return propertyRecords(tx, m)
		})
		if err != nil {
			fail("%v", err)
		}
	}
}

// propertyRecords checks the stored deposits match the model and each sent message is stored
// once, queued once until acknowledged.
func propertyRecords(tx *bolt.Tx, m *propModel) error {
	n := 0
	err := tx.Bucket([]byte(bDeposits)).ForEach(func(k, v []byte) error {
		var d Deposit
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		n++
		if want, ok := m.deposits[d.Ref]; !ok || want.InmateID != d.InmateID || want.Cents != d.Cents {
			return fmt.Errorf("stored deposit %+v, model %+v", d, want)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n != len(m.deposits) {
		return fmt.Errorf("%d deposits stored, %d made", n, len(m.deposits))
	}
	queued := map[string]int{}
	if err := tx.Bucket([]byte(bOutq)).ForEach(func(k, v []byte) error {
		var it Item
		if err := json.Unmarshal(v, &it); err != nil {
			return err
		}
		if it.Kind == ItemMessage {
			var msg Message
			if err := json.Unmarshal(it.Body, &msg); err != nil {
				return err
			}
			queued[msg.ID]++
		}
		return nil
	}); err != nil {
		return err
	}
	for id := range m.sent {
		msg, found, err := getMessageTx(tx, id) // the state the screens show
		if err != nil {
			return err
		}
		if !found || queued[id] > 1 || msg.State == MsgQueued && queued[id] != 1 {
			return fmt.Errorf("message %s: stored %v (state %s), queued %d times", id, found, msg.State, queued[id])
		}
	}
	return nil
}
