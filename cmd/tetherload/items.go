package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Mix is the share of each uplink kind in the generated load, as integer weights.
type Mix struct {
	Charge  int `json:"charge"`
	Message int `json:"message"`
	Status  int `json:"device_status"`
}

// DefaultMix is roughly what a busy kiosk sends: mostly billed minutes, some letters, a status now and then.
const DefaultMix = "charge=7,message=2,status=1"

// ParseMix reads "charge=7,message=2,status=1" (any subset, any order; "device_status" is the
// same as "status"). Weights are whole numbers 0..1000 and at least one must be positive.
func ParseMix(s string) (Mix, error) {
	var m Mix
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix %q: %q is not kind=weight", s, part)
		}
		name = strings.TrimSpace(name)
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 || w > 1000 {
			return Mix{}, fmt.Errorf("mix %q: weight of %q must be a whole number 0..1000", s, name)
		}
		if name == "device_status" {
			name = "status"
		}
		if seen[name] {
			return Mix{}, fmt.Errorf("mix %q: %q is given twice", s, name)
		}
		seen[name] = true
		switch name {
		case "charge":
			m.Charge = w
		case "message":
			m.Message = w
		case "status":
			m.Status = w
		default:
			return Mix{}, fmt.Errorf("mix %q: unknown kind %q (want charge, message or status)", s, name)
		}
	}
	if m.Charge+m.Message+m.Status == 0 {
		return Mix{}, fmt.Errorf("mix %q: no kind has a positive weight", s)
	}
	return m, nil
}

// String is the canonical form ParseMix reads back.
func (m Mix) String() string {
	return fmt.Sprintf("charge=%d,message=%d,status=%d", m.Charge, m.Message, m.Status)
}

// pick chooses a kind by weight.
func (m Mix) pick(rng *rand.Rand) string {
	n := rng.IntN(m.Charge + m.Message + m.Status)
	switch {
	case n < m.Charge:
		return wire.UpCharge
	case n < m.Charge+m.Message:
		return wire.UpMessage
	default:
		return wire.UpDeviceStatus
	}
}

// departments are where load messages go: a department needs no approved contact, so every
// generated message is accepted (and delivered at once: requests to staff have their own review
// setting, off by default; PUT /admin/v1/facilities/{facility}/monitoring).
var departments = kiosk.DefaultPolicy().Departments

// newItem makes the terminal's next uplink item with a body the relay accepts: a charge for an
// inmate of the terminal's facility (record ids unique per terminal and epoch, hence
// facility-wide), a letter to a department, or a device status.
func (t *terminal) newItem(now time.Time) wire.Item {
	t.nextSeq++
	seq := t.nextSeq
	inmate := t.inmates[t.rng.IntN(len(t.inmates))]
	kind := t.mix.pick(t.rng)
	var raw []byte
	switch kind {
	case wire.UpCharge:
		// A session is 60 minutes here; the record id is what the relay dedupes charges by.
		session := "ls-" + t.id + "-" + t.epoch[:8] + "-" + strconv.FormatUint(seq/60, 10)
		minute := strconv.FormatUint(seq%60, 10)
		raw = chargeBody(kiosk.Charge{RecordID: session + "/" + strings.Repeat("0", 6-len(minute)) + minute, SessionID: session,
			InmateID: inmate, Minute: int(seq % 60), Cents: 5, At: now})
	case wire.UpMessage:
		d := departments[t.rng.IntN(len(departments))]
		raw = messageBody(kiosk.Message{ID: uuid.Must(uuid.NewV7()).String(), InmateID: inmate, Box: kiosk.BoxOutbox,
			Peer: d.ID, PeerName: d.Name, Body: "Load test letter " + strconv.FormatUint(seq, 10) + " from terminal " + strconv.Itoa(t.idx) + ".",
			State: kiosk.MsgQueued, CreatedAt: now, UpdatedAt: now})
	default:
		raw = mustJSON(kind, map[string]any{"items_waiting": len(t.pending), "printer": "ok", "badge_reader": "ok",
			"disk_free_mib": 2048, "software": software})
	}
	return wire.Item{Seq: seq, ID: uuid.Must(uuid.NewV7()).String(), Kind: kind, CreatedAt: now, Body: raw}
}

func mustJSON(kind string, body any) []byte {
	raw, err := json.Marshal(body)
	if err != nil {
		panic(fmt.Sprintf("encode %s body: %v", kind, err)) // our own structs always encode
	}
	return raw
}

// The tool makes an item for every batch on each of its terminals, which share the machine
// with the relay they measure: messageBody and chargeBody write the bodies it makes by hand,
// byte for byte what json.Marshal writes for them (TestGeneratedBodiesAsEncodingJSON), and
// leave any other (a field the tool never sets, a string encoding/json escapes, a time it
// refuses) to json.Marshal.

// messageBody is json.Marshal(m) for a letter as newItem makes it.
func messageBody(m kiosk.Message) []byte {
	if m.Subject != "" || m.Reason != "" || m.Read || m.ReplyTo != "" || m.Photos != nil {
		return mustJSON(wire.UpMessage, m)
	}
	b := make([]byte, 0, 256+len(m.Body))
	b = append(b, `{"id":`...)
	b, ok := appendPlain(b, m.ID)
	for _, f := range []struct{ name, v string }{{`,"inmate_id":`, m.InmateID}, {`,"box":`, m.Box}, {`,"peer":`, m.Peer},
		{`,"peer_name":`, m.PeerName}, {`,"body":`, m.Body}} {
		if ok {
			b = append(b, f.name...)
			b, ok = appendPlain(b, f.v)
		}
	}
	if ok && m.State != "" {
		b = append(b, `,"state":`...)
		b, ok = appendPlain(b, m.State)
	}
	if ok {
		b = append(b, `,"created_at":`...)
		b, ok = appendTime(b, m.CreatedAt)
	}
	if ok {
		b = append(b, `,"updated_at":`...)
		b, ok = appendTime(b, m.UpdatedAt)
	}
	if !ok {
		return mustJSON(wire.UpMessage, m)
	}
	return append(b, '}')
}

// chargeBody is json.Marshal(c) for a charge as newItem makes it.
func chargeBody(c kiosk.Charge) []byte {
	if c.MessageID != "" || c.Pages != 0 || c.ItemID != "" {
		return mustJSON(wire.UpCharge, c)
	}
	b := make([]byte, 0, 200)
	b = append(b, `{"record_id":`...)
	b, ok := appendPlain(b, c.RecordID)
	if ok {
		b = append(b, `,"session_id":`...)
		b, ok = appendPlain(b, c.SessionID)
	}
	if ok {
		b = append(b, `,"inmate_id":`...)
		b, ok = appendPlain(b, c.InmateID)
	}
	if ok {
		b = append(b, `,"minute":`...)
		b = strconv.AppendInt(b, int64(c.Minute), 10)
		b = append(b, `,"cents":`...)
		b = strconv.AppendInt(b, int64(c.Cents), 10)
		b = append(b, `,"at":`...)
		b, ok = appendTime(b, c.At)
	}
	if !ok {
		return mustJSON(wire.UpCharge, c)
	}
	return append(b, '}')
}

// appendPlain appends s quoted if encoding/json writes it as it is (printable ASCII without
// '"', '\\', '<', '>', '&'); ok is false otherwise.
func appendPlain(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// appendTime appends t as encoding/json writes a time.Time; ok is false where it refuses one.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return b, false
	}
	return append(b, '"'), true
}
