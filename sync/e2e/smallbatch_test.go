package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A backlog that no connection can carry whole: the link drops every connection after a few
// kilobytes (both ways), and the backlog is thirty letters of some 2 KB of words that do not
// compress to nothing. A terminal resending its first full batch would be cut at the same
// place forever (the tablet that never syncs); this one halves its batches after each cut with
// batches in flight, so every letter arrives, once.
func TestBacklogDrainsThroughALinkCutEveryFewKilobytes(t *testing.T) {
	const letters = 30
	rl := startRelay(t, "")
	rl.seed()
	px := startProxy(t, rl.addr())
	tm := openTerminal(t, "", kiosk.StoreOptions{})
	tm.enroll(px.url(), rl.code(wire.ModeKiosk, ""))
	tm.start()
	tm.waitRoster()
	tm.login("B1", "1234")
	ana := approvedContact(t, rl, tm, "A1", "Ana", "ana@example.org")
	tm.stopSync()

	words := strings.Fields("news yard family letter court visit lawyer mother school rain kitchen library chapel class work shift money phone card winter summer garden")
	rng := rand.New(rand.NewPCG(7, 8))
	var want []string
	for i := range letters {
		var body strings.Builder
		fmt.Fprintf(&body, "letter %d:", i)
		for body.Len() < 2000 {
			body.WriteString(" " + words[rng.IntN(len(words))])
		}
		m, err := tm.term.Send("A1", ana, "Hi", body.String())
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		want = append(want, m.ID)
	}

	px.setBudget(8000, 8001, 1) // every connection carries 8 KB, then is cut mid-frame
	tm.start()
	tm.waitSynced()
	if px.cuts.Load() < 3 {
		t.Fatalf("only %d cuts: the link carried the backlog whole, the test proves nothing", px.cuts.Load())
	}
	out, err := rl.r.Outbound(relay.OutboundFilter{InmateID: "A1"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, o := range out {
		seen[o.ID]++
	}
	for i, id := range want {
		if seen[id] != 1 {
			t.Fatalf("letter %d is on the relay %d times, want once", i, seen[id])
		}
	}
	t.Logf("%d letters through %d cut connections", letters, px.cuts.Load())
}
