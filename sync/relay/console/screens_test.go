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

func TestNoticeInTwoLanguagesReachesTheKiosk(t *testing.T) {
	e := newEnv(t, false)
	tm := e.kiosk("")
	b := e.browser().mustLogin("mia")
	resp := b.postForm("/console/notices", "/console/notices", url.Values{"facility": {"north"}, "inmate": {"A1"},
		"text_en": {"Commissary closes early today."}, "text_es": {"El economato cierra temprano hoy."}, "expires": {"8h"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "ok=") {
		t.Fatalf("post notice: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	testwait.UntilSaw(t, "both notices for A1 on the kiosk", func() (bool, string) {
		ns, err := tm.term.Notices("A1")
		langs := map[string]bool{}
		for _, n := range ns {
			if n.InmateID == "A1" && !n.Until.IsZero() && time.Until(n.Until) < 9*time.Hour {
				langs[n.Language] = true
			}
		}
		return langs["en"] && langs["es"], fmt.Sprint(ns, err)
	})
	if ns, _ := tm.term.Notices(""); len(ns) != 0 {
		t.Errorf("a notice for one person shows on the welcome screen: %v", ns)
	}
	// A facility outside the account's is refused.
	resp = b.postForm("/console/notices", "/console/notices", url.Values{"facility": {"south"}, "text_en": {"x"}})
	if !strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Errorf("a north clerk posted to south: %s", resp.Header.Get("Location"))
	}
}

func TestDepartmentAnswerThreadsOnTheKiosk(t *testing.T) {
	e := newEnv(t, false)
	tm := e.kiosk("")
	id := e.heldLetter(tm, "When is my next appointment?")
	b := e.browser().mustLogin("mia")
	b.get("/console/departments")
	if !strings.Contains(b.last, "Waiting for review") {
		t.Errorf("a held request offers a reply box")
	}
	b.postForm("/console/review", "/console/review/"+id+"/approve", nil)
	resp := b.postForm("/console/departments", "/console/departments/"+id+"/reply", url.Values{"body": {"Tuesday at 9."}})
	if resp.StatusCode != http.StatusSeeOther || strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("reply: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	testwait.UntilSaw(t, "the answer threaded under the request on the kiosk", func() (bool, string) {
		in, err := tm.term.Inbox("A1")
		for _, m := range in {
			if m.ReplyTo == id && m.Body == "Tuesday at 9." && m.Peer == "dept-medical" {
				return true, ""
			}
		}
		return false, fmt.Sprint(in, err)
	})
	b.get("/console/departments")
	if !strings.Contains(b.last, "Answered") || !strings.Contains(b.last, "Tuesday at 9.") {
		t.Errorf("the departments page does not show the answer")
	}
}

func TestPolicyFormChangesThePolicy(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser().mustLogin("ada")
	b.get("/console/policy?facility=north")
	form := url.Values{"facility": {"north"}, "facility_name": {"North Yard"}, "rate": {"0.07"}, "max_session": {"45m"},
		"idle_timeout": {"3m"}, "cooldown": {"10m"}, "idle_cooldown": {"2m"}, "max_contacts": {"20"}, "max_message_chars": {"4000"},
		"max_deposit": {"500.00"}, "offline_spend_cap": {"20.00"}, "lockdown": {"on"}, "hold_outbound": {"on"},
		"curfew": {"Mon 22:00-06:00\r\nFri 23:00-07:00"}}
	if resp := b.postForm("/console/policy?facility=north", "/console/policy", form); strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("save policy: %s", resp.Header.Get("Location"))
	}
	p, err := e.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	if p.FacilityName != "North Yard" || p.RatePerMinute != 7 || p.MaxSession.D() != 45*time.Minute || !p.Lockdown || p.MaxDeposit != 50000 ||
		len(p.Curfew) != 2 || p.Curfew[1] != (kiosk.CurfewWindow{Weekday: time.Friday, Start: "23:00", End: "07:00"}) {
		t.Errorf("policy after the form: %+v", p)
	}
	// Stamps: the facility prices letters per message at 30¢; a bad price is named.
	b.get("/console/policy?facility=north")
	if !strings.Contains(b.last, `name="stamp_price"`) || !strings.Contains(b.last, `value="per_message"`) {
		t.Fatalf("the policy form offers no stamp pricing")
	}
	form.Set("pricing", "per_message")
	form.Set("stamp_price", "0.30")
	if resp := b.postForm("/console/policy?facility=north", "/console/policy", form); strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("save stamp pricing: %s", resp.Header.Get("Location"))
	}
	if p, _ := e.r.Policy("north"); p.Pricing != kiosk.PricingPerMessage || p.StampPrice != 30 {
		t.Errorf("pricing after the form: %q at %s", p.Pricing, p.StampPrice)
	}
	form.Set("stamp_price", "5.00")
	resp := b.postForm("/console/policy?facility=north", "/console/policy", form)
	if loc, _ := url.QueryUnescape(resp.Header.Get("Location")); !strings.Contains(loc, "stamp_price_cents") {
		t.Errorf("a stamp price above the limit is not named: %s", loc)
	}
	form.Set("stamp_price", "0.30")
	// Printing: 10¢ a page, at most 8 pages a job; a page limit past the most is named.
	b.get("/console/policy?facility=north")
	if !strings.Contains(b.last, `name="print_page_price"`) || !strings.Contains(b.last, `name="max_print_pages"`) {
		t.Fatalf("the policy form offers no print pricing")
	}
	form.Set("print_page_price", "0.10")
	form.Set("max_print_pages", "8")
	if resp := b.postForm("/console/policy?facility=north", "/console/policy", form); strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("save print pricing: %s", resp.Header.Get("Location"))
	}
	if p, _ := e.r.Policy("north"); p.PrintPagePrice != 10 || p.MaxPrintPages != 8 {
		t.Errorf("printing after the form: %s a page, %d pages", p.PrintPagePrice, p.MaxPrintPages)
	}
	form.Set("max_print_pages", "1000")
	resp = b.postForm("/console/policy?facility=north", "/console/policy", form)
	if loc, _ := url.QueryUnescape(resp.Header.Get("Location")); !strings.Contains(loc, "max_print_pages") {
		t.Errorf("a page limit above the most is not named: %s", loc)
	}
	form.Set("max_print_pages", "8")
	// A bad field is named and nothing changes.
	form.Set("rate", "seven")
	form.Set("facility_name", "Changed")
	resp = b.postForm("/console/policy?facility=north", "/console/policy", form)
	if loc, _ := url.QueryUnescape(resp.Header.Get("Location")); !strings.Contains(loc, "rate") {
		t.Errorf("a bad rate is not named: %s", loc)
	}
	if p, _ := e.r.Policy("north"); p.FacilityName != "North Yard" {
		t.Errorf("a refused form changed the policy: %q", p.FacilityName)
	}
}

func TestRevokeFromTheFleet(t *testing.T) {
	e := newEnv(t, false)
	tm := e.kiosk("")
	b := e.browser().mustLogin("tess")
	b.get("/console/terminals")
	if !strings.Contains(b.last, tm.en.TerminalID) {
		t.Fatalf("the fleet does not list the kiosk")
	}
	b.postForm("/console/terminals", "/console/terminals/"+tm.en.TerminalID+"/revoke", nil)
	ts, _ := e.r.Terminals()
	if len(ts) != 1 || !ts[0].Revoked {
		t.Errorf("terminals after revoke: %+v", ts)
	}
	ada := e.browser().mustLogin("ada")
	ada.get("/console/audit")
	if !strings.Contains(ada.last, "terminal.revoke") || !strings.Contains(ada.last, "tess") {
		t.Errorf("the revoke is not in the audit log")
	}
}

func TestPREAReportsOnlyForThePREARole(t *testing.T) {
	e := newEnv(t, false)
	tm := e.kiosk("")
	m, err := tm.term.SendPREA("A1", "Report text for the coordinator.")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the report on the relay", func() bool { r, _ := e.r.PREAReports(""); return len(r) == 1 })
	pam := e.browser().mustLogin("pam")
	pam.get("/console/prea")
	if !strings.Contains(pam.last, "Report text for the coordinator.") {
		t.Errorf("the PREA role does not see the report %s", m.ID)
	}
	mia := e.browser().mustLogin("mia")
	for _, p := range []string{"/console/prea", "/console/review", "/console/departments"} {
		mia.get(p)
		if strings.Contains(mia.last, "Report text for the coordinator.") {
			t.Errorf("the mailroom sees the PREA report on %s", p)
		}
	}
	if held, _ := e.r.Outbound(relay.OutboundFilter{Status: kiosk.MsgHeld}); len(held) != 0 {
		t.Errorf("the report is held with the mail")
	}
}

func TestOnlyAnAdminOfEveryFacilityAddsOne(t *testing.T) {
	e := newEnv(t, false)
	e.addStaff("nadia", []string{"admin"}, []string{"north"})
	n := e.browser().mustLogin("nadia")
	if resp := n.postForm("/console/policy", "/console/facilities", url.Values{"id": {"east"}, "name": {"East"}}); !strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Errorf("a north admin added a facility: %s", resp.Header.Get("Location"))
	}
	ada := e.browser().mustLogin("ada")
	if resp := ada.postForm("/console/policy", "/console/facilities", url.Values{"id": {"east"}, "name": {"East"}}); strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("add facility: %s", resp.Header.Get("Location"))
	}
	if p, err := e.r.Policy("east"); err != nil || p.FacilityName != "East" {
		t.Errorf("east: %+v %v", p.FacilityName, err)
	}
	if resp := ada.postForm("/console/policy", "/console/facilities", url.Values{"id": {"east"}, "name": {"Again"}}); !strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Errorf("a facility was added twice")
	}
	if p, _ := e.r.Policy("east"); p.FacilityName != "East" {
		t.Errorf("adding east again changed its policy: %q", p.FacilityName)
	}
}

// The fleet page lists the terminals of the facilities its user serves, one facility when
// chosen; a technician of north neither sees nor revokes south's.
func TestFleetByFacility(t *testing.T) {
	e := newEnv(t, false)
	north := e.kiosk("")
	south := e.southKiosk()
	nid, sid := north.en.TerminalID, south.en.TerminalID
	e.addStaff("tim", []string{console.RoleTechnician}, []string{console.AllFacilities})
	tim := e.browser().mustLogin("tim")
	tim.get("/console/terminals")
	if !strings.Contains(tim.last, `id="terminal-`+nid) || !strings.Contains(tim.last, `id="terminal-`+sid) {
		t.Errorf("every facility's fleet does not list both kiosks")
	}
	tim.get("/console/terminals?facility=south")
	if strings.Contains(tim.last, `id="terminal-`+nid) || !strings.Contains(tim.last, `id="terminal-`+sid) {
		t.Errorf("south's fleet: want south's kiosk only")
	}
	tess := e.browser().mustLogin("tess") // north's technician
	tess.get("/console/terminals")
	if !strings.Contains(tess.last, `id="terminal-`+nid) || strings.Contains(tess.last, sid) {
		t.Errorf("north's technician: want north's kiosk only")
	}
	if resp := tess.get("/console/terminals?facility=south"); resp.StatusCode != http.StatusForbidden || strings.Contains(tess.last, sid) {
		t.Errorf("north's technician asks for south's fleet: %d, want 403 and no kiosk of south", resp.StatusCode)
	}
	resp := tess.postForm("/console/terminals", "/console/terminals/"+sid+"/revoke", nil)
	if loc, _ := url.QueryUnescape(resp.Header.Get("Location")); !strings.Contains(loc, "err=") {
		t.Errorf("north's technician revokes south's kiosk: redirected to %s, want an error", loc)
	}
	if info, found, err := e.r.Terminal(sid); err != nil || !found || info.Revoked {
		t.Errorf("south's kiosk after north's technician tried: %+v found %v (%v), want it live", info, found, err)
	}
	tess.postForm("/console/terminals", "/console/terminals/no-such/revoke", nil)
	tess.get("/console/terminals")
	if !strings.Contains(tess.last, `id="terminal-`+nid) {
		t.Errorf("the fleet after revoking an unknown terminal does not list north's kiosk")
	}
}

// The PREA page shows the reports of the facilities its user serves, one facility when
// chosen: north's coordinator never sees south's report, and asking for south is refused.
func TestPREAReportsByFacility(t *testing.T) {
	e := newEnv(t, false)
	north, south := e.kiosk(""), e.southKiosk()
	const northText, southText = "A report filed in the north.", "A report filed in the south."
	if _, err := north.term.SendPREA("A1", northText); err != nil {
		t.Fatal(err)
	}
	if _, err := south.term.SendPREA("S1", southText); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "both reports on the relay", func() bool { r, _ := e.r.PREAReports(""); return len(r) == 2 })
	e.addStaff("pia", []string{console.RolePREA}, []string{console.AllFacilities})
	pia := e.browser().mustLogin("pia")
	pia.get("/console/prea")
	if !strings.Contains(pia.last, northText) || !strings.Contains(pia.last, southText) {
		t.Errorf("the state's coordinator does not see both reports")
	}
	pia.get("/console/prea?facility=south")
	if strings.Contains(pia.last, northText) || !strings.Contains(pia.last, southText) {
		t.Errorf("south's reports: want south's report only")
	}
	pam := e.browser().mustLogin("pam") // north's coordinator
	pam.get("/console/prea")
	if !strings.Contains(pam.last, northText) || strings.Contains(pam.last, southText) {
		t.Errorf("north's coordinator: want north's report only")
	}
	if resp := pam.get("/console/prea?facility=south"); resp.StatusCode != http.StatusForbidden || strings.Contains(pam.last, southText) {
		t.Errorf("north's coordinator asks for south's reports: %d, want 403 and no report of south", resp.StatusCode)
	}
}
