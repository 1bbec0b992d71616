package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/console"
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

// policyForm is the policy form of facility as the policy screen fills it, with changes.
func (b *browser) policyForm(e *env, facility string, changes url.Values) url.Values {
	b.t.Helper()
	p, err := e.r.Policy(facility)
	if err != nil {
		b.t.Fatal(err)
	}
	form := url.Values{"facility": {facility}, "facility_name": {p.FacilityName}, "rate": {p.RatePerMinute.String()}, "max_session": {p.MaxSession.D().String()},
		"idle_timeout": {p.IdleTimeout.D().String()}, "cooldown": {p.Cooldown.D().String()}, "idle_cooldown": {p.IdleCooldown.D().String()},
		"max_contacts": {fmt.Sprint(p.MaxContacts)}, "max_message_chars": {fmt.Sprint(p.MaxMessageChars)}, "max_deposit": {p.MaxDeposit.String()},
		"offline_spend_cap": {p.OfflineSpendCap.String()}}
	for k, v := range changes {
		form[k] = v
	}
	return form
}

// Each facility has its own review target (an hour until set), edited on the policy screen
// beside the email hold, which the screen shows as the relay holds it; the review queue marks
// a letter over its facility's target.
func TestReviewTargetPerFacility(t *testing.T) {
	e := newEnvWith(t, false, func(c *relay.Config) { c.HoldPolicy = relay.HoldByFacility })
	if err := e.r.SetMonitoring("north", relay.Monitoring{HoldOutbound: false}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.SetMonitoring("south", relay.Monitoring{HoldOutbound: true, ReviewTarget: kiosk.Duration(8 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tm := e.kiosk("")
	id := e.heldLetter(tm, "Is the clinic open on Sunday?")
	e.addStaff("max", []string{console.RoleMailroom}, []string{console.AllFacilities})
	mx := e.browser().mustLogin("max")
	mx.get("/console/review")
	if !strings.Contains(mx.last, `data-facility="north">north 1h 0m`) || !strings.Contains(mx.last, `data-facility="south">south 8h 0m`) {
		t.Errorf("the queue does not show each facility's target: %.1500s", mx.last)
	}
	e.clock.Advance(90 * time.Minute)
	mx = e.browser().mustLogin("max") // the session ended after 30 minutes idle
	mx.get("/console/review")
	letter := mx.last[strings.Index(mx.last, `id="letter-`+id+`"`):]
	letter = letter[:strings.Index(letter, "</article>")]
	if !strings.Contains(letter, "of 1h 0m") || !strings.Contains(letter, "over target") {
		t.Errorf("a letter held 1h30m against north's hour is not over target: %s", letter)
	}

	ada := e.browser().mustLogin("ada")
	ada.get("/console/policy?facility=north")
	if strings.Contains(ada.last, `name="hold_outbound" checked`) || !strings.Contains(ada.last, `name="review_target" value="1h0m0s"`) {
		t.Errorf("the policy screen does not show north's review settings as held")
	}
	resp := ada.postForm("/console/policy?facility=north", "/console/policy", ada.policyForm(e, "north", url.Values{"review_target": {"soon"}, "request_review": {"hold"}}))
	if loc := location(resp); !strings.Contains(loc, "review_target: a duration") {
		t.Errorf("a bad review target: %s", loc)
	}
	resp = ada.postForm("/console/policy?facility=north", "/console/policy", ada.policyForm(e, "north", url.Values{"review_target": {"10s"}, "request_review": {"hold"}}))
	if loc := location(resp); !strings.Contains(loc, "review_target: between 1m and 744h") {
		t.Errorf("a review target of 10s: %s", loc)
	}
	if m, _ := e.r.MonitoringOf("north"); m.ReviewTarget.D() != time.Hour || m.HoldOutbound {
		t.Fatalf("refused forms changed north's settings: %+v", m)
	}
	resp = ada.postForm("/console/policy?facility=north", "/console/policy", ada.policyForm(e, "north", url.Values{"review_target": {"4h"}, "request_review": {"hold"}}))
	if loc := location(resp); strings.Contains(loc, "err=") {
		t.Fatalf("save the review target: %s", loc)
	}
	if m, _ := e.r.MonitoringOf("north"); m.ReviewTarget.D() != 4*time.Hour || m.HoldOutbound || m.RequestReview != relay.RequestReviewHold {
		t.Errorf("north's settings after the form: %+v", m)
	}
	mx.get("/console/review")
	letter = mx.last[strings.Index(mx.last, `id="letter-`+id+`"`):]
	letter = letter[:strings.Index(letter, "</article>")]
	if !strings.Contains(letter, "of 4h 0m") || strings.Contains(letter, "over target") {
		t.Errorf("the letter against north's new target of 4h: %s", letter)
	}
}
