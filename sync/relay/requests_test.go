package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// TestRequestReviewIsItsOwnPolicy: requests to staff follow the facility's request_review
// (none by default), whatever the email hold does to letters to contacts.
func TestRequestReviewIsItsOwnPolicy(t *testing.T) {
	for _, tc := range []struct {
		name          string
		policy        HoldPolicy
		monitoring    map[string]any
		wantRequest   string
		wantToContact string
	}{
		{"email hold, requests not reviewed (default)", HoldAll, nil, kiosk.MsgDelivered, kiosk.MsgHeld},
		{"email hold off, requests held", HoldNone, map[string]any{"hold_outbound": false, "request_review": "hold"}, kiosk.MsgHeld, kiosk.MsgDelivered},
		{"both held", HoldAll, map[string]any{"hold_outbound": true, "request_review": "hold"}, kiosk.MsgHeld, kiosk.MsgHeld},
		{"by facility: mail held, requests not", HoldByFacility, map[string]any{"hold_outbound": true, "request_review": "none"}, kiosk.MsgDelivered, kiosk.MsgHeld},
		{"by facility: mail free, requests held", HoldByFacility, map[string]any{"hold_outbound": false, "request_review": "hold"}, kiosk.MsgHeld, kiosk.MsgDelivered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.HoldPolicy = tc.policy })
			e.seed()
			e.letterContact("A1", "pal")
			if tc.monitoring != nil {
				e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/monitoring", tc.monitoring, nil)
			}
			k := e.enroll(wire.ModeKiosk, "")
			c := k.connect(t, 0)
			ack := c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "req", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "dept-medical", Body: "tooth"}),
				k.item(wire.UpMessage, kiosk.Message{ID: "mail", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "pal", Body: "hi"}))
			if len(ack.Rejected) != 0 {
				t.Fatalf("ack = %+v", ack)
			}
			for id, want := range map[string]string{"req": tc.wantRequest, "mail": tc.wantToContact} {
				st := decodeAs[wire.MessageStatus](t, c.waitDown(wire.DownMessageStatus, func(b json.RawMessage) bool {
					return decodeAs[wire.MessageStatus](t, b).MessageID == id
				}).Body)
				if st.State != want {
					t.Errorf("%s: %s is %s, want %s", tc.name, id, st.State, want)
				}
			}
		})
	}
}

// TestRequestReviewSetting: GET shows the settings in force (a review target of an hour until
// one is set); a PUT without request_review or review_target keeps them; a value out of range is
// refused naming the field, and changes nothing.
func TestRequestReviewSetting(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldByFacility })
	e.seed()
	var m Monitoring
	e.must(http.StatusOK, "GET", "/admin/v1/facilities/north/monitoring", nil, &m)
	if m != (Monitoring{HoldOutbound: true, RequestReview: RequestReviewNone, PhotoReview: PhotoReviewHold, ReviewTarget: kiosk.Duration(time.Hour)}) {
		t.Fatalf("defaults = %+v", m)
	}
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/monitoring", map[string]any{"hold_outbound": true, "request_review": "hold", "review_target": "4h"}, nil)
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/monitoring", map[string]any{"hold_outbound": false}, nil)
	e.must(http.StatusOK, "GET", "/admin/v1/facilities/north/monitoring", nil, &m)
	if m != (Monitoring{HoldOutbound: false, RequestReview: RequestReviewHold, PhotoReview: PhotoReviewHold, ReviewTarget: kiosk.Duration(4 * time.Hour)}) {
		t.Fatalf("after a PUT without request_review and review_target = %+v", m)
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"hold_outbound": true, "request_review": "sometimes"}, "request_review"},
		{map[string]any{"hold_outbound": true, "review_target": "30s"}, "review_target"},
		{map[string]any{"hold_outbound": true, "review_target": "-1h"}, "review_target"},
		{map[string]any{"hold_outbound": true, "review_target": "1000h"}, "review_target"},
		{map[string]any{"hold_outbound": true, "review_target": "soon"}, "review_target"},
		{map[string]any{"hold_outbound": true, "review_target": "0s"}, "review_target"},
	} {
		st, b := e.call("PUT", "/admin/v1/facilities/north/monitoring", tc.body)
		var eb ErrorBody
		_ = json.Unmarshal(b, &eb)
		if st != http.StatusBadRequest || eb.Field != tc.field {
			t.Errorf("PUT %v: %d %s, want 400 naming %s", tc.body, st, b, tc.field)
		}
	}
	e.must(http.StatusOK, "GET", "/admin/v1/facilities/north/monitoring", nil, &m)
	if m.ReviewTarget.D() != 4*time.Hour || m.HoldOutbound {
		t.Errorf("refused PUTs changed the settings: %+v", m)
	}
}

// TestReplyOnceByIdempotencyKey: a department's console retries a reply (a timeout, a double
// click): the same key and reply store and send one letter; the same key with another reply is
// a conflict; another key is another reply.
func TestReplyOnceByIdempotencyKey(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HoldPolicy = HoldNone })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	if ack := c.batch(k.item(wire.UpMessage, kiosk.Message{ID: "req-1", InmateID: "A1", Box: kiosk.BoxOutbox, Peer: "dept-medical", Body: "My tooth hurts"})); len(ack.Rejected) != 0 {
		t.Fatalf("ack = %+v", ack)
	}
	reply := func(key string, body map[string]any) (int, kiosk.Message, string) {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", e.srv.URL+"/admin/v1/requests/req-1/reply", strings.NewReader(string(raw)))
		req.Header.Set("Authorization", "Bearer "+testToken)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m kiosk.Message
		var eb ErrorBody
		dec := json.NewDecoder(resp.Body)
		if resp.StatusCode < 300 {
			_ = dec.Decode(&m)
		} else {
			_ = dec.Decode(&eb)
		}
		return resp.StatusCode, m, eb.Field
	}
	answer := map[string]any{"from": "dept-medical", "body": "Sick call Tuesday"}
	st1, m1, _ := reply("k-1", answer)
	st2, m2, _ := reply("k-1", answer)
	if st1 != http.StatusCreated || st2 != http.StatusOK || m1.ID == "" || m2.ID != m1.ID {
		t.Fatalf("the same reply twice: %d %s, then %d %s; want 201 then 200 with the same letter", st1, m1.ID, st2, m2.ID)
	}
	// The body's id is the same key.
	if st, m, _ := e.callReply(map[string]any{"id": "k-1", "from": "dept-medical", "body": "Sick call Tuesday"}); st != http.StatusOK || m.ID != m1.ID {
		t.Fatalf("the same key in the body: %d %s", st, m.ID)
	}
	if st, _, field := reply("k-1", map[string]any{"from": "dept-medical", "body": "Sick call Wednesday"}); st != http.StatusConflict || field != "id" {
		t.Fatalf("the key with another reply: %d naming %q; want 409 naming id", st, field)
	}
	if st, _, field := reply("k-2", map[string]any{"id": "k-3", "from": "dept-medical", "body": "x"}); st != http.StatusBadRequest || field != "Idempotency-Key" {
		t.Fatalf("header and body disagree: %d naming %q", st, field)
	}
	st3, m3, _ := reply("k-2", map[string]any{"from": "dept-medical", "body": "And bring your card"})
	if st3 != http.StatusCreated || m3.ID == m1.ID {
		t.Fatalf("another key: %d %s", st3, m3.ID)
	}
	// The kiosk got two letters, the first once; the relay keeps two.
	c.waitDown(wire.DownInboundMessage, func(b json.RawMessage) bool { return decodeAs[kiosk.Message](t, b).ID == m3.ID })
	seen := map[string]int{}
	for _, it := range c.down {
		if it.Kind == wire.DownInboundMessage {
			seen[decodeAs[kiosk.Message](t, it.Body).ID]++
		}
	}
	if len(seen) != 2 || seen[m1.ID] != 1 || seen[m3.ID] != 1 {
		t.Fatalf("inbound letters sent down: %v", seen)
	}
	n := 0
	_ = e.r.db.View(context.Background(), func(tx kv.Tx) error { n = tx.Bucket([]byte(bInbound)).KeyN(); return nil })
	if n != 2 {
		t.Fatalf("the relay stored %d inbound letters, want 2", n)
	}
}

func (e *env) callReply(body map[string]any) (int, kiosk.Message, string) {
	e.t.Helper()
	st, b := e.call("POST", "/admin/v1/requests/req-1/reply", body)
	var m kiosk.Message
	var eb ErrorBody
	_ = json.Unmarshal(b, &m)
	_ = json.Unmarshal(b, &eb)
	return st, m, eb.Field
}
