package kiosk

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestTechnicianActionIsAuditedAndForwarded(t *testing.T) {
	f := newLoginFixture(t)
	pending0, err := f.store.Pending(0, 10000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.term.TechnicianAction("T-1", "sync_now", nil); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Second)
	if err := f.term.TechnicianAction("T-1", "device_set", map[string]string{"device": "door", "path": "/dev/ttyUSB0", "framing": "em4100"}); err != nil {
		t.Fatal(err)
	}
	got, err := f.term.RecentTechnicianActions(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != "tech_device_set" || got[1].Kind != "tech_sync_now" {
		t.Fatalf("recent technician actions = %+v, want device_set then sync_now", got)
	}
	if got[0].Actor != "T-1" || got[0].Detail["framing"] != "em4100" || !got[0].At.Equal(loginStart.Add(time.Second)) {
		t.Errorf("device_set event = %+v", got[0])
	}
	// Both are queued for the relay as audit items.
	pending, err := f.store.Pending(0, 10000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, it := range pending[len(pending0):] {
		if it.Kind != ItemAudit {
			t.Errorf("item %d kind %q, want audit", it.Seq, it.Kind)
			continue
		}
		var ev AuditEvent
		if err := json.Unmarshal(it.Body, &ev); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, ev.Kind)
	}
	if strings.Join(kinds, ",") != "tech_sync_now,tech_device_set" {
		t.Errorf("forwarded audit kinds = %v", kinds)
	}
	// n bounds the list; other audit events (logins, roster) are not technician actions.
	if one, err := f.term.RecentTechnicianActions(1); err != nil || len(one) != 1 || one[0].Kind != "tech_device_set" {
		t.Errorf("RecentTechnicianActions(1) = %+v, %v", one, err)
	}
}

func TestTechnicianActionRefusals(t *testing.T) {
	f := newLoginFixture(t)
	cases := []struct {
		name, tech, action string
		detail             map[string]string
		kind               Kind
	}{
		{"inmate is no technician", "I-1", "sync_now", nil, KindNotFound},
		{"unknown technician", "T-404", "sync_now", nil, KindNotFound},
		{"no technician", "", "sync_now", nil, KindInvalid},
		{"empty action", "T-1", "", nil, KindInvalid},
		{"odd action", "T-1", "Sync Now!", nil, KindInvalid},
		{"enrollment code", "T-1", "enroll", map[string]string{"code": "ABCD-1234"}, KindInvalid},
		{"pin", "T-1", "pin_test", map[string]string{"PIN": "1234"}, KindInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.term.TechnicianAction(c.tech, c.action, c.detail)
			if KindOf(err) != c.kind {
				t.Fatalf("err = %v (kind %v), want kind %v", err, KindOf(err), c.kind)
			}
			for _, secret := range c.detail {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error repeats the secret %q: %v", secret, err)
				}
			}
		})
	}
	if got, err := f.term.RecentTechnicianActions(10); err != nil || len(got) != 0 {
		t.Errorf("refused actions left audit events: %+v, %v", got, err)
	}
}

func TestTechnicianActionLongDetailIsCut(t *testing.T) {
	f := newLoginFixture(t)
	long := "x" + strings.Repeat("é", 2500) // two-byte characters, so byte 200 falls inside one
	if err := f.term.TechnicianAction("T-1", "device_set", map[string]string{"error": long}); err != nil {
		t.Fatal(err)
	}
	got, err := f.term.RecentTechnicianActions(1)
	if err != nil || len(got) != 1 {
		t.Fatalf("%+v, %v", got, err)
	}
	kept := got[0].Detail["error"]
	if n := len(kept); n > maxTechDetail+len("…") || !strings.HasSuffix(kept, "é…") {
		t.Errorf("detail kept %d bytes: %q", n, kept)
	}
	if !utf8.ValidString(kept) || strings.ContainsRune(kept, utf8.RuneError) {
		t.Errorf("detail was cut inside a character: %q", kept)
	}
}
