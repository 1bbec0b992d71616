package plainlocale

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNormalize: the variable that wins is rewritten only when it is C or POSIX with a
// codeset; a real language and an already plain value are left alone.
func TestNormalize(t *testing.T) {
	cases := []struct {
		env     map[string]string
		changed string
		want    map[string]string
	}{
		{map[string]string{"LANG": "C.UTF-8"}, "LANG", map[string]string{"LANG": "C"}},
		{map[string]string{"LC_ALL": "C.utf8", "LANG": "es_MX.UTF-8"}, "LC_ALL", map[string]string{"LC_ALL": "C", "LANG": "es_MX.UTF-8"}},
		{map[string]string{"LC_MESSAGES": "POSIX.UTF-8"}, "LC_MESSAGES", map[string]string{"LC_MESSAGES": "C"}},
		{map[string]string{"LANG": "C"}, "", map[string]string{"LANG": "C"}},
		{map[string]string{"LANG": "es_MX.UTF-8", "LC_MESSAGES": ""}, "", map[string]string{"LANG": "es_MX.UTF-8"}},
		// A language set higher up wins over a C below it: nothing to change.
		{map[string]string{"LC_ALL": "fr_FR.UTF-8", "LANG": "C.UTF-8"}, "", map[string]string{"LC_ALL": "fr_FR.UTF-8", "LANG": "C.UTF-8"}},
		{map[string]string{}, "", map[string]string{}},
	}
	for _, c := range cases {
		env := map[string]string{}
		for k, v := range c.env {
			env[k] = v
		}
		got := Normalize(func(k string) string { return env[k] }, func(k, v string) error { env[k] = v; return nil })
		if got != c.changed {
			t.Errorf("%v: changed %q, want %q", c.env, got, c.changed)
		}
		for k, v := range c.want {
			if env[k] != v {
				t.Errorf("%v: %s=%q, want %q", c.env, k, env[k], v)
			}
		}
	}
}

// TestProgramsQuietUnderC builds every program a facility installs and runs its help under
// the locales a service manager gives: no line about the locale may appear, and the usage
// must still be printed. Without this package kioskd printed Fyne's three-line
// "Error parsing user locale C" complaint under C.UTF-8.
func TestProgramsQuietUnderC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the programs")
	}
	dir := t.TempDir()
	gobin := goCommand(t)
	build := exec.Command(gobin, "build", "-o", dir+string(filepath.Separator),
		"github.com/tether-kiosk/tether/cmd/kioskd",
		"github.com/tether-kiosk/tether/cmd/kioskctl",
		"github.com/tether-kiosk/tether/cmd/relayd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	progs := []struct {
		name  string
		args  []string
		usage string
	}{
		{"kioskd", []string{"-h"}, "usage: kioskd"},
		{"kioskctl", []string{"help"}, "usage: kioskctl"},
		{"relayd", []string{"-h"}, "usage: relayd"},
	}
	locales := [][]string{
		{"LANG=C"}, {"LANG=C.UTF-8"}, {"LC_ALL=C.utf8"}, {"LANG=POSIX"}, {"LC_MESSAGES=C.UTF-8"}, {},
		{"LANG=es_MX.UTF-8"},
	}
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for _, p := range progs {
		for _, loc := range locales {
			cmd := exec.Command(filepath.Join(dir, p.name), p.args...)
			cmd.Env = append(append([]string{}, base...), loc...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			_ = cmd.Run() // -h exits 2 for some programs; the output is what matters
			s := out.String()
			if !strings.Contains(s, p.usage) {
				t.Errorf("%s %v under %v: no usage in output:\n%s", p.name, p.args, loc, s)
			}
			for _, bad := range []string{"locale", "Fyne error", "Cause:"} {
				if strings.Contains(s, bad) {
					t.Errorf("%s %v under %v printed %q:\n%s", p.name, p.args, loc, bad, s)
				}
			}
		}
	}
}

// goCommand is GOROOT/bin/go, the go command of the toolchain running the test, with GOROOT
// from `go env GOROOT` (go test puts its own GOROOT/bin first on PATH).
func goCommand(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "env", "GOROOT")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("find GOROOT: go env GOROOT: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	root := strings.TrimSpace(out.String())
	if root == "" {
		t.Fatal("find GOROOT: go env GOROOT printed nothing")
	}
	return filepath.Join(root, "bin", "go")
}
