// Command package builds Tether's Debian packages with nfpm (used as a library, so nothing is
// installed): tether-kiosk (kioskd, kioskctl, the cage kiosk session unit, the serial udev
// rule) and tether-relay (relayd and its hardened unit). `make package` runs it:
//
//	go run ./scripts/package -out dist
//
// The version comes from git: the base version, the number of commits and the commit
// (0.1.0+git266.abc1234), so each build of a branch sorts after the one before. It lives
// under scripts/, not cmd/, so no production binary links nfpm.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/chglog"
	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	yaml "go.yaml.in/yaml/v3"
)

// BaseVersion is the release the packages build toward; git adds the build's place.
const BaseVersion = "0.1.0"

const (
	maintainer = "Tether project <tether@example.org>"
	homepage   = "https://github.com/tether-kiosk/tether"
	modulePath = "github.com/tether-kiosk/tether"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
}

type options struct {
	out, repo, version, bin string
}

func run(args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("package", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "out", "dist", "directory for the .deb files")
	fs.StringVar(&o.repo, "repo", ".", "the repository's top directory")
	fs.StringVar(&o.version, "version", "", "package version (default: from git)")
	fs.StringVar(&o.bin, "bin", "", "directory with prebuilt kioskd, kioskctl, relayd (default: build them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return err
	}
	g, err := gitInfo(repo)
	if err != nil {
		return err
	}
	if o.version == "" {
		o.version = g.version()
	}
	work, err := os.MkdirTemp("", "tether-package-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if o.bin == "" {
		o.bin = filepath.Join(work, "bin")
		if err := build(repo, o.bin, o.version, stderr); err != nil {
			return err
		}
	}
	changelog := filepath.Join(work, "changelog.yml")
	if err := writeChangelog(changelog, o.version, g); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	scripts, err := writeScripts(repo, work)
	if err != nil {
		return err
	}
	for _, spec := range []*nfpm.Info{kioskInfo(repo, o.bin, scripts), relayInfo(repo, o.bin, scripts)} {
		spec.Version = o.version
		spec.VersionSchema = "none"
		spec.Arch = runtime.GOARCH
		spec.Platform = "linux"
		spec.Maintainer = maintainer
		spec.Homepage = homepage
		spec.Section = "admin"
		spec.Priority = "optional"
		spec.Vendor = "Tether"
		spec.Changelog = changelog
		spec.MTime = g.time
		path, err := pack(spec, o.out)
		if err != nil {
			return fmt.Errorf("%s: %w", spec.Name, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s (%d KiB)\n", path, fi.Size()/1024)
	}
	return nil
}

// gitState is what the version and the changelog are made of.
type gitState struct {
	count   int
	commit  string
	time    time.Time
	commits []chglog.ChangeLogChange
}

func (g gitState) version() string {
	return fmt.Sprintf("%s+git%d.%s", BaseVersion, g.count, g.commit)
}

func gitOut(repo string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func gitInfo(repo string) (gitState, error) {
	var g gitState
	n, err := gitOut(repo, "rev-list", "--count", "HEAD")
	if err != nil {
		return g, err
	}
	if g.count, err = strconv.Atoi(n); err != nil {
		return g, fmt.Errorf("commit count %q: %w", n, err)
	}
	if g.commit, err = gitOut(repo, "rev-parse", "--short=7", "HEAD"); err != nil {
		return g, err
	}
	ct, err := gitOut(repo, "log", "-1", "--format=%ct")
	if err != nil {
		return g, err
	}
	sec, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return g, fmt.Errorf("commit time %q: %w", ct, err)
	}
	g.time = time.Unix(sec, 0).UTC()
	log, err := gitOut(repo, "log", "-30", "--no-merges", "--format=%h%x09%s")
	if err != nil {
		return g, err
	}
	for _, line := range strings.Split(log, "\n") {
		if h, s, ok := strings.Cut(line, "\t"); ok {
			g.commits = append(g.commits, chglog.ChangeLogChange{Commit: h, Note: s})
		}
	}
	return g, nil
}

// build compiles the three programs with the version stamped in. kioskctl and relayd are
// static (no cgo), so they run in any root; kioskd needs cgo for its window.
func build(repo, dir, version string, stderr io.Writer) error {
	ldflags := "-s -w -X " + modulePath + "/internal/version.version=" + version
	gobin, err := goCommand()
	if err != nil {
		return err
	}
	for _, b := range []struct {
		pkg string
		cgo bool
	}{{"./cmd/kioskd", true}, {"./cmd/kioskctl", false}, {"./cmd/relayd", false}} {
		cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags", ldflags,
			"-o", filepath.Join(dir, filepath.Base(b.pkg)), b.pkg)
		cmd.Dir = repo
		cmd.Stdout, cmd.Stderr = stderr, stderr
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+map[bool]string{true: "1", false: "0"}[b.cgo])
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", b.pkg, err)
		}
	}
	return nil
}

// goCommand is GOROOT/bin/go, the go command of the toolchain that the go on PATH runs (it
// may hand over to another toolchain, per GOTOOLCHAIN), with GOROOT from `go env GOROOT`.
func goCommand() (string, error) {
	cmd := exec.Command("go", "env", "GOROOT")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("find GOROOT: go env GOROOT: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	root := strings.TrimSpace(out.String())
	if root == "" {
		return "", errors.New("find GOROOT: go env GOROOT printed nothing")
	}
	return filepath.Join(root, "bin", "go"), nil
}

// writeChangelog writes the chglog file nfpm turns into changelog.Debian.gz: this build,
// with the last commits as its changes.
func writeChangelog(path, version string, g gitState) error {
	changes := make(chglog.ChangeLogChanges, len(g.commits))
	for i := range g.commits {
		changes[i] = &g.commits[i]
	}
	entries := chglog.ChangeLogEntries{&chglog.ChangeLog{
		Semver: version, Date: g.time, Packager: maintainer, Changes: changes,
		ChangeLogOverridables: chglog.ChangeLogOverridables{Deb: &chglog.ChangelogDeb{Urgency: "medium", Distributions: []string{"stable"}}},
	}}
	raw, err := yaml.Marshal(entries)
	if err != nil {
		return fmt.Errorf("changelog: %w", err)
	}
	return os.WriteFile(path, raw, 0o644)
}

// writeScripts puts deploy/debian/common.sh in place of #COMMON# in each maintainer script.
func writeScripts(repo, work string) (string, error) {
	dir := filepath.Join(repo, "deploy", "debian")
	common, err := os.ReadFile(filepath.Join(dir, "common.sh"))
	if err != nil {
		return "", err
	}
	out := filepath.Join(work, "scripts")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	for _, pkg := range []string{"tether-kiosk", "tether-relay"} {
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			raw, err := os.ReadFile(filepath.Join(dir, pkg+"."+s))
			if err != nil {
				return "", err
			}
			if !bytes.Contains(raw, []byte("#COMMON#\n")) {
				return "", fmt.Errorf("%s.%s has no #COMMON# line", pkg, s)
			}
			raw = bytes.Replace(raw, []byte("#COMMON#\n"), common, 1)
			if err := os.WriteFile(filepath.Join(out, pkg+"."+s), raw, 0o755); err != nil {
				return "", err
			}
		}
	}
	return out, nil
}

func file(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}}
}

func conffile(src, dst string, mode os.FileMode) *files.Content {
	c := file(src, dst, mode)
	c.Type = files.TypeConfigNoReplace
	return c
}

func dir(dst string, mode os.FileMode) *files.Content {
	return &files.Content{Destination: dst, Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}}
}

func scriptsFor(dir, pkg string) nfpm.Scripts {
	return nfpm.Scripts{
		PostInstall: filepath.Join(dir, pkg+".postinst"),
		PreRemove:   filepath.Join(dir, pkg+".prerm"),
		PostRemove:  filepath.Join(dir, pkg+".postrm"),
	}
}

// Users and groups are made by the postinst (systemd-sysusers, or adduser without systemd)
// before it hands them their directories: the files in the package are root's.
func usersDepends() []string { return []string{"systemd (>= 247) | adduser"} }

func kioskInfo(repo, bin, scripts string) *nfpm.Info {
	d := filepath.Join(repo, "deploy")
	return &nfpm.Info{
		Name: "tether-kiosk",
		Description: "Tether terminal: the kiosk or tablet program and its locked session\n" +
			"kioskd runs full screen in a cage Wayland session on tty1, logged in as the\n" +
			"dedicated user tether-kiosk; kioskctl provisions and looks after the terminal.",
		Overridables: nfpm.Overridables{
			// kioskd links libGL, libX11 and ALSA (the music player) and loads GLFW's X
			// libraries; it draws through Xwayland inside cage.
			Depends: append([]string{"libc6 (>= 2.34)", "libasound2", "libgl1", "libx11-6", "libxcursor1", "libxrandr2", "libxinerama1",
				"libxi6", "libxxf86vm1", "cage", "xwayland"}, usersDepends()...),
			Contents: files.Contents{
				file(filepath.Join(bin, "kioskd"), "/usr/bin/kioskd", 0o755),
				file(filepath.Join(bin, "kioskctl"), "/usr/bin/kioskctl", 0o755),
				file(filepath.Join(d, "systemd", "tether-kiosk.service"), "/usr/lib/systemd/system/tether-kiosk.service", 0o644),
				file(filepath.Join(d, "sysusers", "tether-kiosk.conf"), "/usr/lib/sysusers.d/tether-kiosk.conf", 0o644),
				file(filepath.Join(d, "udev", "60-tether-serial.rules"), "/usr/lib/udev/rules.d/60-tether-serial.rules", 0o644),
				file(filepath.Join(repo, "assets", "demo", "kioskd.json"), "/usr/share/tether-kiosk/kioskd.json.example", 0o644),
				file(filepath.Join(repo, "docs", "OPERATIONS.md"), "/usr/share/doc/tether-kiosk/OPERATIONS.md", 0o644),
				conffile(filepath.Join(d, "etc", "kioskd.env"), "/etc/tether/kioskd.env", 0o644),
				dir("/etc/tether", 0o755),
				dir("/etc/tether/kiosk", 0o700),
				dir("/var/lib/tether", 0o700),
			},
			Scripts: scriptsFor(scripts, "tether-kiosk"),
		},
	}
}

func relayInfo(repo, bin, scripts string) *nfpm.Info {
	d := filepath.Join(repo, "deploy")
	return &nfpm.Info{
		Name: "tether-relay",
		Description: "Tether relay: where terminals enroll and sync, and staff work\n" +
			"relayd keeps everything in one bbolt file under /var/lib/tether-relay and runs\n" +
			"as the hardened systemd service relayd.service.",
		Overridables: nfpm.Overridables{
			Depends:    usersDepends(), // relayd is static
			Recommends: []string{"prometheus"},
			Contents: files.Contents{
				file(filepath.Join(bin, "relayd"), "/usr/bin/relayd", 0o755),
				file(filepath.Join(d, "systemd", "relayd.service"), "/usr/lib/systemd/system/relayd.service", 0o644),
				file(filepath.Join(d, "sysusers", "tether-relay.conf"), "/usr/lib/sysusers.d/tether-relay.conf", 0o644),
				file(filepath.Join(d, "prometheus", "tether-alerts.yml"), "/usr/share/tether-relay/prometheus/tether-alerts.yml", 0o644),
				file(filepath.Join(d, "grafana", "tether-relay.json"), "/usr/share/tether-relay/grafana/tether-relay.json", 0o644),
				file(filepath.Join(repo, "docs", "OPERATIONS.md"), "/usr/share/doc/tether-relay/OPERATIONS.md", 0o644),
				conffile(filepath.Join(d, "etc", "relayd.env"), "/etc/tether/relayd.env", 0o644),
				dir("/etc/tether", 0o755),
				dir("/etc/tether/relay", 0o750),
				dir("/var/lib/tether-relay", 0o700),
			},
			Scripts: scriptsFor(scripts, "tether-relay"),
		},
	}
}

// pack validates spec and writes its .deb into out.
func pack(spec *nfpm.Info, out string) (string, error) {
	info := nfpm.WithDefaults(spec)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	if err := nfpm.Validate(info); err != nil {
		return "", err
	}
	path := filepath.Join(out, deb.Default.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", errors.Join(err, os.Remove(path))
	}
	return path, nil
}
