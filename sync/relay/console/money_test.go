package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
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
