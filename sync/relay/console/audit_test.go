package console_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/sync/relay/console"
)

var (
	auditRowRE   = regexp.MustCompile(`(?s)<tr id="audit-\d+">(.*?)</tr>`)
	auditCellRE  = regexp.MustCompile(`(?s)<td>(.*?)</td>`)
	auditOlderRE = regexp.MustCompile(`<a href="([^"]+)" id="audit-older">`)
)

// auditRows is what the audit log page shows, one entry a line: who, what, on, facility and
// detail joined by "|" (the time left out).
func auditRows(page string) []string {
	var out []string
	for _, row := range auditRowRE.FindAllStringSubmatch(page, -1) {
		var cells []string
		for _, c := range auditCellRE.FindAllStringSubmatch(row[1], -1)[1:] {
			cells = append(cells, html.UnescapeString(c[1]))
		}
		out = append(out, strings.Join(cells, "|"))
	}
	return out
}

// rowsWith counts the rows that contain s.
func rowsWith(rows []string, s string) int {
	n := 0
	for _, r := range rows {
		if strings.Contains(r, s) {
			n++
		}
	}
	return n
}

// older is the page's link to the older entries ("" if none).
func older(page string) string {
	m := auditOlderRE.FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// A prison's admin reads the audit trail of their facility: its entries, and the sign-ins and
// account changes of the accounts they manage; never another prison's.
func TestAuditLogShowsAnAdminTheirFacilities(t *testing.T) {
	e := newEnv(t, false)
	e.addStaff("sue", []string{console.RoleBusiness}, []string{"south"})
	e.addStaff("nico", []string{console.RoleMailroom}, []string{"north", "south"})
	e.addStaff("nadia", []string{console.RoleAdmin}, []string{"north"})
	bob := e.browser().mustLogin("bob")
	if resp := bob.postForm("/console/money", "/console/money/deposit", url.Values{"inmate": {"A1"}, "amount": {"10.00"}, "ref": {"dep-north"}}); strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("north's deposit: %s", resp.Header.Get("Location"))
	}
	sue := e.browser().mustLogin("sue")
	if resp := sue.postForm("/console/money", "/console/money/deposit", url.Values{"inmate": {"S1"}, "amount": {"7.00"}, "ref": {"dep-south"}}); strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Fatalf("south's deposit: %s", resp.Header.Get("Location"))
	}
	e.browser().mustLogin("nico")
	e.browser().mustLogin("pam").get("/console/prea") // north's coordinator, every facility she serves
	for _, name := range []string{"mia", "sue", "nobody"} {
		e.browser().login(name, "not the password")
	}
	ada := e.browser().mustLogin("ada") // every facility
	ada.postForm("/console/accounts", "/console/accounts/tess/disable", nil)
	ada.postForm("/console/accounts", "/console/accounts/sue/disable", nil)

	nadia := e.browser().mustLogin("nadia")
	if resp := nadia.get("/console/audit"); resp.StatusCode != http.StatusOK {
		t.Fatalf("north's admin opens the audit log: %d", resp.StatusCode)
	}
	rows := auditRows(nadia.last)
	for _, want := range []string{
		"bob|deposit|dep-north|north|inmate A1", // north's action
		"bob|login||",                           // north's staff sign in
		"nico|login||",                          // so does staff of north and south
		"pam|prea.view||north|",                 // the one facility pam's page showed
		"mia|login.failed||",                    // an attempt on a north account
		"ada|account.disable|tess|",             // a change to a north account, by whomever
		"test|account.add|bob|",                 // north's accounts made
		"nadia|login||",
	} {
		if rowsWith(rows, want) == 0 {
			t.Errorf("north's admin does not see %q in\n%s", want, strings.Join(rows, "\n"))
		}
	}
	for _, leak := range []string{"dep-south", "inmate S1", "|south|", "sue", "nobody", "ada|login|"} {
		if rowsWith(rows, leak) != 0 {
			t.Errorf("north's admin sees %q of another facility or of state staff in\n%s", leak, strings.Join(rows, "\n"))
		}
	}
	if strings.Contains(nadia.last, "dep-south") || strings.Contains(nadia.last, "inmate S1") {
		t.Errorf("south's deposit is on north's admin's page")
	}

	nadia.get("/console/audit?facility=north")
	rows = auditRows(nadia.last)
	if rowsWith(rows, "bob|deposit|dep-north|north|") != 1 || rowsWith(rows, "nico|login||") != 1 || rowsWith(rows, "dep-south") != 0 {
		t.Errorf("north's entries, chosen: want north's deposit and sign-ins, nothing of south:\n%s", strings.Join(rows, "\n"))
	}
	if resp := nadia.get("/console/audit?facility=south"); resp.StatusCode != http.StatusForbidden ||
		strings.Contains(nadia.last, "dep-south") || strings.Contains(nadia.last, "inmate S1") || len(auditRows(nadia.last)) != 0 {
		t.Errorf("north's admin asks for south's entries: %d, want 403 and none of them", resp.StatusCode)
	}

	// An admin of every facility reads every entry, or one facility's own.
	ada.get("/console/audit")
	rows = auditRows(ada.last)
	for _, want := range []string{"bob|deposit|dep-north|north|", "sue|deposit|dep-south|south|inmate S1", "nobody|login.failed||", "ada|login||", "ada|account.disable|sue|"} {
		if rowsWith(rows, want) == 0 {
			t.Errorf("the state's admin does not see %q", want)
		}
	}
	ada.get("/console/audit?facility=south")
	rows = auditRows(ada.last)
	for _, want := range []string{"sue|deposit|dep-south|south|", "sue|login||", "sue|login.failed||", "test|account.add|sue|", "nico|login||", "ada|account.disable|sue|"} {
		if rowsWith(rows, want) == 0 {
			t.Errorf("south's entries, chosen by the state's admin, lack %q", want)
		}
	}
	for _, other := range []string{"dep-north", "bob|", "ada|login|", "nobody|", "|tess|"} {
		if rowsWith(rows, other) != 0 {
			t.Errorf("south's entries, chosen by the state's admin, show %q", other)
		}
	}
}

// auditBurst appends n entries of facility fac, targets prefix-000 up, as a busy facility's
// staff would.
func auditBurst(t *testing.T, e *env, fac, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := e.c.Store().Audit(console.AuditEntry{At: e.clock.Now().UTC(), Who: "clerk", Action: "deposit",
			Target: fmt.Sprintf("%s-%03d", prefix, i), Facility: fac, Detail: "inmate X"}); err != nil {
			t.Fatal(err)
		}
	}
}

// The page's 300 are the newest of the reader's entries: a busy facility's newer entries do
// not push a quieter one's off its admin's page, and the older ones are a link away.
func TestAuditLogLimitIsAfterTheFilter(t *testing.T) {
	e := newEnv(t, false)
	e.addStaff("nadia", []string{console.RoleAdmin}, []string{"north"})
	nadia := e.browser().mustLogin("nadia") // her sign-in older than every burst
	auditBurst(t, e, "north", "north", 350)
	auditBurst(t, e, "south", "south", 400)
	nadia.get("/console/audit")
	rows := auditRows(nadia.last)
	if len(rows) != 300 || rowsWith(rows, "|north-") != 300 || !strings.HasPrefix(rows[0], "clerk|deposit|north-349|") ||
		!strings.HasPrefix(rows[299], "clerk|deposit|north-050|") {
		t.Fatalf("north's admin, first page: %d rows, %d of north; want north-349 to north-050", len(rows), rowsWith(rows, "|north-"))
	}
	next := older(nadia.last)
	if next == "" {
		t.Fatalf("no link to north's older entries")
	}
	nadia.get(next)
	rows = auditRows(nadia.last)
	if rowsWith(rows, "|north-") != 50 || !strings.HasPrefix(rows[0], "clerk|deposit|north-049|") || rowsWith(rows, "|south-") != 0 {
		t.Errorf("north's admin, older page: %d of north, first %q; want north-049 to north-000 and none of south", rowsWith(rows, "|north-"), rows[0])
	}
	if rowsWith(rows, "test|account.add|nadia|") != 1 || older(nadia.last) != "" {
		t.Errorf("the oldest page lacks the account's creation or links further back")
	}
	ada := e.browser().mustLogin("ada")
	ada.get("/console/audit")
	if rows := auditRows(ada.last); len(rows) != 300 || !strings.HasPrefix(rows[0], "ada|login|") || rowsWith(rows, "|south-") != 299 {
		t.Errorf("the state's admin: %d rows, %d of south; want her sign-in and 299 of south", len(rows), rowsWith(rows, "|south-"))
	}
	ada.get("/console/audit?facility=north")
	if rows := auditRows(ada.last); rowsWith(rows, "|north-") != 300 {
		t.Errorf("north's entries, chosen by the state's admin: %d, want 300", rowsWith(rows, "|north-"))
	}
}

// One page reads back at most Config.AuditScan entries: past it, it says so and links on.
func TestAuditLogReadsBackABoundedWay(t *testing.T) {
	e := newEnvTuned(t, false, nil, func(c *console.Config) { c.AuditScan = 500 })
	e.addStaff("nadia", []string{console.RoleAdmin}, []string{"north"})
	nadia := e.browser().mustLogin("nadia")
	auditBurst(t, e, "north", "north", 100)
	auditBurst(t, e, "south", "south", 600)
	nadia.get("/console/audit")
	rows := auditRows(nadia.last)
	if rowsWith(rows, "|north-") != 0 || !strings.Contains(nadia.last, `id="audit-stopped"`) || !strings.Contains(nadia.last, "Searched 500 entries") {
		t.Errorf("first page: %d of north, want none and the search stopped at 500:\n%s", rowsWith(rows, "|north-"), strings.Join(rows, "\n"))
	}
	next := older(nadia.last)
	if next == "" {
		t.Fatalf("no link past the entries searched")
	}
	nadia.get(next)
	rows = auditRows(nadia.last)
	if rowsWith(rows, "|north-") != 100 || rowsWith(rows, "|south-") != 0 || strings.Contains(nadia.last, `id="audit-stopped"`) || older(nadia.last) != "" {
		t.Errorf("second page: %d of north, %d of south; want all 100 of north, none of south, the log read to its start", rowsWith(rows, "|north-"), rowsWith(rows, "|south-"))
	}
	if resp := nadia.get("/console/audit?before=x"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad entry number: %d, want 400", resp.StatusCode)
	}
}
