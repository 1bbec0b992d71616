package e2e

import (
	"fmt"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A letter's state reaches the kiosk that sent it whether the kiosk takes states in the acks
// (ack_letters, the default) or, like a terminal before it, on the downlink: held when the
// relay takes it, then delivered or rejected (with the staff's reason) when staff review it,
// and it stays so across a restart of the kiosk.
func TestLetterStatesReachTheSenderEitherWay(t *testing.T) {
	for _, inAcks := range []bool{true, false} {
		t.Run(fmt.Sprintf("ack_letters=%v", inAcks), func(t *testing.T) {
			rl := startRelayHold(t, "", relay.HoldAll)
			rl.seed()
			tm := openTerminal(t, "", kiosk.StoreOptions{})
			tm.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
			tm.cfg = func(c *client.Config) { c.NoAckLetters = !inAcks }
			tm.start()
			tm.waitRoster()
			tm.login("B1", "1234")
			mom := approvedContact(t, rl, tm, "A1", "Mom", "mom@example.org")
			var ids []string
			for i := range 3 {
				m, err := tm.term.Send("A1", mom, "", fmt.Sprintf("letter %d", i))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, m.ID)
			}
			states := func() map[string]kiosk.Message {
				sent, err := tm.term.Sent("A1")
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]kiosk.Message{}
				for _, m := range sent {
					out[m.ID] = m
				}
				return out
			}
			testwait.UntilSaw(t, "the letters held on the sender", func() (bool, string) {
				st := states()
				return st[ids[0]].State == kiosk.MsgHeld && st[ids[1]].State == kiosk.MsgHeld && st[ids[2]].State == kiosk.MsgHeld,
					fmt.Sprint(st[ids[0]].State, st[ids[1]].State, st[ids[2]].State)
			})
			rl.admin("POST", "/admin/v1/outbound/"+ids[0]+"/approve", nil, nil)
			rl.admin("POST", "/admin/v1/outbound/"+ids[1]+"/reject", map[string]string{"reason": "content_policy"}, nil)
			testwait.UntilSaw(t, "the reviews on the sender", func() (bool, string) {
				st := states()
				return st[ids[0]].State == kiosk.MsgDelivered && st[ids[1]].State == kiosk.MsgRejected && st[ids[2]].State == kiosk.MsgHeld,
					fmt.Sprint(st[ids[0]].State, st[ids[1]].State, st[ids[2]].State)
			})
			tm.stopSync()
			tm.reopen(kiosk.StoreOptions{})
			st := states()
			if st[ids[0]].State != kiosk.MsgDelivered || st[ids[1]].State != kiosk.MsgRejected || st[ids[1]].Reason != "content_policy" ||
				st[ids[2]].State != kiosk.MsgHeld {
				t.Fatalf("after a restart: %+v", st)
			}
			if rep, err := tm.term.Verify("test"); err != nil || !rep.OK {
				t.Fatalf("verify: %+v, %v", rep.Problems, err)
			}
		})
	}
}
