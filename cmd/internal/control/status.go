// Package control is the technicians' view of a running terminal, served to kioskctl over a
// unix socket: one answer type per question (Status, ...), computed by the same functions
// whether kioskd serves them (Serve) or kioskctl opened the store itself. It is a command's
// plumbing, not domain, so it lives under cmd/ and may reach the sync engine, the devices and
// the config file; devices and the link are shown as kiosk/status defines them, as the
// technician screens show them.
package control

import (
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/status"
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

// Sources is what a status needs beyond the store. With Link and Devices nil, the answer is
// that of a stopped kioskd: link "kioskd not running", configured devices "unknown".
type Sources struct {
	DataDir    string                 // for free disk space
	RelayURL   string                 // the relay configured: config override or enrollment
	Mode       string                 // configured mode, shown when the terminal is not enrolled
	Configured []status.Device        // devices in the config file (names, roles, paths, framings)
	Link       func() status.Link     // the sync engine's link (zero when not enrolled); nil when kioskd is not running
	Devices    func() []status.Device // the device manager's states; nil when kioskd is not running
}

// Status is `kioskctl status`.
type Status struct {
	TerminalID  string          `json:"terminal_id"`
	Facility    string          `json:"facility"`
	Mode        string          `json:"mode"`
	BoundInmate string          `json:"bound_inmate,omitempty"`
	Enrolled    bool            `json:"enrolled"`
	Version     string          `json:"version"`
	Kioskd      string          `json:"kioskd"` // "running" or "not running"
	Relay       Relay           `json:"relay"`
	Queue       Queue           `json:"queue"`
	Devices     []status.Device `json:"devices"`
	Store       Store           `json:"store"`
	// Session is the session in progress: the inmate's id only, never a PIN or a name.
	Session *Session `json:"session"`
}

// Relay is the relay and the link to it.
type Relay struct {
	URL  string `json:"url"`
	Link string `json:"link"` // Link* constants, in one word
	// Sync is the sync engine's report; nil when none runs (kioskd stopped, or not enrolled).
	Sync *status.Link `json:"sync,omitempty"`
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
	st := Status{Version: Version, Kioskd: "not running", Mode: src.Mode, Devices: []status.Device{}}
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
	var link status.Link
	if src.Link != nil {
		link = src.Link()
	}
	switch {
	case !running:
		st.Relay.Link = LinkNotRunning
	case !st.Enrolled || !link.Enrolled:
		st.Relay.Link = LinkNotEnroll
	default:
		st.Relay.Link = LinkDown
		if link.Connected {
			st.Relay.Link = LinkConnected
		}
		if link.RelayURL != "" {
			st.Relay.URL = link.RelayURL // the one in use
		}
		st.Relay.Sync = &link
	}
	if src.Devices != nil {
		st.Devices = append(st.Devices, src.Devices()...)
	} else {
		for _, d := range src.Configured {
			d.State = status.DeviceUnknown
			st.Devices = append(st.Devices, d)
		}
	}
	return st, nil
}
