package kiosk

import (
	"encoding/json"
	"fmt"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// mbRig is a terminal over a real store in a temp dir with a fake clock, for mailbox tests.
type mbRig struct {
	t     *Terminal
	store *Store
	clock *clock.Fake
	dir   string

	mu     sync.Mutex
	events []Event
}

var mbStart = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func newMBRig(tb testing.TB) *mbRig {
	tb.Helper()
	r := &mbRig{dir: tb.TempDir(), clock: clock.NewFake(mbStart)}
	r.open(tb)
	// Logins in these tests switch inmates often: no cool-down, and room to spend offline.
	p := r.t.Policy()
	p.Cooldown, p.OfflineSpendCap = 0, p.MaxDeposit
	if err := r.t.SetPolicy(p, "test"); err != nil {
		tb.Fatal(err)
	}
	return r
}

func (r *mbRig) open(tb testing.TB) {
	tb.Helper()
	s, err := OpenStore(r.dir, StoreOptions{})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	term, err := NewTerminal(TerminalConfig{Store: s, Clock: r.clock, PINParams: TestPINParams(),
		Logf: tb.Logf, OnEvent: func(ev Event) { r.mu.Lock(); r.events = append(r.events, ev); r.mu.Unlock() }})
	if err != nil {
		tb.Fatalf("new terminal: %v", err)
	}
	r.store, r.t = s, term
	tb.Cleanup(func() { s.Close() })
}

// reopen closes the store and opens it again, as a restart does.
func (r *mbRig) reopen(tb testing.TB) {
	tb.Helper()
	if err := r.store.Close(); err != nil {
		tb.Fatalf("close: %v", err)
	}
	r.open(tb)
}

const mbPIN = "2468"

// addInmate puts an inmate with badge "badge-<id>", PIN mbPIN and money on the roster.
func (r *mbRig) addInmate(tb testing.TB, id string, messaging bool) {
	tb.Helper()
	hash, err := HashPINWith(mbPIN, TestPINParams())
	if err != nil {
		tb.Fatal(err)
	}
	in := Inmate{ID: id, Name: "Inmate " + id, Badges: []string{"badge-" + id}, PINHash: hash,
		Language: "en", Status: StatusActive, Messaging: messaging}
	if err := r.t.UpsertInmate(in, "test"); err != nil {
		tb.Fatalf("add inmate: %v", err)
	}
	if err := r.t.Deposit(id, 10000, "mb-"+id); err != nil {
		tb.Fatalf("deposit: %v", err)
	}
}

// login makes id's session the active one, ending any other, through badge, PIN and notice.
func (r *mbRig) login(tb testing.TB, id string) {
	tb.Helper()
	if info, ok := r.t.Active(); ok {
		if info.InmateID == id {
			return
		}
		if err := r.t.Logout(); err != nil {
			tb.Fatalf("logout: %v", err)
		}
	}
	if _, err := r.t.Badge("badge-" + id); err != nil {
		tb.Fatalf("badge of %s: %v", id, err)
	}
	p, err := r.t.EnterPIN("badge-"+id, mbPIN)
	if err != nil {
		tb.Fatalf("PIN of %s: %v", id, err)
	}
	if _, err := r.t.AcceptNotice(p); err != nil {
		tb.Fatalf("notice of %s: %v", id, err)
	}
}

// approved adds a contact and has the relay approve it.
func (r *mbRig) approved(tb testing.TB, inmateID, name, email string) Contact {
	tb.Helper()
	r.login(tb, inmateID)
	c, err := r.t.AddContact(inmateID, name, email)
	if err != nil {
		tb.Fatalf("add contact %s: %v", email, err)
	}
	if err := r.t.SetContactState(inmateID, c.ID, ContactApproved, ""); err != nil {
		tb.Fatalf("approve %s: %v", email, err)
	}
	c.State = ContactApproved
	return c
}

// queued returns the forwarding queue's items of the given kinds, in order.
func (r *mbRig) queued(tb testing.TB, kinds ...ItemKind) []Item {
	tb.Helper()
	items, err := r.store.Pending(0, 1<<20, 1<<30)
	if err != nil {
		tb.Fatalf("pending: %v", err)
	}
	var out []Item
	for _, it := range items {
		for _, k := range kinds {
			if it.Kind == k {
				out = append(out, it)
			}
		}
	}
	return out
}

func wantKind(tb testing.TB, err error, kind Kind) {
	tb.Helper()
	if KindOf(err) != kind {
		tb.Fatalf("error = %v (kind %v), want kind %v", err, KindOf(err), kind)
	}
}

func TestValidateEmail(t *testing.T) {
	good := []struct{ in, want string }{
		{"ana@example.com", "ana@example.com"},
		{"  Ana.Lopez+home@Mail.Example.ORG ", "Ana.Lopez+home@mail.example.org"},
		{"o'brien@example.co.uk", "o'brien@example.co.uk"},
		{"a_b-c@x-y.example", "a_b-c@x-y.example"},
		{strings.Repeat("l", 64) + "@example.com", strings.Repeat("l", 64) + "@example.com"},
	}
	for _, tc := range good {
		got, err := ValidateEmail(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ValidateEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	long := strings.Repeat("a", 60) + "." // 61 bytes a label
	bad := []struct{ in, reason string }{
		{"", "is empty"},
		{"   ", "is empty"},
		{"ana.example.com", "has no @"},
		{"ana@@example.com", "more than one @"},
		{"ana@example.com, bob@example.com", "',' is not allowed"},
		{"ana@example.com bob@example.com", "spaces"},
		{"Ana <ana@example.com>", "'<' is not allowed"},
		{"<ana@example.com>", "'<' is not allowed"},
		{`"ana"@example.com`, `'"' is not allowed`},
		{`"a@b"@example.com`, `'"' is not allowed`},
		{"ana@example.com (Ana)", "'(' is not allowed"},
		{"ana(comment)@example.com", "'(' is not allowed"},
		{"ana@[192.168.0.1]", "'[' is not allowed"},
		{"ana@localhost", "has no dot"},
		{"ana@", "no domain"},
		{"@example.com", "nothing before the @"},
		{"ana@example..com", "empty part"},
		{"ana@.example.com", "empty part"},
		{"ana@example.com.", "empty part"},
		{".ana@example.com", "dot"},
		{"ana.@example.com", "dot"},
		{"a..na@example.com", "dot"},
		{"ana@-example.com", "hyphen"},
		{"ana@example-.com", "hyphen"},
		{"ana@exa_mple.com", "only letters"},
		{"ana@192.168.0.1", "ends in a number"},
		{"anä@example.com", "'ä' at position 3 is not allowed"},
		{"ana@exämple.com", "'ä' at position 7 is not allowed"},
		{"ana\x00@example.com", "control characters (position 4)"},
		{"ana\n@example.com", "control characters"},
		{"ana@exa\xffmple.com", "position 8 is not allowed"},
		{strings.Repeat("l", 65) + "@example.com", "before the @ is 65 characters; the limit is 64"},
		{"ana@" + strings.Repeat("a", 64) + ".com", "longer than 63"},
		{strings.Repeat("l", 60) + "@" + strings.Repeat(long, 3) + strings.Repeat("b", 20) + ".com", "characters long; the limit is 254"},
	}
	for _, tc := range bad {
		got, err := ValidateEmail(tc.in)
		if err == nil {
			t.Errorf("ValidateEmail(%q) = %q, want refusal mentioning %q", tc.in, got, tc.reason)
			continue
		}
		if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("ValidateEmail(%q) error = %q (kind %v), want KindInvalid mentioning %q", tc.in, err, KindOf(err), tc.reason)
		}
	}
}

func FuzzValidateEmail(f *testing.F) {
	for _, s := range []string{"ana@example.com", "Ana <ana@example.com>", `"a b"@example.com`, "a@b", "a@[1.2.3.4]",
		"ana@example.com, b@c.de", "x@y.z9", "ä@b.cd", "a@b.c-d.ef", "=?utf-8?q?x?=@a.bc", "a@b.c\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ValidateEmail(in)
		if err != nil {
			if KindOf(err) != KindInvalid || err.Error() == "" {
				t.Fatalf("ValidateEmail(%q) error %v has kind %v", in, err, KindOf(err))
			}
			return
		}
		// What is accepted is one bare ASCII address within the limits, stable under re-validation.
		if len(got) > vocab.MaxEmailLen || strings.Count(got, "@") != 1 {
			t.Fatalf("accepted %q -> %q", in, got)
		}
		local, domain, _ := strings.Cut(got, "@")
		if local == "" || len(local) > vocab.MaxEmailLocalLen || !strings.Contains(domain, ".") || domain != strings.ToLower(domain) {
			t.Fatalf("accepted %q -> %q with a bad part", in, got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] <= ' ' || got[i] >= 0x7f {
				t.Fatalf("accepted %q -> %q holding byte %#x", in, got, got[i])
			}
		}
		a, perr := mail.ParseAddress(got)
		if perr != nil || a.Name != "" || a.Address != got {
			t.Fatalf("accepted %q -> %q but net/mail reads %+v, %v", in, got, a, perr)
		}
		again, err := ValidateEmail(got)
		if err != nil || again != got {
			t.Fatalf("re-validating %q gives %q, %v", got, again, err)
		}
	})
}

func TestContactLifecycle(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	r.addInmate(t, "i2", true)
	// Contacts change only in the inmate's own session.
	_, err := r.t.AddContact("i1", "Ana", "ana@example.com")
	if ReasonOf(err) != ReasonNoSession {
		t.Fatalf("add without a session = %v, want %s", err, ReasonNoSession)
	}
	r.login(t, "i1")
	c, err := r.t.AddContact("i1", " Ana Lopez ", "Ana@Example.COM")
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if c.State != ContactPending || c.Name != "Ana Lopez" || c.Email != "Ana@example.com" || c.ID == "" {
		t.Fatalf("added contact = %+v", c)
	}
	// The request waits in the queue, written with the contact.
	reqs := r.queued(t, ItemContactRequest)
	if len(reqs) != 1 {
		t.Fatalf("queued contact requests = %d, want 1", len(reqs))
	}
	var sent Contact
	if err := json.Unmarshal(reqs[0].Body, &sent); err != nil || sent.ID != c.ID || sent.Email != c.Email {
		t.Fatalf("queued request body = %s (%v)", reqs[0].Body, err)
	}
	// Same address again, in any case, is a conflict while it is live.
	_, err = r.t.AddContact("i1", "Ana again", "ana@example.com")
	wantKind(t, err, KindConflict)

	// Approve, then decline with a reason; both visible.
	if err := r.t.SetContactState("i1", c.ID, ContactApproved, ""); err != nil {
		t.Fatalf("approve: %v", err)
	}
	cs, _ := r.t.Contacts("i1")
	if len(cs) != 1 || cs[0].State != ContactApproved {
		t.Fatalf("after approve contacts = %+v", cs)
	}
	d, err := r.t.AddContact("i1", "Bob", "bob@example.net")
	if err != nil {
		t.Fatalf("add bob: %v", err)
	}
	if err := r.t.SetContactState("i1", d.ID, ContactDeclined, "not on visiting list"); err != nil {
		t.Fatalf("decline: %v", err)
	}
	cs, _ = r.t.Contacts("i1")
	if len(cs) != 2 || cs[1].State != ContactDeclined || cs[1].Reason != "not on visiting list" {
		t.Fatalf("after decline contacts = %+v", cs)
	}
	wantKind(t, r.t.SetContactState("i1", d.ID, "pending", ""), KindInvalid)
	wantKind(t, r.t.SetContactState("i1", "nope", ContactApproved, ""), KindNotFound)
	wantKind(t, r.t.SetContactState("i2", c.ID, ContactApproved, ""), KindNotFound)

	// Asking again for a declined address reuses its id and is pending again.
	d2, err := r.t.AddContact("i1", "Bob", "bob@example.net")
	if err != nil || d2.ID != d.ID || d2.State != ContactPending || d2.Reason != "" {
		t.Fatalf("re-add declined = %+v, %v", d2, err)
	}

	// Remove: marked removed, hidden, queued; a late approval does not bring it back.
	if err := r.t.RemoveContact("i1", c.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := r.t.RemoveContact("i1", c.ID); err != nil {
		t.Fatalf("remove twice: %v", err)
	}
	if rm := r.queued(t, ItemContactRemove); len(rm) != 1 {
		t.Fatalf("queued removals = %d, want 1", len(rm))
	}
	if err := r.t.SetContactState("i1", c.ID, ContactApproved, ""); err != nil {
		t.Fatalf("late approve: %v", err)
	}
	cs, _ = r.t.Contacts("i1")
	if len(cs) != 1 || cs[0].ID != d.ID {
		t.Fatalf("after remove contacts = %+v, want only Bob", cs)
	}
	wantKind(t, r.t.RemoveContact("i1", "nope"), KindNotFound)
	if err := r.t.RemoveContact("i2", d.ID); ReasonOf(err) != ReasonNoSession {
		t.Fatalf("removing in another's session = %v, want %s", err, ReasonNoSession)
	}
	r.login(t, "i2")
	wantKind(t, r.t.RemoveContact("i2", d.ID), KindNotFound)

	// Survives a restart.
	r.reopen(t)
	cs, _ = r.t.Contacts("i1")
	if len(cs) != 1 || cs[0].ID != d.ID || cs[0].State != ContactPending {
		t.Fatalf("after reopen contacts = %+v", cs)
	}
}

func TestContactLimitCountsPendingAndApprovedOnly(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	r.addInmate(t, "i2", true)
	max := r.t.Policy().MaxContacts
	if max != 30 {
		t.Fatalf("default MaxContacts = %d, want 30", max)
	}
	var ids []string
	r.login(t, "i1")
	for i := 0; i < max; i++ {
		c, err := r.t.AddContact("i1", fmt.Sprintf("Person %d", i), fmt.Sprintf("p%d@example.com", i))
		if err != nil {
			t.Fatalf("contact %d: %v", i+1, err)
		}
		ids = append(ids, c.ID)
		if i%2 == 0 {
			if err := r.t.SetContactState("i1", c.ID, ContactApproved, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err := r.t.AddContact("i1", "One too many", "p30@example.com")
	wantKind(t, err, KindRefused)
	if ReasonOf(err) != ReasonContactLimit || !strings.Contains(err.Error(), "30 of 30") {
		t.Fatalf("31st contact error = %v, want contact_limit saying 30 of 30", err)
	}
	// Another inmate's slots are their own.
	r.login(t, "i2")
	if _, err := r.t.AddContact("i2", "Ana", "ana@example.com"); err != nil {
		t.Fatalf("other inmate: %v", err)
	}
	r.login(t, "i1")
	// Departments and PREA take no slot: all still reachable at the limit.
	recips, err := r.t.Recipients("i1")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, rc := range recips {
		kinds[rc.Kind]++
	}
	if kinds[peerKindHuman] != 15 || kinds[peerKindDept] != len(r.t.Policy().Departments) || kinds[peerKindPREA] != 1 {
		t.Fatalf("recipients at the limit = %v", kinds)
	}
	if _, err := r.t.Send("i1", r.t.Policy().Departments[0].ID, "", "Request to medical"); err != nil {
		t.Fatalf("department at the limit: %v", err)
	}
	if _, err := r.t.SendPREA("i1", "report"); err != nil {
		t.Fatalf("PREA at the limit: %v", err)
	}
	// A declined and a removed contact free their slots.
	if err := r.t.SetContactState("i1", ids[1], ContactDeclined, "no"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.AddContact("i1", "Thirty-one", "p30@example.com"); err != nil {
		t.Fatalf("after decline: %v", err)
	}
	if err := r.t.RemoveContact("i1", ids[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.AddContact("i1", "Thirty-two", "p31@example.com"); err != nil {
		t.Fatalf("after remove: %v", err)
	}
	_, err = r.t.AddContact("i1", "Thirty-three", "p32@example.com")
	wantKind(t, err, KindRefused)
}

func TestAddContactRefusals(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	r.addInmate(t, "muted", false)
	cases := []struct {
		name, inmate, cname, email string
		kind                       Kind
		reason                     Reason
		says                       string
	}{
		{"no messaging privilege", "muted", "Ana", "ana@example.com", KindRefused, ReasonNoMessaging, ""},
		{"no session", "ghost", "Ana", "ana@example.com", KindRefused, ReasonNoSession, ""},
		{"empty name", "i1", "  ", "ana@example.com", KindInvalid, "", "contact name: is empty"},
		{"control in name", "i1", "An\ba", "ana@example.com", KindInvalid, "", "U+0008 at position 3"},
		{"long name", "i1", strings.Repeat("é", 101), "ana@example.com", KindInvalid, "", "101 characters"},
		{"display name trick", "i1", "Ana", "Staff <ana@example.com>", KindInvalid, "", "not allowed"},
		{"two addresses", "i1", "Ana", "ana@example.com,bob@example.com", KindInvalid, "", "not allowed"},
		{"no dot", "i1", "Ana", "ana@intranet", KindInvalid, "", "has no dot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.inmate != "ghost" {
				r.login(t, tc.inmate)
			}
			_, err := r.t.AddContact(tc.inmate, tc.cname, tc.email)
			wantKind(t, err, tc.kind)
			if ReasonOf(err) != tc.reason || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error = %v, want reason %q mentioning %q", err, tc.reason, tc.says)
			}
		})
	}
	if q := r.queued(t, ItemContactRequest); len(q) != 0 {
		t.Fatalf("refused adds queued %d requests", len(q))
	}
}

func TestRefusedContactRequestFreesTheSlot(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	r.login(t, "i1")
	c, err := r.t.AddContact("i1", "Ana", "ana@example.com")
	if err != nil {
		t.Fatal(err)
	}
	req := r.queued(t, ItemContactRequest)[0]
	if err := r.store.Reject(r.clock.Now(), req.Seq, "address is on the blocked list"); err != nil {
		t.Fatal(err)
	}
	cs, _ := r.t.Contacts("i1")
	if len(cs) != 1 || cs[0].ID != c.ID || cs[0].State != ContactDeclined || cs[0].Reason != "address is on the blocked list" {
		t.Fatalf("after refusal contacts = %+v", cs)
	}
}

func TestApplyContactFromRelay(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	apply := func(c Contact) error {
		return r.store.update("test apply contact", func(tx *bolt.Tx) error { return applyContactTx(tx, r.clock.Now(), c) })
	}
	// Asked for at another kiosk and approved there: usable here.
	if err := apply(Contact{ID: "c-far", InmateID: "i1", Name: "Ana", Email: "ana@example.com", State: ContactApproved}); err != nil {
		t.Fatal(err)
	}
	r.login(t, "i1")
	if _, err := r.t.Send("i1", "c-far", "", "hello from the other kiosk"); err != nil {
		t.Fatalf("send to a contact approved elsewhere: %v", err)
	}
	// A known contact gets the decision; a late "pending" echo changes nothing.
	if err := apply(Contact{ID: "c-far", InmateID: "i1", State: ContactDeclined, Reason: "revoked"}); err != nil {
		t.Fatal(err)
	}
	if err := apply(Contact{ID: "c-far", InmateID: "i1", State: ContactPending}); err != nil {
		t.Fatal(err)
	}
	cs, _ := r.t.Contacts("i1")
	if len(cs) != 1 || cs[0].State != ContactDeclined || cs[0].Reason != "revoked" || cs[0].Email != "ana@example.com" {
		t.Fatalf("contacts = %+v", cs)
	}
	// Removed and unknown: nothing to keep. Malformed records are refused.
	if err := apply(Contact{ID: "c-gone", InmateID: "i1", Name: "Bo", Email: "bo@example.com", State: ContactRemoved}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Contact{
		{ID: "", InmateID: "i1", Name: "X", Email: "x@example.com", State: ContactApproved},
		{ID: "a/b", InmateID: "i1", Name: "X", Email: "x@example.com", State: ContactApproved},
		{ID: "c1", InmateID: "i1", Name: "X", Email: "X <x@example.com>", State: ContactApproved},
		{ID: "c1", InmateID: "i1", Name: "", Email: "x@example.com", State: ContactApproved},
		{ID: "c1", InmateID: "i1", Name: "X", Email: "x@example.com", State: "maybe"},
	} {
		wantKind(t, apply(bad), KindInvalid)
	}
	if cs, _ := r.t.Contacts("i1"); len(cs) != 1 {
		t.Fatalf("contacts after bad records = %+v", cs)
	}
}

// applyContact applies a contact record as the relay sends it.
func (r *mbRig) applyContact(tb testing.TB, c Contact) {
	tb.Helper()
	raw, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	seq, err := r.t.DownlinkApplied()
	if err != nil {
		tb.Fatal(err)
	}
	if refused, err := r.t.ApplyDownlink(seq+1, DownContact, raw); err != nil || refused != "" {
		tb.Fatalf("apply contact %+v: %q %v", c, refused, err)
	}
}

// TestInvitationStatesOnTheTerminal: an approved contact is written to only once the contact
// accepted the invitation; one who declined, blocked or let it expire is no recipient, is
// refused contact_not_accepted, frees its place, and asked for again is pending afresh.
func TestInvitationStatesOnTheTerminal(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	r.login(t, "i1")
	p := r.t.Policy()
	p.MaxContacts = 1
	if err := r.t.SetPolicy(p, "test"); err != nil {
		t.Fatal(err)
	}
	c, err := r.t.AddContact("i1", "Mom", "mom@example.org")
	if err != nil {
		t.Fatal(err)
	}
	recipient := func() bool {
		rs, err := r.t.Recipients("i1")
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range rs {
			if x.ID == c.ID {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		invite  string
		expires time.Time
		write   bool
		live    bool
	}{
		{InviteInvited, mbStart.Add(240 * time.Hour), false, true},
		{InviteInvited, mbStart.Add(-time.Second), false, false}, // expired
		{InviteDeclined, time.Time{}, false, false},
		{InviteBlocked, time.Time{}, false, false},
		{InviteAccepted, time.Time{}, true, true},
	} {
		x := c
		x.State, x.Invite, x.InviteExpires = ContactApproved, tc.invite, tc.expires
		r.applyContact(t, x)
		_, err := r.t.Send("i1", c.ID, "hi", "hello")
		switch {
		case tc.write && err != nil:
			t.Fatalf("%s: send: %v", tc.invite, err)
		case !tc.write && ReasonOf(err) != ReasonContactNotAccepted:
			t.Fatalf("%s (expires %v): send: %v; want refused %s", tc.invite, tc.expires, err, ReasonContactNotAccepted)
		}
		if recipient() != tc.write {
			t.Fatalf("%s: offered as a recipient: %v, want %v", tc.invite, !tc.write, tc.write)
		}
		_, err = r.t.AddContact("i1", "Dad", "dad@example.org")
		if tc.live && ReasonOf(err) != ReasonContactLimit {
			t.Fatalf("%s: a second contact with one place taken: %v", tc.invite, err)
		}
		if !tc.live {
			if err != nil {
				t.Fatalf("%s: the place was not freed: %v", tc.invite, err)
			}
			cs, _ := r.t.Contacts("i1")
			for _, y := range cs {
				if y.Email == "dad@example.org" {
					if err := r.t.RemoveContact("i1", y.ID); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	// Declined, then asked for again: pending under the same id, the old answer forgotten.
	x := c
	x.State, x.Invite = ContactApproved, InviteDeclined
	r.applyContact(t, x)
	again, err := r.t.AddContact("i1", "Mom", "MOM@example.org")
	if err != nil || again.ID != c.ID || again.State != ContactPending || again.Invite != "" || !again.InviteExpires.IsZero() {
		t.Fatalf("asked again: %+v %v", again, err)
	}
	// An invitation state the terminal does not know is refused, and changes nothing.
	raw, _ := json.Marshal(Contact{ID: c.ID, InmateID: "i1", Name: "Mom", Email: "mom@example.org", State: ContactApproved, Invite: "maybe"})
	seq, _ := r.t.DownlinkApplied()
	if refused, err := r.t.ApplyDownlink(seq+1, DownContact, raw); err == nil && refused == "" {
		t.Fatal("an unknown invitation state was applied")
	}
	cs, _ := r.t.Contacts("i1")
	if len(cs) != 1 || cs[0].State != ContactPending {
		t.Fatalf("after a refused record: %+v", cs)
	}
}
