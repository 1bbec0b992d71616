package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/leaktest"
	"github.com/tether-kiosk/tether/internal/xvfbtest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// TestSmokeDemoUnderXvfb starts the real tetherdemo binary (kioskd's kiosk with the demo's
// relay and simulated devices) in a real window under Xvfb,
// logs Maria in with her badge and PIN through the simulated serial devices (ptys read by
// the real decoders), accepts the notice with a tap, and checks what the window shows:
// the welcome screen first, her home screen after, and two different screenshots.
func TestSmokeDemoUnderXvfb(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke test: skipped with -short")
	}
	display := xvfbtest.Start(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tetherdemo")
	build := exec.Command(goTool(t), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctl := filepath.Join(dir, "kioskctl")
	if out, err := exec.Command(goTool(t), "build", "-o", ctl, "../kioskctl").CombinedOutput(); err != nil {
		t.Fatalf("go build kioskctl: %v\n%s", err, out)
	}

	welcome, home := filepath.Join(dir, "welcome.png"), filepath.Join(dir, "home.png")
	script := filepath.Join(dir, "script.txt")
	writeFile(t, script, strings.Join([]string{
		"wait welcome 90s",
		"screenshot " + welcome,
		"badge 0004198231",
		"wait pin 30s",
		"pin 2468",
		"wait notice 30s",
		"tap notice.accept",
		"wait home 30s",
		"sleep 300ms",
		"screenshot " + home,
		"sleep 2m",
	}, "\n"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	data := filepath.Join(dir, "demo-data")
	cmd := exec.CommandContext(ctx, bin, "-data", data, "-script", script)
	cmd.Env = append(os.Environ(), "DISPLAY="+display, "LANG=en_US.UTF-8")
	stderr := &watchedBuffer{want: "screenshot: " + home, seen: make(chan struct{})}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop it as an operator would, while Maria's session is open; first a technician asks
	// the running kioskd for its status over the control socket.
	var status string
	select {
	case <-stderr.seen:
		out, err := exec.Command(ctl, "status", "--json", "--data", filepath.Join(data, "terminal")).CombinedOutput()
		if err != nil {
			t.Errorf("kioskctl status against the running kioskd: %v\n%s", err, out)
		}
		status = string(out)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
	}
	err := cmd.Wait()
	log := stderr.String()
	if err != nil {
		t.Fatalf("tetherdemo: %v\n%s", err, log)
	}
	// The screens came in the order a person sees them, then the orderly stop.
	at := 0
	for _, want := range []string{"screen: welcome", "screen: pin", "screen: notice", "screen: home",
		"stopping: ", "stopping: session", "stopping: devices closed", "stopped"} {
		i := strings.Index(log[at:], want)
		if i < 0 {
			t.Fatalf("log lacks %q after offset %d:\n%s", want, at, log)
		}
		at += i
	}
	if m := regexp.MustCompile(`devices closed in ([0-9.]+[a-zµ]+)`).FindStringSubmatch(log); m == nil {
		t.Error("no devices-closed line")
	} else if d, err := time.ParseDuration(m[1]); err != nil || d > time.Second {
		t.Errorf("devices closed in %s, want within 1s", m[1])
	}
	if !strings.Contains(log, "received signal terminated") {
		t.Errorf("kioskd did not see the SIGTERM:\n%s", log)
	}
	if strings.Contains(log, "Error in Fyne call thread") || strings.Contains(log, "panic") {
		t.Errorf("the stop touched the UI off its goroutine:\n%s", log)
	}
	if leaktest.HasNumber(log, "2468") {
		t.Errorf("the PIN reached the log:\n%s", log)
	}
	for _, want := range []string{`"kioskd": "running"`, `"inmate_id": "A100001"`, `"enrolled": true`} {
		if !strings.Contains(status, want) {
			t.Errorf("kioskctl status lacks %s:\n%s", want, status)
		}
	}
	if leaktest.HasNumber(status, "2468") || strings.Contains(status, "Maria") {
		t.Errorf("kioskctl status shows more than the inmate's id:\n%s", status)
	}
	// The session was closed as a logout in the store, which kioskd closed cleanly.
	st, err := kiosk.OpenStore(filepath.Join(data, "terminal"), kiosk.StoreOptions{})
	if err != nil {
		t.Fatalf("reopen the kiosk's store: %v", err)
	}
	defer st.Close()
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clock.NewReal()})
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := term.Usage("A100001")
	if err != nil {
		t.Fatal(err)
	}
	var ended []kiosk.Reason
	for _, s := range sessions {
		ended = append(ended, s.EndReason)
	}
	if len(ended) == 0 || ended[len(ended)-1] != kiosk.EndLogout {
		t.Errorf("Maria's sessions on the kiosk ended with %v, want the last one %q", ended, kiosk.EndLogout)
	}
	a, b := readPNG(t, welcome), readPNG(t, home)
	if a.Bounds() != b.Bounds() || a.Bounds().Dx() < 640 {
		t.Fatalf("screenshots are %v and %v", a.Bounds(), b.Bounds())
	}
	if f := changed(a, b); f < 0.10 {
		t.Errorf("home screenshot differs from welcome in %.1f%% of pixels only", 100*f)
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "bench:") || strings.Contains(l, "screen: welcome (") {
			t.Log(l)
		}
	}
}

// goTool is the go command on PATH (go test puts its own GOROOT/bin first on PATH). With none
// there, there is no GOROOT to fall back on either: `go env GOROOT` would need that go.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("find the go command: %v", err)
	}
	return p
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if blank(img) {
		t.Fatalf("%s is blank", path)
	}
	return img
}

// changed is the fraction of pixels that differ between a and b.
func changed(a, b image.Image) float64 {
	r := a.Bounds()
	diff := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				diff++
			}
		}
	}
	return float64(diff) / float64(r.Dx()*r.Dy())
}

// watchedBuffer collects a process's stderr and says when a line appears.
type watchedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *watchedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestSmokeKioskdUnderXvfb starts the production kioskd binary (no demo in it) as a facility
// would, on a config and an empty data directory, in a real window under Xvfb: the welcome
// screen comes up, SIGTERM stops it in order with exit status 0, and the store opens again.
func TestSmokeKioskdUnderXvfb(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke test: skipped with -short")
	}
	display := xvfbtest.Start(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "kioskd")
	if out, err := exec.Command(goTool(t), "build", "-o", bin, "../kioskd").CombinedOutput(); err != nil {
		t.Fatalf("go build kioskd: %v\n%s", err, out)
	}
	cfg, data := filepath.Join(dir, "kioskd.json"), filepath.Join(dir, "data")
	writeFile(t, cfg, `{"mode": "kiosk", "screen": {"language": "es"}}`)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", cfg, "-data", data)
	cmd.Env = append(os.Environ(), "DISPLAY="+display, "LANG=en_US.UTF-8")
	stderr := &watchedBuffer{want: "screen: welcome (", seen: make(chan struct{})}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stderr.seen:
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
	}
	err := cmd.Wait()
	log := stderr.String()
	if err != nil {
		t.Fatalf("kioskd: %v\n%s", err, log)
	}
	at := 0
	for _, want := range []string{"not enrolled", "screen: welcome (", "received signal terminated", "stopping: ",
		"stopping: devices closed", "stopped"} {
		i := strings.Index(log[at:], want)
		if i < 0 {
			t.Fatalf("log lacks %q after offset %d:\n%s", want, at, log)
		}
		at += i
	}
	if strings.Contains(log, "Error in Fyne call thread") || strings.Contains(log, "panic") {
		t.Errorf("the stop touched the UI off its goroutine:\n%s", log)
	}
	st, err := kiosk.OpenStore(data, kiosk.StoreOptions{})
	if err != nil {
		t.Fatalf("reopen the kiosk's store: %v", err)
	}
	st.Close()
}
