package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
)

// TestDemoPricesLettersWithStamps: the demo facility bills minutes and stamps, Maria's reply
// of yesterday (held for review) carried a stamp through the kiosk's real store and sync, and
// rejecting it in review refunds the stamp (what the README tells a visitor to try).
func TestDemoPricesLettersWithStamps(t *testing.T) {
	var out bytes.Buffer
	d, _, err := newDemo(filepath.Join(t.TempDir(), "demo"), func(string, ...any) {}, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	p, err := d.relay.Policy(d.fac.ID)
	if err != nil || p.Pricing != kiosk.PricingBoth || p.StampPrice != 25 {
		t.Fatalf("demo policy pricing %q, stamp %s (%v), want both and 25¢", p.Pricing, p.StampPrice, err)
	}
	held, err := d.relay.Outbound(relay.OutboundFilter{Status: kiosk.MsgHeld})
	if err != nil || len(held) == 0 {
		t.Fatalf("no held letter in the demo: %v", err)
	}
	stamps := func(kind string) int {
		u, err := d.relay.Usage(held[0].InmateID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range u.Records {
			if r.Kind == kind && r.MessageID == held[0].ID && r.Cents == 25 {
				n++
			}
		}
		return n
	}
	if stamps("charge") != 1 {
		t.Fatalf("the held letter %s carries no 25¢ stamp on the relay", held[0].ID)
	}
	before, _ := d.relay.Balance(held[0].InmateID)
	if _, err := d.relay.RejectOutbound(held[0].ID, "content_policy"); err != nil {
		t.Fatal(err)
	}
	after, _ := d.relay.Balance(held[0].InmateID)
	if stamps("credit") != 1 || after.BalanceCents != before.BalanceCents+25 {
		t.Fatalf("rejecting the held letter: balance %s -> %s, want the stamp refunded", before.BalanceCents, after.BalanceCents)
	}
}
