package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unit reads a unit file as directive -> values (a directive given twice keeps both).
func unit(t *testing.T, name string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not Key=Value", name, line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

func want(t *testing.T, name string, u map[string][]string, key, val string) {
	t.Helper()
	for _, v := range u[key] {
		if v == val {
			return
		}
	}
	t.Errorf("%s: want %s=%s, have %q", name, key, val, u[key])
}

// TestRelaydUnitHardened: the directives the issue lists for relayd.service.
func TestRelaydUnitHardened(t *testing.T) {
	u := unit(t, "relayd.service")
	for k, v := range map[string]string{
		"Type": "notify", "Restart": "always", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "", "StateDirectory": "tether-relay",
		"StateDirectoryMode": "0700", "User": "tether-relay", "RestartPreventExitStatus": "2 3", "Environment": "LANG=C.UTF-8",
	} {
		want(t, "relayd.service", u, k, v)
	}
	if len(u["WatchdogSec"]) != 1 {
		t.Error("relayd.service: no WatchdogSec")
	}
	// Nothing beyond the state directory is writable.
	if len(u["ReadWritePaths"]) != 0 {
		t.Errorf("relayd.service: ReadWritePaths %q: the state directory is all it needs", u["ReadWritePaths"])
	}
}

// TestKioskUnitIsALockedSession: cage on tty1 as the dedicated user, restarted always,
// notify from kioskd (cage's child), serial devices through a group, never root.
func TestKioskUnitIsALockedSession(t *testing.T) {
	u := unit(t, "tether-kiosk.service")
	for k, v := range map[string]string{
		"Type": "notify", "NotifyAccess": "all", "Restart": "always", "User": "tether-kiosk", "PAMName": "login",
		"TTYPath": "/dev/tty1", "Conflicts": "getty@tty1.service", "StateDirectory": "tether", "NoNewPrivileges": "yes",
		"CapabilityBoundingSet": "", "RestartPreventExitStatus": "2 3",
	} {
		want(t, "tether-kiosk.service", u, k, v)
	}
	if !strings.HasPrefix(u["ExecStart"][0], "/usr/bin/cage -s -- /usr/bin/kioskd ") {
		t.Errorf("ExecStart %q: want cage running kioskd", u["ExecStart"][0])
	}
	if !strings.Contains(u["SupplementaryGroups"][0], "tether-serial") {
		t.Errorf("SupplementaryGroups %q lacks tether-serial", u["SupplementaryGroups"])
	}
	rules, err := os.ReadFile(filepath.Join("udev", "60-tether-serial.rules"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rules, []byte(`GROUP="tether-serial", MODE="0660"`)) {
		t.Errorf("udev rule does not give the serial devices to tether-serial:\n%s", rules)
	}
	users, err := os.ReadFile(filepath.Join("sysusers", "tether-kiosk.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^m tether-kiosk +tether-serial$`).Match(users) {
		t.Errorf("sysusers: tether-kiosk is not in tether-serial:\n%s", users)
	}
}

// stubbed copies the units into a directory, with their programs replaced by stubs that
// exist, so systemd-analyze verify checks everything but the installed binaries.
func stubbed(t *testing.T) (dir string, units []string) {
	t.Helper()
	dir = t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"relayd", "kioskd", "cage"} {
		if err := os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"relayd.service", "tether-kiosk.service"} {
		raw, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.ReplaceAll(raw, []byte("/usr/bin/"), []byte(bin+"/"))
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	return dir, units
}

// TestUnitsPassSystemdAnalyzeVerify runs systemd-analyze verify on both units.
func TestUnitsPassSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (the systemd package; make deps installs it): units not verified")
	}
	dir, units := stubbed(t)
	cmd := exec.Command(sa, append([]string{"verify"}, units...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestRelaydSecurityExposure: systemd-analyze security (offline) rates relayd.service low.
func TestRelaydSecurityExposure(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: exposure not rated")
	}
	dir, units := stubbed(t)
	cmd := exec.Command(sa, "security", "--offline=yes", units[0])
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput() // exits non-zero above its threshold; the figure decides
	m := regexp.MustCompile(`Overall exposure level for relayd.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		if bytes.Contains(out, []byte("offline")) {
			t.Skipf("this systemd-analyze has no offline security check:\n%s", out)
		}
		t.Fatalf("no exposure figure:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("relayd.service exposure %.1f", score)
	if score > 2.0 {
		t.Errorf("relayd.service exposure %.1f, want at most 2.0:\n%s", score, out)
	}
}
