package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/wire"

	"github.com/coder/websocket"
)

// noFollow makes one admin call on e without following a redirect: the answer as the client
// gets it.
func noFollow(t *testing.T, e *env, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

// A call made through a gateway that does not hold the facility it writes for goes to the
// gateway that does: a north kiosk's charge (its connection closed as moved), a deposit to a
// north inmate (307 to the same path there, nothing of it written where it was made; made
// once at the holder, sent twice). What a kv-path call leaves due to a facility anyway (a
// roster put's half for north, an enrollment's) is left due to the holder, which drains it
// when told. Once the holder lets north go, the other gateway makes its calls itself again.
func TestACallForAFacilityHeldElsewhereGoesToItsHolder(t *testing.T) {
	c, e1, e2 := gatewaysOnCluster(t)
	e1.seed()
	k := e1.enroll(wire.ModeKiosk, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	holder := "ws" + strings.TrimPrefix(e1.srv.URL, "http") // a gateway's URL, as its terminals have it
	if _, err := e1.r.holdFacility(ctx, openFacLog(ctx, t, c, 1), "north", holder, faclog.HoldOptions{Clock: clock.NewFake(t0)}); err != nil {
		t.Fatal(err)
	}
	// A north kiosk that reaches the other gateway: its charge is not taken there, and its
	// connection is closed so that it goes where north is held.
	k.e = e2
	kc := k.connect(t, 0)
	charged := k.item(wire.UpCharge, charge("A1", "s1", 0, 5))
	err := notAcked(t, ctx, kc.c, wire.Batch{Epoch: k.epoch, Items: []wire.Item{charged}}, "the gateway not holding north")
	if websocket.CloseStatus(err) != websocket.StatusGoingAway || !strings.Contains(err.Error(), wire.ReasonMoved) {
		t.Fatalf("the kiosk's connection closed with %v, want going away, %q", err, wire.ReasonMoved)
	}
	k.e = e1
	if ack := k.connect(t, 0).batch(charged); ack.Seq != charged.Seq || len(ack.Rejected) != 0 {
		t.Fatalf("the charge at the holder: ack %+v", ack)
	}
	before, beforeThere := e1.balanceOf("A1"), e2.balanceOf("A1")
	deposit := `{"inmate_id":"A1","cents":700,"ref":"dep-elsewhere"}`
	status, h, body := noFollow(t, e2, "POST", "/admin/v1/deposits", deposit)
	want, says := e1.srv.URL+"/admin/v1/deposits", "facility north is served by the gateway at "+e1.srv.URL
	if status != http.StatusTemporaryRedirect || h.Get("Location") != want || !strings.Contains(string(body), says) {
		t.Fatalf("a deposit for a north inmate at the gateway not holding north: %d, Location %q, %s; want 307 to %s, saying %q",
			status, h.Get("Location"), body, want, says)
	}
	if got := e2.balanceOf("A1"); got != beforeThere {
		t.Fatalf("the refused deposit moved A1's balance at the other gateway: %d, was %d", got, beforeThere)
	}
	// North's roster put at the other gateway: the state's records written there, north's
	// half (its list, the inmate for its kiosks) left due to the holder, which drains it as
	// told: the kiosk connected to gateway 1 hears of A9.
	roster, err := json.Marshal(Roster{Inmates: []RosterInmate{
		{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive},
		{ID: "A9", Name: "Nell", Badges: []string{"B9"}, PIN: "9876", Language: "en", Status: kiosk.StatusActive},
	}})
	if err != nil {
		t.Fatal(err)
	}
	at1 := k.connect(t, 0)
	if status, _, body := noFollow(t, e2, "PUT", "/admin/v1/facilities/north/roster", string(roster)); status != http.StatusOK {
		t.Fatalf("north's roster put at the gateway not holding north: %d %s, want 200", status, body)
	}
	at1.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return strings.Contains(string(b), `"A9"`) })
	// A kiosk enrolled through the other gateway: its facility half done by the holder, where
	// it is served.
	k2 := e2.enroll(wire.ModeKiosk, "")
	k2.e = e1
	if ack := k2.connect(t, 0).batch(k2.item(wire.UpCharge, charge("A9", "s9", 0, 5))); len(ack.Rejected) != 0 {
		t.Fatalf("the kiosk enrolled through the other gateway, at the holder: ack %+v", ack)
	}
	testwait.UntilSaw(t, "the holder listing the kiosk enrolled elsewhere", func() (bool, string) {
		ts, err := e1.r.TerminalsOf("north")
		for _, tm := range ts {
			if tm.ID == k2.id {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(ts), err)
	})
	// Followed (Go's client keeps the token on a redirect to the same host): made by the
	// holder, once; made again there, the same deposit.
	var dep struct {
		BalanceCents int64 `json:"balance_cents"`
	}
	for range 2 {
		code, out := e2.call("POST", "/admin/v1/deposits", deposit)
		if code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("the deposit followed to the holder: %d %s", code, out)
		}
		if err := json.Unmarshal(out, &dep); err != nil {
			t.Fatal(err)
		}
	}
	if got := e1.balanceOf("A1"); got != before+700 {
		t.Fatalf("A1's balance at the holder after the deposit, sent twice: %d, want %d", got, before+700)
	}
	if err := e1.r.releaseFacility(ctx, "north"); err != nil {
		t.Fatal(err)
	}
	if status, _, body := noFollow(t, e2, "POST", "/admin/v1/deposits", `{"inmate_id":"A1","cents":300,"ref":"dep-after"}`); status != http.StatusCreated {
		t.Fatalf("a deposit at the other gateway once north was let go: %d %s, want 201 there", status, body)
	}
	if got := e2.balanceOf("A1"); got != before+1000 {
		t.Fatalf("A1's balance after both deposits: %d, want %d", got, before+1000)
	}
}

// Notes that something is due to a facility, however many arrive while its drain runs, make
// one drain more after it, not one each, read from the latest position they handed over;
// another facility's drain runs beside it.
func TestDueNotesCoalesce(t *testing.T) {
	var d dueNotes
	release := make(chan struct{})
	ran := make(chan string, 16)
	fn := func(facility string) func(uint64) {
		return func(pos uint64) {
			ran <- fmt.Sprintf("%s at %d", facility, pos)
			if facility == "north" {
				<-release
			}
		}
	}
	d.drain("north", 7, fn("north"))
	if got := <-ran; got != "north at 7" {
		t.Fatalf("first drain: %s", got)
	}
	for _, pos := range []uint64{12, 40, 0, 31, 9} {
		d.drain("north", pos, fn("north"))
	}
	d.drain("south", 3, fn("south"))
	if got := <-ran; got != "south at 3" {
		t.Fatalf("south's drain waited for north's, or north ran again first: %s", got)
	}
	release <- struct{}{} // the first north drain ends: one more runs
	if got := <-ran; got != "north at 40" {
		t.Fatalf("after the burst: %s, want north once more, at the latest position 40", got)
	}
	release <- struct{}{}
	testwait.UntilSaw(t, "north's drains done", func() (bool, string) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return !d.running["north"], ""
	})
	select {
	case got := <-ran:
		t.Fatalf("a third drain (%s) for a burst of notes", got)
	default:
	}
}

// A hold record naming this very relay, left by a run that stopped without letting the
// facility go, does not send a call to itself: the admin API answers 503 with Retry-After,
// saying so, and nothing is credited. Once the facility is taken up again (here, its record
// gone), the same deposit is credited, once.
func TestAHoldLeftByThisRelaysEarlierRunAsksToTryAgain(t *testing.T) {
	e := newEnv(t)
	e.seed()
	left := holdRecord{Holder: e.r.holder(), Term: 3}
	if err := e.r.recordHold("north", left); err != nil {
		t.Fatal(err)
	}
	before := e.balanceOf("A1")
	deposit := `{"inmate_id":"A1","cents":700,"ref":"dep-restart"}`
	status, h, body := noFollow(t, e, "POST", "/admin/v1/deposits", deposit)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || h.Get("Location") != "" ||
		!strings.Contains(string(body), "taken up again by this gateway") {
		t.Fatalf("a deposit for north, held by this relay's earlier run: %d, Retry-After %q, Location %q, %s; want 503 asking to try again",
			status, h.Get("Retry-After"), h.Get("Location"), body)
	}
	if got := e.balanceOf("A1"); got != before {
		t.Fatalf("the refused deposit moved A1's balance: %d, was %d", got, before)
	}
	if err := e.r.forgetHold("north", left); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if status, _, body := noFollow(t, e, "POST", "/admin/v1/deposits", deposit); status != http.StatusCreated && status != http.StatusOK {
			t.Fatalf("the deposit made again: %d %s", status, body)
		}
	}
	if got := e.balanceOf("A1"); got != before+700 {
		t.Fatalf("A1's balance after the deposit made again twice: %d, want %d", got, before+700)
	}
}

// A note of what is due names its facility and, where the store has positions, the sender's;
// a note from a gateway without one, or with a position that does not parse, still names the
// facility and asks for no floor.
func FuzzDueNote(f *testing.F) {
	f.Add("north", uint64(0))
	f.Add("north", uint64(1234))
	f.Add("load-96dccca9-f0038", uint64(1<<63))
	f.Fuzz(func(t *testing.T, facility string, pos uint64) {
		if checkID("", "", facility) == nil {
			if got, gotPos := parseDueNote(dueNote(facility, pos)); got != facility || gotPos != pos {
				t.Fatalf("note of %q at %d read back as %q at %d", facility, pos, got, gotPos)
			}
		}
		got, gotPos := parseDueNote([]byte(facility))
		if gotPos != 0 && !strings.HasPrefix(facility, got+" ") {
			t.Fatalf("%q read as %q at %d", facility, got, gotPos)
		}
	})
}
