package e2e

import (
	"fmt"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// TestDepartmentAnswersRequest: Ana writes to Medical from a real kiosk; the request reaches
// the relay delivered (this relay holds no mail); Medical answers
// through the admin API, and the answer lands in Ana's inbox on the kiosk, linked to her request.
func TestDepartmentAnswersRequest(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	tm.login("B1", "1234")
	req, err := tm.term.Send("A1", "dept-medical", "Tooth", "My tooth hurts")
	if err != nil {
		t.Fatal(err)
	}
	tm.waitSynced()
	testwait.UntilSaw(t, "the request delivered on the kiosk", func() (bool, string) {
		sent, err := tm.term.Sent("A1")
		for _, m := range sent {
			if m.ID == req.ID {
				return m.State == kiosk.MsgDelivered, m.State
			}
		}
		return false, fmt.Sprint(sent, err)
	})
	var answer kiosk.Message
	rl.admin("POST", "/admin/v1/requests/"+req.ID+"/reply",
		map[string]any{"from": "dept-medical", "subject": "Re: Tooth", "body": "Sick call Tuesday 9:00"}, &answer)
	testwait.UntilSaw(t, "Medical's answer in Ana's inbox", func() (bool, string) {
		in, err := tm.term.Inbox("A1")
		for _, m := range in {
			if m.ID == answer.ID {
				return m.ReplyTo == req.ID && m.PeerName == "Medical" && m.Body == "Sick call Tuesday 9:00",
					fmt.Sprintf("%+v", m)
			}
		}
		return false, fmt.Sprint(in, err)
	})
}
