package relay

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

var codeLine = regexp.MustCompile(`Identification code: ([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})`)

// spooledCode reads the code of the newest invitation the spool holds for contact id, as the
// contact reads it in the email.
func spooledCode(t testing.TB, dir, id string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, id+"-*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invitation for contact %s in %s (%v)", id, dir, err)
	}
	sort.Strings(files)
	raw, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	m := codeLine.FindStringSubmatch(string(raw))
	if m == nil {
		t.Fatalf("invitation %s has no code:\n%s", files[len(files)-1], raw)
	}
	return m[1]
}

// accept answers contact id's invitation with accept, as the contact would.
func (e *env) accept(id string) {
	e.t.Helper()
	if _, err := e.r.AnswerInvitation(spooledCode(e.t, e.spool, id), AnswerAccept); err != nil {
		e.t.Fatalf("accept invitation of %s: %v", id, err)
	}
}

// approveAccepted approves contact id and has the contact accept: letters may flow.
func (e *env) approveAccepted(id string) {
	e.t.Helper()
	if _, err := e.r.ApproveContact(id); err != nil {
		e.t.Fatalf("approve %s: %v", id, err)
	}
	e.accept(id)
}

// letterContact makes contactID an approved contact of inmateID that accepted its invitation,
// through a kiosk of its own (so the caller's terminals' sequences are untouched): letters to
// it are what the email hold holds.
func (e *env) letterContact(inmateID, contactID string) {
	e.t.Helper()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(e.t, 0)
	defer c.c.Close(websocket.StatusNormalClosure, "")
	ack := c.batch(k.item(wire.UpContactRequest, kiosk.Contact{ID: contactID, InmateID: inmateID, Name: "Pen Pal",
		Email: contactID + "@example.org", State: kiosk.ContactPending}))
	if len(ack.Rejected) != 0 {
		e.t.Fatalf("contact request %s: %+v", contactID, ack)
	}
	e.approveAccepted(contactID)
}

// blockedSpool is a spool directory that cannot be written (a file stands where it should be),
// for a notifier that fails until the test removes the file.
func blockedSpool(t testing.TB) string {
	t.Helper()
	blocked := filepath.Join(t.TempDir(), "spool")
	if err := os.WriteFile(blocked, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	return blocked
}

// approvedContact seeds e, enrolls a kiosk and has inmate A1 ask for contact c1 (Mom), whom
// staff approve: its invitation is sent, or waits when e's notifier fails. It returns the
// kiosk and its connection.
func (e *env) approvedContact() (*term, *tconn) {
	e.t.Helper()
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(e.t, 0)
	contactOf(e.t, k, c, "A1", "c1", "Mom", "mom@example.org")
	if _, err := e.r.ApproveContact("c1"); err != nil {
		e.t.Fatal(err)
	}
	return k, c
}
