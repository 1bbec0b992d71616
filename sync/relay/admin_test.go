package relay

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/leaktest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Every admin call on its happy path, over HTTP, with what the terminals see of it.
func TestAdminHappyPaths(t *testing.T) {
	e := newEnv(t)

	var pol kiosk.Policy
	p := kiosk.DefaultPolicy()
	p.FacilityName = "North"
	p.MaxContacts = 2
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/policy", p, &pol)
	e.must(http.StatusOK, "GET", "/admin/v1/facilities/north/policy", nil, &pol)
	if pol.FacilityName != "North" || pol.MaxContacts != 2 {
		t.Fatalf("policy = %+v", pol)
	}
	// GET, change, PUT back: the way to change one field.
	pol.RatePerMinute = 7
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/south/policy", pol, &pol)
	if pol.RatePerMinute != 7 || pol.MaxContacts != 2 {
		t.Fatalf("policy put back = %+v", pol)
	}

	hash, _ := kiosk.HashPINWith("5555", kiosk.TestPINParams())
	roster := map[string]any{
		"inmates": []map[string]any{
			{"id": "A1", "name": "Ana", "badges": []string{"B1"}, "pin": "1234", "language": "en", "status": "active"},
			{"id": "A2", "name": "Bo", "badges": []string{"B2", "B2b"}, "pin_hash": hash, "language": "es", "status": "active"},
		},
		"technicians": []map[string]any{{"id": "T1", "name": "Tess", "badges": []string{"TB1"}, "pin": "9999", "role": "installer"}},
	}
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/roster", roster, nil)
	if leaktest.HasNumber(e.logText(), "1234") {
		t.Fatal("a PIN reached the log")
	}

	var en Enrollment
	e.must(http.StatusCreated, "POST", "/admin/v1/enrollments", map[string]any{"facility_id": "north", "mode": "kiosk"}, &en)
	if len(en.Code) != 14 || !en.ExpiresAt.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("enrollment = %+v", en)
	}
	e.must(http.StatusCreated, "POST", "/admin/v1/enrollments", map[string]any{"facility_id": "north", "mode": "tablet", "inmate_id": "A2"}, &en)

	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	// The roster entries arrive with argon2id hashes of the PINs sent in plain.
	a1 := decodeAs[kiosk.Inmate](t, c.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return decodeAs[kiosk.Inmate](t, b).ID == "A1" }).Body)
	if !kiosk.VerifyPIN(a1.PINHash, "1234") || !a1.Messaging {
		t.Fatalf("A1 = %+v", a1)
	}

	var dep kiosk.Deposit
	e.must(http.StatusCreated, "POST", "/admin/v1/deposits", map[string]any{"inmate_id": "A1", "cents": 2500, "ref": "dep-1"}, &dep)
	e.must(http.StatusOK, "POST", "/admin/v1/deposits", map[string]any{"inmate_id": "A1", "cents": 2500, "ref": "dep-1"}, &dep)
	if dep.Cents != 2500 || dep.Ref != "dep-1" {
		t.Fatalf("deposit = %+v", dep)
	}

	// Contacts: the kiosk asks for two; the admin approves one and declines the other.
	ack := c.batch(
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c1", InmateID: "A1", Name: "Mom", Email: "mom@example.org", State: kiosk.ContactPending}),
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c2", InmateID: "A1", Name: "Spam", Email: "x@example.org", State: kiosk.ContactPending}),
		k.item(wire.UpContactRequest, kiosk.Contact{ID: "c3", InmateID: "A1", Name: "Three", Email: "3@example.org", State: kiosk.ContactPending}),
	)
	if ack.Seq != 3 || len(ack.Rejected) != 1 || ack.Rejected[0] != (wire.Rejection{Seq: 3, Reason: RefuseContactLimit}) {
		t.Fatalf("ack = %+v", ack)
	}
	var cl struct{ Contacts []ContactRecord }
	e.must(http.StatusOK, "GET", "/admin/v1/contacts?status=pending", nil, &cl)
	if len(cl.Contacts) != 2 {
		t.Fatalf("pending contacts = %+v", cl)
	}
	var cr ContactRecord
	e.must(http.StatusOK, "POST", "/admin/v1/contacts/c1/approve", nil, &cr)
	e.accept("c1")
	e.must(http.StatusOK, "POST", "/admin/v1/contacts/c2/decline", map[string]string{"reason": "not a known person"}, &cr)
	if cr.State != kiosk.ContactDeclined || cr.Reason != "not a known person" {
		t.Fatalf("declined = %+v", cr)
	}
	got := decodeAs[kiosk.Contact](t, c.waitDown(wire.DownContact, func(b json.RawMessage) bool { return decodeAs[kiosk.Contact](t, b).ID == "c1" }).Body)
	if got.State != kiosk.ContactApproved {
		t.Fatalf("contact c1 downlink = %+v", got)
	}
	e.must(http.StatusOK, "GET", "/admin/v1/contacts?status=approved&inmate_id=A1", nil, &cl)
	if len(cl.Contacts) != 1 || cl.Contacts[0].ID != "c1" {
		t.Fatalf("approved = %+v", cl)
	}

	// Inbound from the approved contact, by id and by email.
	var m kiosk.Message
	e.must(http.StatusCreated, "POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "c1", "body": "Hello from home"}, &m)
	e.must(http.StatusCreated, "POST", "/admin/v1/inbound", map[string]any{"inmate_id": "A1", "from": "MOM@example.org", "subject": "Hi", "body": "Second"}, &m)
	in := decodeAs[kiosk.Message](t, c.waitDown(wire.DownInboundMessage, nil).Body)
	if in.Box != kiosk.BoxInbox || in.Peer != "c1" || in.PeerName != "Mom" || in.Body != "Hello from home" {
		t.Fatalf("inbound = %+v", in)
	}

	// Outbound: letters to contacts held by default (the email hold), a request to staff not
	// (its own review, none by default); one approved, one rejected; the kiosk sees both decisions.
	msg := func(id, peer, text string) kiosk.Message {
		return kiosk.Message{ID: id, InmateID: "A1", Box: kiosk.BoxOutbox, Peer: peer, Body: text, State: kiosk.MsgQueued, CreatedAt: t0}
	}
	ack = c.batch(k.item(wire.UpMessage, msg("m1", "c1", "hi mom")), k.item(wire.UpMessage, msg("m2", "c1", "bad words")),
		k.item(wire.UpMessage, msg("m3", "dept-medical", "my tooth")))
	if ack.Seq != 6 || len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	var ol struct{ Messages []Outbound }
	e.must(http.StatusOK, "GET", "/admin/v1/outbound?status=held&inmate_id=A1", nil, &ol)
	if len(ol.Messages) != 2 || ol.Messages[0].ID != "m1" || ol.Messages[1].ID != "m2" || ol.Messages[0].TerminalID != k.id {
		t.Fatalf("held = %+v; want m1 and m2, not the request m3", ol)
	}
	// A PREA report is never held with the mail and is listed apart, even from a suspended inmate.
	ack = c.batch(k.item(wire.UpPREA, kiosk.Message{ID: "p1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: kiosk.PREAChannel, Body: "report"}))
	if ack.Seq != 7 || len(ack.Rejected) != 0 {
		t.Fatalf("prea ack = %+v", ack)
	}
	var pl struct{ Reports []Outbound }
	e.must(http.StatusOK, "GET", "/admin/v1/prea?inmate_id=A1", nil, &pl)
	if len(pl.Reports) != 1 || pl.Reports[0].Body != "report" {
		t.Fatalf("prea = %+v", pl)
	}
	e.must(http.StatusOK, "GET", "/admin/v1/outbound?status=held&inmate_id=A1", nil, &ol)
	if len(ol.Messages) != 2 {
		t.Fatalf("a PREA report joined the review queue: %+v", ol)
	}
	var o Outbound
	e.must(http.StatusOK, "POST", "/admin/v1/outbound/m1/approve", nil, &o)
	e.must(http.StatusOK, "POST", "/admin/v1/outbound/m2/reject", map[string]string{"reason": "content_policy"}, &o)
	if o.Status != kiosk.MsgRejected || o.Reason != "content_policy" {
		t.Fatalf("rejected = %+v", o)
	}
	e.must(http.StatusOK, "GET", "/admin/v1/outbound?status=delivered", nil, &ol)
	if len(ol.Messages) != 2 || ol.Messages[0].ID != "m1" || ol.Messages[1].ID != "m3" {
		t.Fatalf("delivered = %+v", ol)
	}
	st := decodeAs[wire.MessageStatus](t, c.waitDown(wire.DownMessageStatus, func(b json.RawMessage) bool {
		return decodeAs[wire.MessageStatus](t, b).MessageID == "m2" && decodeAs[wire.MessageStatus](t, b).State == kiosk.MsgRejected
	}).Body)
	if st.Reason != "content_policy" {
		t.Fatalf("status = %+v", st)
	}

	// Usage and balance: two charges, one credit.
	ack = c.batch(k.item(wire.UpCharge, charge("A1", "s1", 0, 5)), k.item(wire.UpCharge, charge("A1", "s1", 1, 5)),
		k.item(wire.UpCredit, kiosk.Credit{RecordID: "s1/1", SessionID: "s1", InmateID: "A1", Minute: 1, Cents: 5, Reason: "stall", At: t0}))
	if ack.Seq != 10 {
		t.Fatalf("ack = %+v", ack)
	}
	var u Usage
	e.must(http.StatusOK, "GET", "/admin/v1/usage?inmate_id=A1", nil, &u)
	if len(u.Records) != 3 || u.TotalCents != 5 {
		t.Fatalf("usage = %+v", u)
	}
	var bal Balance
	e.must(http.StatusOK, "GET", "/admin/v1/balances/A1", nil, &bal)
	if bal.BalanceCents != 2500-10+5 || bal.Deposits != 2500 {
		t.Fatalf("balance = %+v", bal)
	}

	var n wire.Notice
	e.must(http.StatusCreated, "POST", "/admin/v1/notices", map[string]any{"facility_id": "north", "text": "Kiosks close at 21:00"}, &n)
	if got := decodeAs[wire.Notice](t, c.waitDown(wire.DownNotice, nil).Body); got.Text != "Kiosks close at 21:00" {
		t.Fatalf("notice = %+v", got)
	}

	var items struct{ Items []StoredItem }
	e.must(http.StatusOK, "GET", "/admin/v1/items?terminal_id="+k.id+"&kind=charge", nil, &items)
	if len(items.Items) != 2 {
		t.Fatalf("items = %+v", items)
	}

	var tl struct{ Terminals []TerminalInfo }
	e.must(http.StatusOK, "GET", "/admin/v1/terminals", nil, &tl)
	if len(tl.Terminals) != 1 || !tl.Terminals[0].Connected || tl.Terminals[0].LastSeen.IsZero() || tl.Terminals[0].Mode != "kiosk" {
		t.Fatalf("terminals = %+v", tl)
	}
	// The terminal reports its queue in a device status; the list shows it.
	c.batch(k.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 17, "printer": "ok"}))
	e.must(http.StatusOK, "GET", "/admin/v1/terminals", nil, &tl)
	if tl.Terminals[0].ItemsWaiting != 17 {
		t.Fatalf("items waiting = %d", tl.Terminals[0].ItemsWaiting)
	}

	// Or in its hello, when it connects.
	k.waiting = 42
	c.c.Close(websocket.StatusNormalClosure, "")
	c = k.connect(t, c.lastSeq())
	e.must(http.StatusOK, "GET", "/admin/v1/terminals", nil, &tl)
	if tl.Terminals[0].ItemsWaiting != 42 || tl.Terminals[0].Software != "test" {
		t.Fatalf("after hello: %+v", tl.Terminals[0])
	}

	e.must(http.StatusOK, "POST", "/admin/v1/terminals/"+k.id+"/revoke", nil, nil)
	expectClose(t, c.c, websocket.StatusPolicyViolation, wire.ReasonRevoked)
	e.must(http.StatusOK, "GET", "/admin/v1/terminals", nil, &tl)
	if !tl.Terminals[0].Revoked {
		t.Fatalf("terminal not revoked: %+v", tl)
	}
}

// Every validation error: a 4xx with a JSON error naming the field, and nothing written.
func TestAdminValidation(t *testing.T) {
	e := newEnv(t)
	e.seed()
	long := strings.Repeat("x", 65)
	hash, _ := kiosk.HashPINWith("5555", kiosk.TestPINParams())
	inmate := func(change func(m map[string]any)) map[string]any {
		m := map[string]any{"id": "A9", "name": "Nine", "badges": []string{"B9"}, "pin": "1234", "language": "en", "status": "active"}
		change(m)
		return map[string]any{"inmates": []any{m}}
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"enroll empty body", "POST", "/admin/v1/enrollments", "", 400, "body"},
		{"enroll malformed", "POST", "/admin/v1/enrollments", `{"facility_id":`, 400, "body"},
		{"enroll syntax", "POST", "/admin/v1/enrollments", `{"facility_id" "x"}`, 400, "body"},
		{"enroll trailing", "POST", "/admin/v1/enrollments", `{"facility_id":"north","mode":"kiosk"} {}`, 400, "body"},
		{"enroll unknown field", "POST", "/admin/v1/enrollments", `{"facility_id":"north","mode":"kiosk","colour":1}`, 400, "colour"},
		{"enroll wrong type", "POST", "/admin/v1/enrollments", `{"facility_id":7,"mode":"kiosk"}`, 400, "facility_id"},
		{"enroll no facility", "POST", "/admin/v1/enrollments", `{"mode":"kiosk"}`, 400, "facility_id"},
		{"enroll bad facility id", "POST", "/admin/v1/enrollments", `{"facility_id":"a/b","mode":"kiosk"}`, 400, "facility_id"},
		{"enroll unknown facility", "POST", "/admin/v1/enrollments", `{"facility_id":"south","mode":"kiosk"}`, 404, "facility_id"},
		{"enroll bad mode", "POST", "/admin/v1/enrollments", `{"facility_id":"north","mode":"phone"}`, 400, "mode"},
		{"enroll kiosk with inmate", "POST", "/admin/v1/enrollments", `{"facility_id":"north","mode":"kiosk","inmate_id":"A1"}`, 400, "inmate_id"},
		{"enroll tablet without inmate", "POST", "/admin/v1/enrollments", `{"facility_id":"north","mode":"tablet"}`, 400, "inmate_id"},
		{"enroll tablet unknown inmate", "POST", "/admin/v1/enrollments", `{"facility_id":"north","mode":"tablet","inmate_id":"Z9"}`, 404, "inmate_id"},

		{"roster bad facility", "PUT", "/admin/v1/facilities/" + long + "/roster", `{"inmates":[]}`, 400, "facility"},
		{"roster not a list", "PUT", "/admin/v1/facilities/north/roster", `{"inmates":{}}`, 400, "inmates"},
		{"roster missing id", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { delete(m, "id") }), 400, "inmates[0].id"},
		{"roster missing name", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { m["name"] = " " }), 400, "inmates[0].name"},
		{"roster no badge", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { m["badges"] = []string{} }), 400, "inmates[0].badges"},
		{"roster bad badge", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { m["badges"] = []string{"a b"} }), 400, "inmates[0].badges[0]"},
		{"roster short pin", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { m["pin"] = "12" }), 400, "inmates[0].pin"},
		{"roster letters pin", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { m["pin"] = "12ab" }), 400, "inmates[0].pin"},
		{"roster pin and hash", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { m["pin_hash"] = hash }), 400, "inmates[0].pin"},
		{"roster bad hash", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { delete(m, "pin"); m["pin_hash"] = "$2a$10$bcrypt" }), 400, "inmates[0].pin_hash"},
		{"roster new without pin", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { delete(m, "pin") }), 400, "inmates[0].pin"},
		{"roster language", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { m["language"] = "fr" }), 400, "inmates[0].language"},
		{"roster status", "PUT", "/admin/v1/facilities/north/roster", inmate(func(m map[string]any) { m["status"] = "gone" }), 400, "inmates[0].status"},
		{"roster duplicate id", "PUT", "/admin/v1/facilities/north/roster", map[string]any{"inmates": []any{
			map[string]any{"id": "A9", "name": "N", "badges": []string{"X1"}, "pin": "1234", "language": "en", "status": "active"},
			map[string]any{"id": "A9", "name": "N", "badges": []string{"X2"}, "pin": "1234", "language": "en", "status": "active"}}}, 400, "inmates[1].id"},
		{"roster duplicate badge", "PUT", "/admin/v1/facilities/north/roster", map[string]any{"inmates": []any{
			map[string]any{"id": "A8", "name": "N", "badges": []string{"X1"}, "pin": "1234", "language": "en", "status": "active"}},
			"technicians": []any{map[string]any{"id": "T8", "name": "T", "badges": []string{"X1"}, "pin": "1234"}}}, 400, "technicians[0].badges[0]"},
		{"roster technician pin", "PUT", "/admin/v1/facilities/north/roster", map[string]any{
			"technicians": []any{map[string]any{"id": "T8", "name": "T", "badges": []string{"X1"}, "pin": "1"}}}, 400, "technicians[0].pin"},

		{"policy invalid", "PUT", "/admin/v1/facilities/north/policy", policyJSON(t, func(m map[string]any) { m["rate_cents_per_minute"] = 0 }), 400, "rate_cents_per_minute"},
		{"policy absurd rate", "PUT", "/admin/v1/facilities/north/policy", policyJSON(t, func(m map[string]any) { m["rate_cents_per_minute"] = 500 }), 400, "rate_cents_per_minute"},
		{"policy bad duration", "PUT", "/admin/v1/facilities/north/policy", `{"max_session":"forever"}`, 400, "body"},
		{"policy unknown field", "PUT", "/admin/v1/facilities/north/policy", `{"free_calls":true}`, 400, "free_calls"},
		{"policy curfew", "PUT", "/admin/v1/facilities/north/policy", policyJSON(t, func(m map[string]any) {
			m["curfew"] = []any{map[string]any{"weekday": 1, "start": "25:00", "end": "06:00"}}
		}), 400, "curfew[0].start"},
		{"policy of unknown facility", "GET", "/admin/v1/facilities/nowhere/policy", nil, 404, "facility"},
		{"monitoring missing", "PUT", "/admin/v1/facilities/north/monitoring", `{}`, 400, "hold_outbound"},
		{"monitoring type", "PUT", "/admin/v1/facilities/north/monitoring", `{"hold_outbound":"yes"}`, 400, "hold_outbound"},

		{"deposit negative", "POST", "/admin/v1/deposits", `{"inmate_id":"A1","cents":-5,"ref":"r1"}`, 400, "cents"},
		{"deposit zero", "POST", "/admin/v1/deposits", `{"inmate_id":"A1","cents":0,"ref":"r1"}`, 400, "cents"},
		{"deposit absurd", "POST", "/admin/v1/deposits", `{"inmate_id":"A1","cents":100000000,"ref":"r1"}`, 400, "cents"},
		{"deposit float", "POST", "/admin/v1/deposits", `{"inmate_id":"A1","cents":1.5,"ref":"r1"}`, 400, "cents"},
		{"deposit cents string", "POST", "/admin/v1/deposits", `{"inmate_id":"A1","cents":"100","ref":"r1"}`, 400, "cents"},
		{"deposit no ref", "POST", "/admin/v1/deposits", `{"inmate_id":"A1","cents":100}`, 400, "ref"},
		{"deposit no inmate", "POST", "/admin/v1/deposits", `{"cents":100,"ref":"r1"}`, 400, "inmate_id"},
		{"deposit unknown inmate", "POST", "/admin/v1/deposits", `{"inmate_id":"Z9","cents":100,"ref":"r1"}`, 404, "inmate_id"},
		{"deposit ref reused", "POST", "/admin/v1/deposits", `{"inmate_id":"A1","cents":101,"ref":"used"}`, 409, "ref"},

		{"inbound unknown inmate", "POST", "/admin/v1/inbound", `{"inmate_id":"Z9","from":"c1","body":"hi"}`, 404, "inmate_id"},
		{"inbound suspended", "POST", "/admin/v1/inbound", `{"inmate_id":"A3","from":"c1","body":"hi"}`, 409, "inmate_id"},
		{"inbound no from", "POST", "/admin/v1/inbound", `{"inmate_id":"A1","body":"hi"}`, 400, "from"},
		{"inbound not a contact", "POST", "/admin/v1/inbound", `{"inmate_id":"A1","from":"stranger@example.org","body":"hi"}`, 404, "from"},
		{"inbound empty body", "POST", "/admin/v1/inbound", `{"inmate_id":"A1","from":"c1","body":"  "}`, 400, "body"},
		{"inbound too long", "POST", "/admin/v1/inbound", `{"inmate_id":"A1","from":"c1","body":"` + strings.Repeat("y", 201) + `"}`, 400, "body"},
		{"inbound control char", "POST", "/admin/v1/inbound", `{"inmate_id":"A1","from":"c1","body":"a\u0000b"}`, 400, "body"},

		{"outbound bad status", "GET", "/admin/v1/outbound?status=lost", nil, 400, "status"},
		{"outbound unknown query", "GET", "/admin/v1/outbound?sort=asc", nil, 400, "sort"},
		{"approve unknown", "POST", "/admin/v1/outbound/nope/approve", nil, 404, "id"},
		{"reject without reason", "POST", "/admin/v1/outbound/nope/reject", `{}`, 400, "reason"},
		{"reject empty body", "POST", "/admin/v1/outbound/nope/reject", ``, 400, "body"},
		{"contacts bad status", "GET", "/admin/v1/contacts?status=maybe", nil, 400, "status"},
		{"approve unknown contact", "POST", "/admin/v1/contacts/nope/approve", nil, 404, "id"},
		{"decline bad body", "POST", "/admin/v1/contacts/nope/decline", `{"why":"x"}`, 400, "why"},
		{"usage without inmate", "GET", "/admin/v1/usage", nil, 400, "inmate_id"},
		{"usage unknown inmate", "GET", "/admin/v1/usage?inmate_id=Z9", nil, 404, "inmate_id"},
		{"balance unknown", "GET", "/admin/v1/balances/Z9", nil, 404, "inmate_id"},
		{"revoke unknown", "POST", "/admin/v1/terminals/t-nope/revoke", nil, 404, "id"},
		{"notice no text", "POST", "/admin/v1/notices", `{"facility_id":"north"}`, 400, "text"},
		{"notice language", "POST", "/admin/v1/notices", `{"facility_id":"north","text":"x","language":"de"}`, 400, "language"},
		{"notice past", "POST", "/admin/v1/notices", `{"facility_id":"north","text":"x","until":"2000-01-01T00:00:00Z"}`, 400, "until"},
		{"wrong method", "DELETE", "/admin/v1/deposits", nil, 405, "method"},
		{"unknown call", "GET", "/admin/v1/nothing", nil, 404, "path"},
		{"body too large", "POST", "/admin/v1/deposits", `{"ref":"` + strings.Repeat("r", maxAdminBody) + `"}`, 413, "body"},
	}
	e.must(http.StatusCreated, "POST", "/admin/v1/deposits", `{"inmate_id":"A2","cents":100,"ref":"used"}`, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := e.call(tc.method, tc.path, tc.body)
			var eb ErrorBody
			if err := json.Unmarshal(raw, &eb); err != nil {
				t.Fatalf("answer is not a JSON error: %s", raw)
			}
			if status != tc.status || eb.Field != tc.field || eb.Error == "" {
				t.Fatalf("%s %s: %d %+v, want %d naming %q", tc.method, tc.path, status, eb, tc.status, tc.field)
			}
		})
	}
	// Nothing half-written: the roster and the deposits are as seeded.
	var bal Balance
	e.must(http.StatusOK, "GET", "/admin/v1/balances/A1", nil, &bal)
	if bal.BalanceCents != 0 {
		t.Fatalf("balance after refused deposits = %+v", bal)
	}
	if _, err := e.r.Balance("A9"); kiosk.KindOf(err) != kiosk.KindNotFound {
		t.Fatalf("A9 exists after refused rosters: %v", err)
	}
}

func TestAdminToken(t *testing.T) {
	e := newEnv(t)
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + testToken, "Bearer " + testToken + "x"} {
		status, raw := e.callAuth("GET", "/admin/v1/terminals", nil, auth)
		if status != http.StatusUnauthorized || !strings.Contains(string(raw), `"field": "Authorization"`) {
			t.Fatalf("auth %q: %d %s", auth, status, raw)
		}
	}
	off := newEnv(t, func(c *Config) { c.AdminToken = "" })
	if status, _ := off.callAuth("GET", "/admin/v1/terminals", nil, "Bearer "); status != http.StatusForbidden {
		t.Fatalf("disabled admin API answered %d", status)
	}
}

// A roster update sends only what changed; an inmate dropped from the roster is suspended on the terminals.
func TestRosterUpdateFansOut(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.waitDown(wire.DownTechnician, nil)
	base := c.lastSeq()
	ro := Roster{Inmates: []RosterInmate{
		{ID: "A1", Name: "Ana", Badges: []string{"B1"}, Language: "en", Status: kiosk.StatusSuspended},
		{ID: "A2", Name: "Bo", Badges: []string{"B2"}, Language: "es", Status: kiosk.StatusActive},
	}}
	if err := e.r.PutRoster("north", ro); err != nil {
		t.Fatal(err)
	}
	a1 := decodeAs[kiosk.Inmate](t, c.waitDown(wire.DownInmate, func(b json.RawMessage) bool {
		return decodeAs[kiosk.Inmate](t, b).ID == "A1" && decodeAs[kiosk.Inmate](t, b).Status == "suspended"
	}).Body)
	if !kiosk.VerifyPIN(a1.PINHash, "1234") {
		t.Fatal("a roster entry without a pin lost its stored hash")
	}
	c.waitDown(wire.DownTechnicianRemove, nil)
	a3 := decodeAs[kiosk.Inmate](t, c.waitDown(wire.DownInmate, func(b json.RawMessage) bool { return decodeAs[kiosk.Inmate](t, b).ID == "A3" }).Body)
	if a3.Status != kiosk.StatusSuspended {
		t.Fatalf("dropped inmate = %+v", a3)
	}
	for _, it := range c.down {
		if it.Seq > base && it.Kind == wire.DownInmate && decodeAs[kiosk.Inmate](t, it.Body).ID == "A2" {
			t.Fatal("an unchanged inmate was sent again")
		}
	}
}

// Hold policies: none delivers at once; by facility follows the facility's setting.
func TestHoldPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy HoldPolicy
		hold   *bool
		want   string
	}{
		{HoldNone, nil, kiosk.MsgDelivered},
		{HoldByFacility, nil, kiosk.MsgHeld},
		{HoldByFacility, new(bool), kiosk.MsgDelivered},
		{HoldAll, new(bool), kiosk.MsgHeld},
	} {
		e := newEnv(t, func(c *Config) { c.HoldPolicy = tc.policy })
		e.seed()
		e.letterContact("A1", "pal")
		if tc.hold != nil {
			e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/monitoring", Monitoring{HoldOutbound: *tc.hold}, nil)
		}
		k := e.enroll(wire.ModeKiosk, "")
		c := k.connect(t, 0)
		ack := c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "m1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: "hi"}))
		if len(ack.Rejected) != 0 {
			t.Fatalf("ack = %+v", ack)
		}
		st := decodeAs[wire.MessageStatus](t, c.waitDown(wire.DownMessageStatus, nil).Body)
		if st.State != tc.want {
			t.Fatalf("%s/%v: state %s, want %s", tc.policy, tc.hold, st.State, tc.want)
		}
	}
	if _, err := Open(Config{DataDir: t.TempDir(), HoldPolicy: "some"}); FieldOf(err) != "hold_policy" {
		t.Fatalf("bad hold policy: %v", err)
	}
}

// TestReplyToRequest: Medical answers Ana's request; her kiosk gets the answer as an
// inbound_message threaded under the request. Wrong ids, letters that are no request, another
// department and an empty body are refused, and nothing is sent.
func TestReplyToRequest(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(k.item(wire.UpContactRequest, kiosk.Contact{ID: "c1", InmateID: "A1", Name: "Mom", Email: "mom@example.org", State: kiosk.ContactPending}))
	e.must(http.StatusOK, "POST", "/admin/v1/contacts/c1/approve", nil, nil)
	e.accept("c1")
	// The facility reviews requests to staff (request_review hold): staff answer one once it is
	// delivered.
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/monitoring", map[string]any{"hold_outbound": true, "request_review": "hold"}, nil)
	ack := c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "req-1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "dept-medical", Subject: "Tooth", Body: "My tooth hurts"}),
		k.item(wire.UpMessage, kiosk.Message{ID: "mom-1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "c1", Body: "Hi Mom"}))
	if len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	st, b := e.call("POST", "/admin/v1/requests/req-1/reply", map[string]any{"from": "dept-medical", "body": "x"})
	if st != http.StatusConflict || !strings.Contains(string(b), "message_id") {
		t.Fatalf("reply to a held request: %d %s; want 409 naming message_id", st, b)
	}
	e.must(http.StatusOK, "POST", "/admin/v1/outbound/req-1/approve", nil, nil)
	for _, tc := range []struct {
		id     string
		body   map[string]any
		status int
		field  string
	}{
		{"nope", map[string]any{"from": "dept-medical", "body": "x"}, http.StatusNotFound, "message_id"},
		{"mom-1", map[string]any{"from": "dept-medical", "body": "x"}, http.StatusConflict, "message_id"},
		{"req-1", map[string]any{"from": "dept-chaplain", "body": "x"}, http.StatusConflict, "from"},
		{"req-1", map[string]any{"from": "dept-medical", "body": "  "}, http.StatusBadRequest, "body"},
		{"req-1", map[string]any{"from": "dept-medical"}, http.StatusBadRequest, "body"},
		{"req-1", map[string]any{"body": "x"}, http.StatusBadRequest, "from"},
		{"req-1", map[string]any{"from": "dept-medical", "body": strings.Repeat("x", 201)}, http.StatusBadRequest, "body"},
	} {
		st, b := e.call("POST", "/admin/v1/requests/"+tc.id+"/reply", tc.body)
		var eb ErrorBody
		_ = json.Unmarshal(b, &eb)
		if st != tc.status || eb.Field != tc.field {
			t.Errorf("reply to %s with %v: %d %s; want %d naming %q", tc.id, tc.body, st, b, tc.status, tc.field)
		}
	}
	var m kiosk.Message
	e.must(http.StatusCreated, "POST", "/admin/v1/requests/req-1/reply",
		map[string]any{"from": "dept-medical", "subject": "Re: Tooth", "body": "Sick call Tuesday 9:00"}, &m)
	got := decodeAs[kiosk.Message](t, c.waitDown(wire.DownInboundMessage, nil).Body)
	if got.ID != m.ID || got.InmateID != "A1" || got.Peer != "dept-medical" || got.PeerName != "Medical" ||
		got.ReplyTo != "req-1" || got.Body != "Sick call Tuesday 9:00" || got.Box != kiosk.BoxInbox {
		// The refused calls sent nothing: the first inbound_message is the answer.
		t.Fatalf("inbound_message = %+v; want Medical's answer to req-1 for A1", got)
	}
}
