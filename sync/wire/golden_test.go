package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

var update = flag.Bool("update", false, "rewrite sync/wire/testdata/golden from the values in golden_test.go")

const goldenDir = "testdata/golden"

// The enrollment and authentication test vector of docs/PROTOCOL.md: an ed25519 key from the
// seed 00 01 02 ... 1f, the code as typed, and the exact bytes signed.
const (
	vectorCode      = "K7PQ-22XM-9HTB"
	vectorPublicKey = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
	vectorEnrollMsg = "7465746865722e7631207465726d696e616c20656e726f6c6c00" + // "tether.v1 terminal enroll\x00"
		"000e" + "4b3750512d3232584d2d39485442" + // len16 + "K7PQ-22XM-9HTB"
		"0020" + "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8" // len16 + the raw 32-byte key
	vectorEnrollSig = "DE2yEUuqIR7/9E8vNWJdPezgy2ZnUGuymB5NUWzIda6EL/4G5L0bPAfI2Ozd3poCmkUiBJ4BxEXFw45wmd+SDQ=="
	vectorTerminal  = "t-01HZX3"
	vectorNonce     = "oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8=" // a0 a1 ... bf
	vectorAuthMsg   = "7465746865722e7631207465726d696e616c2061757468000008742d3031485a58330020" +
		"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	vectorAuthSig = "6GFGOGHMd+C4fOeeEAhILFmEQWs69gHJpyclvwCVyzri8d4FBfIlUTm9j2oHt6Wup6thrk/XuBtzP+dbmVCCBA=="
)

func vectorKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The signed bytes are the domain string, then the code exactly as sent (not normalized) and
// the raw 32 key bytes (not their base64 text), each after a 2-byte big-endian length.
func TestSignatureVectors(t *testing.T) {
	priv := vectorKey()
	pub := priv.Public().(ed25519.PublicKey)
	if got := base64.StdEncoding.EncodeToString(pub); got != vectorPublicKey {
		t.Fatalf("public key = %s, want %s", got, vectorPublicKey)
	}
	if got := hex.EncodeToString(EnrollMessage(vectorCode, pub)); got != vectorEnrollMsg {
		t.Fatalf("EnrollMessage = %s\nwant %s", got, vectorEnrollMsg)
	}
	if got := base64.StdEncoding.EncodeToString(SignEnroll(priv, vectorCode)); got != vectorEnrollSig {
		t.Fatalf("enroll signature = %s, want %s", got, vectorEnrollSig)
	}
	nonce := b64(t, vectorNonce)
	if got := hex.EncodeToString(AuthMessage(vectorTerminal, nonce)); got != vectorAuthMsg {
		t.Fatalf("AuthMessage = %s\nwant %s", got, vectorAuthMsg)
	}
	if got := base64.StdEncoding.EncodeToString(SignAuth(priv, vectorTerminal, nonce)); got != vectorAuthSig {
		t.Fatalf("auth signature = %s, want %s", got, vectorAuthSig)
	}
	// The code is signed as typed: the same code in lower case is another signature.
	if VerifyEnroll(pub, strings.ToLower(vectorCode), b64(t, vectorEnrollSig)) {
		t.Fatal("signature over the code as typed verifies for another spelling")
	}
}

// goldenFrames are the frames of docs/PROTOCOL.md, one file each.
func goldenFrames(t *testing.T) map[string]any {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	epoch := "5b0e4f7a9c1d2e3f4a5b6c7d8e9f0a1b"
	bodies := goldenUpBodies()
	raw := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	down := goldenDownBodies()
	return map[string]any{
		"frame_hello.json":     Hello{TerminalID: vectorTerminal, Epoch: epoch, DownApplied: 4711, Software: "tether 0.1.0", Waiting: 12, AckLetters: true},
		"frame_challenge.json": Challenge{Nonce: b64(t, vectorNonce)},
		"frame_auth.json":      Auth{Signature: b64(t, vectorAuthSig)},
		"frame_welcome.json": Welcome{TerminalID: vectorTerminal, Facility: "north", Mode: ModeTablet, InmateID: "A123456",
			ServerTime: at.Add(time.Second)},
		"frame_batch.json": Batch{Epoch: epoch, Items: []Item{
			{Seq: 101, ID: "01920c6e-8f3a-7b1c-9d2e-3f4a5b6c7d8e", Kind: UpMessage, CreatedAt: at.Add(2 * time.Second), Body: raw(bodies[UpMessage])},
			{Seq: 102, ID: "01920c6e-9000-7000-8000-000000000002", Kind: UpCharge, CreatedAt: at.Add(5 * time.Second), Body: raw(bodies[UpCharge])},
		}},
		"frame_ack.json": Ack{Epoch: epoch, Seq: 104, Rejected: []Rejection{{Seq: 101, Reason: RefuseUnknownContact}},
			Letters: &Letters{Delivered: []uint64{103}, Held: []uint64{104}}},
		"frame_down.json": Down{Items: []DownItem{
			{Seq: 4712, Kind: DownDeposit, Body: raw(down[DownDeposit])},
			{Seq: 4713, Kind: DownNotice, Body: raw(down[DownNotice])},
		}},
		"frame_down_ack.json": DownAck{Seq: 4713, Refused: []Rejection{{Seq: 4712, Reason: "invalid: deposit: cents must be positive"}}},
	}
}

func goldenUpBodies() map[string]any {
	at := time.Date(2026, 3, 1, 12, 0, 2, 0, time.UTC)
	return map[string]any{
		UpMessage: vocab.Message{ID: "01920c6e-8f00-7000-8000-000000000001", InmateID: "A123456", Box: vocab.BoxOutbox,
			Peer: "c-17", PeerName: "Mom", Subject: "Sunday", Body: "Hi Mom", State: vocab.MsgQueued, CreatedAt: at, UpdatedAt: at},
		UpPREA: vocab.Message{ID: "01920c6e-8f00-7000-8000-000000000003", Box: vocab.BoxOutbox,
			Peer: vocab.PREAChannel, PeerName: "PREA report", Body: "An anonymous report.", State: vocab.MsgQueued, CreatedAt: at, UpdatedAt: at},
		UpContactRequest: vocab.Contact{ID: "01920c6e-8f00-7000-8000-0000000000c1", InmateID: "A123456", Name: "Mom",
			Email: "mom@example.org", State: vocab.ContactPending, UpdatedAt: at},
		UpContactRemove: vocab.Contact{ID: "c-17", InmateID: "A123456", Name: "Mom", Email: "mom@example.org",
			State: vocab.ContactRemoved, UpdatedAt: at},
		UpCharge: vocab.Charge{RecordID: "s-9/000003", SessionID: "s-9", InmateID: "A123456", Minute: 3, Cents: 5, At: at.Add(3 * time.Second)},
		UpCredit: vocab.Credit{RecordID: "s-9/000003", SessionID: "s-9", InmateID: "A123456", Minute: 3, Cents: 5,
			Reason: vocab.CreditStall, At: at.Add(40 * time.Second)},
		UpSessionEnd: vocab.Session{ID: "s-9", InmateID: "A123456", Terminal: vectorTerminal, Start: at.Add(-3 * time.Minute),
			End: at.Add(50 * time.Second), Minutes: 4, Rate: 5, Charged: 20, Credited: 5, EndReason: vocab.EndLogout},
		UpAudit: vocab.AuditEvent{ID: "01920c6e-8f00-7000-8000-0000000000a1", At: at, Kind: "login_ok", Actor: "A123456",
			Detail: map[string]string{"method": "badge"}},
		UpDeviceStatus: map[string]any{"items_waiting": 12, "printer": "ok", "badge_reader": "ok"},
		UpMessageRead:  MessageRead{MessageID: "01920c6e-7000-7000-8000-000000000009", InmateID: "A123456", At: at},
		UpQuizAttempt: vocab.QuizAttempt{ID: "01920c6e-8f00-7000-8000-0000000000q1", InmateID: "A123456", CourseID: "crs-ged-math",
			QuizID: "q-fractions", Answers: []int{1, 0, 3}, At: at},
		UpLibraryUse: vocab.LibraryUse{InmateID: "A123456", Day: "2026-03-01", Minutes: 40, At: at},
	}
}

func goldenDownBodies() map[string]any {
	at := time.Date(2026, 3, 1, 11, 58, 0, 0, time.UTC)
	return map[string]any{
		DownInboundMessage: vocab.Message{ID: "01920c6e-7000-7000-8000-000000000009", InmateID: "A123456", Box: vocab.BoxInbox,
			Peer: "c-17", PeerName: "Mom", Subject: "Sunday", Body: "See you Sunday.", CreatedAt: at, UpdatedAt: at},
		DownMessageStatus: MessageStatus{MessageID: "01920c6e-8f00-7000-8000-000000000001", InmateID: "A123456",
			State: vocab.MsgRejected, Reason: "content_policy", At: at.Add(12 * time.Minute)},
		DownInmate: vocab.Inmate{ID: "A123456", Name: "Ana Diaz", Badges: []string{"0004471234"},
			PINHash:  "$argon2id$v=19$m=65536,t=1,p=2$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
			Language: "es", Status: vocab.StatusActive, Messaging: true, Media: false, TabletBound: true},
		DownTechnician: vocab.Technician{ID: "tech-4", Name: "Tess", Badges: []string{"TECH-01"},
			PINHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", Role: "installer"},
		DownTechnicianRemove: TechnicianRemoved{ID: "tech-4"},
		DownDeposit:          vocab.Deposit{Ref: "dep-8812", InmateID: "A123456", Cents: 2500, At: at},
		DownContact: vocab.Contact{ID: "c-17", InmateID: "A123456", Name: "Mom", Email: "mom@example.org",
			State: vocab.ContactDeclined, Reason: "unknown person", UpdatedAt: at},
		DownPolicy:       vocab.DefaultPolicy(),
		DownRemoteCharge: vocab.Charge{RecordID: "s-8/000000", SessionID: "s-8", InmateID: "A123456", Minute: 0, Cents: 5, At: at},
		DownRemoteCredit: vocab.Credit{RecordID: "s-8/000000", SessionID: "s-8", InmateID: "A123456", Minute: 0, Cents: 5,
			Reason: vocab.CreditStall, At: at.Add(30 * time.Second)},
		DownRemoteSessionEnd: vocab.Session{ID: "s-8", InmateID: "A123456", Terminal: "t-01HZX4", Start: at, End: at.Add(time.Minute),
			Minutes: 1, Rate: 5, Charged: 5, Credited: 5, EndReason: vocab.EndTerminalFault},
		DownNotice: Notice{ID: "01920c6e-6000-7000-8000-0000000000n1", Text: "Kiosks close at 21:00 tonight.",
			At: at.Add(2 * time.Minute), Until: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)},
		DownSentMessage: vocab.Message{ID: "01920c6e-8f00-7000-8000-000000000001", InmateID: "A123456", Box: vocab.BoxOutbox,
			Peer: "dept-medical", PeerName: "Medical", Subject: "Tooth", Body: "My tooth hurts.", State: vocab.MsgDelivered,
			CreatedAt: at, UpdatedAt: at.Add(time.Minute)},
		DownHistory: History{InmateID: "A123456", SessionID: "01920c6e-9900-7000-8000-000000000077", Truncated: true,
			Letters: []vocab.Message{{ID: "01920c6e-8f00-7000-8000-000000000001", InmateID: "A123456", Box: vocab.BoxOutbox,
				Peer: "c-17", PeerName: "Mom", Body: "Hi Mom", State: vocab.MsgHeld, CreatedAt: at, UpdatedAt: at}}},
		DownMessageRead: MessageRead{MessageID: "01920c6e-7000-7000-8000-000000000009", InmateID: "A123456", At: at.Add(3 * time.Minute)},
		DownRefund: vocab.Refund{Ref: "ref-77", DepositRef: "dep-8812", InmateID: "A123456", Cents: 1200, Reason: "released",
			At: at.Add(3 * time.Minute)},
		DownCatalogItem: vocab.CatalogItem{ID: "trk-blue-1", Kind: vocab.CatalogTrack, Title: "Blue Morning", Artist: "Tether House Band",
			Duration: 184, PriceCents: 129, PublishedAt: at, Audio: &vocab.MediaRef{
				SHA256:   "a82ee23ad027d808ef9a3be7e08826224ece8de90e35c0ebab7dca7b34f90723",
				Manifest: "0d999c899e4dbad7f1690ae1671dde725b223bd3f23d7efeb4e55d2413b48e3f", Size: 262160, Type: vocab.MediaMP3}},
		DownCatalogWithdrawn: vocab.CatalogWithdrawn{ID: "trk-blue-1", At: at.Add(time.Hour)},
		DownQuizResult: vocab.QuizResult{AttemptID: "01920c6e-8f00-7000-8000-0000000000q1", InmateID: "A123456", CourseID: "crs-ged-math",
			QuizID: "q-fractions", Outcome: vocab.QuizFailed, Right: 2, Questions: 3, PassScore: 3, AttemptsUsed: 2, AttemptsLeft: 1,
			At: at.Add(2 * time.Minute)},
		DownLibraryUse: vocab.LibraryUse{InmateID: "A123456", Day: "2026-03-01", TerminalID: "t-01HZX4", Minutes: 40, At: at},
	}
}

// goldenEnroll are the enrollment bodies; the request carries the vector's real signature.
func goldenEnroll(t *testing.T) map[string]any {
	return map[string]any{
		"enroll_request.json": EnrollRequest{Code: vectorCode, PublicKey: b64(t, vectorPublicKey), Signature: b64(t, vectorEnrollSig),
			Label: "unit B kiosk 2", Software: "tether 0.1.0"},
		"enroll_response.json": EnrollResponse{TerminalID: vectorTerminal, Facility: "north", Mode: ModeTablet, InmateID: "A123456",
			ServerTime: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		"enroll_error.json": ErrorResponse{Error: EnrollCodeExpired, Message: "enrollment code expired at 2026-03-01 11:00 UTC"},
	}
}

// canonical re-encodes JSON with sorted keys and no spacing, so two encodings of the same
// value compare equal byte for byte.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("canonical: %v\n%s", err, b)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func writeGolden(t *testing.T, name string, encoded []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, encoded, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	if err := os.MkdirAll(goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(goldenDir, name), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatalf("%v (run go test ./sync/wire -run Golden -update to write it)", err)
	}
	return b
}

// strictDecode decodes one JSON value into v, refusing unknown fields: a field the file has
// and the production type does not is a renamed or dropped field.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// frameMsg returns the message a decoded frame carries.
func frameMsg(f Frame) any {
	switch f.Type {
	case TypeHello:
		return f.Hello
	case TypeChallenge:
		return f.Challenge
	case TypeAuth:
		return f.Auth
	case TypeWelcome:
		return f.Welcome
	case TypeBatch:
		return f.Batch
	case TypeAck:
		return f.Ack
	case TypeDown:
		return f.Down
	case TypeDownAck:
		return f.DownAck
	}
	return nil
}

// Every frame: the golden file decodes with DecodeFrame and encodes back with Encode to the
// same JSON. A renamed, dropped or retyped field changes the round trip and fails here.
func TestGoldenFrames(t *testing.T) {
	for name, msg := range goldenFrames(t) {
		enc, err := Encode(msg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if *update {
			writeGolden(t, name, enc)
		}
		file := readGolden(t, name)
		f, err := DecodeFrame(file)
		if err != nil {
			t.Errorf("%s: DecodeFrame: %v", name, err)
			continue
		}
		if want := strings.TrimSuffix(strings.TrimPrefix(name, "frame_"), ".json"); f.Type != want {
			t.Errorf("%s: type %q, want %q", name, f.Type, want)
		}
		again, err := Encode(frameMsg(f))
		if err != nil {
			t.Fatalf("%s: re-encode: %v", name, err)
		}
		if got, want := canonical(t, again), canonical(t, file); got != want {
			t.Errorf("%s: decode+encode changes the frame:\n got %s\nwant %s", name, got, want)
		}
		if got, want := canonical(t, enc), canonical(t, file); got != want {
			t.Errorf("%s: the value in golden_test.go encodes otherwise (run with -update?):\n got %s\nwant %s", name, got, want)
		}
	}
}

// goldenBodyTypes is the production type each item body decodes into.
func goldenBodyTypes() map[string]func() any {
	return map[string]func() any{
		"up_" + UpMessage:        func() any { return new(vocab.Message) },
		"up_" + UpPREA:           func() any { return new(vocab.Message) },
		"up_" + UpContactRequest: func() any { return new(vocab.Contact) },
		"up_" + UpContactRemove:  func() any { return new(vocab.Contact) },
		"up_" + UpCharge:         func() any { return new(vocab.Charge) },
		"up_" + UpCredit:         func() any { return new(vocab.Credit) },
		"up_" + UpSessionEnd:     func() any { return new(vocab.Session) },
		"up_" + UpAudit:          func() any { return new(vocab.AuditEvent) },
		"up_" + UpDeviceStatus:   func() any { return new(map[string]any) },
		"up_" + UpMessageRead:    func() any { return new(MessageRead) },
		"up_" + UpQuizAttempt:    func() any { return new(vocab.QuizAttempt) },
		"up_" + UpLibraryUse:     func() any { return new(vocab.LibraryUse) },

		"down_" + DownInboundMessage:   func() any { return new(vocab.Message) },
		"down_" + DownMessageStatus:    func() any { return new(MessageStatus) },
		"down_" + DownInmate:           func() any { return new(vocab.Inmate) },
		"down_" + DownTechnician:       func() any { return new(vocab.Technician) },
		"down_" + DownTechnicianRemove: func() any { return new(TechnicianRemoved) },
		"down_" + DownDeposit:          func() any { return new(vocab.Deposit) },
		"down_" + DownContact:          func() any { return new(vocab.Contact) },
		"down_" + DownPolicy:           func() any { return new(vocab.Policy) },
		"down_" + DownRemoteCharge:     func() any { return new(vocab.Charge) },
		"down_" + DownRemoteCredit:     func() any { return new(vocab.Credit) },
		"down_" + DownRemoteSessionEnd: func() any { return new(vocab.Session) },
		"down_" + DownNotice:           func() any { return new(Notice) },
		"down_" + DownSentMessage:      func() any { return new(vocab.Message) },
		"down_" + DownHistory:          func() any { return new(History) },
		"down_" + DownMessageRead:      func() any { return new(MessageRead) },
		"down_" + DownRefund:           func() any { return new(vocab.Refund) },
		"down_" + DownCatalogItem:      func() any { return new(vocab.CatalogItem) },
		"down_" + DownCatalogWithdrawn: func() any { return new(vocab.CatalogWithdrawn) },
		"down_" + DownQuizResult:       func() any { return new(vocab.QuizResult) },
		"down_" + DownLibraryUse:       func() any { return new(vocab.LibraryUse) },
	}
}

// Every uplink and downlink body kind: the golden file decodes into its production type with
// unknown fields refused and encodes back to the same JSON; uplink bodies pass CheckUpBody.
func TestGoldenBodies(t *testing.T) {
	values := map[string]any{}
	for k, v := range goldenUpBodies() {
		values["up_"+k] = v
	}
	for k, v := range goldenDownBodies() {
		values["down_"+k] = v
	}
	types := goldenBodyTypes()
	if len(types) != len(UpKinds)+len(DownKinds) || len(values) != len(types) {
		t.Fatalf("%d types and %d values for %d kinds", len(types), len(values), len(UpKinds)+len(DownKinds))
	}
	for name, v := range values {
		file := name + ".json"
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			writeGolden(t, file, enc)
		}
		b := readGolden(t, file)
		newT, ok := types[name]
		if !ok {
			t.Fatalf("%s: no production type", name)
		}
		dst := newT()
		if err := strictDecode(b, dst); err != nil {
			t.Errorf("%s: decode into %T: %v", file, dst, err)
			continue
		}
		again, err := json.Marshal(dst)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := canonical(t, again), canonical(t, b); got != want {
			t.Errorf("%s: decode+encode changes the body:\n got %s\nwant %s", file, got, want)
		}
		if got, want := canonical(t, enc), canonical(t, b); got != want {
			t.Errorf("%s: the value in golden_test.go encodes otherwise (run with -update?):\n got %s\nwant %s", file, got, want)
		}
		if kind, up := strings.CutPrefix(name, "up_"); up {
			if err := CheckUpBody(kind, b); err != nil {
				t.Errorf("%s: %v", file, err)
			}
		}
	}
}

// The enrollment bodies decode with the production decoders (the request's signature is the
// vector's and verifies) and encode back to the same JSON.
func TestGoldenEnroll(t *testing.T) {
	for name, v := range goldenEnroll(t) {
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			writeGolden(t, name, enc)
		}
		b := readGolden(t, name)
		var got any
		switch name {
		case "enroll_request.json":
			r, err := DecodeEnrollRequest(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = r
		case "enroll_response.json":
			r, err := DecodeEnrollResponse(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = r
		default:
			got = DecodeErrorResponse(b)
		}
		var strict = map[string]any{"enroll_request.json": new(EnrollRequest), "enroll_response.json": new(EnrollResponse),
			"enroll_error.json": new(ErrorResponse)}[name]
		if err := strictDecode(b, strict); err != nil {
			t.Errorf("%s: unknown field: %v", name, err)
		}
		again, _ := json.Marshal(got)
		if g, w := canonical(t, again), canonical(t, b); g != w {
			t.Errorf("%s: decode+encode changes it:\n got %s\nwant %s", name, g, w)
		}
		if g, w := canonical(t, enc), canonical(t, b); g != w {
			t.Errorf("%s: the value in golden_test.go encodes otherwise (run with -update?):\n got %s\nwant %s", name, g, w)
		}
	}
}

// No file in testdata/golden is left without a test: a stale file would document a shape
// nobody checks.
func TestGoldenFilesAllChecked(t *testing.T) {
	want := map[string]bool{}
	for name := range goldenFrames(t) {
		want[name] = true
	}
	for name := range goldenBodyTypes() {
		want[name+".json"] = true
	}
	for name := range goldenEnroll(t) {
		want[name] = true
	}
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	var stale []string
	for _, e := range entries {
		if !want[e.Name()] {
			stale = append(stale, e.Name())
		}
		delete(want, e.Name())
	}
	sort.Strings(stale)
	if len(stale) > 0 || len(want) > 0 {
		t.Fatalf("golden files without a test: %v; tests without a file: %v", stale, want)
	}
}

// Every frame example in docs/PROTOCOL.md (a ```json block that starts with {"type":) is a
// frame DecodeFrame accepts, so the text cannot drift from the decoder.
func TestProtocolDocExamplesDecode(t *testing.T) {
	doc, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	n := 0
	for _, m := range blocks {
		block := bytes.TrimSpace(m[1])
		if !bytes.HasPrefix(block, []byte(`{"type":`)) {
			continue
		}
		n++
		if _, err := DecodeFrame(block); err != nil {
			t.Errorf("PROTOCOL.md example does not decode: %v\n%s", err, block)
		}
	}
	if n < 8 {
		t.Fatalf("found %d frame examples in PROTOCOL.md, want one per frame type (8)", n)
	}
}
