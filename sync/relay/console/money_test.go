package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/console"
)

var refundRefRE = regexp.MustCompile(`name="ref" value="(refund-[^"]+)"`)

// refundForm is the refund form of inmate's ledger, with its own fresh reference.
func (b *browser) refundForm(inmate, deposit, amount, reason string) url.Values {
	b.t.Helper()
	b.get("/console/money?inmate=" + inmate)
	m := refundRefRE.FindStringSubmatch(b.last)
	if m == nil {
		b.t.Fatalf("no refund form on %s's ledger: %.500s", inmate, b.last)
	}
	return url.Values{"csrf": {csrfRE.FindStringSubmatch(b.last)[1]}, "inmate": {inmate}, "deposit": {deposit},
		"amount": {amount}, "reason": {reason}, "ref": {m[1]}}
}

func location(resp *http.Response) string {
	loc, _ := url.QueryUnescape(resp.Header.Get("Location"))
	return loc
}

// A refund from the money screen reaches the kiosk's balance through real sync, shows in the
// ledger lines with the deposit it came from, counts once when the form is sent twice, and
// the relay's refusals read as what was wrong.
func TestRefundFromTheMoneyScreen(t *testing.T) {
	e := newEnv(t, false)
	tm := e.kiosk("")
	bob := e.browser().mustLogin("bob")
	bob.get("/console/money?inmate=A1")
	if !strings.Contains(bob.last, `<option value="seed-A1">seed-A1 · $50.00`) || !strings.Contains(bob.last, "$50.00 left") {
		t.Fatalf("the refund form does not offer A1's deposit: %.2000s", bob.last)
	}
	const evil = `<script>alert("x")</script>`
	form := bob.refundForm("A1", "seed-A1", "20.00", "Released "+evil)
	resp := bob.post("/console/money/refund", form)
	if loc := location(resp); !strings.Contains(loc, "Refunded $20.00 to A1 from deposit seed-A1") {
		t.Fatalf("refund: %d %s", resp.StatusCode, loc)
	}
	testwait.UntilSaw(t, "the refund in the kiosk's balance", func() (bool, string) {
		bal, err := tm.term.Balance("A1")
		return err == nil && bal == 3000, fmt.Sprint(bal, err)
	})
	bob.get("/console/money?inmate=A1")
	if !strings.Contains(bob.last, `<strong id="balance">$30.00</strong>`) || !strings.Contains(bob.last, "refunds $20.00") {
		t.Errorf("the balance after the refund is not shown")
	}
	line := bob.last[strings.Index(bob.last, `<tr class="line-refund">`):]
	line = line[:strings.Index(line, "</tr>")]
	if !strings.Contains(line, "-$20.00") || !strings.Contains(line, "<td>$30.00</td>") || !strings.Contains(line, form.Get("ref")+" (from seed-A1)") ||
		!strings.Contains(line, "Released &lt;script&gt;") {
		t.Errorf("the refund's ledger line: %s", line)
	}
	if !strings.Contains(bob.last, `<tr class="line-deposit">`) || !strings.Contains(bob.last, "$30.00 left") {
		t.Errorf("the ledger lacks the deposit or the money left of it")
	}
	if strings.Contains(bob.last, "<script>alert") {
		t.Errorf("the refund's reason is shown as markup")
	}

	// The same form sent again (a double click) refunds nothing more.
	if loc := location(bob.post("/console/money/refund", form)); !strings.Contains(loc, "already recorded") || !strings.Contains(loc, "nothing more given back") {
		t.Errorf("a form sent twice: %s", loc)
	}
	// The same reference for another amount, more than is left, a bad amount: each refused, named.
	form.Set("amount", "1.00")
	if loc := location(bob.post("/console/money/refund", form)); !strings.Contains(loc, "reference was already used for a different refund") {
		t.Errorf("a reused reference: %s", loc)
	}
	for amount, want := range map[string]string{"40.00": "$40.00 is more than is left of deposit", "0": "more than $0.00", "ten": "write dollars and cents"} {
		f := bob.refundForm("A1", "seed-A1", amount, "")
		if loc := location(bob.post("/console/money/refund", f)); !strings.Contains(loc, want) {
			t.Errorf("refund %s: %s, want %q", amount, loc, want)
		}
	}
	// Another inmate's deposit, of another facility, through A1's form: refused before the relay.
	f := bob.refundForm("A1", "seed-S1", "1.00", "")
	if loc := location(bob.post("/console/money/refund", f)); !strings.Contains(loc, `deposit "seed-S1" is not one of A1's deposits`) {
		t.Errorf("a refund of another inmate's deposit: %s", loc)
	}
	// Without the token, from the mailroom, from another facility: nothing is given back.
	f = bob.refundForm("A1", "seed-A1", "1.00", "")
	f.Del("csrf")
	if resp := bob.post("/console/money/refund", f); resp.StatusCode != http.StatusForbidden {
		t.Errorf("refund without the token: %d", resp.StatusCode)
	}
	mia := e.browser().mustLogin("mia")
	f.Set("csrf", mia.csrf("/console/review"))
	if resp := mia.post("/console/money/refund", f); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the mailroom refunds: %d", resp.StatusCode)
	}
	e.addStaff("sue", []string{console.RoleBusiness}, []string{"south"})
	sue := e.browser().mustLogin("sue")
	f.Set("csrf", sue.csrf("/console/money"))
	if loc := location(sue.post("/console/money/refund", f)); !strings.Contains(loc, "no inmate") {
		t.Errorf("a south clerk refunds a north inmate: %s", loc)
	}
	for id, want := range map[string]int64{"A1": 3000, "S1": 5000} {
		if bal, _ := e.r.Balance(id); int64(bal.BalanceCents) != want {
			t.Errorf("%s's balance after the refused refunds: %s, want %d cents", id, bal.BalanceCents, want)
		}
	}
	ada := e.browser().mustLogin("ada")
	ada.get("/console/audit")
	if strings.Count(ada.last, "<td>refund</td>") != 1 {
		t.Errorf("the audit log does not hold the one refund: %.3000s", ada.last)
	}
}

// A refund the relay refuses because it would make the balance negative (the inmate spent
// part of the deposit on a stamp) is shown as such, and nothing moves.
func TestRefundBeyondTheBalanceIsRefused(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	e := newEnvWith(t, false, func(c *relay.Config) { c.Notifier = relay.SpoolNotifier{Dir: spool} })
	p, err := e.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, 30
	if err := e.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	tm := e.kiosk("")
	tm.login()
	c, err := tm.term.AddContact("A1", "Mom", "mom@example.org")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the contact on the relay", func() bool { cs, _ := e.r.Contacts(kiosk.ContactPending, "A1"); return len(cs) == 1 })
	if _, err := e.r.ApproveContact(c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.AnswerInvitation(spoolCodes(t, spool, c.ID)[0], relay.AnswerAccept); err != nil {
		t.Fatal(err)
	}
	bob := e.browser().mustLogin("bob")
	if loc := location(bob.post("/console/money/refund", bob.refundForm("A1", "seed-A1", "45.00", ""))); !strings.Contains(loc, "Refunded $45.00") {
		t.Fatalf("refund: %s", loc)
	}
	testwait.UntilSaw(t, "Mom accepted on the kiosk", func() (bool, string) {
		cs, err := tm.term.Contacts("A1")
		for _, ct := range cs {
			if ct.ID == c.ID {
				return kiosk.ContactMayWrite(ct), ct.Invite
			}
		}
		return false, fmt.Sprint(cs, err)
	})
	if _, err := tm.term.Send("A1", c.ID, "", "Hi Mom"); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the stamp on the relay", func() (bool, string) {
		bal, err := e.r.Balance("A1")
		return err == nil && bal.BalanceCents == 470, fmt.Sprint(bal, err)
	})
	// $5.00 is left of the deposit, but the balance is $4.70.
	bob.get("/console/money?inmate=A1")
	if !strings.Contains(bob.last, "$5.00 left") {
		t.Fatalf("the deposit's money left is not shown")
	}
	loc := location(bob.post("/console/money/refund", bob.refundForm("A1", "seed-A1", "5.00", "")))
	if !strings.Contains(loc, "refund refused, nothing given back: $5.00 is more than inmate A1's balance of $4.70") {
		t.Errorf("a refund beyond the balance: %s", loc)
	}
	if bal, _ := e.r.Balance("A1"); bal.BalanceCents != 470 {
		t.Errorf("a refused refund moved money: %s", bal.BalanceCents)
	}
}
