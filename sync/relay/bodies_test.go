package relay

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/sync/wire"
)

// bodyCase is one uplink body and whether the documented schema refuses it.
type bodyCase struct {
	name string
	kind string
	body map[string]any
	bad  bool
}

// uplinkBodyCases: for each kind a body a real terminal sends, then that body with one
// required field dropped, mistyped or beyond its limit.
func uplinkBodyCases() []bodyCase {
	at := "2026-03-02T10:00:00Z"
	base := map[string]map[string]any{
		wire.UpMessage: {"id": "m-1", "inmate_id": "A1", "box": "outbox", "peer": "dept-medical", "peer_name": "Medical",
			"body": "Tooth ache", "state": "queued", "created_at": at, "updated_at": at},
		wire.UpPREA: {"id": "p-1", "inmate_id": "A1", "box": "outbox", "peer": "prea", "peer_name": "PREA report",
			"body": "report", "state": "queued", "created_at": at, "updated_at": at},
		wire.UpContactRequest: {"id": "c-1", "inmate_id": "A1", "name": "Mom", "email": "mom@example.org", "state": "pending", "updated_at": at},
		wire.UpContactRemove:  {"id": "c-0", "inmate_id": "A1", "name": "Mom", "email": "", "state": "removed", "updated_at": at},
		wire.UpCharge:         {"record_id": "s-1/000000", "session_id": "s-1", "inmate_id": "A1", "minute": 0, "cents": 5, "at": at},
		wire.UpCredit:         {"record_id": "s-1/000000", "session_id": "s-1", "inmate_id": "A1", "minute": 0, "cents": 5, "reason": "stall", "at": at},
		wire.UpSessionEnd: {"id": "s-1", "inmate_id": "A1", "start": at, "end": "2026-03-02T10:02:00Z", "minutes": 2,
			"rate_cents": 5, "charged_cents": 10, "credited_cents": 5, "end_reason": "logout"},
		wire.UpAudit:        {"id": "ev-1", "at": at, "kind": "login_ok", "actor": "A1", "detail": map[string]any{"badge_hint": "…34"}},
		wire.UpDeviceStatus: {"items_waiting": 3, "printer": "ok"},
		wire.UpMessageRead:  {"message_id": "in-1", "inmate_id": "A1", "at": at},
		wire.UpQuizAttempt:  {"id": "qa-1", "inmate_id": "A1", "course_id": "crs-1", "quiz_id": "q1", "answers": []int{1, 0}, "at": at},
		wire.UpLibraryUse:   {"inmate_id": "A1", "day": "2026-03-02", "minutes": 40, "at": at},
	}
	with := func(kind string, change func(map[string]any)) map[string]any {
		m := map[string]any{}
		for k, v := range base[kind] {
			m[k] = v
		}
		change(m)
		return m
	}
	drop := func(f string) func(map[string]any) { return func(m map[string]any) { delete(m, f) } }
	set := func(f string, v any) func(map[string]any) { return func(m map[string]any) { m[f] = v } }
	var cases []bodyCase
	for _, kind := range wire.UpKinds {
		cases = append(cases, bodyCase{"whole", kind, base[kind], false})
	}
	bad := func(kind, name string, change func(map[string]any)) {
		cases = append(cases, bodyCase{name, kind, with(kind, change), true})
	}
	ok := func(kind, name string, change func(map[string]any)) {
		cases = append(cases, bodyCase{name, kind, with(kind, change), false})
	}
	long := strings.Repeat("x", 65)
	for _, k := range []string{wire.UpMessage, wire.UpPREA} {
		bad(k, "no id", drop("id"))
		bad(k, "id with slash", set("id", "m/1"))
		bad(k, "id too long", set("id", long))
		bad(k, "body a number", set("body", 5))
	}
	bad(wire.UpMessage, "no inmate", drop("inmate_id"))
	ok(wire.UpPREA, "anonymous", set("inmate_id", ""))
	ok(wire.UpPREA, "anonymous, no key", drop("inmate_id"))
	bad(wire.UpContactRequest, "no id", drop("id"))
	bad(wire.UpContactRequest, "no inmate", drop("inmate_id"))
	bad(wire.UpContactRequest, "blank name", set("name", "  "))
	bad(wire.UpContactRequest, "name too long", set("name", strings.Repeat("n", 101)))
	// The kiosk's limit is 100 characters, not bytes: a name it accepts is never refused here.
	ok(wire.UpContactRequest, "100 characters of 3 bytes", set("name", strings.Repeat("媽", 100)))
	bad(wire.UpContactRequest, "name with spaces around it", set("name", " Mom "))
	bad(wire.UpContactRequest, "name with a control character", set("name", "Mom\x1b[2J"))
	bad(wire.UpContactRequest, "email too long", set("email", strings.Repeat("e", 250)+"@x.org"))
	bad(wire.UpContactRequest, "no email", drop("email"))
	bad(wire.UpContactRequest, "email with a display name", set("email", "Mom <mom@example.org>"))
	bad(wire.UpContactRequest, "two addresses", set("email", "mom@example.org,x@evil.example"))
	bad(wire.UpContactRequest, "email with a line break", set("email", "mom@example.org\r\nBcc: x@evil.example"))
	bad(wire.UpContactRequest, "email not as the kiosk stores it", set("email", "mom@EXAMPLE.org"))
	bad(wire.UpContactRemove, "no id", drop("id"))
	bad(wire.UpContactRemove, "no inmate", drop("inmate_id"))
	for _, k := range []string{wire.UpCharge, wire.UpCredit} {
		bad(k, "no record id", drop("record_id"))
		bad(k, "no inmate", drop("inmate_id"))
		bad(k, "negative cents", set("cents", -5))
		bad(k, "cents above the rate cap", set("cents", 101))
		bad(k, "cents a string", set("cents", "5"))
		bad(k, "negative minute", set("minute", -1))
	}
	// A stamp names its letter in message_id and record_id alike, and bills no minute.
	bad(wire.UpCharge, "stamp of another letter", func(m map[string]any) { m["record_id"], m["message_id"], m["session_id"] = "stamp/m-2", "m-1", "" })
	bad(wire.UpCharge, "stamp record without its letter", func(m map[string]any) { m["record_id"], m["session_id"] = "stamp/m-1", "" })
	bad(wire.UpCharge, "stamp in a session", func(m map[string]any) { m["record_id"], m["message_id"] = "stamp/m-1", "m-1" })
	// A purchase names its item and its own id, bills no minute, and costs 1 to MaxItemPrice.
	purchase := func(change func(m map[string]any)) func(m map[string]any) {
		return func(m map[string]any) {
			m["record_id"], m["item_id"], m["session_id"], m["cents"] = "buy/p-1", "trk-1", "", 129
			change(m)
		}
	}
	bad(wire.UpCharge, "purchase without its item", purchase(func(m map[string]any) { delete(m, "item_id") }))
	bad(wire.UpCharge, "purchase id with slash", purchase(func(m map[string]any) { m["record_id"] = "buy/p/1" }))
	bad(wire.UpCharge, "purchase in a session", purchase(func(m map[string]any) { m["session_id"] = "s-1" }))
	bad(wire.UpCharge, "free purchase", purchase(func(m map[string]any) { m["cents"] = 0 }))
	bad(wire.UpCharge, "purchase above the largest price", purchase(func(m map[string]any) { m["cents"] = 5001 }))
	bad(wire.UpCharge, "item without a purchase record", func(m map[string]any) { m["item_id"] = "trk-1" })
	for _, f := range []string{"id", "inmate_id", "course_id", "quiz_id", "answers", "at"} {
		bad(wire.UpQuizAttempt, "no "+f, drop(f))
	}
	bad(wire.UpQuizAttempt, "no answers", set("answers", []int{}))
	bad(wire.UpQuizAttempt, "answer beyond the choices", set("answers", []int{6}))
	bad(wire.UpQuizAttempt, "course id with slash", set("course_id", "c/1"))
	for _, f := range []string{"inmate_id", "day", "minutes", "at"} {
		bad(wire.UpLibraryUse, "no "+f, drop(f))
	}
	bad(wire.UpLibraryUse, "a terminal named by the body", set("terminal_id", "t-other"))
	bad(wire.UpLibraryUse, "no minute", set("minutes", 0))
	bad(wire.UpLibraryUse, "more minutes than a day", set("minutes", 24*60+1))
	bad(wire.UpLibraryUse, "a day not a date", set("day", "2026-02-30"))
	for _, f := range []string{"id", "inmate_id", "start", "end", "minutes", "rate_cents", "charged_cents", "credited_cents", "end_reason"} {
		bad(wire.UpSessionEnd, "no "+f, drop(f))
	}
	bad(wire.UpSessionEnd, "null end", set("end", nil))
	bad(wire.UpSessionEnd, "zero end", set("end", "0001-01-01T00:00:00Z"))
	bad(wire.UpSessionEnd, "end before start", set("end", "2026-03-02T09:59:00Z"))
	bad(wire.UpSessionEnd, "credited above charged", set("credited_cents", 15))
	bad(wire.UpSessionEnd, "rate above the cap", set("rate_cents", 101))
	bad(wire.UpSessionEnd, "end reason with C1", set("end_reason", "log\u0085out"))
	ok(wire.UpSessionEnd, "no terminal (the relay records its own)", drop("terminal"))
	ok(wire.UpSessionEnd, "end reason with a space", set("end_reason", "terminal fault"))
	for _, f := range []string{"id", "at", "kind"} {
		bad(wire.UpAudit, "no "+f, drop(f))
	}
	bad(wire.UpAudit, "id with slash", set("id", "a/b"))
	bad(wire.UpAudit, "kind with newline", set("kind", "login\nok"))
	bad(wire.UpAudit, "kind too long", set("kind", long))
	bad(wire.UpAudit, "actor with bidi override", set("actor", "A\u202e1"))
	bad(wire.UpAudit, "detail not strings", set("detail", map[string]any{"n": 5}))
	bad(wire.UpAudit, "detail value too long", set("detail", map[string]any{"v": strings.Repeat("v", 2001)}))
	many := map[string]any{}
	for i := range 65 {
		many[fmt.Sprint("k", i)] = "v"
	}
	bad(wire.UpAudit, "detail too many entries", set("detail", many))
	ok(wire.UpAudit, "no actor, no detail", func(m map[string]any) { delete(m, "actor"); delete(m, "detail") })
	ok(wire.UpAudit, "detail value with a line break", set("detail", map[string]any{"error": "line 1\nline 2"}))
	ok(wire.UpAudit, "unknown field", set("severity", "high"))
	for _, f := range []string{"message_id", "inmate_id", "at"} {
		bad(wire.UpMessageRead, "no "+f, drop(f))
	}
	bad(wire.UpMessageRead, "message id with slash", set("message_id", "in/1"))
	bad(wire.UpMessageRead, "zero at", set("at", "0001-01-01T00:00:00Z"))
	return cases
}

// The relay refuses as `invalid` exactly the uplink bodies the documented schema
// (wire.CheckUpBody) refuses: an outside terminal that follows docs/PROTOCOL.md is not refused,
// and one that does not is told so.
func TestUplinkBodiesFollowSchema(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	for i, tc := range uplinkBodyCases() {
		raw, err := json.Marshal(tc.body)
		if err != nil {
			t.Fatal(err)
		}
		verr := wire.CheckUpBody(tc.kind, raw)
		if (verr != nil) != tc.bad {
			t.Errorf("%s %s: CheckUpBody = %v, want refused %v", tc.kind, tc.name, verr, tc.bad)
		}
		// Fresh record ids per case, so a case is never a duplicate of an earlier one.
		var m map[string]any
		json.Unmarshal(raw, &m)
		for _, f := range []string{"id", "record_id"} {
			if s, ok := m[f].(string); ok && s != "" {
				m[f] = fmt.Sprintf("%s-%d", s, i)
			}
		}
		raw, _ = json.Marshal(m)
		it := k.item(tc.kind, json.RawMessage(raw))
		ack := c.batch(it)
		refused := ""
		for _, r := range ack.Rejected {
			if r.Seq == it.Seq {
				refused = r.Reason
			}
		}
		// Other reasons depend on the relay's records, not on the body's shape.
		if (refused == wire.RefuseInvalid) != tc.bad {
			t.Errorf("%s %s: relay refused %q, want invalid %v\n%s", tc.kind, tc.name, refused, tc.bad, raw)
		}
	}
}
