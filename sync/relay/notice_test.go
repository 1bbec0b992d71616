package relay

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/wire"
)

// A notice posted without `until` has no expiry and carries no `until` at all, neither in the
// admin answer nor in the downlink body (it used to say "0001-01-01T00:00:00Z", which an
// outside terminal reads as long expired); one with `until` carries it as given.
func TestNoticeWithoutUntil(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	kc := k.connect(t, 0)

	keys := func(raw []byte) map[string]json.RawMessage {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
		return m
	}
	status, raw := e.call("POST", "/admin/v1/notices", `{"facility_id":"north","text":"Kiosks close at 21:00"}`)
	if status != http.StatusCreated {
		t.Fatalf("post notice: %d %s", status, raw)
	}
	if u, ok := keys(raw)["until"]; ok {
		t.Fatalf("admin answer carries until %s for a notice without expiry", u)
	}
	id := string(keys(raw)["id"])
	it := kc.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return string(keys(b)["id"]) == id })
	if u, ok := keys(it.Body)["until"]; ok {
		t.Fatalf("downlink notice carries until %s for a notice without expiry: %s", u, it.Body)
	}

	until := t0.Add(48 * time.Hour)
	var n wire.Notice
	e.must(http.StatusCreated, "POST", "/admin/v1/notices",
		map[string]any{"facility_id": "north", "text": "Visits cancelled", "until": until}, &n)
	it = kc.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return string(keys(b)["id"]) == `"`+n.ID+`"` })
	var got wire.Notice
	if err := json.Unmarshal(it.Body, &got); err != nil || !got.Until.Equal(until) {
		t.Fatalf("downlink notice until = %v (%v), want %v: %s", got.Until, err, until, it.Body)
	}
}

// A terminal shows a notice of at most 2000 bytes (vocab.ValidateNoticeText) and refuses a
// longer one, so the relay refuses it when it is posted, naming the text, rather than take a
// notice no screen will show: 1000 "ñ" are 2000 bytes and pass, 1001 are 2002 bytes and do
// not, although they are only 1001 characters.
func TestNoticeTextWithinTerminalLimit(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.must(http.StatusCreated, "POST", "/admin/v1/notices",
		map[string]any{"facility_id": "north", "text": strings.Repeat("ñ", 1000)}, nil)
	status, raw := e.call("POST", "/admin/v1/notices",
		map[string]any{"facility_id": "north", "text": strings.Repeat("ñ", 1001)})
	var body ErrorBody
	if err := json.Unmarshal(raw, &body); err != nil || status != http.StatusBadRequest || body.Field != "text" {
		t.Fatalf("post a notice of 2002 bytes: %d %s (%v), want 400 naming the text", status, raw, err)
	}
}
