package relay

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// terminalInfo is one terminal as GET /admin/v1/terminals shows it.
func (e *env) terminalInfo(id string) TerminalInfo {
	e.t.Helper()
	var tl struct{ Terminals []TerminalInfo }
	e.must(http.StatusOK, "GET", "/admin/v1/terminals", nil, &tl)
	for _, ti := range tl.Terminals {
		if ti.ID == id {
			return ti
		}
	}
	e.t.Fatalf("terminal %s is not listed: %+v", id, tl.Terminals)
	return TerminalInfo{}
}

// The same key enrolling again in its facility (kioskctl reissue, a damaged enrollment file)
// makes a new terminal that replaces the old one: the old is revoked with nothing left queued
// and its connection closed, the new one goes on with the store's sequence numbers (what the
// old delivered is a duplicate, not stored twice). A revoked terminal's key is refused.
func TestReenrollSameKey(t *testing.T) {
	e := newEnv(t)
	e.seed()
	old := e.enroll(wire.ModeKiosk, "")
	oc := old.connect(t, 0)
	sent := []wire.Item{
		old.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		old.item(wire.UpContactRequest, kiosk.Contact{ID: "c1", InmateID: "A1", Name: "Mom", Email: "mom@example.org"}),
		old.item(wire.UpCharge, charge("A1", "s1", 1, 5)),
	}
	ack := oc.batch(sent...)
	if ack.Seq != 3 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	// Downlink piles up for the old terminal while it does not acknowledge.
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 700, Ref: "d-before"}); err != nil {
		t.Fatal(err)
	}

	er := e.enrollKey("north", wire.ModeKiosk, "", old.priv) // the same key again
	expectClose(t, oc.c, websocket.StatusPolicyViolation, wire.ReasonRevoked)
	if oi := e.terminalInfo(old.id); !oi.Revoked {
		t.Fatalf("the replaced terminal is not revoked: %+v", oi)
	}
	if items, err := e.r.pendingDown(old.id, 0, 1000, 1<<20); err != nil || len(items) != 0 {
		t.Fatalf("downlink still queued for the replaced terminal: %d items, %v", len(items), err)
	}
	var tl struct {
		Terminals []map[string]any `json:"terminals"`
	}
	e.must(http.StatusOK, "GET", "/admin/v1/terminals", nil, &tl)
	replaces := ""
	for _, ti := range tl.Terminals {
		if ti["id"] == er.TerminalID {
			replaces, _ = ti["replaces"].(string)
		}
	}
	if replaces != old.id {
		t.Fatalf("GET /admin/v1/terminals: the new terminal replaces %q, want %q", replaces, old.id)
	}
	// The old id can no longer authenticate.
	c := dial(t, e.wsURL())
	send(t, c, wire.Hello{TerminalID: old.id, Epoch: old.epoch})
	f := read(t, c)
	send(t, c, wire.Auth{Signature: wire.SignAuth(old.priv, old.id, f.Challenge.Nonce)})
	expectClose(t, c, websocket.StatusPolicyViolation, wire.ReasonRevoked)

	// The same store and key as the new terminal, on the new epoch its enrollment started
	// (kiosk.SetEnrollment): the relay knows no seq of the new id.
	nt := &term{e: e, id: er.TerminalID, priv: old.priv, epoch: old.epoch + "-2", mode: wire.ModeKiosk}
	nc := nt.connect(t, 0)
	// It resends, renumbered, what the old one delivered (its acks were lost) and goes on.
	resent := func(it wire.Item) wire.Item { nt.seq++; it.Seq = nt.seq; return it }
	ack = nc.batch(resent(sent[1]), resent(sent[2]), nt.item(wire.UpCharge, charge("A1", "s2", 0, 5)))
	if ack.Seq != 3 || len(ack.Rejected) != 0 {
		t.Fatalf("ack on the new terminal = %+v, want seq 3 and no refusal", ack)
	}
	if items, _ := e.r.Items(ItemFilter{Kind: wire.UpCharge}); len(items) != 3 {
		t.Fatalf("%d charges stored, want 3 (no resent item twice)", len(items))
	}
	if b, _ := e.r.Balance("A1"); b.Charges != 15 {
		t.Fatalf("relay charges of A1 = %s, want $0.15", b.Charges)
	}
	// A session the old terminal billed and a crash cut is credited at the next start, which came
	// after the re-enrollment: the charge is the replaced terminal's, and the credit is taken.
	if ack := nc.batch(nt.item(wire.UpCredit, credit(charge("A1", "s1", 0, 5), 5, kiosk.CreditTerminalFault))); len(ack.Rejected) != 0 {
		t.Fatalf("credit of the replaced terminal's charge refused: %+v", ack)
	}
	if b, _ := e.r.Balance("A1"); b.Credits != 5 {
		t.Fatalf("relay credits of A1 = %s, want $0.05", b.Credits)
	}
	// Its snapshot holds the deposit, and its own earlier charges (the terminal skips those it holds).
	nc.waitDown(wire.DownDeposit, func(b json.RawMessage) bool { return decodeAs[kiosk.Deposit](t, b).Ref == "d-before" })
	nc.waitDown(wire.DownRemoteCharge, func(b json.RawMessage) bool { return decodeAs[kiosk.Charge](t, b).RecordID == "s1/1" })
	// New downlink goes to the new terminal, none to the old.
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 300, Ref: "d-after"}); err != nil {
		t.Fatal(err)
	}
	nc.waitDown(wire.DownDeposit, func(b json.RawMessage) bool { return decodeAs[kiosk.Deposit](t, b).Ref == "d-after" })
	if items, _ := e.r.pendingDown(old.id, 0, 1000, 1<<20); len(items) != 0 {
		t.Fatalf("the replaced terminal still receives downlink: %d items", len(items))
	}

	// A revoked terminal's key may have been copied: it is not enrolled again.
	if err := e.r.Revoke(nt.id); err != nil {
		t.Fatal(err)
	}
	en, _ := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: "north", Mode: wire.ModeKiosk})
	raw, status := e.postEnroll(en.Code, old.priv)
	if er := wire.DecodeErrorResponse(raw); status != http.StatusConflict || er.Error != wire.EnrollKeyInUse || !strings.Contains(er.Message, "revoked") {
		t.Fatalf("enrolling a revoked terminal's key: %d %s", status, raw)
	}
	if strings.Contains(e.logText(), en.Code) {
		t.Fatal("an enrollment code reached the log")
	}
}

// Technicians' badges and PIN hashes go to kiosks only: a tablet's downlink holds none, in its
// snapshot or after roster changes.
func TestTechniciansGoToKiosksOnly(t *testing.T) {
	e := newEnv(t)
	e.seed()
	tab := e.enroll(wire.ModeTablet, "A1")
	k := e.enroll(wire.ModeKiosk, "")
	ro := Roster{
		Inmates: []RosterInmate{
			{ID: "A1", Name: "Ana", Badges: []string{"B1"}, Language: "en", Status: kiosk.StatusActive},
			{ID: "A2", Name: "Bo", Badges: []string{"B2"}, Language: "es", Status: kiosk.StatusActive},
			{ID: "A3", Name: "Cy", Badges: []string{"B3"}, Language: "en", Status: kiosk.StatusSuspended},
		},
		Technicians: []RosterTechnician{{ID: "T2", Name: "Ty", Badges: []string{"TB2"}, PIN: "8888", Role: "installer"}},
	}
	if err := e.r.PutRoster("north", ro); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "last"}); err != nil {
		t.Fatal(err)
	}
	kc := k.connect(t, 0)
	kc.waitDown(wire.DownNotice, nil)
	tc := tab.connect(t, 0)
	tc.waitDown(wire.DownNotice, nil)
	count := func(items []wire.DownItem) (n int) {
		for _, it := range items {
			// A technician's badge held by anyone else would carry it too; the PIN hash's random
			// base64 may contain any letters, so the badges are read, not the body searched.
			var p struct{ Badges []string }
			json.Unmarshal(it.Body, &p)
			techBadge := slices.ContainsFunc(p.Badges, func(b string) bool { return strings.HasPrefix(b, "TB") })
			if it.Kind == wire.DownTechnician || it.Kind == wire.DownTechnicianRemove || techBadge {
				n++
			}
		}
		return n
	}
	if n := count(tc.down); n != 0 {
		t.Fatalf("the tablet received %d technician items", n)
	}
	if n := count(kc.down); n != 3 { // T1 in the snapshot, then T2 added and T1 removed
		t.Fatalf("the kiosk received %d technician items, want 3", n)
	}
}

// A terminal whose store was replaced (hello's down_applied below what it acknowledged: wiped,
// or a backup restored) gets a complete snapshot after its last queued seq, once.
func TestWipedTerminalGetsACompleteSnapshot(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldAll })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	other := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 2000, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	c.batch(k.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c1", InmateID: "A1", Name: "Mom", Email: "mom@example.org"}),
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c2", InmateID: "A1", Name: "Dad", Email: "dad@example.org"}),
		k.item(wire.UpSessionEnd, kiosk.Session{ID: "s1", InmateID: "A1", Start: t0, End: t0.Add(time.Minute), Minutes: 1, Rate: 5, Charged: 5, EndReason: kiosk.EndLogout}))
	e.approveAccepted("c1")
	if _, err := e.r.DeclineContact("c2", "unknown person"); err != nil {
		t.Fatal(err)
	}
	c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Peer: "c1", Body: "hi mom"}))
	if _, err := e.r.RejectOutbound("m1", "content_policy"); err != nil {
		t.Fatal(err)
	}
	oc := other.connect(t, 0)
	oc.batch(other.item(wire.UpCharge, charge("A2", "s9", 0, 5)))
	in, err := e.r.Inbound(InboundRequest{InmateID: "A1", From: "c1", Body: "see you Sunday"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.PostNotice(NoticeRequest{FacilityID: "north", Text: "gone soon", Until: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.PostNotice(NoticeRequest{FacilityID: "north", InmateID: "A1", Text: "package"}); err != nil {
		t.Fatal(err)
	}
	last := c.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return decodeAs[kiosk.Notice](t, b).Text == "package" }).Seq
	c.ackDown(last)
	waitAcked := func(want uint64) { t.Helper(); e.waitDownAcked(k.id, want) }
	waitAcked(last)
	c.c.Close(websocket.StatusNormalClosure, "")
	e.clock.Advance(2 * time.Hour) // the first notice is over

	// Wiped: a new epoch, nothing applied.
	k.epoch, k.seq = "wiped-epoch", 0
	c = k.connect(t, 0)
	c.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return decodeAs[kiosk.Notice](t, b).Text == "package" })
	kinds := map[string][]string{}
	for _, it := range c.down {
		if it.Seq <= last {
			t.Fatalf("item %d (%s) resent from before the wipe; the snapshot goes after seq %d", it.Seq, it.Kind, last)
		}
		var id struct {
			ID        string `json:"id"`
			Ref       string `json:"ref"`
			RecordID  string `json:"record_id"`
			MessageID string `json:"message_id"`
			State     string `json:"state"`
			Text      string `json:"text"`
		}
		json.Unmarshal(it.Body, &id)
		kinds[it.Kind] = append(kinds[it.Kind], id.ID+id.Ref+id.RecordID+id.MessageID+id.Text+"/"+id.State)
	}
	want := map[string]int{wire.DownPolicy: 1, wire.DownTechnician: 1, wire.DownInmate: 3, wire.DownDeposit: 1,
		wire.DownRemoteCharge: 2, wire.DownRemoteSessionEnd: 1, wire.DownContact: 2, wire.DownInboundMessage: 1,
		wire.DownMessageStatus: 1, wire.DownNotice: 1}
	for kind, n := range want {
		if len(kinds[kind]) != n {
			t.Errorf("snapshot has %d %s items %v, want %d", len(kinds[kind]), kind, kinds[kind], n)
		}
	}
	if got := kinds[wire.DownInboundMessage]; len(got) == 1 && got[0] != in.ID+"/" {
		t.Errorf("inbound in the snapshot = %v, want %s", got, in.ID)
	}
	if got := strings.Join(kinds[wire.DownMessageStatus], " "); got != "m1/"+kiosk.MsgRejected {
		t.Errorf("message statuses = %q, want m1 rejected", got)
	}
	if t.Failed() {
		t.FailNow()
	}
	queued := e.terminalInfo(k.id).DownQueued
	// Gone again before applying anything: the same position does not queue a second snapshot.
	c.c.Close(websocket.StatusNormalClosure, "")
	c = k.connect(t, 0)
	c.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return decodeAs[kiosk.Notice](t, b).Text == "package" })
	if ti := e.terminalInfo(k.id); ti.DownQueued != queued {
		t.Fatalf("a second snapshot was queued: down_queued %d, was %d", ti.DownQueued, queued)
	}
	c.ackDown(c.lastSeq())
	waitAcked(c.lastSeq())
}

// enrollClaiming enrolls a new key for facility's mode, naming the terminal the store was.
func (e *env) enrollClaiming(facility, mode, replaces string) ([]byte, int, ed25519.PrivateKey) {
	e.t.Helper()
	en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: facility, Mode: mode})
	if err != nil {
		e.t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(wire.EnrollRequest{Code: en.Code, PublicKey: priv.Public().(ed25519.PublicKey),
		Signature: wire.SignEnroll(priv, en.Code), Replaces: replaces})
	resp, err := http.Post(e.srv.URL+wire.PathEnroll, "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return raw, resp.StatusCode, priv
}

// A store whose key was lost enrolls again under a new key and names the terminal it was: the
// relay retires that record (no downlink piles up for it), and the new one is its successor:
// its snapshot carries the status of the letters the old one forwarded, and it may credit the
// old one's charges. A claim to another facility's terminal is refused; a claim to a revoked
// terminal, or one the relay does not know, enrolls a plain new terminal.
func TestReenrollNewKeyNamesTheTerminalItWas(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.letterContact("A1", "pal")
	old := e.enroll(wire.ModeKiosk, "")
	oc := old.connect(t, 0)
	if ack := oc.batch(
		old.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		old.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: "my file"}),
	); ack.Seq != 2 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	oc.c.Close(websocket.StatusNormalClosure, "")

	raw, status, priv := e.enrollClaiming("north", wire.ModeKiosk, old.id)
	if status != http.StatusOK {
		t.Fatalf("enrolling a new key for the same store: %d %s", status, raw)
	}
	var er wire.EnrollResponse
	if err := json.Unmarshal(raw, &er); err != nil {
		t.Fatal(err)
	}
	if oi := e.terminalInfo(old.id); !oi.Revoked {
		t.Fatalf("the terminal the store was is not retired: %+v", oi)
	}
	if ni := e.terminalInfo(er.TerminalID); ni.Replaces != old.id {
		t.Fatalf("new terminal replaces %q, want %q", ni.Replaces, old.id)
	}
	nt := &term{e: e, id: er.TerminalID, priv: priv, epoch: "new-epoch", mode: wire.ModeKiosk}
	nc := nt.connect(t, 0)
	nc.waitDown(wire.DownMessageStatus, func(b json.RawMessage) bool {
		return decodeAs[wire.MessageStatus](t, b).MessageID == "m1"
	})
	if ack := nc.batch(nt.item(wire.UpCredit, credit(charge("A1", "s1", 0, 5), 5, kiosk.CreditTerminalFault))); len(ack.Rejected) != 0 {
		t.Fatalf("credit of the old terminal's charge refused: %+v", ack)
	}

	if err := e.r.PutPolicy("south", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	south := e.enrollAt("south", wire.ModeKiosk, "")
	raw, status, _ = e.enrollClaiming("north", wire.ModeKiosk, south.id)
	if er := wire.DecodeErrorResponse(raw); status != http.StatusConflict || er.Error != wire.EnrollKeyInUse || !strings.Contains(er.Message, "another facility") {
		t.Fatalf("claiming another facility's terminal: %d %s", status, raw)
	}
	if si := e.terminalInfo(south.id); si.Revoked {
		t.Fatal("a refused claim revoked the other facility's terminal")
	}

	if err := e.r.Revoke(er.TerminalID); err != nil {
		t.Fatal(err)
	}
	for _, claim := range []string{er.TerminalID, "t-never-enrolled"} {
		raw, status, _ = e.enrollClaiming("north", wire.ModeKiosk, claim)
		var got wire.EnrollResponse
		if status != http.StatusOK || json.Unmarshal(raw, &got) != nil {
			t.Fatalf("claiming %s: %d %s", claim, status, raw)
		}
		if ni := e.terminalInfo(got.TerminalID); ni.Replaces != "" {
			t.Fatalf("claiming %s made a successor of it: %+v", claim, ni)
		}
	}
}

// A letter's review reaches the store that holds it after it enrolled again twice: the status
// goes forward from the sender through every terminal that replaced it, revoked ones too.
func TestReviewReachesTheStoreAfterTwoReenrollments(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.letterContact("A1", "pal")
	x := e.enroll(wire.ModeKiosk, "")
	xc := x.connect(t, 0)
	if ack := xc.batch(x.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox,
		Peer: "pal", Body: "my file"})); ack.Seq != 1 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	xc.c.Close(websocket.StatusNormalClosure, "")
	again := func() string {
		t.Helper()
		en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: "north", Mode: wire.ModeKiosk})
		if err != nil {
			t.Fatal(err)
		}
		raw, status := e.postEnroll(en.Code, x.priv)
		var er wire.EnrollResponse
		if status != http.StatusOK || json.Unmarshal(raw, &er) != nil {
			t.Fatalf("enrolling again: %d %s", status, raw)
		}
		return er.TerminalID
	}
	y := again()
	z := again()
	if yi := e.terminalInfo(y); yi.ReplacedBy != z || !yi.Revoked {
		t.Fatalf("the middle terminal: %+v, want revoked and replaced by %s", yi, z)
	}
	if _, err := e.r.RejectOutbound("m1", "content_policy"); err != nil {
		t.Fatal(err)
	}
	zt := &term{e: e, id: z, priv: x.priv, epoch: "z-epoch", mode: wire.ModeKiosk}
	zc := zt.connect(t, 0)
	zc.waitDown(wire.DownMessageStatus, func(b json.RawMessage) bool {
		st := decodeAs[wire.MessageStatus](t, b)
		return st.MessageID == "m1" && st.State == kiosk.MsgRejected
	})
}

// A hello whose uplink_next is at or below what the relay holds for the epoch is a restored
// backup: a snapshot is queued and a new epoch asked for, once. A terminal that keeps saying so
// on the same epoch is asked again but does not make the relay build snapshot after snapshot.
func TestRestoredHelloSnapshotsOncePerEpoch(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	if ack := c.batch(k.item(wire.UpCharge, charge("A1", "s1", 0, 5)), k.item(wire.UpCharge, charge("A1", "s1", 1, 5))); ack.Seq != 2 {
		t.Fatalf("ack = %+v", ack)
	}
	last := c.lastSeq()
	c.ackDown(last)
	c.c.Close(websocket.StatusNormalClosure, "")
	restoredHello := func() {
		t.Helper()
		ws := dial(t, e.wsURL())
		send(t, ws, wire.Hello{TerminalID: k.id, Epoch: k.epoch, DownApplied: last, UplinkNext: 1})
		f := read(t, ws)
		send(t, ws, wire.Auth{Signature: wire.SignAuth(k.priv, k.id, f.Challenge.Nonce)})
		expectClose(t, ws, websocket.StatusPolicyViolation, wire.ReasonNewEpoch)
	}
	restoredHello()
	queued := e.terminalInfo(k.id).DownQueued
	if queued <= last {
		t.Fatalf("no snapshot queued for the restored store: downlink %d, was %d", queued, last)
	}
	restoredHello()
	if again := e.terminalInfo(k.id).DownQueued; again != queued {
		t.Fatalf("a second restored hello on the same epoch queued %d more items", again-queued)
	}
}

// A technician taken off the roster must not be let in again by a kiosk whose store missed the
// removal (a backup restored, a store wiped and rebuilt, a kiosk past the downlink log's cap):
// its snapshot removes them. One put back on the roster is not removed by the next snapshot.
func TestSnapshotRemovesTechniciansOffTheRoster(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.waitDown(wire.DownTechnician, func(b json.RawMessage) bool { return decodeAs[kiosk.Technician](t, b).ID == "T1" })
	if err := e.r.PutRoster("north", Roster{Inmates: []RosterInmate{{ID: "A1", Name: "Ana", Badges: []string{"B1"}, Language: "en", Status: kiosk.StatusActive}}}); err != nil {
		t.Fatal(err)
	}
	// Everything received is applied: the next hello with nothing applied is a wiped store.
	applyAll := func(c *tconn, last uint64) {
		t.Helper()
		c.ackDown(last)
		e.waitDownAcked(k.id, last)
		c.c.Close(websocket.StatusNormalClosure, "")
	}
	applyAll(c, c.waitDown(wire.DownTechnicianRemove, nil).Seq)

	snapshotTechs := func(epoch string) (kept, removed []string) {
		t.Helper()
		k.epoch, k.seq = epoch, 0
		c := k.connect(t, 0) // a store that applied nothing: it gets a snapshot
		last := c.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return decodeAs[kiosk.Inmate](t, b).ID == "A1" }).Seq
		defer applyAll(c, last)
		for _, it := range c.down {
			switch it.Kind {
			case wire.DownTechnician:
				kept = append(kept, decodeAs[kiosk.Technician](t, it.Body).ID)
			case wire.DownTechnicianRemove:
				removed = append(removed, decodeAs[wire.TechnicianRemoved](t, it.Body).ID)
			}
		}
		return kept, removed
	}
	if kept, removed := snapshotTechs("wiped-1"); len(kept) != 0 || len(removed) != 1 || removed[0] != "T1" {
		t.Fatalf("snapshot after the removal: technicians %v, removed %v; want none, and T1 removed", kept, removed)
	}

	back := Roster{
		Inmates:     []RosterInmate{{ID: "A1", Name: "Ana", Badges: []string{"B1"}, Language: "en", Status: kiosk.StatusActive}},
		Technicians: []RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, PIN: "9999", Role: "installer"}},
	}
	if err := e.r.PutRoster("north", back); err != nil {
		t.Fatal(err)
	}
	if kept, removed := snapshotTechs("wiped-2"); !slices.Contains(kept, "T1") || len(removed) != 0 {
		t.Fatalf("snapshot after T1 came back: technicians %v, removed %v; want T1 and no removal", kept, removed)
	}
}

// waitDownAcked waits until the relay has written terminal id's downlink acknowledgement at want.
func (e *env) waitDownAcked(id string, want uint64) {
	e.t.Helper()
	testwait.UntilSaw(e.t, fmt.Sprintf("down_acked of %s at %d", id, want), func() (bool, string) {
		got := e.terminalInfo(id).DownAcked
		return got == want, fmt.Sprintf("down_acked %d", got)
	})
}
