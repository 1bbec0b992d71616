package serialport

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Entry is one port a technician can pick.
type Entry struct {
	Path     string // as listed, e.g. /dev/serial/by-id/usb-FTDI_...-if00-port0
	Resolved string // what it points to, e.g. /dev/ttyUSB0; equal to Path when not a link
}

// String is what kioskctl prints for a technician.
func (e Entry) String() string {
	if e.Resolved == "" || e.Resolved == e.Path {
		return e.Path
	}
	return e.Path + " -> " + e.Resolved
}

// List lists serial ports under /dev.
func List() ([]Entry, error) { return ListIn("/dev") }

// ListIn lists ports under dev: serial/by-id links first (stable across replugging, so
// what config should name), then ttyUSB*, ttyACM* and ttyS* that exist, in numeric order.
func ListIn(dev string) ([]Entry, error) {
	var out []Entry
	byID := filepath.Join(dev, "serial", "by-id")
	names, err := os.ReadDir(byID)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("list %s: %w", byID, err)
	}
	for _, n := range names {
		out = append(out, entry(filepath.Join(byID, n.Name())))
	}
	for _, prefix := range []string{"ttyUSB", "ttyACM", "ttyS"} {
		matches, err := filepath.Glob(filepath.Join(dev, prefix+"*"))
		if err != nil {
			return nil, fmt.Errorf("list %s*: %w", prefix, err)
		}
		var found []string
		for _, m := range matches {
			if _, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(m), prefix)); err == nil {
				found = append(found, m)
			}
		}
		sort.Slice(found, func(i, j int) bool { return portNumber(found[i], prefix) < portNumber(found[j], prefix) })
		for _, m := range found {
			out = append(out, entry(m))
		}
	}
	return out, nil
}

func portNumber(path, prefix string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), prefix))
	return n
}

func entry(path string) Entry {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		// A dangling link is worth showing: the adapter was just unplugged.
		if target, lerr := os.Readlink(path); lerr == nil {
			return Entry{Path: path, Resolved: target + " (missing)"}
		}
		resolved = path
	}
	return Entry{Path: path, Resolved: resolved}
}
