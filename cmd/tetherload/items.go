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
	var body any
	switch kind {
	case wire.UpCharge:
		// A session is 60 minutes here; the record id is what the relay dedupes charges by.
		session := fmt.Sprintf("ls-%s-%s-%d", t.id, t.epoch[:8], seq/60)
		body = kiosk.Charge{RecordID: fmt.Sprintf("%s/%06d", session, seq%60), SessionID: session,
			InmateID: inmate, Minute: int(seq % 60), Cents: 5, At: now}
	case wire.UpMessage:
		d := departments[t.rng.IntN(len(departments))]
		body = kiosk.Message{ID: uuid.Must(uuid.NewV7()).String(), InmateID: inmate, Box: kiosk.BoxOutbox,
			Peer: d.ID, PeerName: d.Name, Body: fmt.Sprintf("Load test letter %d from terminal %d.", seq, t.idx),
			State: kiosk.MsgQueued, CreatedAt: now, UpdatedAt: now}
	default:
		body = map[string]any{"items_waiting": len(t.pending), "printer": "ok", "badge_reader": "ok",
			"disk_free_mib": 2048, "software": software}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		panic(fmt.Sprintf("encode %s body: %v", kind, err)) // our own structs always encode
	}
	return wire.Item{Seq: seq, ID: uuid.Must(uuid.NewV7()).String(), Kind: kind, CreatedAt: now, Body: raw}
}
