package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"testing"
)

func FuzzDecodeFrame(f *testing.F) {
	for _, m := range samples() {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"batch","body":{"epoch":"e","items":[{"seq":1,"id":"i","kind":"k","body":{}}]}}`))
	f.Add([]byte(`{"type":"ack","body":{"epoch":"e","seq":18446744073709551615}}`))
	f.Add([]byte(`{"type":"down","body":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode again and decode to the same frame.
		var msg any
		switch fr.Type {
		case TypeHello:
			msg = fr.Hello
		case TypeChallenge:
			msg = fr.Challenge
		case TypeAuth:
			msg = fr.Auth
		case TypeWelcome:
			msg = fr.Welcome
		case TypeBatch:
			msg = fr.Batch
		case TypeAck:
			msg = fr.Ack
		case TypeDown:
			msg = fr.Down
		case TypeDownAck:
			msg = fr.DownAck
		default:
			t.Fatalf("decoded unknown type %q", fr.Type)
		}
		if msg == nil {
			t.Fatalf("type %q decoded without its body", fr.Type)
		}
		enc, err := Encode(msg)
		if err != nil {
			t.Fatalf("re-encode %s: %v", fr.Type, err)
		}
		if _, err := DecodeFrame(enc); err != nil {
			t.Fatalf("re-decode %s: %v\n%s", fr.Type, err, enc)
		}
	})
}

func FuzzDecodeEnrollRequest(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{3}, 64)))
	good, _ := json.Marshal(EnrollRequest{Code: "ABCD-1234", PublicKey: pub, Signature: SignEnroll(priv, "ABCD-1234")})
	f.Add(good)
	f.Add([]byte(`{"code":"x","public_key":"AAAA","signature":"AAAA"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeEnrollRequest(b)
		if err != nil {
			return
		}
		if !VerifyEnroll(r.PublicKey, r.Code, r.Signature) {
			t.Fatal("accepted a request whose signature does not verify")
		}
	})
}

func FuzzDecodeEnrollResponse(f *testing.F) {
	f.Add([]byte(`{"terminal_id":"t-1","facility":"north","mode":"kiosk"}`))
	f.Add([]byte(`{"terminal_id":"t-1","facility":"north","mode":"tablet","inmate_id":"A1"}`))
	f.Add([]byte(`{"terminal_id":"","mode":"tablet"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeEnrollResponse(b)
		if err != nil {
			return
		}
		if r.TerminalID == "" || r.Facility == "" || (r.Mode == ModeTablet) != (r.InmateID != "") {
			t.Fatalf("accepted an incomplete enrollment: %#v", r)
		}
	})
}

func FuzzDecodeErrorResponse(f *testing.F) {
	f.Add([]byte(`{"error":"code_used","message":"x"}`))
	f.Add([]byte(`<html>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := DecodeErrorResponse(b)
		if len(r.Error) > MaxIDLen || len(r.Message) > 512 {
			t.Fatalf("error response beyond its limits: %d %d", len(r.Error), len(r.Message))
		}
	})
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add(Fingerprint([]byte("x")))
	f.Add(colons(Fingerprint([]byte("y"))))
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		if again, err := ParseFingerprint(fp); err != nil || again != fp || len(fp) != 64 {
			t.Fatalf("canonical form %q does not parse to itself", fp)
		}
	})
}

// FuzzCheckUpBody: no body makes the schema check panic, and what it accepts of a known
// kind is a JSON object.
func FuzzCheckUpBody(f *testing.F) {
	for kind, v := range goldenUpBodies() {
		b, _ := json.Marshal(v)
		f.Add(kind, b)
	}
	f.Add(UpAudit, []byte(`{"id":"a","at":"2026-03-01T12:00:00Z","kind":"k","detail":{"x":5}}`))
	f.Add(UpSessionEnd, []byte(`null`))
	f.Fuzz(func(t *testing.T, kind string, b []byte) {
		if CheckUpBody(kind, b) != nil {
			return
		}
		for _, k := range UpKinds {
			if k == kind {
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil || m == nil {
					t.Fatalf("%s: accepted a body that is not a JSON object: %q", kind, b)
				}
			}
		}
	})
}
