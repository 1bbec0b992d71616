package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The packages are built once for all the tests below (it compiles kioskd with cgo).
func buildDebs(t *testing.T) (kiosk, relay, version string) {
	t.Helper()
	if os.Getenv("TETHER_PACKAGE_TEST") == "" {
		t.Skip("builds and installs the .deb files (minutes): make package-test runs it")
	}
	for _, tool := range []string{"dpkg-deb", "dpkg", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-out", out, "-repo", "../.."}, &stdout, &stderr); err != nil {
		t.Fatalf("package: %v\n%s", err, stderr.String())
	}
	t.Logf("built:\n%s", stdout.String())
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	for _, d := range debs {
		switch {
		case strings.HasPrefix(filepath.Base(d), "tether-kiosk_"):
			kiosk = d
		case strings.HasPrefix(filepath.Base(d), "tether-relay_"):
			relay = d
		}
	}
	if kiosk == "" || relay == "" {
		t.Fatalf("want tether-kiosk and tether-relay .deb files, got %v", debs)
	}
	return kiosk, relay, field(t, kiosk, "Version")
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func field(t *testing.T, deb, name string) string {
	return strings.TrimSpace(dpkgDeb(t, "-f", deb, name))
}

// entries lists a package's files as path -> "mode owner/group" (dpkg-deb -c).
func entries(t *testing.T, deb string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(dpkgDeb(t, "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		// nfpm writes the changelog's owner by number only: 0/0 is root/root.
		owner := strings.ReplaceAll(f[1], "0/0", "root/root")
		out[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = f[0] + " " + owner
	}
	return out
}

// ctrlFile reads one file of the package's control archive.
func ctrlFile(t *testing.T, deb, name string) string {
	t.Helper()
	dir := t.TempDir()
	dpkgDeb(t, "-e", deb, dir)
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("%s: control file %s: %v", deb, name, err)
	}
	return string(raw)
}

func TestPackages(t *testing.T) {
	kiosk, relay, version := buildDebs(t)
	t.Run("contents", func(t *testing.T) {
		if !regexp.MustCompile(`^0\.1\.0\+git[0-9]+\.[0-9a-f]{7}$`).MatchString(version) {
			t.Errorf("version %q is not taken from git", version)
		}
		for _, c := range []struct {
			deb     string
			files   map[string]string // path -> mode and owner
			conf    []string
			depends []string
		}{
			{kiosk, map[string]string{
				"/usr/bin/kioskd":   "-rwxr-xr-x root/root",
				"/usr/bin/kioskctl": "-rwxr-xr-x root/root",
				"/usr/lib/systemd/system/tether-kiosk.service":    "-rw-r--r-- root/root",
				"/usr/lib/udev/rules.d/60-tether-serial.rules":    "-rw-r--r-- root/root",
				"/usr/lib/sysusers.d/tether-kiosk.conf":           "-rw-r--r-- root/root",
				"/etc/tether/kioskd.env":                          "-rw-r--r-- root/root",
				"/var/lib/tether":                                 "drwx------ root/root",
				"/etc/tether/kiosk":                               "drwx------ root/root",
				"/usr/share/doc/tether-kiosk/changelog.Debian.gz": "-rw-r--r-- root/root",
			}, []string{"/etc/tether/kioskd.env"}, []string{"cage", "xwayland", "libgl1", "libx11-6", "libasound2"}},
			{relay, map[string]string{
				"/usr/bin/relayd":                                      "-rwxr-xr-x root/root",
				"/usr/lib/systemd/system/relayd.service":               "-rw-r--r-- root/root",
				"/etc/tether/relayd.env":                               "-rw-r--r-- root/root",
				"/etc/tether/relay":                                    "drwxr-x--- root/root",
				"/var/lib/tether-relay":                                "drwx------ root/root",
				"/usr/share/tether-relay/prometheus/tether-alerts.yml": "-rw-r--r-- root/root",
				"/usr/share/doc/tether-relay/changelog.Debian.gz":      "-rw-r--r-- root/root",
			}, []string{"/etc/tether/relayd.env"}, []string{"systemd (>= 247) | adduser"}},
		} {
			got := entries(t, c.deb)
			for path, want := range c.files {
				if got[path] != want {
					t.Errorf("%s: %s is %q, want %q", filepath.Base(c.deb), path, got[path], want)
				}
			}
			conffiles := ctrlFile(t, c.deb, "conffiles")
			for _, cf := range c.conf {
				if !strings.Contains(conffiles, cf+"\n") {
					t.Errorf("%s: %s is not a conffile:\n%s", filepath.Base(c.deb), cf, conffiles)
				}
			}
			deps := field(t, c.deb, "Depends")
			for _, d := range c.depends {
				if !strings.Contains(deps, d) {
					t.Errorf("%s: Depends %q lacks %q", filepath.Base(c.deb), deps, d)
				}
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				if sc := ctrlFile(t, c.deb, s); !strings.HasPrefix(sc, "#!/bin/sh") || strings.Contains(sc, "#COMMON#") {
					t.Errorf("%s: %s is not a complete shell script", filepath.Base(c.deb), s)
				}
			}
		}
	})
	t.Run("install", func(t *testing.T) { testInstall(t, kiosk, relay, version) })
}

// testInstall installs both packages into a throw-away root (dpkg --root, maintainer scripts
// run outside it with $DPKG_ROOT), twice (an upgrade to the same version must change
// nothing), runs kioskctl --version and relayd -h from the root, then removes and purges.
func testInstall(t *testing.T, kiosk, relay, version string) {
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends",
			"--force-not-root", "--log=/dev/null"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	dpkg("-i", relay, kiosk)
	passwd, err := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		t.Fatalf("no users made in the root: %v", err)
	}
	for _, u := range []string{"tether-relay:", "tether-kiosk:"} {
		if !bytes.Contains(passwd, []byte("\n"+u)) && !bytes.HasPrefix(passwd, []byte(u)) {
			t.Errorf("user %s not made:\n%s", u, passwd)
		}
	}
	check := func(path string, mode os.FileMode) {
		t.Helper()
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	check("var/lib/tether-relay", 0o700)
	check("etc/tether/relay", 0o750)
	check("var/lib/tether", 0o700)
	check("etc/tether/kiosk", 0o700)
	check("etc/tether/kiosk/kioskd.json", 0o600)
	check("var/lib/tether-relay/admin-token", 0o600)
	token, _ := os.ReadFile(filepath.Join(root, "var/lib/tether-relay/admin-token"))
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(token) {
		t.Errorf("admin token %q: want 64 hex digits and a newline", token)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/relayd.service")); err != nil {
		t.Logf("relayd.service not enabled in the root (no systemctl --root here?): %v", err)
	}

	// Again: the maintainer scripts run as for an upgrade and change nothing.
	if err := os.WriteFile(filepath.Join(root, "etc/tether/kiosk/kioskd.json"), []byte(`{"mode":"kiosk"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dpkg("-i", relay, kiosk)
	again, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if token2, _ := os.ReadFile(filepath.Join(root, "var/lib/tether-relay/admin-token")); !bytes.Equal(token, token2) {
		t.Error("a second install changed the admin token")
	}
	if !bytes.Equal(passwd, again) {
		t.Errorf("a second install changed the users:\n%s\nthen\n%s", passwd, again)
	}
	if raw, _ := os.ReadFile(filepath.Join(root, "etc/tether/kiosk/kioskd.json")); string(raw) != `{"mode":"kiosk"}`+"\n" {
		t.Errorf("the upgrade replaced the terminal's config: %s", raw)
	}

	// The programs run from the root.
	runIn := func(args ...string) string {
		t.Helper()
		var cmd *exec.Cmd
		if os.Geteuid() == 0 {
			cmd = exec.Command("chroot", append([]string{root}, args...)...)
		} else {
			cmd = exec.Command(filepath.Join(root, args[0]), args[1:]...)
		}
		cmd.Env = []string{"LANG=C.UTF-8", "PATH=/usr/bin:/bin"}
		out, _ := cmd.CombinedOutput() // relayd -h exits 2; the words decide
		return string(out)
	}
	if out := runIn("/usr/bin/kioskctl", "--version"); strings.TrimSpace(out) != "kioskctl "+version {
		t.Errorf("kioskctl --version = %q, want %q", out, "kioskctl "+version)
	}
	if out := runIn("/usr/bin/relayd", "-h"); !strings.Contains(out, "usage: relayd -data DIR") || strings.Contains(out, "locale") {
		t.Errorf("relayd -h:\n%s", out)
	}
	if out := runIn("/usr/bin/relayd", "-version"); strings.TrimSpace(out) != "relayd "+version {
		t.Errorf("relayd -version = %q", out)
	}

	// Remove, then purge: the programs go, the stores stay.
	if err := os.WriteFile(filepath.Join(root, "var/lib/tether-relay/relay.db"), []byte("a relay's letters"), 0o600); err != nil {
		t.Fatal(err)
	}
	dpkg("-r", "tether-relay", "tether-kiosk")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/relayd")); err == nil {
		t.Error("relayd still installed after remove")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/tether/relayd.env")); err != nil {
		t.Errorf("a conffile went with remove: %v", err)
	}
	out := dpkg("-P", "tether-relay", "tether-kiosk")
	if _, err := os.Stat(filepath.Join(root, "etc/tether/relayd.env")); err == nil {
		t.Error("relayd.env still there after purge")
	}
	if !strings.Contains(out, "stays in /var/lib/tether-relay") {
		t.Errorf("purge did not say where the relay's data stays:\n%s", out)
	}
	if raw, err := os.ReadFile(filepath.Join(root, "var/lib/tether-relay/relay.db")); err != nil || string(raw) != "a relay's letters" {
		t.Errorf("purge touched the relay's store: %q, %v", raw, err)
	}
}
