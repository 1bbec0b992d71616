package termconfig

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
)

// DefaultPath is where kioskd's config lives unless told otherwise.
const DefaultPath = "/etc/tether/kioskd.json"

// Keys lists what `kioskctl config set` can change; devices are "devices.NAME.FIELD".
var Keys = []string{"relay.url", "relay.gateways (comma-separated; empty clears)", "relay.ca_file", "relay.pin_sha256", "relay.insecure", "mode",
	"screen.width", "screen.height", "screen.language", "printer.url", "printer.queue",
	"devices.NAME (a JSON object)", "devices.NAME.{role,path,baud,data_bits,parity,stop_bits,framing,id_format,prefix,suffix,max_len,dedupe_window}"}

// Set returns c with key set to value, validated; the error names the key. A device that
// does not exist yet is added when its role is set first.
func (c Config) Set(key, value string) (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
	}
	atoi := func() (int, error) {
		n, err := strconv.Atoi(value)
		if err != nil {
			return 0, fmt.Errorf("%s: want a whole number, got %q", key, value)
		}
		return n, nil
	}
	out := c
	out.Devices = append([]DeviceConfig(nil), c.Devices...)
	var err error
	switch key {
	case "relay.url":
		out.Relay.URL = value
	case "relay.gateways":
		// One value, the further gateways in the order they are tried: "wss://g2,wss://g3".
		out.Relay.Gateways = nil
		for _, g := range strings.Split(value, ",") {
			if g = strings.TrimSpace(g); g != "" {
				out.Relay.Gateways = append(out.Relay.Gateways, g)
			}
		}
	case "relay.ca_file":
		out.Relay.CAFile = value
	case "relay.pin_sha256":
		out.Relay.PinSHA256 = value
	case "relay.insecure":
		if out.Relay.Insecure, err = strconv.ParseBool(value); err != nil {
			return bad("want true or false, got %q", value)
		}
	case "mode":
		out.Mode = value
	case "screen.width":
		if out.Screen.Width, err = atoi(); err != nil {
			return c, err
		}
	case "screen.height":
		if out.Screen.Height, err = atoi(); err != nil {
			return c, err
		}
	case "screen.language":
		out.Screen.Language = value
	case "printer.url":
		out.Printer.URL = value
	case "printer.queue":
		out.Printer.Queue = value
	default:
		rest, ok := strings.CutPrefix(key, "devices.")
		name, field, ok2 := strings.Cut(rest, ".")
		if ok && !ok2 && name != "" {
			// A whole device as a JSON object: adds or replaces it.
			dec := json.NewDecoder(strings.NewReader(value))
			dec.DisallowUnknownFields()
			var d DeviceConfig
			if err := dec.Decode(&d); err != nil {
				return bad("want a JSON object of device fields: %v", err)
			}
			d.Name = name
			replaced := false
			for j := range out.Devices {
				if out.Devices[j].Name == name {
					out.Devices[j], replaced = d, true
				}
			}
			if !replaced {
				out.Devices = append(out.Devices, d)
			}
			break
		}
		if !ok || !ok2 || name == "" {
			return bad("unknown key (want one of %s)", strings.Join(Keys, ", "))
		}
		i := -1
		for j, d := range out.Devices {
			if d.Name == name {
				i = j
			}
		}
		if i < 0 {
			return bad(`no device %q: add it whole first, e.g. devices.%s '{"role":"badge","path":"/dev/ttyUSB0","framing":"em4100"}'`, name, name)
		}
		d := &out.Devices[i]
		num := func(p *int) error {
			n, err := atoi()
			*p = n
			return err
		}
		switch field {
		case "role":
			d.Role = value
		case "path":
			d.Path = value
		case "baud":
			err = num(&d.Baud)
		case "data_bits":
			err = num(&d.DataBits)
		case "parity":
			d.Parity = value
		case "stop_bits":
			err = num(&d.StopBits)
		case "framing":
			d.Framing = value
		case "id_format":
			d.IDFormat = value
		case "prefix":
			d.Prefix = value
		case "suffix":
			d.Suffix = value
		case "max_len":
			err = num(&d.MaxLen)
		case "dedupe_window":
			v, perr := time.ParseDuration(value)
			if perr != nil {
				return bad("want a duration such as 2s, got %q", value)
			}
			d.DedupeWindow = Duration(v)
		default:
			return bad("unknown device field %q", field)
		}
		if err != nil {
			return c, err
		}
	}
	if err := out.Validate(); err != nil {
		return c, err
	}
	return out, nil
}

// Save writes c to path atomically (mode 0600): kioskd reads either the old or the new file.
func (c Config) Save(path string) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return kiosk.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(append(raw, '\n'))
		return err
	})
}
