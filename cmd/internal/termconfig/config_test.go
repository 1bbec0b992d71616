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

func TestBrokenConfigNamesTheField(t *testing.T) {
	for _, c := range []struct{ json, field string }{
		{`{"mode": "kiosq"}`, "mode"},
		{`{"devices": [{"name": "d", "role": "badge", "path": "/dev/x", "framing": "morse"}]}`, "devices[0]"},
		{`{"relay": {"url": "ws://relay.example.org/"}}`, "relay"},
		{`{"screen": {"width": -1}}`, "screen"},
		{`{"unknown": 1}`, "unknown"},
		{`{"mode": `, "line"},
	} {
		_, err := Parse(strings.NewReader(c.json))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: err = %v, want one naming %s", c.json, err, c.field)
		}
	}
}

// FuzzParse: no input panics, and whatever is accepted saves and parses back the same.
func FuzzParse(f *testing.F) {
	if raw, err := os.ReadFile(filepath.Join("..", "..", "..", "assets", "demo", "kioskd.json")); err == nil {
		f.Add(string(raw))
	}
	f.Add(`{"mode":"tablet","screen":{"width":800,"height":1280}}`)
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
