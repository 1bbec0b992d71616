package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/kiosk"
)

func TestConfigSetShowCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "kioskd.json")
	for _, kv := range [][2]string{{"relay.url", "wss://relay.example:8443"}, {"devices.door", `{"role":"badge","path":"/dev/ttyUSB0","framing":"em4100"}`},
		{"devices.door.framing", "wiegand26"}, {"screen.language", "es"}} {
		if _, err := kioskctl(t, "", "config", "set", kv[0], kv[1], "--data", dir, "--config", path); err != nil {
			t.Fatalf("set %s: %v", kv[0], err)
		}
	}
	for _, c := range []struct{ key, value, want string }{
		{"devices.door.framing", "morse", `devices[0]: device "door": framing "morse" unknown`},
		{"screen.width", "wide", "screen.width: want a whole number"},
		{"relay.url", "ftp://x", `relay.url: scheme "ftp"`},
		{"devices.pad.path", "/dev/x", "no device \"pad\": add it whole first"},
		{"colour", "red", "colour: unknown key"},
	} {
		if _, err := kioskctl(t, "", "config", "set", c.key, c.value, "--data", dir, "--config", path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("set %s %s: %v, want %q", c.key, c.value, err, c.want)
		}
	}
	var sh control.Shown
	ctlJSON(t, &sh, "config", "show", "--data", dir, "--config", path)
	if sh.RelayURL != "wss://relay.example:8443" || len(sh.Config.Devices) != 1 || sh.Config.Devices[0].Framing != "wiegand26" ||
		sh.Config.Screen.Language != "es" || sh.EffectiveMode != "kiosk" {
		t.Fatalf("config show: %+v", sh)
	}
	// kioskd shows the config it loaded, the same way.
	cfg, err := termconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	k := startKioskd(t, dir, cfg, false)
	var running control.Shown
	ctlJSON(t, &running, "config", "show", "--data", dir, "--config", path)
	if running.RelayURL != sh.RelayURL || len(running.Config.Devices) != 1 {
		t.Fatalf("config show through kioskd: %+v", running)
	}
	if out, err := kioskctl(t, "", "config", "set", "screen.width", "1024", "--data", dir, "--config", path); err != nil || !strings.Contains(out, "restart it") {
		t.Fatalf("set while running: %q %v", out, err)
	}
	ev, _ := k.store.RecentAudit(10, func(ev kiosk.AuditEvent) bool { return ev.Kind == "config_set" })
	if len(ev) != 5 || ev[0].Detail["key"] != "screen.width" || !strings.HasPrefix(ev[0].Actor, "kioskctl:") {
		t.Fatalf("config_set audit: %+v", ev)
	}

	if out, err := kioskctl(t, "", "config", "check", path); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("check: %q %v", out, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"devices":[{"name":"d","role":"pinpad","path":"/dev/x","baud":7}]}`), 0o600)
	if _, err := kioskctl(t, "", "config", "check", bad); err == nil || !strings.Contains(err.Error(), "devices[0]") {
		t.Fatalf("check of a bad file: %v", err)
	}
}
