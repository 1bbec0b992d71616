// Package status holds the one model of what the terminal's parts report about themselves:
// a serial device (made by hardware/device) and the sync link (made by sync/client). The
// technician screens (ui) and the control API (kioskctl status) show these types as they
// are, so a screen and a command can never read the same part two ways. It lives under
// kiosk/ because every layer may import kiosk; it imports nothing of the module itself.
package status

import "time"

// DeviceState says whether a device is there.
type DeviceState string

// Device states. A running device manager reports connected or disconnected; unknown is
// what the control API says of a configured device when no kioskd runs it.
const (
	DeviceConnected    DeviceState = "connected"
	DeviceDisconnected DeviceState = "disconnected"
	DeviceUnknown      DeviceState = "unknown"
)

// Device is one configured serial device and what it did since its manager started.
type Device struct {
	Name    string      `json:"name"`
	Role    string      `json:"role"` // "badge" or "pinpad"
	Path    string      `json:"path"`
	Framing string      `json:"framing,omitempty"` // badge readers only
	State   DeviceState `json:"state"`
	// DisconnectedSince is zero while connected (and when the state is unknown).
	DisconnectedSince time.Time `json:"disconnected_since,omitzero"`
	LastError         string    `json:"last_error,omitempty"` // why it is (or last was) disconnected
	FailedOpens       uint64    `json:"failed_opens,omitempty"`
	NextRetry         time.Time `json:"next_retry,omitzero"` // the next attempt to open while disconnected
	// LastEvent is the last badge, rejection or key (zero before the first), of LastEventKind.
	LastEvent     time.Time `json:"last_event,omitzero"`
	LastEventKind string    `json:"last_event_kind,omitempty"`
	// Accepted counts badge frames that decoded, repeats of a held card included; a PIN pad's
	// keys are counted in Keys, never here.
	Accepted     uint64            `json:"accepted"`
	Duplicates   uint64            `json:"duplicates,omitempty"` // of Accepted, repeats within the dedupe window
	Rejected     map[string]uint64 `json:"rejected,omitempty"`   // rejected badge frames by reason
	Noise        uint64            `json:"noise_bytes,omitempty"`
	Keys         uint64            `json:"keys,omitempty"` // PIN pad keys accepted (counts only, never digits)
	UnknownBytes uint64            `json:"unknown_bytes,omitempty"`
	Bounced      uint64            `json:"bounced,omitempty"`
	Dropped      uint64            `json:"dropped,omitempty"` // events lost because the consumer was slow
	Reconnects   uint64            `json:"reconnects,omitempty"`
}

// Connected reports a device that is open now.
func (d Device) Connected() bool { return d.State == DeviceConnected }

// RejectedTotal is the number of rejected frames, whatever the reason.
func (d Device) RejectedTotal() uint64 {
	var n uint64
	for _, c := range d.Rejected {
		n += c
	}
	return n
}

// ClockOffsetShown is the clock offset from which technicians are told the terminal's clock
// is off: below it, network delay and ordinary drift.
const ClockOffsetShown = 2 * time.Minute

// Link is the sync link to the relay. The zero value is a terminal that is not enrolled:
// no engine runs, there is no relay to reach.
type Link struct {
	Enrolled    bool      `json:"enrolled"` // a sync engine runs for an enrollment
	Connected   bool      `json:"connected"`
	RelayURL    string    `json:"relay_url,omitempty"`   // the relay in use: the config's override or the enrollment's
	LastSuccess time.Time `json:"last_success,omitzero"` // last welcome, ack or applied downlink; zero: never
	LastError   string    `json:"last_error,omitempty"`  // why the last connection failed or ended ("" after a success)
	// Waiting counts the items in the forwarding queue; OldestWaiting is the creation time of
	// the oldest of them (zero if none).
	Waiting       int       `json:"waiting"`
	OldestWaiting time.Time `json:"oldest_waiting,omitzero"`
	// TerminalID, Facility, Mode and InmateID are what the relay last welcomed the terminal
	// as (the enrollment's until the first welcome).
	TerminalID  string `json:"terminal_id,omitempty"`
	Facility    string `json:"facility,omitempty"`
	Mode        string `json:"mode,omitempty"`
	InmateID    string `json:"inmate_id,omitempty"`
	DownApplied uint64 `json:"down_applied"` // highest downlink seq applied
	// ClockOffset is the relay's clock minus the terminal's at the last welcome: positive, the
	// terminal's clock is behind. Technicians see it when it is large (ClockOffsetShown).
	ClockOffset time.Duration `json:"clock_offset_ns,omitempty"`
	// LastRecovery says what the engine last repaired by itself (a new epoch after the relay
	// refused the numbering), and when; it stays after later successes, for the technicians.
	LastRecovery   string    `json:"last_recovery,omitempty"`
	LastRecoveryAt time.Time `json:"last_recovery_at,omitzero"`
}
