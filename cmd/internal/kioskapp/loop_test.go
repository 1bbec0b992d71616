package kioskapp

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/internal/xvfbtest"
)

// lateUIEnv, set, makes this test binary the child of TestUICallAfterTheLoopEndedIsDropped:
// Fyne's real driver must run its loop on the main goroutine, which only TestMain is on.
const lateUIEnv = "TETHER_KIOSKAPP_LATE_UI"

// lateUIDone is what the child prints when it got to its end.
const lateUIDone = "late UI calls dropped"

func TestMain(m *testing.M) {
	if os.Getenv(lateUIEnv) != "" {
		os.Exit(lateUIChild())
	}
	os.Exit(m.Run())
}

// lateUIChild runs a window on Fyne's real driver as kioskd does, checks that a UI call from
// another goroutine runs while the loop does, ends the loop, and then asks to change the
// window from another goroutine, as the end of a session logged out by the orderly stop does
// when Fyne has ended its loop on SIGTERM first. It returns the process's exit status.
func lateUIChild() int {
	drv := fyneDriver{app.NewWithID("org.tether.kioskapp-test")}
	w := drv.App().NewWindow("late")
	w.SetContent(widget.NewLabel("up"))
	var ran atomic.Bool
	drv.Run(w, func() {
		go func() {
			drv.DoAndWait(func() { ran.Store(true) })
			drv.Do(drv.Quit)
		}()
	})
	if !ran.Load() {
		fmt.Println("a UI call made while the loop ran did not run")
		return 3
	}
	// Fyne runs these at once on this goroutine, its loop gone; whether GLFW then panics
	// depends on the window's state, so the test asks only whether they ran.
	var late atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		drv.Do(func() { late.Add(1); w.SetContent(widget.NewLabel("too late")) })
		drv.DoAndWait(func() { late.Add(1); w.SetContent(widget.NewLabel("too late, and waited for")) })
	}()
	<-done
	if n := late.Load(); n != 0 {
		fmt.Printf("%d UI calls made after the loop ended ran, off the loop\n", n)
		return 4
	}
	fmt.Println(lateUIDone)
	return 0
}

// A UI call made after the window loop ended is dropped: it used to run on the caller's
// goroutine after GLFW was gone and panic, which crashed kioskd now and then when systemd
// stopped it (Fyne ends its loop on SIGTERM by itself). A call made while the loop runs runs.
func TestUICallAfterTheLoopEndedIsDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an X server: skipped with -short")
	}
	display := xvfbtest.Start(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lateUIEnv+"=1", "DISPLAY="+display)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), lateUIDone) {
		t.Fatalf("the window program: %v\n%s", err, out)
	}
}
