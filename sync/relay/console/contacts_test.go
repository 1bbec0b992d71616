package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/console"
)

var inviteCodeRE = regexp.MustCompile(`[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}`)

// spoolCodes reads the invitation codes written to the spool, newest file last.
func spoolCodes(t *testing.T, dir, contactID string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, contactID+"-*.eml"))
	var codes []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := inviteCodeRE.Find(raw); m != nil {
			codes = append(codes, string(m))
		}
	}
	return codes
}

// row is the <tr> of id on the last page, "" if none.
func (b *browser) row(id string) string {
	i := strings.Index(b.last, `<tr id="`+id+`">`)
	if i < 0 {
		return ""
	}
	j := strings.Index(b.last[i:], "</tr>")
	return b.last[i : i+j]
}

// The contacts screen shows each approved contact's invitation as the relay holds it, lists the
// ones never sent, and sends again an unsent or an expired invitation: a clerk of the contact's
// facility only, with the form's token.
func TestContactInvitationsShownAndSentAgain(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	// The spool is a file at first: the mail system is down and no invitation goes out.
	if err := os.WriteFile(spool, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := clock.NewFake(time.Now())
	e := newEnvWith(t, false, func(c *relay.Config) {
		c.Clock = rc
		c.Notifier = relay.SpoolNotifier{Dir: spool, Now: rc.Now}
	})
	tm := e.kiosk("")
	tm.login()
	ids := map[string]string{}
	for _, name := range []string{"Mom", "Dad", "Aunt", "Uncle"} {
		c, err := tm.term.AddContact("A1", name, strings.ToLower(name)+"@example.org")
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = c.ID
	}
	testwait.Until(t, "the contacts on the relay", func() bool { cs, _ := e.r.Contacts(kiosk.ContactPending, "A1"); return len(cs) == 4 })
	mia := e.browser().mustLogin("mia")
	for _, name := range []string{"Mom", "Dad", "Aunt", "Uncle"} {
		if resp := mia.postForm("/console/contacts", "/console/contacts/"+ids[name]+"/approve", nil); strings.Contains(resp.Header.Get("Location"), "err=") {
			t.Fatalf("approve %s: %s", name, resp.Header.Get("Location"))
		}
	}
	mia.get("/console/contacts")
	for _, name := range []string{"Mom", "Dad", "Aunt", "Uncle"} {
		if r := mia.row("unsent-" + ids[name]); !strings.Contains(r, "not a directory") || !strings.Contains(r, "Send the invitation again") {
			t.Errorf("%s is not listed as unsent with its error: %q", name, r)
		}
		if r := mia.row("decided-" + ids[name]); !strings.Contains(r, "invited until") || !strings.Contains(r, "(not sent yet)") {
			t.Errorf("%s's invitation state: %q", name, r)
		}
	}

	// Without the token, or from the business office, or from another facility: nothing is sent.
	if resp := mia.post("/console/contacts/"+ids["Mom"]+"/invite", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("send again without the token: %d", resp.StatusCode)
	}
	bob := e.browser().mustLogin("bob")
	if resp := bob.post("/console/contacts/"+ids["Mom"]+"/invite", url.Values{"csrf": {bob.csrf("/console/money")}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("business office sends an invitation: %d", resp.StatusCode)
	}
	e.addStaff("sol", []string{console.RoleMailroom}, []string{"south"})
	sol := e.browser().mustLogin("sol")
	if resp := sol.postForm("/console/contacts", "/console/contacts/"+ids["Mom"]+"/invite", nil); !strings.Contains(resp.Header.Get("Location"), "err=") {
		t.Errorf("a south clerk sent a north invitation: %s", resp.Header.Get("Location"))
	}
	if sol.get("/console/contacts"); strings.Contains(sol.last, ids["Mom"]) {
		t.Errorf("a south clerk's contacts screen lists north's contact %s", ids["Mom"])
	}
	// The mail system still down: the clerk is told, and the invitation is kept.
	resp := mia.postForm("/console/contacts", "/console/contacts/"+ids["Mom"]+"/invite", nil)
	if loc, _ := url.QueryUnescape(resp.Header.Get("Location")); !strings.Contains(loc, "could not be sent") {
		t.Errorf("a failed send again is not reported: %s", loc)
	}
	if n := len(spoolCodes(t, spool, ids["Mom"])); n != 0 {
		t.Fatalf("%d invitations reached the spool before it worked", n)
	}

	// The mail system is back: each sent again goes out once, and leaves the unsent list.
	if err := os.Remove(spool); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Mom", "Dad", "Aunt", "Uncle"} {
		resp := mia.postForm("/console/contacts", "/console/contacts/"+ids[name]+"/invite", nil)
		if loc, _ := url.QueryUnescape(resp.Header.Get("Location")); !strings.Contains(loc, "Invitation sent to "+name) {
			t.Fatalf("send again %s: %s", name, loc)
		}
	}
	resp = mia.postForm("/console/contacts", "/console/contacts/"+ids["Mom"]+"/invite", nil)
	if loc, _ := url.QueryUnescape(resp.Header.Get("Location")); !strings.Contains(loc, "only an expired or unsent invitation") {
		t.Errorf("a sent invitation was sent again: %s", loc)
	}
	if codes := spoolCodes(t, spool, ids["Mom"]); len(codes) != 1 {
		t.Fatalf("Mom's spool holds %d invitations, want 1", len(codes))
	}
	// Mom accepts, Dad declines, Aunt blocks the inmate; Uncle does not answer.
	for name, answer := range map[string]string{"Mom": relay.AnswerAccept, "Dad": relay.AnswerDecline, "Aunt": relay.AnswerBlockInmate} {
		if _, err := e.r.AnswerInvitation(spoolCodes(t, spool, ids[name])[0], answer); err != nil {
			t.Fatalf("%s answers %s: %v", name, answer, err)
		}
	}
	mia.get("/console/contacts")
	if !strings.Contains(mia.last, "Every invitation has been sent.") {
		t.Errorf("the unsent list is not empty once all were sent")
	}
	for name, want := range map[string]string{"Mom": "accepted on", "Dad": "declined on", "Aunt": "blocked", "Uncle": "invited until"} {
		r := mia.row("decided-" + ids[name])
		if !strings.Contains(r, want) || strings.Contains(r, "not sent yet") || strings.Contains(r, "Send the invitation again") {
			t.Errorf("%s's row after the answers, want %q: %q", name, want, r)
		}
	}

	// Ten days on, Uncle's invitation expired: sent again, it is a new one with a new expiry.
	rc.Advance(relay.DefaultInviteTTL + time.Hour)
	mia.get("/console/contacts")
	if r := mia.row("decided-" + ids["Uncle"]); !strings.Contains(r, "expired on") || !strings.Contains(r, "Send the invitation again") {
		t.Fatalf("Uncle's expired invitation: %q", r)
	}
	if r := mia.row("decided-" + ids["Mom"]); strings.Contains(r, "Send the invitation again") {
		t.Errorf("an accepted invitation offers to be sent again: %q", r)
	}
	resp = mia.postForm("/console/contacts", "/console/contacts/"+ids["Uncle"]+"/invite", nil)
	if loc, _ := url.QueryUnescape(resp.Header.Get("Location")); !strings.Contains(loc, "Invitation sent to Uncle") {
		t.Fatalf("send again the expired invitation: %s", loc)
	}
	mia.get("/console/contacts")
	want := fmt.Sprintf("invited until %s", rc.Now().Add(relay.DefaultInviteTTL).UTC().Format("2006-01-02"))
	if r := mia.row("decided-" + ids["Uncle"]); !strings.Contains(r, want) {
		t.Errorf("Uncle's new invitation, want %q: %q", want, r)
	}
	if codes := spoolCodes(t, spool, ids["Uncle"]); len(codes) != 2 || codes[0] == codes[1] {
		t.Errorf("Uncle's invitations in the spool: %v, want two different codes", codes)
	}
	ada := e.browser().mustLogin("ada")
	ada.get("/console/audit")
	if strings.Count(ada.last, "contact.invite_again") < 5 {
		t.Errorf("the invitations sent again are not all in the audit log")
	}
}
