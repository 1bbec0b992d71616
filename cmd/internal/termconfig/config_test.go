package termconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDemoConfigLoadsAndSavesUnchanged(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "..", "assets", "demo", "kioskd.json"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kioskd.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved config mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, err := Load(path)
	if err != nil || !reflect.DeepEqual(c, again) {
		t.Fatalf("reloaded config differs: %+v vs %+v (%v)", again, c, err)
	}
}

// Each broken config is refused with the offending field (or line) named.
func TestBrokenConfigNamesTheField(t *testing.T) {
	for _, c := range []struct{ json, field string }{
		{`{"mode": "kiosq"}`, "mode"},
		{`{"relay": {"url": "ws://relay.example.org"}}`, "relay.url"},
		{`{"relay": {"url": "ftp://relay"}}`, "relay.url"},
		{`{"relay": {"url": "wss://r", "pin_sha256": "abc"}}`, "relay.pin_sha256"},
		{`{"relay": {"ca_file": "/nonexistent/ca.pem"}}`, "relay.ca_file"},
		{`{"relay": {"gateways": ["wss://g1", "ftp://g2"]}}`, "relay.gateways[1]"},
		{`{"relay": {"gateways": ["ws://g1.example.org"]}}`, "relay.gateways[0]"},
		{`{"relay": {"gateways": ["wss://tech:s3cret@g1"]}}`, "relay.gateways[0]"},
		{`{"relay": {"gateways": ["wss://g1/?a=b"]}}`, "relay.gateways[0]"},
		{`{"relay": {"gateways": ["wss://` + strings.Repeat("g", 600) + `"]}}`, "relay.gateways[0]"},
		{`{"relay": {"gateways": ["wss://1","wss://2","wss://3","wss://4","wss://5","wss://6","wss://7","wss://8"]}}`, "relay.gateways"},
		{`{"devices": [{"name": "b", "role": "badge", "path": "/dev/ttyUSB0"}]}`, "devices[0]"},
		{`{"devices": [{"name": "d", "role": "badge", "path": "/dev/x", "framing": "morse"}]}`, "devices[0]"},
		{`{"devices": [{"name": "p", "role": "pinpad", "path": "/dev/ttyUSB1", "key_map": {"300": "enter"}}]}`, "devices[0].key_map"},
		{`{"devices": [{"name": "p", "role": "pinpad", "path": "/a"}, {"name": "p", "role": "pinpad", "path": "/b"}]}`, "devices[1].name"},
		{`{"devices": [{"name": "p", "role": "pinpad", "path": "/a", "dedupe_window": "soon"}]}`, "duration"},
		{`{"screen": {"width": -1}}`, "screen.width"},
		{`{"screen": {"language": "fr"}}`, "screen.language"},
		{`{"screen": {"width": "wide"}}`, "screen.width"},
		{`{"unknown": 1}`, "unknown"},
		{`{"mode": "kiosk",}`, "line 1"},
		{`{"mode": `, "line"},
		{`{"relay": {"url": "wss://tech:s3cret@"}}`, "credentials"},
		{`{"relay": {"url": "wss://tech:s3cret@relay:8443/%zz"}}`, "relay.url"},
		{`{"printer": {"url": "ftp://cups", "queue": "hall"}}`, "printer.url"},
		{`{"printer": {"url": "ipp://tech:s3cret@cups:631", "queue": "hall"}}`, "printer.url"},
		{`{"printer": {"url": "ipp://localhost:631", "queue": "hall/2"}}`, "printer.queue"},
		{``, "empty"},
	} {
		_, err := Parse(strings.NewReader(c.json))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: err = %v, want one naming %s", c.json, err, c.field)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error repeats the password: %v", c.json, err)
		}
	}
}

// The further gateways a technician lists are kept in order and handed to the sync engine.
func TestGatewaysKeptInOrder(t *testing.T) {
	c, err := Parse(strings.NewReader(`{"relay": {"url": "wss://g1:8443", "gateways": ["wss://g2:8443", "wss://g3:8443"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"wss://g2:8443", "wss://g3:8443"}; !reflect.DeepEqual(c.Relay.Gateways, want) {
		t.Fatalf("gateways %v, want %v", c.Relay.Gateways, want)
	}
	c, err = c.Set("relay.gateways", "wss://g4:8443, wss://g2:8443")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"wss://g4:8443", "wss://g2:8443"}; !reflect.DeepEqual(c.Relay.Gateways, want) {
		t.Fatalf("after set: gateways %v, want %v", c.Relay.Gateways, want)
	}
	if _, err := c.Set("relay.gateways", "wss://g4, ftp://g5"); err == nil || !strings.Contains(err.Error(), "relay.gateways[1]") {
		t.Fatalf("set of a bad gateway: err %v, want one naming relay.gateways[1]", err)
	}
	if c, err = c.Set("relay.gateways", ""); err != nil || len(c.Relay.Gateways) != 0 {
		t.Fatalf("an empty value clears the gateways: %v, err %v", c.Relay.Gateways, err)
	}
}

// FuzzParse: no input panics, and whatever is accepted saves and parses back the same.
func FuzzParse(f *testing.F) {
	if raw, err := os.ReadFile(filepath.Join("..", "..", "..", "assets", "demo", "kioskd.json")); err == nil {
		f.Add(string(raw))
	}
	f.Add(`{"mode":"tablet","screen":{"width":800,"height":1280}}`)
	f.Add(`{"printer":{"url":"ipp://localhost","queue":"library"}}`)
	f.Add(`{"relay":{"url":"wss://g1:8443","gateways":["wss://g2:8443","ws://127.0.0.1:8080"]}}`)
	f.Add(`{"devices":[{"name":"p","role":"pinpad","path":"/dev/ttyS0","key_map":{"0x2a":"clear"}}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		again, err := Parse(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatalf("accepted config %q re-encoded as %s is refused: %v", s, raw, err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("config changed on a round trip: %+v vs %+v", c, again)
		}
	})
}

// The printer is off until both its server and its queue are set (kioskctl sets one at a
// time); the server's port is CUPS's 631 unless the URL names another.
func TestPrinterConfig(t *testing.T) {
	var c Config
	if c.Printer.Enabled() {
		t.Fatal("a config without a printer has one")
	}
	c, err := c.Set("printer.queue", "facility")
	if err != nil || c.Printer.Enabled() {
		t.Fatalf("queue alone: %+v %v, want accepted and still off", c.Printer, err)
	}
	if c, err = c.Set("printer.url", "ipp://localhost"); err != nil || !c.Printer.Enabled() {
		t.Fatalf("then the url: %+v %v, want on", c.Printer, err)
	}
	if s, err := c.Printer.Server(); err != nil || s != "localhost:631" {
		t.Fatalf("server %q %v, want localhost:631", s, err)
	}
	c.Printer.URL = "http://cups.unit-b:8631/printers"
	if s, err := c.Printer.Server(); err != nil || s != "cups.unit-b:8631" {
		t.Fatalf("server %q %v, want cups.unit-b:8631", s, err)
	}
	if _, err := c.Set("printer.url", "lp://x"); err == nil || !strings.Contains(err.Error(), "printer.url") {
		t.Fatalf("a bad url: %v", err)
	}
}
