package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/console"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
)

// screens is every page and the one role that opens it.
var screens = map[string]string{
	"/console/review":      console.RoleMailroom,
	"/console/contacts":    console.RoleMailroom,
	"/console/departments": console.RoleMailroom,
	"/console/notices":     console.RoleMailroom,
	"/console/money":       console.RoleBusiness,
	"/console/terminals":   console.RoleTechnician,
	"/console/library":     console.RoleLibrary,
	"/console/prea":        console.RolePREA,
	"/console/policy":      console.RoleAdmin,
	"/console/accounts":    console.RoleAdmin,
	"/console/audit":       console.RoleAdmin,
}

func TestNoPageWithoutASession(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	for path := range screens {
		resp := b.get(path)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
			t.Errorf("GET %s without a session: %d to %q, want 303 to the login form", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// An action without a session changes nothing.
	resp := b.post("/console/money/deposit", url.Values{"inmate": {"A1"}, "amount": {"10"}, "ref": {"nosession"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
		t.Errorf("POST deposit without a session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if bal, _ := e.r.Balance("A1"); bal.BalanceCents != 5000 {
		t.Errorf("A1's balance is %s after a deposit without a session, want $50.00", bal.BalanceCents)
	}
	if resp := b.get("/console/login"); resp.StatusCode != http.StatusOK || !strings.Contains(b.last, `name="password"`) {
		t.Errorf("the login page answers %d without a password field", resp.StatusCode)
	}
}

func TestEachRoleOpensOnlyItsScreens(t *testing.T) {
	e := newEnv(t, false)
	for user, roles := range staff {
		b := e.browser().mustLogin(user)
		for path, role := range screens {
			resp := b.get(path)
			want := http.StatusForbidden
			if roles[0] == role {
				want = http.StatusOK
			}
			if resp.StatusCode != want {
				t.Errorf("%s (%s) GET %s: %d, want %d", user, roles[0], path, resp.StatusCode, want)
			}
			// The navigation offers only the screens the role opens.
			if want == http.StatusOK && strings.Count(b.last, `data-screen=`) != countRole(roles[0]) {
				t.Errorf("%s sees %d screens in the navigation, want %d", user, strings.Count(b.last, `data-screen=`), countRole(roles[0]))
			}
		}
	}
	// A forbidden action is refused before it runs: the business office cannot revoke.
	b := e.browser().mustLogin("bob")
	tok := b.csrf("/console/money")
	if resp := b.post("/console/terminals/T-1/revoke", url.Values{"csrf": {tok}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("business POST revoke: %d, want 403", resp.StatusCode)
	}
}

func countRole(role string) int {
	n := 0
	for _, r := range screens {
		if r == role {
			n++
		}
	}
	return n
}

func TestFormsWithoutTheCSRFTokenAreRefused(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser().mustLogin("bob")
	form := url.Values{"inmate": {"A1"}, "amount": {"10.00"}, "ref": {"csrf-1"}}
	if resp := b.post("/console/money/deposit", form); resp.StatusCode != http.StatusForbidden || !strings.Contains(b.last, "security token") {
		t.Errorf("deposit without a token: %d %.200s", resp.StatusCode, b.last)
	}
	form.Set("csrf", "0123456789abcdef0123456789abcdef")
	if resp := b.post("/console/money/deposit", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("deposit with a wrong token: %d", resp.StatusCode)
	}
	// Another session's token is no good either.
	other := e.browser().mustLogin("bob")
	form.Set("csrf", other.csrf("/console/money"))
	if resp := b.post("/console/money/deposit", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("deposit with another session's token: %d", resp.StatusCode)
	}
	if bal, _ := e.r.Balance("A1"); bal.BalanceCents != 5000 {
		t.Fatalf("a refused form moved money: balance %s", bal.BalanceCents)
	}
	if resp := b.postForm("/console/money", "/console/money/deposit", url.Values{"inmate": {"A1"}, "amount": {"10.00"}, "ref": {"csrf-1"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deposit with the token: %d %.300s", resp.StatusCode, b.last)
	}
	if bal, _ := e.r.Balance("A1"); bal.BalanceCents != 6000 {
		t.Errorf("balance after the deposit: %s, want $60.00", bal.BalanceCents)
	}
	// The login form has its own token too.
	anon := e.browser()
	if resp := anon.post("/console/login", url.Values{"username": {"bob"}, "password": {password}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form's token: %d", resp.StatusCode)
	}
}

func TestWrongPasswordSignsNobodyIn(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	resp := b.login("mia", "not the password")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b.last, "Wrong username or password") {
		t.Fatalf("wrong password: %d %.300s", resp.StatusCode, b.last)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "tether_console" && ck.Value != "" {
			t.Errorf("a wrong password set a session cookie")
		}
	}
	if resp := b.get("/console/review"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after a wrong password the review queue answers %d", resp.StatusCode)
	}
	// An unknown user reads the same.
	if resp := b.login("nobody", password); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b.last, "Wrong username or password") {
		t.Errorf("unknown user: %d", resp.StatusCode)
	}
	log, err := e.c.Store().AuditLog(10)
	if err != nil || len(log) == 0 || log[0].Action != "login.failed" || log[0].Who != "nobody" {
		t.Errorf("the audit log does not show the failed sign-in: %+v %v", log, err)
	}
}

func TestLoginIsRateLimitedPerAccountAndPerAddress(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	for i := 0; i < 5; i++ {
		if resp := b.login("mia", "wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
		}
	}
	// Locked: even the right password is not checked.
	if resp := b.login("mia", password); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(b.last, "Too many failed sign-ins for this account") {
		t.Fatalf("sixth try with the right password: %d %.300s", resp.StatusCode, b.last)
	}
	// Another account from the same address still signs in (the address allows 20).
	if resp := e.browser().login("bob", password); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("bob is locked out by mia's failures: %d", resp.StatusCode)
	}
	e.clock.Advance(14 * time.Minute)
	if resp := b.login("mia", password); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("still within the window: %d", resp.StatusCode)
	}
	e.clock.Advance(time.Minute + time.Second)
	if resp := b.login("mia", password); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after the window: %d %.300s", resp.StatusCode, b.last)
	}

	// Per address: 20 failures over many usernames lock the address for everyone.
	for i := 0; i < 20; i++ {
		e.browser().login("guess"+string(rune('a'+i)), "wrong")
	}
	tb := e.browser()
	if resp := tb.login("tess", password); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(tb.last, "from this address") {
		t.Errorf("after 20 failures from one address: %d, want 429 naming the address", resp.StatusCode)
	}
	e.clock.Advance(15*time.Minute + time.Second)
	if resp := e.browser().login("tess", password); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the address stays locked after the window: %d", resp.StatusCode)
	}
}

func TestSessionCookieFlags(t *testing.T) {
	for _, tls := range []bool{false, true} {
		e := newEnv(t, tls)
		b := e.browser()
		resp := b.login("mia", password)
		var found bool
		for _, ck := range resp.Cookies() {
			if ck.Name != "tether_console" {
				continue
			}
			found = true
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != tls || ck.Path != "/console/" {
				t.Errorf("tls %v: cookie %+v, want HttpOnly, SameSite=Strict, Secure=%v, Path=/console/", tls, ck, tls)
			}
		}
		if !found {
			t.Errorf("tls %v: no session cookie", tls)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("CSP %q", csp)
		}
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser().mustLogin("mia")
	if resp := b.postForm("/console/review", "/console/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp := b.get("/console/review"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout: %d", resp.StatusCode)
	}
	// A disabled account's session ends at once.
	b = e.browser().mustLogin("mia")
	admin := e.browser().mustLogin("ada")
	if resp := admin.postForm("/console/accounts", "/console/accounts/mia/disable", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d %.200s", resp.StatusCode, admin.last)
	}
	if resp := b.get("/console/review"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a disabled account still opens pages: %d", resp.StatusCode)
	}
	// Idle sessions end.
	b = e.browser().mustLogin("bob")
	e.clock.Advance(31 * time.Minute)
	if resp := b.get("/console/money"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a session idle for 31 minutes still works: %d", resp.StatusCode)
	}
	// The next sign-in clears the dead sessions out of the store.
	e.browser().mustLogin("tess")
	if n := e.c.Store().SessionCount(); n != 1 {
		t.Errorf("%d sessions stored after every other one expired, want 1", n)
	}
}

func TestReviewThroughRealSyncAndTheAuditLog(t *testing.T) {
	e := newEnv(t, false)
	tm := e.kiosk("")
	approveID := e.heldLetter(tm, "Please renew my prescription.")
	rejectID := e.heldLetter(tm, "Second letter.")
	b := e.browser().mustLogin("mia")
	b.get("/console/review")
	if i, j := strings.Index(b.last, approveID), strings.Index(b.last, rejectID); i < 0 || j < 0 || i > j {
		t.Fatalf("the queue does not list both letters oldest first: %d %d", i, j)
	}
	if !strings.Contains(b.last, "Please renew my prescription.") {
		t.Errorf("the queue does not show the full text")
	}
	if resp := b.postForm("/console/review", "/console/review/"+approveID+"/approve", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	resp := b.postForm("/console/review", "/console/review/"+rejectID+"/reject", url.Values{"reason": {"content_policy"}, "note": {"names   another inmate"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reject: %d", resp.StatusCode)
	}
	testwait.UntilSaw(t, "the decisions on the kiosk", func() (bool, string) {
		s1, _ := tm.sentState(approveID)
		s2, r2 := tm.sentState(rejectID)
		return s1 == kiosk.MsgDelivered && s2 == kiosk.MsgRejected && r2 == "content_policy: names another inmate", s1 + " " + s2 + " " + r2
	})
	// A reason outside the list is refused.
	third := e.heldLetter(tm, "Third.")
	b.postForm("/console/review", "/console/review/"+third+"/reject", url.Values{"reason": {"because"}})
	if held, _ := e.r.Outbound(relay.OutboundFilter{Status: kiosk.MsgHeld}); len(held) != 1 {
		t.Errorf("a reason outside the list rejected the letter: %d held", len(held))
	}
	admin := e.browser().mustLogin("ada")
	admin.get("/console/audit")
	for _, want := range []string{"letter.approve", "letter.reject", approveID, "mia"} {
		if !strings.Contains(admin.last, want) {
			t.Errorf("the audit log lacks %q", want)
		}
	}
}

func TestAStaffMemberActsOnlyInTheirFacilities(t *testing.T) {
	e := newEnv(t, false)
	e.addStaff("sue", []string{console.RoleBusiness}, []string{"south"})
	b := e.browser().mustLogin("sue")
	if resp := b.postForm("/console/money", "/console/money/deposit", url.Values{"inmate": {"A1"}, "amount": {"5"}, "ref": {"scope-1"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deposit: %d", resp.StatusCode)
	}
	if bal, _ := e.r.Balance("A1"); bal.BalanceCents != 5000 {
		t.Errorf("a south clerk deposited for a north inmate: %s", bal.BalanceCents)
	}
	if resp := b.get("/console/money?inmate=A1"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a south clerk opens a north ledger: %d", resp.StatusCode)
	}
	// A north admin cannot mint an account for every facility.
	e.addStaff("nadia", []string{console.RoleAdmin}, []string{"north"})
	n := e.browser().mustLogin("nadia")
	n.postForm("/console/accounts", "/console/accounts", url.Values{"username": {"wide"}, "name": {"Wide"}, "password": {password},
		"roles": {"business"}, "facilities": {"*"}})
	if _, ok, _ := e.c.Store().Account("wide"); ok {
		t.Errorf("a north admin made an account for every facility")
	}
}

// Accounts are listed to the admins who may change them: north's admin does not see south's
// staff, or the state's.
func TestAccountsPageListsTheAccountsAnAdminManages(t *testing.T) {
	e := newEnv(t, false)
	e.addStaff("sue", []string{console.RoleBusiness}, []string{"south"})
	e.addStaff("nico", []string{console.RoleMailroom}, []string{"north", "south"})
	e.addStaff("nadia", []string{console.RoleAdmin}, []string{"north"})
	nadia := e.browser().mustLogin("nadia")
	nadia.get("/console/accounts")
	for _, name := range []string{"bob", "nico", "nadia"} {
		if !strings.Contains(nadia.last, `id="account-`+name+`"`) {
			t.Errorf("north's admin does not see the account %s", name)
		}
	}
	for _, name := range []string{"sue", "ada"} {
		if strings.Contains(nadia.last, `id="account-`+name+`"`) || strings.Contains(nadia.last, "Staff "+name) {
			t.Errorf("north's admin sees the account %s", name)
		}
	}
	ada := e.browser().mustLogin("ada")
	ada.get("/console/accounts")
	for _, name := range []string{"bob", "sue", "nico", "nadia", "ada"} {
		if !strings.Contains(ada.last, `id="account-`+name+`"`) {
			t.Errorf("the state's admin does not see the account %s", name)
		}
	}
}

func TestHostileInputIsShownAsText(t *testing.T) {
	e := newEnv(t, false)
	const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	if err := e.r.PutRoster("north", relay.Roster{Inmates: []relay.RosterInmate{
		{ID: "A1", Name: "Ana" + evil, Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive},
	}}); err != nil {
		t.Fatal(err)
	}
	tm := e.kiosk("")
	e.heldLetter(tm, "Body "+evil)
	c, err := tm.term.AddContact("A1", "Mom"+evil, "mom@example.com")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the contact on the relay", func() bool { cs, _ := e.r.Contacts("", "A1"); return len(cs) == 1 })
	b := e.browser().mustLogin("mia")
	b.postForm("/console/contacts", "/console/contacts/"+c.ID+"/decline", url.Values{"reason": {"Note " + evil}})
	b.get("/console/review")
	review := b.last
	b.get("/console/departments")
	departments := b.last
	b.get("/console/contacts")
	pages := map[string]string{"review": review, "contacts": b.last, "departments": departments}
	for name, page := range pages {
		if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") {
			t.Errorf("%s page carries the hostile markup as markup", name)
		}
		if !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
			t.Errorf("%s page does not show the hostile text as text", name)
		}
	}
	if !strings.Contains(review, "Body &lt;script&gt;") || !strings.Contains(review, "Ana&lt;script&gt;") {
		t.Errorf("the review page lacks the escaped body or name")
	}
	if !strings.Contains(pages["contacts"], "Note &lt;script&gt;") || !strings.Contains(pages["contacts"], "Mom&lt;script&gt;") {
		t.Errorf("the contacts page lacks the escaped note or name")
	}
}

// On a gateway of several, the terminals page says which gateway serves it, and where each
// facility's terminals connect, with a link to that gateway's page for the facilities served
// elsewhere.
func TestTerminalsPageSaysWhereEachFacilityConnects(t *testing.T) {
	db, err := boltkv.Open(filepath.Join(t.TempDir(), "shared.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	gws := []string{"https://gw1.doc.example:8443", "wss://gw3.doc.example:8443"} // north at gw3, south at gw1 once gw3 is heard
	// A fake clock that never moves: what the relay heard does not lapse while the test runs.
	e := newEnvWith(t, false, func(c *relay.Config) {
		c.Store, c.Gateways, c.GatewayURL, c.Clock = db, gws, gws[0], clock.NewFake(time.Now())
	})
	// The other gateway announces itself as a gateway does (homes.go).
	if err := db.Notify("gateways", []byte(gws[1])); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the other gateway heard", func() (bool, string) {
		n, s := e.r.HomeOf("north"), e.r.HomeOf("south")
		return n != s, fmt.Sprintf("north at %s, south at %s", n, s)
	})
	e.addStaff("tom", []string{console.RoleTechnician}, []string{console.AllFacilities})
	b := e.browser().mustLogin("tom")
	if resp := b.get("/console/terminals"); resp.StatusCode != http.StatusOK {
		t.Fatalf("terminals page: %d", resp.StatusCode)
	}
	page := b.last
	if !strings.Contains(page, "served by gateway <code>"+gws[0]+"</code>") {
		t.Fatalf("the page does not say which gateway serves it:\n%s", page)
	}
	for _, f := range []string{"north", "south"} {
		i := strings.Index(page, `id="home-`+f+`"`)
		if i < 0 {
			t.Fatalf("no line for %s:\n%s", f, page)
		}
		line := page[i:]
		line = line[:strings.Index(line, "</li>")]
		want := f + ": this gateway"
		if e.r.HomeOf(f) == gws[1] {
			want = `<a href="https://gw3.doc.example:8443/console/terminals?facility=` + f + `">` + gws[1] + "</a>"
		}
		if !strings.Contains(line, want) {
			t.Fatalf("%s's line %q, want %q", f, line, want)
		}
	}
	if strings.Contains(page, `id="lists-differ"`) {
		t.Fatalf("a warning of gateway lists that differ, from an announcement without a list:\n%s", page)
	}
	// A gateway started with another -gateways list announces it; staff are told.
	if err := db.Notify("gateways", []byte("wss://gw9.doc.example:8443 09 0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the stranger heard", func() bool { return len(e.r.GatewaysDisagreeing()) == 1 })
	b.get("/console/terminals")
	if !strings.Contains(b.last, `id="lists-differ">Gateway <code>wss://gw9.doc.example:8443</code> was started with another list of gateways`) {
		t.Fatalf("no warning of a gateway with another list:\n%s", b.last)
	}
}
