package kioskapp

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/hardware/audio"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay"
)

// walkAll visits every visible object of the window, descending into widgets.
func walkAll(o fyne.CanvasObject, f func(fyne.CanvasObject)) {
	if o == nil || !o.Visible() {
		return
	}
	f(o)
	switch x := o.(type) {
	case *fyne.Container:
		for _, c := range x.Objects {
			walkAll(c, f)
		}
	case fyne.Widget:
		for _, c := range test.WidgetRenderer(x).Objects() {
			walkAll(c, f)
		}
	}
}

// screenText is what the window shows, read on the UI goroutine.
func screenText(a *App) string {
	var b strings.Builder
	a.DoAndWait(func() {
		walkAll(a.Window().Content(), func(o fyne.CanvasObject) {
			switch x := o.(type) {
			case *canvas.Text:
				b.WriteString(x.Text + "\n")
			case *widget.Button:
				b.WriteString(x.Text + "\n")
			case *widget.Label:
				b.WriteString(x.Text + "\n")
			}
		})
	})
	return b.String()
}

// waitSee waits until the window shows s.
func waitSee(t *testing.T, a *App, s string) {
	t.Helper()
	testwait.UntilSaw(t, "the screen to show "+s, func() (bool, string) {
		txt := screenText(a)
		return strings.Contains(txt, s), txt
	})
}

// press waits for the enabled button labelled label and taps it on the UI goroutine.
func press(t *testing.T, a *App, label string) {
	t.Helper()
	testwait.UntilSaw(t, "a button "+label, func() (bool, string) {
		found := false
		a.DoAndWait(func() {
			walkAll(a.Window().Content(), func(o fyne.CanvasObject) {
				if b, ok := o.(*widget.Button); ok && !found && !b.Disabled() && b.Text == label {
					found = true
					test.Tap(b)
				}
			})
		})
		return found, ""
	})
}

// loginBen logs Ben in on the kiosk's screen: badge, the on-screen keypad, the notice.
func loginBen(t *testing.T, a *App) {
	t.Helper()
	waitSee(t, a, "Scan your badge")
	a.k.HandleBadge("B-A-9")
	waitSee(t, a, "Enter your PIN")
	for _, d := range "2468" {
		press(t, a, string(d))
	}
	press(t, a, "OK")
	press(t, a, "I accept")
	waitSee(t, a, "Hello, Ben Ode")
}

// runKioskd opens and runs a kioskd on dir (the silent sink for audio) until the test stops it.
func runKioskd(t *testing.T, dir string) (a *App, stop func()) {
	t.Helper()
	a, err := Open(Options{DataDir: dir, Logf: t.Logf, Driver: newTestDriver(t), Audio: audio.NewNull(clock.NewReal(), audio.OutputRate)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := a.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
	t.Cleanup(stop)
	return a, stop
}

// A track bought on a kiosk is fetched from the relay and plays (on the silent sink, which the
// player says); after kioskd restarts with the relay gone, the track is still the person's and
// plays from the kiosk's cache.
func TestBoughtTrackPlaysAfterARestartWithTheLinkDown(t *testing.T) {
	r, err := relay.Open(relay.Config{DataDir: t.TempDir(), AdminToken: "tok", PINParams: kiosk.TestPINParams(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() { srv.Close(); r.Close() })
	pol := kiosk.DefaultPolicy()
	pol.Cooldown = 0 // Ben logs in again right after the restart
	if err := r.PutPolicy("north", pol); err != nil {
		t.Fatal(err)
	}
	if err := r.PutRoster("north", relay.Roster{Inmates: []relay.RosterInmate{{ID: "A-9", Name: "Ben Ode",
		Badges: []string{"B-A-9"}, PIN: "2468", Language: "en", Status: kiosk.StatusActive}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Deposit(relay.DepositRequest{InmateID: "A-9", Cents: 500, Ref: "dep-1"}); err != nil {
		t.Fatal(err)
	}
	mp3, err := os.ReadFile(filepath.Join("..", "..", "..", "assets", "library", "morning-yard.mp3"))
	if err != nil {
		t.Fatal(err)
	}
	ref, secs, err := r.PutCatalogMedia(bytes.NewReader(mp3), "north", vocab.MediaMP3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PublishCatalogItem(relay.CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "trk-yard",
		Kind: vocab.CatalogTrack, Title: "Morning Yard", Artist: "The Tether Project", Duration: secs, Audio: &ref, PriceCents: 99}}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	a, stop := runKioskd(t, dir)
	c, err := control.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := r.CreateEnrollment(relay.EnrollmentRequest{FacilityID: "north", Mode: ModeKiosk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enroll(context.Background(), control.EnrollRequest{RelayURL: srv.URL, Code: enr.Code}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	testwait.Until(t, "Ben, his balance and the catalog on the kiosk", func() bool {
		cat, err := a.term.Catalog()
		b, berr := a.term.Balance("A-9")
		return err == nil && len(cat) == 1 && berr == nil && b == 500
	})

	loginBen(t, a)
	press(t, a, "Library")
	waitSee(t, a, "Morning Yard")
	press(t, a, "Buy $0.99")
	waitSee(t, a, "Your balance after buying: $")
	press(t, a, "Pay $0.99")
	waitSee(t, a, "“Morning Yard” is yours now.")
	press(t, a, "Open")
	waitSee(t, a, "No sound on this terminal") // fetched from the relay, loaded in the player
	press(t, a, "Play")
	waitSee(t, a, "Pause")
	testwait.Until(t, "the purchase at the relay", func() bool {
		n, _, err := a.store.QueueStats()
		return err == nil && n == 0
	})
	stop()

	// The relay is gone; kioskd starts again on the same data.
	srv.Close()
	b, _ := runKioskd(t, dir)
	loginBen(t, b)
	press(t, b, "Library")
	waitSee(t, b, "✓ Yours")
	press(t, b, "Open")
	waitSee(t, b, "No sound on this terminal")
	waitSee(t, b, "0:00 / 0:17")
	press(t, b, "Play")
	waitSee(t, b, "Pause")
	if st := b.syncs.Engine(); st == nil || st.Status().Connected {
		t.Fatalf("the link is up after the relay went: %+v", st)
	}
}
