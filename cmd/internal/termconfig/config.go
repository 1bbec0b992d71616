// Package termconfig is kioskd's configuration file, shared by kioskd (which runs it) and
// kioskctl (which shows, edits and checks it): one parser, one validator, errors naming the field.
package termconfig

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/printer"
	"github.com/tether-kiosk/tether/sync/client"
)

// Modes a terminal runs in.
const (
	ModeKiosk  = "kiosk"  // shared: badge, then PIN
	ModeTablet = "tablet" // bound to one inmate: PIN only
)

// Config is kioskd's JSON configuration file. Every field is optional except what a
// device needs; an unknown field is an error, so a typo never silently does nothing.
type Config struct {
	Relay   RelayConfig    `json:"relay"`
	Mode    string         `json:"mode"` // kiosk or tablet; "" takes the enrollment's
	Devices []DeviceConfig `json:"devices"`
	Screen  ScreenConfig   `json:"screen"`
	Printer PrinterConfig  `json:"printer"`
}

// PrinterConfig names the facility printer inmates print letters and lesson pages on: a CUPS
// server and one of its queues. Off (no Print button) unless both are set; the policy's
// max_print_pages must allow printing too.
type PrinterConfig struct {
	// URL is the CUPS server, ipp://host:port or http://host:port ("ipp://localhost:631"
	// for the kiosk's own CUPS).
	URL   string `json:"url"`
	Queue string `json:"queue"` // the CUPS queue, as lpstat -p names it
}

// Enabled reports whether a printer is configured: both the server and the queue.
func (p PrinterConfig) Enabled() bool { return p.URL != "" && p.Queue != "" }

// Server is the CUPS server's host:port (the URL's; port 631 if it names none).
func (p PrinterConfig) Server() (string, error) {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "ipp" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", errors.New("printer.url: want ipp://host:port or http://host:port")
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "631"), nil
	}
	return u.Host, nil
}

// validate checks each field that is set (kioskctl sets them one at a time).
func (p PrinterConfig) validate() error {
	if p.URL != "" {
		if _, err := p.Server(); err != nil {
			return err
		}
	}
	if p.Queue != "" {
		if err := printer.CheckQueueName(p.Queue); err != nil {
			return fmt.Errorf("printer.queue: %w", err)
		}
	}
	return nil
}

// RelayConfig overrides where the relay is and how it is trusted (the enrollment has both).
type RelayConfig struct {
	URL string `json:"url"` // wss://relay.example:8443
	// Gateways are further relayd gateways over the same cluster (docs/SCALE.md), tried in
	// order after url (or the enrolled URL) when it cannot be reached; at most 7.
	Gateways  []string `json:"gateways,omitempty"`
	CAFile    string   `json:"ca_file"`    // PEM file of CAs to trust instead of the system roots
	PinSHA256 string   `json:"pin_sha256"` // SHA-256 of the relay's leaf certificate, hex
	Insecure  bool     `json:"insecure"`   // allow ws:// to a relay off loopback
}

// DeviceConfig is hardware/device's Config in JSON (snake_case, durations as "2s").
type DeviceConfig struct {
	Name         string            `json:"name"`
	Role         string            `json:"role"` // badge or pinpad
	Path         string            `json:"path"` // prefer /dev/serial/by-id/...
	Baud         int               `json:"baud"`
	DataBits     int               `json:"data_bits"`
	Parity       string            `json:"parity"`
	StopBits     int               `json:"stop_bits"`
	Framing      string            `json:"framing"`   // em4100, wiegand26, magstripe, line
	IDFormat     string            `json:"id_format"` // em4100: decimal|hex; wiegand26: fc-card|card
	Prefix       string            `json:"prefix"`
	Suffix       string            `json:"suffix"`
	MaxLen       int               `json:"max_len"`
	DedupeWindow Duration          `json:"dedupe_window"`
	KeyMap       map[string]string `json:"key_map"` // byte ("13", "0x0d" or one character) -> key
}

// ScreenConfig sets the window.
type ScreenConfig struct {
	Width    int    `json:"width"`    // windowed size; 0 = 1280
	Height   int    `json:"height"`   // 0 = 800
	Language string `json:"language"` // welcome screen language; "" = en
}

// Duration is a time.Duration written "2s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "1.5s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("want a duration such as \"2s\"")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"2s\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes "2s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Load reads and validates the config file at path.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := Parse(io.LimitReader(f, 1<<20))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes strictly and validates; the error names the field.
func Parse(r io.Reader) (Config, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return Config{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, jsonError(raw, err)
	}
	if dec.More() {
		return Config{}, errors.New("trailing data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// jsonError says where a decoding error is, by field or by line.
func jsonError(raw []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(raw, se.Offset)
		return fmt.Errorf("line %d column %d: %v", line, col, se)
	case errors.As(err, &te):
		return fmt.Errorf("%s: want %v, got JSON %s", te.Field, te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return fmt.Errorf("%s (see cmd/internal/termconfig for the fields)", strings.TrimPrefix(err.Error(), "json: "))
	case errors.Is(err, io.EOF):
		return errors.New("empty file: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, _ := lineCol(raw, int64(len(raw)))
		return fmt.Errorf("line %d: the file ends in the middle of the JSON object (truncated?)", line)
	}
	return err
}

func lineCol(raw []byte, off int64) (int, int) {
	line, col := 1, 1
	for i := int64(0); i < off && i < int64(len(raw)); i++ {
		if raw[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// Validate reports the first bad field, by its JSON path.
func (c Config) Validate() error {
	if err := c.Relay.validate(); err != nil {
		return err
	}
	switch c.Mode {
	case "", ModeKiosk, ModeTablet:
	default:
		return fmt.Errorf("mode: %q is neither kiosk nor tablet", c.Mode)
	}
	names := map[string]int{}
	for i, d := range c.Devices {
		field := fmt.Sprintf("devices[%d]", i)
		dc, err := d.device(field)
		if err != nil {
			return err
		}
		if err := dc.Validate(); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if j, dup := names[d.Name]; dup {
			return fmt.Errorf("%s.name: %q is also devices[%d]'s name", field, d.Name, j)
		}
		names[d.Name] = i
	}
	if c.Screen.Width < 0 || c.Screen.Width > 10000 {
		return fmt.Errorf("screen.width: %d is outside 0..10000", c.Screen.Width)
	}
	if c.Screen.Height < 0 || c.Screen.Height > 10000 {
		return fmt.Errorf("screen.height: %d is outside 0..10000", c.Screen.Height)
	}
	switch c.Screen.Language {
	case "", "en", "es":
	default:
		return fmt.Errorf("screen.language: %q is not one of en, es", c.Screen.Language)
	}
	return c.Printer.validate()
}

// maxGateways is the most further gateways: with url, the terminal's list holds at most 8
// (client.MaxRelayURLs).
const maxGateways = 7

func (r RelayConfig) validate() error {
	if r.URL != "" {
		if err := r.checkURL("relay.url", r.URL); err != nil {
			return err
		}
	}
	if len(r.Gateways) > maxGateways {
		return fmt.Errorf("relay.gateways: %d given, at most %d", len(r.Gateways), maxGateways)
	}
	for i, g := range r.Gateways {
		if err := r.checkURL(fmt.Sprintf("relay.gateways[%d]", i), g); err != nil {
			return err
		}
	}
	if r.PinSHA256 != "" {
		h := strings.ReplaceAll(r.PinSHA256, ":", "")
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			return fmt.Errorf("relay.pin_sha256: want 64 hex digits (colons allowed)")
		}
	}
	if r.CAFile != "" {
		if _, err := os.Stat(r.CAFile); err != nil {
			return fmt.Errorf("relay.ca_file: %v", err)
		}
	}
	return nil
}

// checkURL checks one relay URL named field. The URL is never echoed back: one with a
// password in it must not reach a log.
func (r RelayConfig) checkURL(field, raw string) error {
	if len(raw) > 512 {
		return fmt.Errorf("%s: %d bytes, at most 512", field, len(raw))
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return fmt.Errorf("%s: not a URL (want wss://host:port)", field)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s: credentials, query and fragment are not allowed", field)
	}
	if u.Host == "" {
		return fmt.Errorf("%s: has no host (want wss://host:port)", field)
	}
	switch u.Scheme {
	case "wss", "https":
	case "ws", "http":
		if !r.Insecure && !isLoopback(u.Hostname()) {
			return fmt.Errorf("%s: plain %s:// is allowed only to a loopback address; use wss:// or set relay.insecure", field, u.Scheme)
		}
		if r.PinSHA256 != "" {
			return fmt.Errorf("relay.pin_sha256: a pinned certificate needs wss://")
		}
	default:
		return fmt.Errorf("%s: scheme %q is not wss, https, ws or http", field, u.Scheme)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Transport is the relay's trust settings, or nil when the config sets none.
func (r RelayConfig) Transport() *client.Transport {
	if r.CAFile == "" && r.PinSHA256 == "" && !r.Insecure {
		return nil
	}
	return &client.Transport{CAFile: r.CAFile, PinSHA256: r.PinSHA256, Insecure: r.Insecure}
}

// device converts to hardware/device's config; field is the JSON path for errors.
func (d DeviceConfig) device(field string) (device.Config, error) {
	var km map[byte]string
	if d.KeyMap != nil {
		km = make(map[byte]string, len(d.KeyMap))
		for k, v := range d.KeyMap {
			b, err := parseKeyByte(k)
			if err != nil {
				return device.Config{}, fmt.Errorf("%s.key_map[%q]: %v", field, k, err)
			}
			km[b] = v
		}
	}
	return device.Config{Name: d.Name, Role: d.Role, Path: d.Path, Baud: d.Baud, DataBits: d.DataBits,
		Parity: d.Parity, StopBits: d.StopBits, Framing: d.Framing, IDFormat: d.IDFormat, Prefix: d.Prefix,
		Suffix: d.Suffix, MaxLen: d.MaxLen, DedupeWindow: time.Duration(d.DedupeWindow), KeyMap: km}, nil
}

// parseKeyByte reads a key map key: "13", "0x0d" or a single character such as "#".
func parseKeyByte(s string) (byte, error) {
	if len(s) == 1 && (s[0] < '0' || s[0] > '9') {
		return s[0], nil
	}
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, fmt.Errorf("want a byte: 0..255, 0x00..0xff or one non-digit character")
	}
	return byte(n), nil
}

// DeviceConfigs converts every device (Validate has passed).
func (c Config) DeviceConfigs() []device.Config {
	out := make([]device.Config, 0, len(c.Devices))
	for i, d := range c.Devices {
		dc, _ := d.device(fmt.Sprintf("devices[%d]", i))
		out = append(out, dc)
	}
	return out
}
