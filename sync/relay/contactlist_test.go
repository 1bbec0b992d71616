package relay

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

func contactIDs(cs []ContactRecord) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID+" "+c.State)
	}
	slices.Sort(ids)
	return ids
}

// A facility's contacts screen lists the contacts asked for there, with their invitations;
// a contact asked for again after its inmate moved is on the new facility's list only. A store
// upgraded from schema 15 lists its contacts, and verify names a contact off its list.
func TestContactsListedByFacility(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.seedSouth()
	kn, ks := e.enroll(wire.ModeKiosk, ""), e.enrollAt("south", wire.ModeKiosk, "")
	cn, cs := kn.connect(t, 0), ks.connect(t, 0)
	contactOf(t, kn, cn, "A1", "c-mom", "Mom", "mom@example.org")
	contactOf(t, kn, cn, "A2", "c-dad", "Dad", "dad@example.org")
	contactOf(t, ks, cs, "S1", "c-sis", "Sis", "sis@example.org")
	e.approveAccepted("c-dad")
	check := func(when string, north, south []string) {
		t.Helper()
		for fac, want := range map[string][]string{"north": north, "south": south} {
			got, err := e.r.ContactsOf(fac)
			if err != nil || !slices.Equal(contactIDs(got), want) {
				t.Errorf("%s: %s's contacts %v (%v), want %v", when, fac, contactIDs(got), err, want)
			}
		}
		if rep, err := e.r.Verify(); err != nil || !rep.OK {
			t.Errorf("%s: verify %+v (%v)", when, rep, err)
		}
	}
	check("as asked", []string{"c-dad approved", "c-mom pending"}, []string{"c-sis pending"})
	invs, err := e.r.InvitationsOf("c-dad", "c-mom", "nobody")
	if err != nil || len(invs) != 1 || invs["c-dad"].State != kiosk.InviteAccepted || invs["c-dad"].FacilityID != "north" {
		t.Errorf("invitations of c-dad, c-mom and nobody: %+v (%v), want c-dad's, accepted", invs, err)
	}
	if c, found, err := e.r.Contact("c-mom"); err != nil || !found || c.InmateID != "A1" || c.State != kiosk.ContactPending {
		t.Errorf("contact c-mom: %+v found %v (%v)", c, found, err)
	}
	if mine, err := e.r.Contacts("", "A1"); err != nil || !slices.Equal(contactIDs(mine), []string{"c-mom pending"}) {
		t.Errorf("A1's contacts: %v (%v)", contactIDs(mine), err)
	}
	// A1 moves south; Mom, declined, is asked for again from there.
	if _, err := e.r.DeclineContact("c-mom", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.r.PutRoster("south", Roster{Inmates: []RosterInmate{
		{ID: "S1", Name: "Sol", Badges: []string{"SB1"}, PIN: "4567", Language: "en", Status: kiosk.StatusActive},
		{ID: "A1", Name: "Ana", Badges: []string{"B1"}, Language: "en", Status: kiosk.StatusActive},
	}}); err != nil {
		t.Fatal(err)
	}
	contactOf(t, ks, cs, "A1", "c-mom", "Mom", "mom@example.org")
	check("asked again from south", []string{"c-dad approved"}, []string{"c-mom pending", "c-sis pending"})
	if cs, err := e.r.ContactsOf(); err != nil || len(cs) != 0 {
		t.Errorf("the contacts of no facility: %v (%v), want none", contactIDs(cs), err)
	}
	if _, err := e.r.ContactsOf("north", "no/such"); err == nil || !strings.Contains(err.Error(), "facility_id") {
		t.Errorf("a facility id with a slash: %v, want an error naming facility_id", err)
	}
	var list struct{ Contacts []ContactRecord }
	e.must(http.StatusOK, "GET", "/admin/v1/contacts?inmate_id=A1", nil, &list)
	if got := contactIDs(list.Contacts); !slices.Equal(got, []string{"c-mom pending"}) {
		t.Errorf("GET /admin/v1/contacts?inmate_id=A1: %v", got)
	}
	// The admin API's lists by facility: theirs only, filtered as the state's are.
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"facility_id=south", []string{"c-mom pending", "c-sis pending"}},
		{"facility_id=south&inmate_id=A1", []string{"c-mom pending"}},
		{"facility_id=north&facility_id=south&status=approved", []string{"c-dad approved"}},
		{"facility_id=north&status=pending", nil},
	} {
		list.Contacts = nil
		e.must(http.StatusOK, "GET", "/admin/v1/contacts?"+c.query, nil, &list)
		if got := contactIDs(list.Contacts); !slices.Equal(got, c.want) {
			t.Errorf("GET /admin/v1/contacts?%s: %v, want %v", c.query, got, c.want)
		}
	}
	for fac, want := range map[string][]string{"north": {"c-dad"}, "south": nil} {
		var invs struct{ Invitations []Invitation }
		e.must(http.StatusOK, "GET", "/admin/v1/invitations?facility_id="+fac, nil, &invs)
		var got []string
		for _, v := range invs.Invitations {
			got = append(got, v.ContactID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("GET /admin/v1/invitations?facility_id=%s: %v, want %v", fac, got, want)
		}
	}
	for _, path := range []string{"/admin/v1/contacts?facility_id=no/such", "/admin/v1/invitations?facility_id=no/such",
		"/admin/v1/contacts?facility_id=north&status=maybe"} {
		if status, raw := e.call("GET", path, nil); status != http.StatusBadRequest || !strings.Contains(string(raw), "facility_id") && !strings.Contains(string(raw), "status") {
			t.Errorf("GET %s: %d %s, want 400 naming the field", path, status, raw)
		}
	}
	if os.Getenv(storeEnv) == "jetstream" {
		return // the rest rewinds the bbolt file
	}
	cn.c.Close(websocket.StatusNormalClosure, "")
	cs.c.Close(websocket.StatusNormalClosure, "")
	e.close()
	e.rewind(func(tx kv.Tx) error { // schema 15 had no lists of contacts
		if err := tx.DeleteBucket([]byte(bFacContacts)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(15))
	})
	e.open()
	check("after the upgrade", []string{"c-dad approved"}, []string{"c-mom pending", "c-sis pending"})
	e.close()
	e.rewind(func(tx kv.Tx) error { return deleteKey(tx, bFacContacts, "south/c-sis") })
	e.open()
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "contact_list" ||
		!strings.Contains(rep.Problems[0].Detail, "c-sis") {
		t.Fatalf("verify of a contact off its list: %+v (%v), want one contact_list problem naming c-sis", rep, err)
	}
}
