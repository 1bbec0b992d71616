package kioskapp

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
)

// liveRelay is a real relay on 127.0.0.1 whose facility "north" knows inmate A-9.
func liveRelay(t *testing.T) (*relay.Relay, string) {
	t.Helper()
	r, err := relay.Open(relay.Config{DataDir: t.TempDir(), AdminToken: "tok", PINParams: kiosk.TestPINParams(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() { srv.Close(); r.Close() })
	if err := r.PutPolicy("north", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	if err := r.PutRoster("north", relay.Roster{Inmates: []relay.RosterInmate{{ID: "A-9", Name: "Ben Ode",
		Badges: []string{"B-A-9"}, PIN: "2468", Language: "en", Status: kiosk.StatusActive}}}); err != nil {
		t.Fatal(err)
	}
	return r, srv.URL
}

// unenrolledKioskd is a kioskd opened on a new data directory (so not enrolled) and running.
type unenrolledKioskd struct {
	dir   string
	term  *kiosk.Terminal
	syncs *syncHolder
	tech  *techWiring
}

func startUnenrolled(t *testing.T) *unenrolledKioskd {
	t.Helper()
	dir := t.TempDir()
	a, err := Open(Options{DataDir: dir, Logf: t.Logf, Driver: newTestDriver(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.LoadEnrollment(dir); err != client.ErrNotEnrolled {
		t.Fatalf("a new data directory is enrolled? %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	// The orderly stop: Run ends (sync stops), then Stop closes the control socket and the store.
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := a.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &unenrolledKioskd{dir: dir, term: a.term, syncs: a.syncs, tech: a.tech}
}

// loginAndWrite opens Ben's session and sends a message to a department: queued, offline.
func (k *unenrolledKioskd) loginAndWrite(t *testing.T) kiosk.Message {
	t.Helper()
	h, err := kiosk.HashPINWith("2468", kiosk.TestPINParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := k.term.UpsertInmate(kiosk.Inmate{ID: "A-9", Name: "Ben Ode", Badges: []string{"B-A-9"}, PINHash: h,
		Language: "en", Status: kiosk.StatusActive, Messaging: true}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := k.term.Deposit("A-9", 1200, "dep-1"); err != nil {
		t.Fatal(err)
	}
	p, err := k.term.EnterPIN("B-A-9", "2468")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.term.AcceptNotice(p); err != nil {
		t.Fatal(err)
	}
	m, err := k.term.Send("A-9", "dept-medical", "Appointment", "Please move my appointment to Friday.")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func relayHas(t *testing.T, r *relay.Relay, m kiosk.Message) func() (bool, string) {
	return func() (bool, string) {
		out, err := r.Outbound(relay.OutboundFilter{InmateID: "A-9"})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			if o.Message.ID == m.ID && o.Message.Body == m.Body {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d outbound messages at the relay", len(out))
	}
}

// `kioskctl enroll` on a running, unenrolled kioskd starts sync at once: the message written
// offline reaches the relay and the status over the control socket says linked, no restart.
func TestEnrollThroughControlSocketStartsSyncLive(t *testing.T) {
	r, url := liveRelay(t)
	k := startUnenrolled(t)
	m := k.loginAndWrite(t)

	c, err := control.Dial(k.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Relay.Link != control.LinkNotEnroll || st.Queue.Waiting == 0 {
		t.Fatalf("before enrollment: link %q, %d waiting", st.Relay.Link, st.Queue.Waiting)
	}
	if l := k.tech.deps().LinkStatus(); l.Enrolled {
		t.Fatalf("technician screen shows an enrolled link before enrollment: %+v", l)
	}

	enr, err := r.CreateEnrollment(relay.EnrollmentRequest{FacilityID: "north", Mode: "kiosk"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Enroll(ctx, control.EnrollRequest{RelayURL: url, Code: enr.Code})
	if err != nil {
		t.Fatal(err)
	}
	if res.TerminalID == "" || res.Facility != "north" {
		t.Fatalf("enroll: %+v", res)
	}

	testwait.UntilSaw(t, "the offline message at the relay", relayHas(t, r, m))
	testwait.UntilSaw(t, "a connected link with nothing waiting in kioskctl status", func() (bool, string) {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Relay.Link == control.LinkConnected && st.Queue.Waiting == 0 && st.TerminalID == res.TerminalID,
			st.Relay.Link + " " + st.TerminalID
	})
	// The technician screen reads the same engine.
	if l := k.tech.deps().LinkStatus(); !l.Enrolled || !l.Connected || l.TerminalID != res.TerminalID || l.RelayURL != res.RelayURL {
		t.Fatalf("technician screen link: %+v", l)
	}
	// Enrolling again does not start a second engine.
	first := k.syncs.Engine()
	if e, started, err := k.syncs.Start(); err != nil || started || e != first {
		t.Fatalf("second Start: %p started=%v err=%v, running %p", e, started, err, first)
	}
}

// Enrolling from the technician screen starts sync the same way, and Sync now reaches it.
func TestEnrollFromTechnicianScreenStartsSyncLive(t *testing.T) {
	r, url := liveRelay(t)
	k := startUnenrolled(t)
	m := k.loginAndWrite(t)
	k.tech.syncNow() // not enrolled: nothing to wake, and nothing breaks

	enr, err := r.CreateEnrollment(relay.EnrollmentRequest{FacilityID: "north", Mode: "kiosk"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := k.tech.enroll(context.Background(), url, enr.Code)
	if err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the offline message at the relay", relayHas(t, r, m))
	testwait.UntilSaw(t, "a connected link on the technician screen", func() (bool, string) {
		l := k.tech.deps().LinkStatus()
		return l.Enrolled && l.Connected && l.TerminalID == info.TerminalID && l.Waiting == 0, l.TerminalID
	})
	k.tech.syncNow()

	// After the orderly stop an enrollment starts no engine behind it.
	late := newSyncHolder(context.Background(), k.syncs.cfg, ModeKiosk, t.Logf)
	late.Stop()
	if e, _, err := late.Start(); err == nil || e != nil || late.Engine() != nil {
		t.Fatalf("a stopped holder started an engine: %v", err)
	}
}
