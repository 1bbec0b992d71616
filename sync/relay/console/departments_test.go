package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
)

// section is the part of the last page inside <section id="id">.
func (b *browser) section(id string) string {
	i := strings.Index(b.last, `<section id="`+id+`">`)
	if i < 0 {
		return ""
	}
	j := strings.Index(b.last[i:], "</section>")
	return b.last[i : i+j]
}

// The departments screen opens on the requests still waiting for an answer (held for review
// or delivered and unanswered), apart from those answered.
func TestDepartmentsListsPendingRequestsFirst(t *testing.T) {
	e := newEnv(t, false)
	tm := e.kiosk("")
	answered := e.heldLetter(tm, "Can I see the dentist?")
	waiting := e.heldLetter(tm, "When is my next appointment?")
	held := e.heldLetter(tm, "My glasses broke.")
	b := e.browser().mustLogin("mia")
	for _, id := range []string{answered, waiting} {
		b.postForm("/console/review", "/console/review/"+id+"/approve", nil)
	}
	if resp := b.postForm("/console/departments", "/console/departments/"+answered+"/reply", url.Values{"body": {"Friday."}}); strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("reply: %s", resp.Header.Get("Location"))
	}
	b.get("/console/departments")
	pending, done := b.section("pending"), b.section("answered")
	if !strings.Contains(pending, "Waiting for an answer (2)") || !strings.Contains(pending, "request-"+waiting) || !strings.Contains(pending, "request-"+held) ||
		strings.Contains(pending, "request-"+answered) {
		t.Errorf("the pending list: %s", pending)
	}
	if i, j := strings.Index(pending, "request-"+waiting), strings.Index(pending, "request-"+held); i > j {
		t.Errorf("the pending list is not oldest first")
	}
	if !strings.Contains(pending, "Waiting for review") || !strings.Contains(pending, `action="/console/departments/`+waiting+`/reply"`) {
		t.Errorf("the pending list lacks the reply box or the review note")
	}
	if !strings.Contains(done, "request-"+answered) || !strings.Contains(done, "Friday.") || strings.Contains(done, "request-"+waiting) {
		t.Errorf("the answered list: %s", done)
	}
	if strings.Index(b.last, `id="pending"`) > strings.Index(b.last, `id="answered"`) {
		t.Errorf("the pending list is not at the top")
	}
	// The reply box carries the session's token.
	if !strings.Contains(pending, `name="csrf" value="`+csrfRE.FindStringSubmatch(b.last)[1]+`"`) {
		t.Errorf("the reply form lacks the CSRF token")
	}
}

// An admin sets requests' own review on the policy screen, beside the email hold; the next
// request from the kiosk follows it.
func TestRequestReviewSetOnThePolicyScreen(t *testing.T) {
	e := newEnv(t, false)
	tm := e.kiosk("")
	ada := e.browser().mustLogin("ada")
	ada.get("/console/policy?facility=north")
	if !strings.Contains(ada.last, `<option value="hold" selected>`) || !strings.Contains(ada.last, `name="hold_outbound" checked`) {
		t.Fatalf("the policy screen does not show the facility's review settings: %.3000s", ada.last)
	}
	p, _ := e.r.Policy("north")
	form := url.Values{"facility": {"north"}, "facility_name": {p.FacilityName}, "rate": {p.RatePerMinute.String()}, "max_session": {p.MaxSession.D().String()},
		"idle_timeout": {p.IdleTimeout.D().String()}, "cooldown": {p.Cooldown.D().String()}, "idle_cooldown": {p.IdleCooldown.D().String()},
		"max_contacts": {fmt.Sprint(p.MaxContacts)}, "max_message_chars": {fmt.Sprint(p.MaxMessageChars)}, "max_deposit": {p.MaxDeposit.String()},
		"offline_spend_cap": {p.OfflineSpendCap.String()}, "hold_outbound": {"on"}, "request_review": {"maybe"}}
	resp := ada.postForm("/console/policy?facility=north", "/console/policy", form)
	if loc := location(resp); !strings.Contains(loc, `request_review: "maybe" is not none or hold`) {
		t.Errorf("a bad request review: %s", loc)
	}
	if m, _ := e.r.MonitoringOf("north"); m.RequestReview != relay.RequestReviewHold {
		t.Errorf("a refused form changed the request review: %+v", m)
	}
	// Only an admin, only with the token.
	mia := e.browser().mustLogin("mia")
	form.Set("request_review", relay.RequestReviewNone)
	form.Set("csrf", mia.csrf("/console/review"))
	if resp := mia.post("/console/policy", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the mailroom sets the policy: %d", resp.StatusCode)
	}
	form.Del("csrf")
	if resp := ada.post("/console/policy", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a policy form without the token: %d", resp.StatusCode)
	}
	if m, _ := e.r.MonitoringOf("north"); m.RequestReview != relay.RequestReviewHold {
		t.Fatalf("a refused form changed the request review: %+v", m)
	}
	if resp := ada.postForm("/console/policy?facility=north", "/console/policy", form); strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("save: %s", resp.Header.Get("Location"))
	}
	if m, _ := e.r.MonitoringOf("north"); m.RequestReview != relay.RequestReviewNone {
		t.Errorf("request review after the form: %+v", m)
	}
	ada.get("/console/policy?facility=north")
	if !strings.Contains(ada.last, `<option value="none" selected>`) {
		t.Errorf("the policy screen does not show the new setting")
	}
	// The next request goes straight to the department.
	tm.login()
	m, err := tm.term.Send("A1", "dept-medical", "", "No review now?")
	if err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the request delivered without review", func() (bool, string) {
		all, err := e.r.Outbound(relay.OutboundFilter{})
		for _, o := range all {
			if o.ID == m.ID {
				return o.Status == kiosk.MsgDelivered, o.Status
			}
		}
		return false, fmt.Sprint(len(all), err)
	})
}
