package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func samples() []any {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return []any{
		Hello{TerminalID: "t-1", Epoch: "9f2c", DownApplied: 7, Software: "tether 0.1", Waiting: 12},
		Challenge{Nonce: bytes.Repeat([]byte{7}, NonceLen)},
		Auth{Signature: bytes.Repeat([]byte{1}, SignatureSize)},
		Welcome{TerminalID: "t-1", Facility: "north", Mode: ModeTablet, InmateID: "A123", ServerTime: at},
		Batch{Epoch: "9f2c", Items: []Item{
			{Seq: 1, ID: "0190-a", Kind: UpMessage, CreatedAt: at, Body: json.RawMessage(`{"id":"m1"}`)},
			{Seq: 2, ID: "0190-b", Kind: UpCharge, CreatedAt: at, Body: json.RawMessage(`{"cents":5}`)}}},
		Ack{Epoch: "9f2c", Seq: 2, Rejected: []Rejection{{Seq: 1, Reason: RefuseUnknownContact}}},
		Down{Items: []DownItem{{Seq: 4, Kind: DownDeposit, Body: json.RawMessage(`{"ref":"d1"}`)}}},
		DownAck{Seq: 4},
		Hello{TerminalID: "t-2", Epoch: "e", Redirects: true, Redirected: true},
		Redirect{URL: "wss://gw2.example:8443"},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range samples() {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("encode %T: %v", m, err)
		}
		f, err := DecodeFrame(b)
		if err != nil {
			t.Fatalf("decode %T: %v\n%s", m, err, b)
		}
		got := reflect.ValueOf(f).FieldByName(reflect.TypeOf(m).Name()).Elem().Interface()
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip %T:\n got %#v\nwant %#v", m, got, m)
		}
		// Pointers encode the same way.
		p := reflect.New(reflect.TypeOf(m))
		p.Elem().Set(reflect.ValueOf(m))
		b2, err := Encode(p.Interface())
		if err != nil || !bytes.Equal(b, b2) {
			t.Errorf("pointer %T encodes differently: %v", m, err)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	cases := map[string]string{
		"not json":        `{`,
		"unknown type":    `{"type":"gossip","body":{}}`,
		"missing body":    `{"type":"hello"}`,
		"null body":       `{"type":"hello","body":null}`,
		"no terminal":     `{"type":"hello","body":{"epoch":"e"}}`,
		"control char":    `{"type":"hello","body":{"terminal_id":"a\u0000b","epoch":"e"}}`,
		"short nonce":     `{"type":"challenge","body":{"nonce":"AAAA"}}`,
		"short signature": `{"type":"auth","body":{"signature":"AAAA"}}`,
		"bad mode":        `{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"phone"}}`,
		"unbound tablet":  `{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"tablet"}}`,
		"bound kiosk":     `{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","inmate_id":"x"}}`,
		"gateway scheme":  `{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","relay_urls":["wss://g1","ftp://g2"]}}`,
		"gateway no host": `{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","relay_urls":["wss://"]}}`,
		"gateway creds":   `{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","relay_urls":["wss://u:p@g1"]}}`,
		"gateway query":   `{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","relay_urls":["wss://g1/?x=1"]}}`,
		"gateway long":    `{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","relay_urls":["wss://` + strings.Repeat("g", 600) + `"]}}`,
		"gateways many":   `{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","relay_urls":["wss://1","wss://2","wss://3","wss://4","wss://5","wss://6","wss://7","wss://8","wss://9"]}}`,
		"empty batch":     `{"type":"batch","body":{"epoch":"e","items":[]}}`,
		"seq zero":        `{"type":"batch","body":{"epoch":"e","items":[{"seq":0,"id":"i","kind":"k","body":{}}]}}`,
		"seq backwards":   `{"type":"batch","body":{"epoch":"e","items":[{"seq":2,"id":"i","kind":"k","body":{}},{"seq":2,"id":"j","kind":"k","body":{}}]}}`,
		"item no body":    `{"type":"batch","body":{"epoch":"e","items":[{"seq":1,"id":"i","kind":"k"}]}}`,
		"reject past ack": `{"type":"ack","body":{"epoch":"e","seq":3,"rejected":[{"seq":4,"reason":"x"}]}}`,
		"reject no why":   `{"type":"ack","body":{"epoch":"e","seq":3,"rejected":[{"seq":2}]}}`,
		"down empty":      `{"type":"down","body":{"items":[]}}`,
		"wrong field":     `{"type":"ack","body":{"epoch":"e","seq":"three"}}`,
		"redirect no url": `{"type":"redirect","body":{}}`,
		"redirect ftp":    `{"type":"redirect","body":{"url":"ftp://gw2"}}`,
		"redirect creds":  `{"type":"redirect","body":{"url":"wss://u:p@gw2"}}`,
	}
	for name, in := range cases {
		if _, err := DecodeFrame([]byte(in)); err == nil {
			t.Errorf("%s: decoded %s without error", name, in)
		}
	}
}

// A welcome from a relay of one gateway has no relay_urls; one of several lists them.
func TestWelcomeGatewaysOptional(t *testing.T) {
	for _, in := range []string{
		`{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","server_time":"2026-01-02T03:04:05Z"}}`,
		`{"type":"welcome","body":{"terminal_id":"t","facility":"f","mode":"kiosk","server_time":"2026-01-02T03:04:05Z","relay_urls":["wss://g1:8443","http://127.0.0.1:9000"]}}`,
	} {
		f, err := DecodeFrame([]byte(in))
		if err != nil || f.Welcome == nil {
			t.Fatalf("%s: %v", in, err)
		}
	}
}

func TestFrameSizeLimit(t *testing.T) {
	big := make([]byte, MaxFrameBytes+1)
	if _, err := DecodeFrame(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized frame: got %v, want ErrTooLarge", err)
	}
	body := json.RawMessage(`"` + strings.Repeat("x", MaxItemBytes) + `"`)
	if _, err := DecodeFrame(mustRaw(t, TypeBatch, Batch{Epoch: "e", Items: []Item{{Seq: 1, ID: "i", Kind: "k", Body: body}}})); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized item: got %v, want ErrTooLarge", err)
	}
	// A full batch of the largest size a terminal sends still fits a frame.
	var items []Item
	per := MaxBatchBytes / 256
	for i := 1; i <= 256; i++ {
		items = append(items, Item{Seq: uint64(i), ID: "0190ab12-0000-7000-8000-000000000000", Kind: UpMessage,
			Body: json.RawMessage(`"` + strings.Repeat("y", per-200) + `"`)})
	}
	if _, err := Encode(Batch{Epoch: strings.Repeat("e", 32), Items: items}); err != nil {
		t.Fatalf("full batch: %v", err)
	}
}

func mustRaw(t *testing.T, typ string, v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(envelope{Type: typ, Body: body})
	return b
}

func TestAuthSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	nonce := bytes.Repeat([]byte{9}, NonceLen)
	sig := SignAuth(priv, "t-1", nonce)
	if !VerifyAuth(pub, "t-1", nonce, sig) {
		t.Fatal("valid signature refused")
	}
	other := append([]byte(nil), nonce...)
	other[0] ^= 1
	for name, ok := range map[string]bool{
		"other terminal": VerifyAuth(pub, "t-2", nonce, sig),
		"other nonce":    VerifyAuth(pub, "t-1", other, sig),
		"short key":      VerifyAuth(pub[:31], "t-1", nonce, sig),
		"enroll domain":  VerifyEnroll(pub, "t-1", sig),
	} {
		if ok {
			t.Errorf("%s: signature accepted", name)
		}
	}
	// Length prefixes keep (id, nonce) splits apart.
	if bytes.Equal(AuthMessage("ab", []byte("c")), AuthMessage("a", []byte("bc"))) {
		t.Error("auth messages for different splits are equal")
	}
}

func TestEnrollRequest(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	req := EnrollRequest{Code: "K7PQ-22XM", PublicKey: pub, Signature: SignEnroll(priv, "K7PQ-22XM"), Label: "unit B kiosk 2"}
	b, _ := json.Marshal(req)
	got, err := DecodeEnrollRequest(b)
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("decode enroll request: %v %#v", err, got)
	}
	req.Code = "K7PQ-22XN"
	b, _ = json.Marshal(req)
	if _, err := DecodeEnrollRequest(b); !errors.Is(err, ErrBadEnrollSignature) {
		t.Fatalf("signature over another code: got %v", err)
	}
	resp := EnrollResponse{TerminalID: "t-9", Facility: "north", Mode: ModeKiosk}
	b, _ = json.Marshal(resp)
	if r, err := DecodeEnrollResponse(b); err != nil || r.TerminalID != "t-9" {
		t.Fatalf("decode enroll response: %v", err)
	}
	if _, err := DecodeEnrollResponse([]byte(`{"terminal_id":"t","facility":"f","mode":"tablet"}`)); err == nil {
		t.Fatal("tablet without inmate accepted")
	}
	if e := DecodeErrorResponse([]byte(`{"error":"code_used","message":"used at 10:02"}`)); e.Error != EnrollCodeUsed {
		t.Fatalf("error response: %#v", e)
	}
}

func TestFingerprint(t *testing.T) {
	fp := Fingerprint([]byte("cert"))
	for _, in := range []string{fp, strings.ToUpper(fp), " " + fp + "\n", colons(fp)} {
		got, err := ParseFingerprint(in)
		if err != nil || got != fp {
			t.Errorf("parse %q: %q %v", in, got, err)
		}
	}
	for _, in := range []string{"", fp[:62], fp + "00", "zz" + fp[2:], "a:" + fp[1:]} {
		if _, err := ParseFingerprint(in); err == nil {
			t.Errorf("parse %q: accepted", in)
		}
	}
}

func colons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestCloseReasonsFit(t *testing.T) {
	for _, r := range []string{ReasonUnsupportedVersion, ReasonUnknownTerminal, ReasonRevoked, ReasonBadSignature,
		ReasonAuthTimeout, ReasonMalformed, ReasonUnexpected, ReasonSequenceGap, ReasonWrongEpoch, ReasonReplaced, ReasonShutdown} {
		if len(r) > MaxReasonLen {
			t.Errorf("close reason %q is %d bytes, limit %d", r, len(r), MaxReasonLen)
		}
	}
}

// A long decoder error with multi-byte runes still makes a close reason the peer accepts.
func TestCloseReasonCutsAtARune(t *testing.T) {
	long := ReasonMalformed + ": " + strings.Repeat("ñ", 100) + "\xff"
	r := CloseReason(long)
	if len(r) > 123 || !utf8.ValidString(r) || !strings.HasPrefix(r, ReasonMalformed+": ñ") {
		t.Fatalf("CloseReason = %q (%d bytes)", r, len(r))
	}
	if CloseReason("bad\xffbyte") != "bad?byte" {
		t.Fatalf("invalid UTF-8 kept: %q", CloseReason("bad\xffbyte"))
	}
}

// "Control character" in an id means C0, DEL, C1 (U+0085 NEXT LINE among them), the line and
// paragraph separators and the bidi formatting characters; ordinary non-ASCII text is an id.
func TestIDControlCharacters(t *testing.T) {
	hello := func(id string) string {
		b, _ := json.Marshal(id)
		return `{"type":"hello","body":{"terminal_id":` + string(b) + `,"epoch":"e"}}`
	}
	for _, id := range []string{"a\u0000b", "a\u001fb", "a\u007fb", "a\u0085b", "a\u0080b", "a\u009fb",
		"a\u2028b", "a\u2029b", "a\u202eb", "a\u2066b", "a\u200fb", "a\u061cb"} {
		_, err := DecodeFrame([]byte(hello(id)))
		if err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("terminal_id %+q: got %v, want a control character refusal", id, err)
		}
	}
	// The same rune written as a JSON escape is refused the same way.
	if _, err := DecodeFrame([]byte(`{"type":"hello","body":{"terminal_id":"a\u0085b","epoch":"e"}}`)); err == nil {
		t.Error(`terminal_id "a\u0085b" (escaped) accepted`)
	}
	for _, id := range []string{"t-01HZX3", "kiosk ñandú 2", "北-1", "a\u00a0b"} {
		if _, err := DecodeFrame([]byte(hello(id))); err != nil {
			t.Errorf("terminal_id %q refused: %v", id, err)
		}
	}
}

// A frame that is not valid UTF-8 is refused whole, never repaired into U+FFFD.
func TestInvalidUTF8Refused(t *testing.T) {
	in := []byte("{\"type\":\"hello\",\"body\":{\"terminal_id\":\"t-\xff\",\"epoch\":\"e\"}}")
	if _, err := DecodeFrame(in); !errors.Is(err, ErrNotUTF8) {
		t.Fatalf("invalid UTF-8 in an id: got %v, want ErrNotUTF8", err)
	}
	in = []byte("{\"type\":\"batch\",\"body\":{\"epoch\":\"e\",\"items\":[{\"seq\":1,\"id\":\"i\",\"kind\":\"message\",\"body\":{\"body\":\"hi \xc3\"}}]}}")
	if _, err := DecodeFrame(in); !errors.Is(err, ErrNotUTF8) {
		t.Fatalf("invalid UTF-8 in an item body: got %v, want ErrNotUTF8", err)
	}
}

// A refused item, rejection or downlink item is named by its place in the frame, so a
// technician reading the relay's log knows which one was wrong (the name is made only then).
func TestRefusalNamesTheItem(t *testing.T) {
	ok := `{"seq":1,"id":"i","kind":"k","body":{}}`
	cases := map[string]string{
		`{"type":"batch","body":{"epoch":"e","items":[` + ok + `,{"seq":2,"kind":"k","body":{}}]}}`:                "item 1 id is missing",
		`{"type":"batch","body":{"epoch":"e","items":[` + ok + `,{"seq":2,"id":"j","kind":"a\u0007","body":{}}]}}`: "item 1 kind holds a control character",
		`{"type":"batch","body":{"epoch":"e","items":[` + ok + `,{"seq":2,"id":"j","kind":"k"}]}}`:                 "item 1 body is missing",
		`{"type":"ack","body":{"epoch":"e","seq":3,"rejected":[{"seq":1,"reason":"x"},{"seq":2}]}}`:                "rejected 1 reason is missing",
		`{"type":"down","body":{"items":[{"seq":1,"kind":"k","body":{}},{"seq":2,"body":{}}]}}`:                    "item 1 kind is missing",
		`{"type":"down","body":{"items":[{"seq":1,"kind":"k","body":{}},{"seq":2,"kind":"k"}]}}`:                   "item 1 body is missing",
	}
	for in, want := range cases {
		_, err := DecodeFrame([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeFrame(%s) = %v, want an error saying %q", in, err, want)
		}
		_, _, err = DecodeUplinkFrame([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeUplinkFrame(%s) = %v, want an error saying %q", in, err, want)
		}
	}
}
