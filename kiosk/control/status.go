// Package control is the technicians' view of a running terminal: one answer type per
// question (Status, ...), computed by the same functions whether kioskd serves them over its
// unix socket or kioskctl opened the store itself. It knows sync and the devices only through
// the small interfaces below; cmd/ wires the real ones in.
package control

import (
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
)

// Version names this build in status answers.
const Version = "tether 0.1.0"

// SocketFile is the control socket's name inside the terminal's data directory.
const SocketFile = "control.sock"

// Link states.
const (
	LinkConnected  = "connected"
	LinkDown       = "disconnected"
	LinkNotEnroll  = "not enrolled"
	LinkNotRunning = "kioskd not running"
)

// Device states.
const (
	DeviceConnected    = "connected"
	DeviceDisconnected = "disconnected"
	DeviceUnknown      = "unknown"
)

// Link is the sync engine's state as a running kioskd knows it.
type Link struct {
	Connected   bool      `json:"connected"`
	LastSuccess time.Time `json:"last_success"` // last welcome, ack or applied downlink
	LastError   string    `json:"last_error,omitempty"`
}

// Device is one serial device's state.
type Device struct {
	Name          string    `json:"name"`
	Role          string    `json:"role"`
	Path          string    `json:"path"`
	State         string    `json:"state"` // DeviceConnected, DeviceDisconnected or DeviceUnknown
	LastEvent     time.Time `json:"last_event"`
	LastEventKind string    `json:"last_event_kind,omitempty"`
	Accepted      uint64    `json:"frames_accepted"`
	Rejected      uint64    `json:"frames_rejected"`
	LastError     string    `json:"last_error,omitempty"`
}

// LinkSource reports the sync engine's link (kioskd adapts its engine).
type LinkSource interface{ Link() Link }

// DeviceSource reports the devices' live states (kioskd adapts its device manager).
type DeviceSource interface{ Devices() []Device }

// Sources is what a status needs beyond the store. With Link and Devices nil, the answer is
// that of a stopped kioskd: link "kioskd not running", configured devices "unknown".
type Sources struct {
	DataDir    string       // for free disk space
	RelayURL   string       // the relay in use: config override or enrollment
	Mode       string       // configured mode, shown when the terminal is not enrolled
	Configured []Device     // devices in the config file (names, roles, paths)
	Link       LinkSource   // nil when kioskd is not running
	Devices    DeviceSource // nil when kioskd is not running
}

// Status is `kioskctl status`.
type Status struct {
	TerminalID  string   `json:"terminal_id"`
	Facility    string   `json:"facility"`
	Mode        string   `json:"mode"`
	BoundInmate string   `json:"bound_inmate,omitempty"`
	Enrolled    bool     `json:"enrolled"`
	Version     string   `json:"version"`
	Kioskd      string   `json:"kioskd"` // "running" or "not running"
	Relay       Relay    `json:"relay"`
	Queue       Queue    `json:"queue"`
	Devices     []Device `json:"devices"`
	Store       Store    `json:"store"`
	// Session is the session in progress: the inmate's id only, never a PIN or a name.
	Session *Session `json:"session"`
}

// Relay is the relay and the link to it.
type Relay struct {
	URL         string     `json:"url"`
	Link        string     `json:"link"` // Link* constants
	LastSuccess *time.Time `json:"last_success"`
	LastError   string     `json:"last_error,omitempty"`
}

// Queue is the forwarding queue.
type Queue struct {
	Waiting int       `json:"waiting"`
	Oldest  time.Time `json:"oldest"` // creation time of the oldest item waiting (zero if none)
}

// Store is the store file and the disk under it.
type Store struct {
	kiosk.StoreInfo
	FreeBytes uint64 `json:"free_bytes"`
}

// Session is the session in progress.
type Session struct {
	InmateID   string    `json:"inmate_id,omitempty"`
	Technician bool      `json:"technician,omitempty"`
	SessionID  string    `json:"session_id,omitempty"`
	Started    time.Time `json:"started"`
	Minutes    int       `json:"minutes"`
}

// ComputeStatus builds the status from the terminal and src.
func ComputeStatus(t *kiosk.Terminal, src Sources) (Status, error) {
	st := Status{Version: Version, Kioskd: "not running", Mode: src.Mode, Devices: []Device{}}
	e, ok, err := t.Enrollment()
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	if ok {
		st.Enrolled, st.TerminalID, st.Facility, st.Mode = true, e.TerminalID, e.Facility, e.Mode
	}
	if st.Mode == "" {
		st.Mode = "kiosk"
	}
	if id, bound, err := t.BoundInmate(); err != nil {
		return st, fmt.Errorf("status: %w", err)
	} else if bound {
		st.BoundInmate = id
	}
	st.Queue.Waiting, st.Queue.Oldest, err = t.Store().QueueStats()
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	info, err := t.Store().Info()
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	st.Store.StoreInfo = info
	dir := src.DataDir
	if dir == "" {
		dir = filepath.Dir(info.Path)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil {
		st.Store.FreeBytes = fs.Bavail * uint64(fs.Bsize)
	}

	st.Relay.URL = src.RelayURL
	running := src.Link != nil || src.Devices != nil
	switch {
	case running:
		st.Kioskd = "running"
		if s, ok := t.Active(); ok {
			st.Session = &Session{InmateID: s.InmateID, Technician: s.Technician, SessionID: s.SessionID,
				Started: s.StartedAt, Minutes: s.Minutes}
			if s.Technician {
				st.Session.InmateID = ""
			}
		}
	}
	switch {
	case !running:
		st.Relay.Link = LinkNotRunning
	case !st.Enrolled || src.Link == nil:
		st.Relay.Link = LinkNotEnroll
	default:
		l := src.Link.Link()
		st.Relay.Link = LinkDown
		if l.Connected {
			st.Relay.Link = LinkConnected
		}
		if !l.LastSuccess.IsZero() {
			ls := l.LastSuccess
			st.Relay.LastSuccess = &ls
		}
		st.Relay.LastError = l.LastError
	}
	if src.Devices != nil {
		st.Devices = append(st.Devices, src.Devices.Devices()...)
	} else {
		for _, d := range src.Configured {
			d.State = DeviceUnknown
			st.Devices = append(st.Devices, d)
		}
	}
	return st, nil
}
