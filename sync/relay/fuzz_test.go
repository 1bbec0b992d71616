package relay

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Each admin body decoder either refuses its input with an error naming a field, or returns a
// value the operation's own validation can judge without panicking.

func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && FieldOf(err) == "" {
		t.Fatalf("decode error names no field: %v", err)
	}
	if err != nil && kiosk.KindOf(err) != kiosk.KindInvalid {
		t.Fatalf("decode error is not KindInvalid: %v", err)
	}
}

func FuzzDecodeEnrollmentRequest(f *testing.F) {
	f.Add([]byte(`{"facility_id":"north","mode":"kiosk"}`))
	f.Add([]byte(`{"facility_id":"north","mode":"tablet","inmate_id":"A1"}`))
	f.Add([]byte(`{"facility_id":7}`))
	f.Add([]byte(`{"x":1} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeEnrollmentRequest(b)
		checkDecodeErr(t, err)
		if err == nil {
			_ = checkID("", "facility_id", v.FacilityID)
		}
	})
}

func FuzzDecodeRoster(f *testing.F) {
	f.Add([]byte(`{"inmates":[{"id":"A1","name":"Ana","badges":["B1"],"pin":"1234","language":"en","status":"active"}],"technicians":[{"id":"T1","name":"T","badges":["TB"],"pin_hash":"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5"}]}`))
	f.Add([]byte(`{"inmates":[{"id":"A1","badges":["B1","B1"]}]}`))
	f.Add([]byte(`{"inmates":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ro, err := decodeRoster(b)
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		if err := validateRoster("north", ro); err != nil && FieldOf(err) == "" {
			t.Fatalf("roster error names no field: %v", err)
		}
		for _, in := range ro.Inmates {
			if in.PIN != "" && strings.Contains(in.String(), in.PIN) && !strings.Contains(in.ID, in.PIN) {
				t.Fatalf("String() shows the PIN")
			}
		}
	})
}

func FuzzDecodePolicy(f *testing.F) {
	p, _ := json.Marshal(kiosk.DefaultPolicy())
	f.Add(p)
	f.Add([]byte(`{"rate_cents_per_minute":7,"max_session":"45m"}`))
	f.Add([]byte(`{"curfew":[{"weekday":9,"start":"22:00","end":"06:00"}]}`))
	f.Add([]byte(`{"max_session":"forever"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pol, err := decodePolicy(b)
		checkDecodeErr(t, err)
		if err == nil {
			if verr := pol.Validate(); verr != nil && policyField(verr) == "" {
				t.Fatalf("policy error names no field: %v", verr)
			}
		}
	})
}

func FuzzDecodeMonitoring(f *testing.F) {
	f.Add([]byte(`{"hold_outbound":true}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeMonitoring(b)
		checkDecodeErr(t, err)
	})
}

func FuzzDecodeNotice(f *testing.F) {
	f.Add([]byte(`{"facility_id":"north","text":"Closed at 9","until":"2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"until":"yesterday"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeNotice(b)
		checkDecodeErr(t, err)
	})
}

func FuzzDecodeDeposit(f *testing.F) {
	f.Add([]byte(`{"inmate_id":"A1","cents":2500,"ref":"dep-1"}`))
	f.Add([]byte(`{"inmate_id":"A1","cents":1.5,"ref":"r"}`))
	f.Add([]byte(`{"cents":99999999999999999999999}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeDeposit(b)
		checkDecodeErr(t, err)
	})
}

func FuzzDecodeRefund(f *testing.F) {
	f.Add([]byte(`{"ref":"r1","deposit_ref":"d1","cents":1200,"reason":"released"}`))
	f.Add([]byte(`{"ref":"r1","deposit_ref":"d1","cents":-1}`))
	f.Add([]byte(`{"ref":"r1","cents":1e30}`))
	f.Add([]byte(`{"ref":"r1","deposit_ref":"d1","cents":5,"extra":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeRefund(b)
		checkDecodeErr(t, err)
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add([]byte(`{"id":"k-1","from":"dept-medical","subject":"Re: Tooth","body":"Tuesday"}`))
	f.Add([]byte(`{"from":"dept-medical","body":"\u0000"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeReply(b)
		checkDecodeErr(t, err)
		if err == nil && v.ID != "" {
			_ = checkID("", "id", v.ID)
		}
	})
}

// FuzzInvitationCode: whatever an email holds, the code read from it is canonical or absent.
func FuzzInvitationCode(f *testing.F) {
	f.Add([]byte("Hello\r\nIdentification code: ABCD-EFGH-2345-6722\r\nValid until: x\r\n"))
	f.Add([]byte("Identification code: abcd efgh 2345 6722"))
	f.Add([]byte("Identification code: <script>\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, ok := InvitationCode(b)
		if !ok {
			return
		}
		if again, ok := normalizeCode(code); !ok || again != code {
			t.Fatalf("%q gave %q, not canonical", b, code)
		}
	})
}

func FuzzDecodeInbound(f *testing.F) {
	f.Add([]byte(`{"inmate_id":"A1","from":"c1","subject":"hi","body":"Hello"}`))
	f.Add([]byte(`{"body":"\u0000"}`))
	f.Add([]byte(`{"inmate_id":"A1","from":"c1","body":"x","photos":[{"type":"image/png","data":"iVBORw0KGgo="},{"data":"/9j/"}]}`))
	f.Add([]byte(`{"photos":[{"data":"not base64!"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeInbound(b)
		checkDecodeErr(t, err)
		if err == nil {
			_ = checkText("", "body", v.Body, true, 100)
		}
	})
}

func FuzzDecodeReason(f *testing.F) {
	f.Add([]byte(`{"reason":"content_policy"}`), true)
	f.Add([]byte(``), false)
	f.Fuzz(func(t *testing.T, b []byte, required bool) {
		_, err := decodeReason(b, required)
		checkDecodeErr(t, err)
	})
}

// FuzzUplinkItem feeds any kind and body through the relay's item handling on a real store: every
// item is either stored or refused with a reason, the ack always advances by one, and a resend is
// acknowledged the same way without storing anything twice.
func FuzzUplinkItem(f *testing.F) {
	e := newEnv(f, func(c *Config) { c.NoSync = true })
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	t, found, err := e.r.terminal(k.id)
	if err != nil || !found {
		f.Fatal(err)
	}
	for _, kind := range wire.UpKinds {
		f.Add(kind, []byte(`{}`))
	}
	f.Add(wire.UpCharge, []byte(`{"record_id":"s/1","session_id":"s","inmate_id":"A1","minute":1,"cents":5}`))
	f.Add(wire.UpCharge, []byte(`{"record_id":"s/2","session_id":"s","inmate_id":"A1","minute":1,"cents":-5}`))
	f.Add(wire.UpMessage, []byte(`{"id":"m1","inmate_id":"A1","peer":"dept-medical","body":"hi"}`))
	f.Add(wire.UpContactRequest, []byte(`{"id":"c1","inmate_id":"A1","name":"Mom"}`))
	f.Add(wire.UpDeviceStatus, []byte(`{"items_waiting":1e300}`))
	f.Add("nonsense", []byte(`[]`))
	var calls atomic.Uint64
	f.Fuzz(func(tt *testing.T, kind string, b []byte) {
		// A fresh epoch per call: the fuzzer may run inputs in any order and more than once.
		epoch := fmt.Sprintf("fuzz-%d", calls.Add(1))
		const seq = 1
		it := wire.Item{Seq: seq, ID: "i", Kind: kind, Body: b}
		ack, err := e.r.storeBatch(t.TerminalInfo, wire.Batch{Epoch: epoch, Items: []wire.Item{it}})
		if err != nil {
			tt.Fatalf("store %q %q: %v", kind, b, err)
		}
		if ack.Seq != seq {
			tt.Fatalf("ack %d, want %d", ack.Seq, seq)
		}
		again, err := e.r.storeBatch(t.TerminalInfo, wire.Batch{Epoch: epoch, Items: []wire.Item{it}})
		if err != nil || again.Seq != seq || len(again.Rejected) != len(ack.Rejected) {
			tt.Fatalf("resend: %+v %v, first %+v", again, err, ack)
		}
	})
}

// FuzzEnrollBody posts any body to the enrollment endpoint: the answer is always a JSON
// wire.ErrorResponse with a 4xx status, or a 200 enrollment (for a valid signed code).
func FuzzEnrollBody(f *testing.F) {
	e := newEnv(f, func(c *Config) { c.NoSync = true })
	e.seed()
	en, err := e.r.CreateEnrollment(EnrollmentRequest{FacilityID: "north", Mode: wire.ModeKiosk})
	if err != nil {
		f.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	good, _ := json.Marshal(wire.EnrollRequest{Code: en.Code, PublicKey: priv.Public().(ed25519.PublicKey), Signature: wire.SignEnroll(priv, en.Code)})
	f.Add(good)
	f.Add([]byte(`{"code":"X","public_key":"AAAA","signature":"AAAA"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec := httptest.NewRecorder()
		e.r.ServeHTTP(rec, httptest.NewRequest("POST", wire.PathEnroll, bytes.NewReader(b)))
		switch rec.Code {
		case 200:
			if _, err := wire.DecodeEnrollResponse(rec.Body.Bytes()); err != nil {
				t.Fatalf("200 with %s: %v", rec.Body, err)
			}
		case 400, 404, 409, 410:
			if er := wire.DecodeErrorResponse(rec.Body.Bytes()); er.Error == "" {
				t.Fatalf("%d without an error code: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

// FuzzCompactJSON: whenever wire.IsCompactJSON takes a valid body as it is, json.Marshal (what the
// relay stored and hashed before the fast path) writes exactly the same bytes, so an item's
// hash, and with it the resend and id_conflict rules, does not depend on the path taken.
func FuzzCompactJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a": 1}`, `{"s":"a b\"c\\"}`, `{"h":"<b>&"}`, `{"u":"\u2028"}`,
		"{\"u\":\"\u2028\"}", `{"t":"é✓"}`, `[1,2,{"x":null}]`, "{\n\"a\":true}", `{"e":"\\u003c"}`, `"\\"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) || !utf8.Valid(b) {
			return
		}
		want, err := json.Marshal(json.RawMessage(b))
		if err != nil {
			t.Fatalf("marshal valid %q: %v", b, err)
		}
		if wire.IsCompactJSON(b) && string(want) != string(b) {
			t.Fatalf("IsCompactJSON took %q as it is; json.Marshal writes %q", b, want)
		}
		if !wire.IsCompactJSON(b) && string(want) == string(b) && !bytes.ContainsAny(b, " \t\r\n") {
			t.Fatalf("IsCompactJSON refused %q, which is already compact", b)
		}
	})
}

// The letter check split between prepare (text, on the connection's goroutine) and the
// transaction (the policy's length) takes and refuses exactly what vocab.ValidateLetter does
// for every letter that is not too long for the policy (those are refused too_large first).
func FuzzLetterTextIsValidateLetter(f *testing.F) {
	for _, s := range []struct {
		body, subject string
		max           int
	}{
		{"Please send my file.\nThank you.", "Records", 20000},
		{"ring \a ring", "", 20000},
		{"fine", "two\nlines", 20000},
		{"   \n\t", "", 20000},
		{"héllo wörld", "Grüße", 11},
		{"\xff\xfe", "", 100},
		{"abc", "", 2},
		{"", "", 0},
		{"     ", "Records", 20000},
		{"  x", "tab\there", 20000},
		{"plain words ~!@#$%^&*()", "A1 #000001", 20000},
	} {
		f.Add(s.body, s.subject, s.max)
	}
	f.Fuzz(func(t *testing.T, body, subject string, max int) {
		if max < 0 || vocab.LetterTooLong(body, max) {
			return
		}
		m := &vocab.Message{Body: body, Subject: subject}
		want := vocab.ValidateLetter(body, subject, max) == nil
		if got := validLetter(m, max, letterText(m)); got != want {
			t.Fatalf("body %q subject %q max %d: prepared check takes it %v, ValidateLetter %v", body, subject, max, got, want)
		}
		if got := validLetter(m, max, textUnchecked); got != want {
			t.Fatalf("body %q subject %q max %d: unchecked path takes it %v, ValidateLetter %v", body, subject, max, got, want)
		}
		if printableASCIIOnly(body) {
			if got := validLetter(m, max, asciiLetterText(m)); got != want {
				t.Fatalf("body %q subject %q max %d: printable ASCII path takes it %v, ValidateLetter %v", body, subject, max, got, want)
			}
		}
	})
}

// printableASCIIOnly is what wire.UpBody.ASCIIBody promises of a body: U+0020-U+007E only.
func printableASCIIOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}
