package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

func FuzzDecodeFrame(f *testing.F) {
	for _, m := range samples() {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"batch","body":{"epoch":"e","items":[{"seq":1,"id":"i","kind":"k","body":{}}]}}`))
	f.Add([]byte(`{"type":"ack","body":{"epoch":"e","seq":18446744073709551615}}`))
	f.Add([]byte(`{"type":"down","body":null}`))
	f.Add([]byte(`{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","server_time":"2026-01-02T03:04:05Z","relay_urls":["wss://g1:8443","ws://[::1]:9"]}}`))
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
		case TypeRedirect:
			msg = fr.Redirect
		case TypeContentWant, TypeContentManifest, TypeChunk, TypeContentMissing:
			msg = contentMsg(fr)
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

// batchSeeds are batch frames the one-pass decoder reads itself, and variants of them it must
// leave to encoding/json or refuse as it does.
func batchSeeds() []string {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	msg := vocab.Message{ID: "m-1", InmateID: "A1", Box: "outbox", Peer: "c-1", PeerName: "Mom", Subject: "Sunday <3",
		Body: "line one\nline \"two\" & \u2028 \U0001F600 \\ end", State: "queued", CreatedAt: at, UpdatedAt: at}
	mb, _ := json.Marshal(msg)
	item := func(seq int, kind, body string) string {
		return fmt.Sprintf(`{"seq":%d,"id":"i-%d","kind":%q,"created_at":"2026-03-01T12:00:00Z","body":%s}`, seq, seq, kind, body)
	}
	frame := func(items ...string) string {
		return `{"type":"batch","body":{"epoch":"e1","items":[` + strings.Join(items, ",") + `]}}`
	}
	good := frame(item(1, UpMessage, string(mb)), item(2, UpPREA, `{"id":"p-1","body":"help"}`),
		item(3, UpCharge, `{"record_id":"s/1","session_id":"s","inmate_id":"A1","minute":1,"cents":5,"at":"2026-03-01T12:00:00Z"}`))
	return []string{
		good,
		strings.ReplaceAll(good, `,"`, `, "`), // white space: not compact, still read
		strings.Replace(good, `"seq":1`, `"Seq":1`, 1),            // a name in other case
		strings.Replace(good, `"seq":1`, `"seq":1,"seq":1`, 1),    // a duplicate
		strings.Replace(good, `"seq":1`, `"seq":1.0`, 1),          // not an unsigned integer
		strings.Replace(good, `"seq":1`, `"seq":-0`, 1),           // not an unsigned integer
		strings.Replace(good, `"id":"m-1"`, `"id":null`, 1),       // a null in a message
		strings.Replace(good, `"id":"m-1"`, `"ID":"m-2"`, 1),      // a message field in other case
		strings.Replace(good, `"id":"m-1"`, `"id":5`, 1),          // a message field of another type
		strings.Replace(good, `"id":"m-1"`, `"\u0069d":"m-1"`, 1), // an escaped name
		strings.Replace(good, `"id":"m-1"`, `"id":"m\u002d1"`, 1), // an escaped value
		strings.Replace(good, `"id":"m-1"`, `"id":"m-1","read":true,"x":[1,{"y":null}]`, 1),
		strings.Replace(good, `"id":"m-1"`, `"id":"m-1","read":"yes"`, 1),
		strings.Replace(good, `"id":"m-1"`, `"id":"m/1"`, 1), // a bad record id: refused item, good frame
		strings.Replace(good, `"body":"help"`, `"body":"\ud83d\ude00\ud800x\udc00"`, 1),
		strings.Replace(good, `"body":"help"`, `"body":"\x"`, 1),
		strings.Replace(good, `"created_at":"2026-03-01T12:00:00Z","body":{"id":"p-1"`, `"created_at":"2026-13-01T12:00:00Z","body":{"id":"p-1"`, 1),
		strings.Replace(good, `"kind":"prea","created_at":"2026-03-01T12:00:00Z","body":{"id":"p-1","body":"help"}`,
			`"created_at":"2026-03-01T12:00:00Z","body":{"id":"p-1","body":"help"},"kind":"prea"`, 1), // kind after body
		strings.Replace(good, `{"type":"batch",`, `{"type":"batch","body":{}, `, 1),
		strings.Replace(good, `"epoch":"e1"`, `"epoch":"e1","items":null`, 1),
		good + " ",
		good + "\x00",
		good + "{}",
		strings.Replace(good, `"body":"help"`, `"body":"help","deep":`+strings.Repeat("[", 300)+strings.Repeat("]", 300), 1),
		strings.Replace(good, `"cents":5`, `"cents":5e0`, 1),
		strings.Replace(good, `"cents":5`, `"cents":05`, 1),
		strings.Replace(good, `"cents":5`, `"cents":-`, 1),
		frame(item(1, UpMessage, `{"id":"m-9","inmate_id":"A1","body":"x"} `)),
		frame(item(1, UpMessage, `"not an object"`)),
		frame(item(1, UpMessage, `null`)),
		frame(),
		`{"body":{"epoch":"e1","items":[` + item(1, UpAudit, `{}`) + `]},"type":"batch"}`,
	}
}

// FuzzBatchDecoderSame: the one-pass batch decoder accepts and refuses exactly what
// encoding/json (decodeFrameStd) does, with the same error, the same frame and, per item, what
// DecodeUpBody and IsCompactJSON say of the body.
func FuzzBatchDecoderSame(f *testing.F) {
	for _, s := range batchSeeds() {
		f.Add([]byte(s))
	}
	for _, m := range samples() {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := decodeFrameStd(b)
		got, ups, gerr := DecodeUplinkFrame(b)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("encoding/json says %v, the batch decoder %v\n%q", werr, gerr, b)
		}
		if werr != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded otherwise:\n got %#v\nwant %#v", got, want)
		}
		if got.Batch == nil {
			if ups != nil {
				t.Fatalf("bodies for a %s frame", got.Type)
			}
			return
		}
		wantUps := CheckedBodies(want.Batch.Items)
		if len(ups) != len(wantUps) {
			t.Fatalf("%d bodies for %d items", len(ups), len(wantUps))
		}
		for i, w := range wantUps {
			g := ups[i]
			if g.Compact != w.Compact || !reflect.DeepEqual(g.Value, w.Value) || fmt.Sprint(g.Err) != fmt.Sprint(w.Err) {
				t.Fatalf("item %d body %s:\n got %v %#v %v\nwant %v %#v %v", i, want.Batch.Items[i].Body,
					g.Compact, g.Value, g.Err, w.Compact, w.Value, w.Err)
			}
			if g.ASCIIBody {
				m, ok := g.Value.(*vocab.Message)
				if !ok || g.Err != nil || strings.IndexFunc(m.Body, func(r rune) bool { return r < 0x20 || r > 0x7E }) >= 0 {
					t.Fatalf("item %d body %s: said printable ASCII, decoded %#v %v", i, want.Batch.Items[i].Body, g.Value, g.Err)
				}
			}
		}
	})
}

// The one-pass decoder does read what terminals send (it is not left to encoding/json), and a
// frame it reads does not share memory with the caller's buffer.
func TestBatchDecoderTakesEncodedBatches(t *testing.T) {
	good := []byte(batchSeeds()[0])
	f, ups, ok := decodeBatchFast(good, true)
	if !ok {
		t.Fatal("a batch as wire.Encode writes it went to encoding/json")
	}
	if len(ups) != 3 || !ups[0].Compact || ups[0].Err != nil || ups[0].Value.(*vocab.Message).Body == "" {
		t.Fatalf("bodies: %#v", ups)
	}
	body := f.Batch.Items[0].Body
	before := string(body)
	for i := range good {
		good[i] = 'x'
	}
	if string(body) != before {
		t.Fatal("a decoded body changed with the caller's buffer")
	}
	// White space costs compactness, not the fast path; a name in other case goes to encoding/json.
	if _, ups, ok := decodeBatchFast([]byte(batchSeeds()[1]), true); !ok || ups[0].Compact {
		t.Fatalf("spaced batch: fast %v, bodies %#v", ok, ups)
	}
	if _, _, ok := decodeBatchFast([]byte(batchSeeds()[2]), true); ok {
		t.Fatal("took a field name in other case itself")
	}
}

// The decoder tells a relay which letters' bodies are printable ASCII, so it does not scan
// those again: every plain letter, and nothing with an escape, a control character or a
// character beyond ASCII in the body (the last body when a key repeats, the one kept).
func TestBatchDecoderMarksASCIIBodies(t *testing.T) {
	frame := func(body string) string {
		return `{"type":"batch","body":{"epoch":"e1","items":[{"seq":1,"id":"i-1","kind":"message",` +
			`"created_at":"2026-03-01T12:00:00Z","body":` + body + `}]}}`
	}
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"id":"m-1","inmate_id":"A1","body":"Please send my file, thank you ~ <3 & bye"}`, true},
		{`{"id":"m-1","inmate_id":"A1","subject":"caf\u00e9","body":"plain"}`, true},
		{`{"id":"m-1","inmate_id":"A1","body":"caf` + "\u00e9" + `"}`, false},
		{`{"id":"m-1","inmate_id":"A1","body":"two\nlines"}`, false},
		{`{"id":"m-1","inmate_id":"A1","body":"say \"hi\""}`, false},
		{`{"id":"m-1","inmate_id":"A1","body":"\u0041 escaped"}`, false},
		{`{"id":"m-1","inmate_id":"A1","body":"del ` + "\x7f" + `"}`, false},
		{`{"id":"m-1","inmate_id":"A1","body":"line ` + "\u2028" + `sep"}`, false},
		{`{"id":"m-1","inmate_id":"A1","body":"caf` + "\u00e9" + `","body":"plain"}`, true},
		{`{"id":"m-1","inmate_id":"A1","body":"plain","body":"caf` + "\u00e9" + `"}`, false},
	} {
		_, ups, err := DecodeUplinkFrame([]byte(frame(tc.body)))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if len(ups) != 1 || ups[0].Err != nil {
			t.Fatalf("%s: bodies %#v", tc.body, ups)
		}
		if ups[0].ASCIIBody != tc.want {
			t.Errorf("%s: ASCIIBody %v, want %v", tc.body, ups[0].ASCIIBody, tc.want)
		}
	}
}
