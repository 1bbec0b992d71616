package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/cmd/internal/termconfig"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/status"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
)

// fakeKioskd is what kioskd runs for the control API: a real store and Terminal, the real
// control server on a real unix socket, optionally a sync engine and a device manager.
type fakeKioskd struct {
	dir    string
	store  *kiosk.Store
	term   *kiosk.Terminal
	srv    *control.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func startKioskd(t *testing.T, dir string, cfg termconfig.Config, withSync bool) *fakeKioskd {
	t.Helper()
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var id string
	if e, err := client.LoadEnrollment(dir); err == nil {
		id = e.TerminalID
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewReal(), PINParams: kiosk.TestPINParams(), ID: id, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKioskd{dir: dir, store: s, term: term, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	var eng *client.Engine
	if withSync {
		eng, err = client.New(client.Config{DataDir: dir, Terminal: term, Logf: t.Logf, BatchDelay: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		go func() { eng.Run(ctx); close(k.done) }()
	} else {
		close(k.done)
	}
	devs, err := device.New(cfg.DeviceConfigs(), device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	link := func() status.Link { return status.Link{} } // not enrolled: no engine
	if eng != nil {
		link = eng.Status
	}
	k.srv, err = control.Serve(control.ServeOptions{DataDir: dir, ConfigPath: "kioskd.json", Config: cfg, Terminal: term,
		Link: link, Devices: devs.States, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(k.srv.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, %v", fi, err)
	}
	t.Cleanup(k.stop)
	return k
}

func (k *fakeKioskd) stop() {
	if k.srv == nil {
		return
	}
	k.srv.Close()
	k.cancel()
	<-k.done
	k.store.Close()
	k.srv = nil
}

func ctlJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), append(args, "--json"), strings.NewReader(""), &out, &errb); err != nil {
		t.Fatalf("kioskctl %v: %v\n%s", args, err, errb.String())
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("kioskctl %v: %v\n%s", args, err, out.String())
	}
}

func writeConfig(t *testing.T, cfg termconfig.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kioskd.json")
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func seedInmate(t *testing.T, term *kiosk.Terminal, id, name string) {
	t.Helper()
	bound, _, _ := term.BoundInmate()
	h, _ := kiosk.HashPINWith("2468", kiosk.TestPINParams())
	if err := term.UpsertInmate(kiosk.Inmate{ID: id, Name: name, Badges: []string{"B-" + id}, PINHash: h, Language: "en",
		Status: kiosk.StatusActive, Messaging: true, TabletBound: bound == id}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := term.Deposit(id, 2500, "dep-"+id); err != nil {
		t.Fatal(err)
	}
}

// withoutLive drops what only a running kioskd knows (and what the disk changes by itself).
func withoutLive(m map[string]any) map[string]any {
	delete(m, "kioskd")
	delete(m, "devices")
	delete(m, "session")
	r := m["relay"].(map[string]any)
	delete(r, "link")
	delete(r, "sync")
	delete(m["store"].(map[string]any), "free_bytes")
	return m
}

func TestStatusIsTheSameWithKioskdRunningOrStopped(t *testing.T) {
	dir := t.TempDir()
	cfg := termconfig.Config{Relay: termconfig.RelayConfig{URL: "wss://relay.example:8443"}, Devices: []termconfig.DeviceConfig{
		{Name: "door-reader", Role: "badge", Path: "/dev/serial/by-id/usb-none", Framing: "em4100"}}}
	cfgPath := writeConfig(t, cfg)
	k := startKioskd(t, dir, cfg, false)
	if err := k.term.SetEnrollment(kiosk.Enrollment{TerminalID: "t-42", Facility: "north", Mode: "kiosk"}); err != nil {
		t.Fatal(err)
	}
	seedInmate(t, k.term, "A-1", "Ana Ruiz")

	var running map[string]any
	var runningSt control.Status
	ctlJSON(t, &running, "status", "--data", dir, "--config", cfgPath)
	ctlJSON(t, &runningSt, "status", "--data", dir, "--config", cfgPath)
	if runningSt.Kioskd != "running" || runningSt.Relay.Link != control.LinkNotEnroll && runningSt.Relay.Link != control.LinkDown ||
		len(runningSt.Devices) != 1 || runningSt.Devices[0].State != status.DeviceDisconnected {
		t.Fatalf("running status: %+v", runningSt)
	}
	if runningSt.TerminalID != "t-42" || runningSt.Queue.Waiting == 0 || runningSt.Store.FreeBytes == 0 || runningSt.Store.SizeBytes == 0 {
		t.Fatalf("running status: %+v", runningSt)
	}
	k.stop()

	var stopped map[string]any
	var stoppedSt control.Status
	ctlJSON(t, &stopped, "status", "--data", dir, "--config", cfgPath)
	ctlJSON(t, &stoppedSt, "status", "--data", dir, "--config", cfgPath)
	if stoppedSt.Relay.Link != control.LinkNotRunning || stoppedSt.Kioskd != "not running" ||
		len(stoppedSt.Devices) != 1 || stoppedSt.Devices[0].State != status.DeviceUnknown || stoppedSt.Devices[0].Name != "door-reader" {
		t.Fatalf("stopped status: %+v", stoppedSt)
	}
	a, _ := json.Marshal(withoutLive(running))
	b, _ := json.Marshal(withoutLive(stopped))
	if !bytes.Equal(a, b) {
		t.Fatalf("status differs:\nrunning %s\nstopped %s", a, b)
	}

	// The text form says the same in words.
	out, err := kioskctl(t, "", "status", "--data", dir, "--config", cfgPath)
	for _, want := range []string{"t-42", "north", "kioskd not running", "wss://relay.example:8443", "door-reader", "unknown"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("status text lacks %q (%v):\n%s", want, err, out)
		}
	}
}

func TestEnrollSyncAndStatusEndToEnd(t *testing.T) {
	r, err := relay.Open(relay.Config{DataDir: t.TempDir(), AdminToken: "tok", PINParams: kiosk.TestPINParams(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() { srv.Close(); r.Close() })
	if err := r.PutPolicy("north", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	enr, err := r.CreateEnrollment(relay.EnrollmentRequest{FacilityID: "north", Mode: "kiosk"})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	var res control.EnrollResult
	ctlJSON(t, &res, "enroll", "--data", dir, "--relay", srv.URL, "--code", enr.Code)
	if res.TerminalID == "" || res.Facility != "north" || res.Mode != "kiosk" || res.InmateID != "" {
		t.Fatalf("enroll: %+v", res)
	}
	// A used code (read from standard input this time, kept out of the process list) is refused
	// with the relay's reason, and the code (a secret) is not repeated.
	out, err := kioskctl(t, enr.Code+"\n", "enroll", "--data", dir, "--relay", srv.URL, "--code", "-")
	if err == nil || !strings.Contains(err.Error(), "code_used") {
		t.Fatalf("second enroll with the same code: %v", err)
	}
	if strings.Contains(out+err.Error(), enr.Code) {
		t.Fatalf("the refused enrollment repeats the code: %q %v", out, err)
	}

	k := startKioskd(t, dir, termconfig.Config{}, true)
	seedInmate(t, k.term, "A-9", "Ben Ode")
	cfgPath := filepath.Join(t.TempDir(), "none.json")
	var st control.Status
	testwait.UntilSaw(t, "status to show linked with nothing waiting", func() (bool, string) {
		ctlJSON(t, &st, "status", "--data", dir, "--config", cfgPath+"x")
		return st.Relay.Link == control.LinkConnected && st.Queue.Waiting == 0 && st.Relay.Sync != nil && !st.Relay.Sync.LastSuccess.IsZero(), fmt.Sprintf("%+v", st)
	})
	if st.TerminalID != res.TerminalID || st.Relay.URL != res.RelayURL {
		t.Fatalf("status: %+v", st)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/admin/v1/terminals", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tl struct{ Terminals []relay.TerminalInfo }
	if err := json.NewDecoder(resp.Body).Decode(&tl); err != nil {
		t.Fatal(err)
	}
	if len(tl.Terminals) != 1 || tl.Terminals[0].ID != res.TerminalID || !tl.Terminals[0].Connected || tl.Terminals[0].FacilityID != "north" {
		t.Fatalf("relay terminals: %+v", tl)
	}
	// The enrollment was audited with who did it, and reached the relay.
	items, err := r.Items(relay.ItemFilter{TerminalID: res.TerminalID, Kind: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range items {
		found = found || strings.Contains(string(it.Body), `"enroll"`) && strings.Contains(string(it.Body), "kioskctl:")
	}
	if !found {
		t.Fatalf("no enroll audit at the relay among %d items", len(items))
	}
}

// scanBolt lists every bucket key or value of the store file holding any needle.
func scanBolt(t *testing.T, path string, needles ...string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var hits []string
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				for _, n := range needles {
					if bytes.Contains(k, []byte(n)) || bytes.Contains(v, []byte(n)) {
						hits = append(hits, string(name)+"/"+string(k)+" holds "+n)
					}
				}
				return nil
			})
		})
	})
	return hits
}

func TestReissueThroughKioskd(t *testing.T) {
	dir := t.TempDir()
	k := startKioskd(t, dir, termconfig.Config{}, false)
	if err := k.term.SetEnrollment(kiosk.Enrollment{TerminalID: "t-7", Facility: "north", Mode: "tablet", InmateID: "A-5"}); err != nil {
		t.Fatal(err)
	}
	seedInmate(t, k.term, "A-5", "Carla Mendez")
	p, err := k.term.EnterBoundPIN("2468")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.term.AcceptNotice(p); err != nil {
		t.Fatal(err)
	}
	if _, err := k.term.AddContact("A-5", "Luis Mendez", "luis@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := kioskctl(t, "", "reissue", "--data", dir); err == nil || !strings.Contains(err.Error(), "logged in") {
		t.Fatalf("reissue during a session: %v", err)
	}
	if err := k.term.Logout(); err != nil {
		t.Fatal(err)
	}
	waiting, _, _ := k.store.QueueStats()
	_, err = kioskctl(t, "", "reissue", "--data", dir)
	if err == nil || !strings.Contains(err.Error(), itoa(waiting)+" items are still waiting") {
		t.Fatalf("reissue with %d items waiting: %v", waiting, err)
	}
	if _, err := k.store.Ack(time.Now(), 1<<62); err != nil {
		t.Fatal(err)
	}
	before, _ := k.store.Info()
	out, err := kioskctl(t, "", "reissue", "--data", dir)
	if err != nil || !strings.Contains(out, "reissued") || !strings.Contains(out, "kioskctl enroll") {
		t.Fatalf("reissue: %q %v; want it to say to enroll again", out, err)
	}
	k.stop()
	if hits := scanBolt(t, filepath.Join(dir, kiosk.StoreFile), "A-5", "Carla Mendez", "Luis Mendez", "luis@example.org"); len(hits) > 0 {
		t.Fatalf("the last inmate is still in the store:\n%s", strings.Join(hits, "\n"))
	}
	var st control.Status
	ctlJSON(t, &st, "status", "--data", dir, "--config", writeConfig(t, termconfig.Config{}))
	if st.TerminalID != "t-7" || st.Store.Epoch != before.Epoch || st.Store.NextSeq <= before.NextSeq || st.BoundInmate != "" {
		t.Fatalf("after reissue: %+v (before %+v)", st, before)
	}
	// With kioskd stopped the same command works on the store (nothing left to wipe).
	if out, err := kioskctl(t, "", "reissue", "--data", dir); err == nil || !strings.Contains(out+err.Error(), "1 items are still waiting") {
		t.Fatalf("reissue with the reissue's own audit waiting: %q %v", out, err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestBackupVerifyCompactThroughKioskd(t *testing.T) {
	dir := t.TempDir()
	k := startKioskd(t, dir, termconfig.Config{}, false)
	seedInmate(t, k.term, "A-1", "Ana Ruiz")
	p, err := k.term.EnterPIN("B-A-1", "2468")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.term.AcceptNotice(p); err != nil {
		t.Fatal(err)
	}
	// Write load while the backup runs: contact requests, one transaction each.
	stop, done, started := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var acked []string
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c, err := k.term.AddContact("A-1", "Friend "+itoa(i), "f"+itoa(i)+"@example.org")
			if kiosk.KindOf(err) == kiosk.KindRefused { // the contact limit: delete one, go on
				mu.Lock()
				oldest := acked[0]
				acked = acked[1:]
				mu.Unlock()
				if err = k.term.RemoveContact("A-1", oldest); err == nil {
					continue
				}
			}
			if err != nil {
				t.Errorf("add contact: %v", err)
				return
			}
			mu.Lock()
			acked = append(acked, c.ID)
			mu.Unlock()
			if i == 5 {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-done:
		t.Fatal("the write load stopped before the backup could begin")
	}
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	bdir := t.TempDir()
	backup := filepath.Join(bdir, kiosk.StoreFile)
	if out, err := kioskctl(t, "", "backup", "--data", dir, backup); err != nil || !strings.Contains(out, "backed up") {
		t.Fatalf("backup: %q %v", out, err)
	}
	close(stop)
	<-done
	for _, id := range before {
		if hits := scanBolt(t, backup, id); len(hits) == 0 {
			t.Errorf("contact %s, stored before the backup began, is not in it", id)
		}
	}
	if out, err := kioskctl(t, "", "verify", "--data", bdir); err != nil || !strings.Contains(out, "store ok") {
		t.Fatalf("verify backup: %q %v", out, err)
	}
	if out, err := kioskctl(t, "", "verify", "--data", dir); err != nil || !strings.Contains(out, "store ok") {
		t.Fatalf("verify through kioskd: %q %v", out, err)
	}
	if _, err := kioskctl(t, "", "compact", "--data", dir); err == nil || !strings.Contains(err.Error(), "kioskd is running") {
		t.Fatalf("compact while kioskd runs: %v", err)
	}
	k.srv.Close() // the socket is gone but the store is still held
	if _, err := kioskctl(t, "", "compact", "--data", dir); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("compact of a held store: %v", err)
	}
	k.srv = nil
	k.term.Logout()
	k.cancel()
	k.store.Close()
	if out, err := kioskctl(t, "", "compact", "--data", dir); err != nil || !strings.Contains(out, "compacted") {
		t.Fatalf("compact: %q %v", out, err)
	}
	if out, err := kioskctl(t, "", "verify", "--data", dir); err != nil || !strings.Contains(out, "store ok") {
		t.Fatalf("verify after compact: %q %v", out, err)
	}
}

// What reissue tells the technician works: the terminal, its store and key kept, enrolls again
// with a new code; the relay's new record replaces the old one, which is revoked.
func TestEnrollAgainWithTheSameKey(t *testing.T) {
	r, err := relay.Open(relay.Config{DataDir: t.TempDir(), AdminToken: "tok", PINParams: kiosk.TestPINParams(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() { srv.Close(); r.Close() })
	if err := r.PutPolicy("north", kiosk.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var first, second control.EnrollResult
	for _, res := range []*control.EnrollResult{&first, &second} {
		enr, err := r.CreateEnrollment(relay.EnrollmentRequest{FacilityID: "north", Mode: "kiosk"})
		if err != nil {
			t.Fatal(err)
		}
		ctlJSON(t, res, "enroll", "--data", dir, "--relay", srv.URL, "--code", enr.Code)
	}
	if second.TerminalID == "" || second.TerminalID == first.TerminalID {
		t.Fatalf("enrolled again as %q (first %q)", second.TerminalID, first.TerminalID)
	}
	ts, err := r.Terminals()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]relay.TerminalInfo{}
	for _, ti := range ts {
		byID[ti.ID] = ti
	}
	if !byID[first.TerminalID].Revoked || byID[second.TerminalID].Revoked || byID[second.TerminalID].Replaces != first.TerminalID {
		t.Fatalf("relay terminals after enrolling again: %+v", ts)
	}
}
