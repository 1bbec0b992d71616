package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	demoseed "github.com/tether-kiosk/tether/assets/demo"
	"github.com/tether-kiosk/tether/cmd/internal/kioskapp"
	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/device"
	"github.com/tether-kiosk/tether/hardware/sim"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
)

// demoPerson is someone whose badge card sits on the demo's device panel. The PINs are the
// demo's published ones (README); the roster holds only their argon2id hashes.
type demoPerson struct {
	Name, ID, Badge, PIN, Lang string
	Technician                 bool
}

var demoPeople = []demoPerson{
	{Name: "Maria Lopez", ID: "A100001", Badge: "0004198231", PIN: "2468", Lang: "es"},
	{Name: "James Carter", ID: "A100002", Badge: "0007342519", PIN: "1357", Lang: "en"},
	{Name: "Ahmed Khan", ID: "A100003", Badge: "0001128406", PIN: "8024", Lang: "en"},
	{Name: "Dana Reyes", ID: "T-01", Badge: "0009900001", PIN: "9731", Lang: "en", Technician: true},
}

// demoUnknownBadge is on no roster.
const demoUnknownBadge = "0000000042"

// demoMarker marks a directory the demo made, so that resetting it never wipes anything else.
const demoMarker = ".tether-demo"

// demo is the world around a demo kiosk: a reference relay on loopback holding a seeded
// facility, and simulated devices on pseudo-terminals.
type demo struct {
	dir   string
	logf  kiosk.Logf
	fac   demoseed.Facility
	relay *relay.Relay
	srv   *http.Server
	url   string
	// consoleURL is the staff console's address; out is where the demo tells the person
	// running it (the console address and logins).
	consoleURL string
	out        io.Writer
	badge      *sim.BadgeReader
	pad        *sim.PinPad
	keys       chan func() // device presses, in order, off the UI goroutine
	done       chan struct{}
}

// newDemo resets dir, starts the relay and seeds it, and plugs in the simulated devices.
// It returns the config a kiosk of that facility would have.
func newDemo(dir string, logf kiosk.Logf, out io.Writer) (*demo, kioskapp.Config, error) {
	t0 := time.Now()
	if err := resetDemoDir(dir); err != nil {
		return nil, kioskapp.Config{}, err
	}
	fac, err := demoseed.LoadFacility()
	if err != nil {
		return nil, kioskapp.Config{}, err
	}
	d := &demo{dir: dir, logf: logf, fac: fac, out: out, keys: make(chan func(), 256), done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			d.close()
		}
	}()
	token, tokenPath, err := demoAdminToken(dir)
	if err != nil {
		return nil, kioskapp.Config{}, err
	}
	d.relay, err = relay.Open(relay.Config{DataDir: filepath.Join(dir, "relay"), Logf: logf, HoldPolicy: relay.HoldAll, AdminToken: token,
		Notifier: relay.SpoolNotifier{Dir: filepath.Join(dir, "invitations"), From: "Tether demo <invite@tether.invalid>"}})
	if err != nil {
		return nil, kioskapp.Config{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, kioskapp.Config{}, fmt.Errorf("relay listen: %w", err)
	}
	d.url = "http://" + ln.Addr().String()
	handler, err := d.withConsole()
	if err != nil {
		ln.Close()
		return nil, kioskapp.Config{}, err
	}
	d.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = d.srv.Serve(ln) }()
	logf("demo: relay on %s (data in %s)", d.url, filepath.Join(dir, "relay"))
	fmt.Fprintf(out, "Admin API: %s/admin/v1/ with the bearer token in %s\n", d.url, tokenPath)

	if err := d.seedRelay(); err != nil {
		return nil, kioskapp.Config{}, err
	}
	if err := d.seedLibrary(); err != nil {
		return nil, kioskapp.Config{}, err
	}
	if err := d.seedYesterday(); err != nil {
		return nil, kioskapp.Config{}, fmt.Errorf("seed contacts and messages: %w", err)
	}
	if err := d.topUp(); err != nil {
		return nil, kioskapp.Config{}, err
	}

	devDir := filepath.Join(dir, "devices")
	if err := os.MkdirAll(devDir, 0o700); err != nil {
		return nil, kioskapp.Config{}, err
	}
	d.badge, err = sim.NewBadgeReaderWith(badge.EM4100, sim.Options{Dir: devDir})
	if err != nil {
		return nil, kioskapp.Config{}, err
	}
	d.pad, err = sim.NewPinPadWith(sim.Options{Dir: devDir})
	if err != nil {
		return nil, kioskapp.Config{}, err
	}
	go d.pressLoop()
	logf("demo: badge reader (em4100) at %s -> %s; PIN pad at %s -> %s", d.badge.Path(), d.badge.TTY(), d.pad.Path(), d.pad.TTY())
	cfg := kioskapp.Config{
		Relay: kioskapp.RelayConfig{URL: d.url},
		Mode:  kioskapp.ModeKiosk,
		Devices: []kioskapp.DeviceConfig{
			{Name: "badge reader", Role: device.RoleBadge, Path: d.badge.Path(), Framing: badge.EM4100},
			{Name: "PIN pad", Role: device.RolePinPad, Path: d.pad.Path()},
		},
		Screen: kioskapp.ScreenConfig{Width: 1280, Height: 800},
	}
	if err := cfg.Validate(); err != nil {
		return nil, kioskapp.Config{}, fmt.Errorf("demo config: %w", err)
	}
	logf("demo: facility seeded in %v", time.Since(t0).Round(time.Millisecond))
	ok = true
	return d, cfg, nil
}

// resetDemoDir empties dir if the demo made it (or it is empty or missing), else refuses.
func resetDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("demo data directory: %w", err)
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			return fmt.Errorf("demo data directory %s holds files the demo did not make; choose another -data", dir)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("reset demo data: %w", err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("demo data directory: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, demoMarker), []byte("made by tetherdemo; reset at each start\n"), 0o600)
}

// seedRelay puts the policy, the roster and the opening balances on the relay.
func (d *demo) seedRelay() error {
	p := kiosk.DefaultPolicy()
	p.FacilityName = d.fac.Name
	// Both pricings at once, so the demo shows stamps too: minutes as TRULINCS bills them, and a
	// stamp per letter to a contact as JPay sells them (requests to staff and PREA stay free).
	p.Pricing, p.StampPrice = kiosk.PricingBoth, 25
	// A passed quiz of the library's course earns 50¢, as Edovo's model credits learning.
	p.QuizCreditCents = 50
	if err := d.relay.PutPolicy(d.fac.ID, p); err != nil {
		return fmt.Errorf("seed policy: %w", err)
	}
	var ro relay.Roster
	if err := json.Unmarshal(demoseed.RosterJSON(), &ro); err != nil {
		return fmt.Errorf("demo roster: %w", err)
	}
	if err := d.relay.PutRoster(d.fac.ID, ro); err != nil {
		return fmt.Errorf("seed roster: %w", err)
	}
	for _, b := range d.fac.Balances {
		if _, _, err := d.relay.Deposit(relay.DepositRequest{InmateID: b.InmateID, Cents: kiosk.Cents(b.Cents), Ref: "demo-opening-" + b.InmateID}); err != nil {
			return fmt.Errorf("seed deposit: %w", err)
		}
	}
	return nil
}

// seedYesterday enrolls the demo kiosk and makes its history the way a real one is made, on a
// clock set to yesterday: Maria and James logged in with their badges and PINs and asked for
// their contacts, the relay approved them, Maria wrote to her mother and the message waits
// for review, and letters from the contacts arrived. All of it goes through the kiosk's real
// store and real sync; the kiosk then opens the same store with the real clock.
func (d *demo) seedYesterday() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := filepath.Join(d.dir, "terminal")
	fake := clock.NewFake(time.Now().Add(-26 * time.Hour).Truncate(time.Minute))
	st, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: fake})
	if err != nil {
		return err
	}
	code, err := d.relay.CreateEnrollment(relay.EnrollmentRequest{FacilityID: d.fac.ID, Mode: kioskapp.ModeKiosk})
	if err != nil {
		return err
	}
	if _, err := client.Enroll(ctx, client.EnrollConfig{DataDir: dir, RelayURL: d.url, Code: code.Code, Terminal: t,
		Label: "demo kiosk", Software: kioskapp.Software}); err != nil {
		return err
	}
	// No content store: a kiosk fetches a letter's photos when the letter is opened (kioskd
	// does, with content.db beside the store), not when it arrives.
	eng, err := client.New(client.Config{DataDir: dir, Terminal: t, Software: kioskapp.Software, BatchDelay: 5 * time.Millisecond,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	engCtx, engStop := context.WithCancel(ctx)
	engDone := make(chan struct{})
	go func() { defer close(engDone); _ = eng.Run(engCtx) }()
	defer func() { engStop(); <-engDone }()

	byID := map[string]demoPerson{}
	for _, p := range demoPeople {
		byID[p.ID] = p
	}
	if err := poll(ctx, "the roster to reach the kiosk", func() bool {
		for _, c := range d.fac.Contacts {
			if _, err := t.Inmate(c.InmateID); err != nil {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	session := func(id string, fn func() error) error {
		p, ok := byID[id]
		if !ok {
			return fmt.Errorf("inmate %s has no demo badge", id)
		}
		if _, err := t.Badge(p.Badge); err != nil {
			return fmt.Errorf("%s logging in yesterday: %w", id, err)
		}
		pend, err := t.EnterPIN(p.Badge, p.PIN)
		if err != nil {
			return fmt.Errorf("%s logging in yesterday: %w", id, err)
		}
		if _, err := t.AcceptNotice(pend); err != nil {
			return fmt.Errorf("%s logging in yesterday: %w", id, err)
		}
		ferr := fn()
		fake.Advance(30 * time.Second)
		if err := t.Logout(); err != nil {
			return err
		}
		fake.Advance(2 * time.Hour) // past the cool-down before the next session
		return ferr
	}
	drained := func(what string) error {
		return poll(ctx, what, func() bool {
			eng.SyncNow()
			n, _, err := st.QueueStats()
			return err == nil && n == 0
		})
	}
	inmates := []string{}
	seen := map[string]bool{}
	for _, c := range d.fac.Contacts {
		if !seen[c.InmateID] {
			seen[c.InmateID] = true
			inmates = append(inmates, c.InmateID)
		}
	}
	for _, id := range inmates {
		if err := session(id, func() error {
			for _, c := range d.fac.Contacts {
				if c.InmateID == id {
					if _, err := t.AddContact(id, c.Name, c.Email); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if err := drained("the contact requests to reach the relay"); err != nil {
		return err
	}
	pending, err := d.relay.Contacts(kiosk.ContactPending, "")
	if err != nil {
		return err
	}
	for _, c := range pending {
		if _, err := d.relay.ApproveContact(c.ID); err != nil {
			return err
		}
		// The family accepts the invitation the relay wrote to the demo's spool.
		if err := d.acceptInvitation(c.ID); err != nil {
			return err
		}
	}
	peer := func(inmateID, email string) (string, bool) {
		cs, err := t.Contacts(inmateID)
		if err != nil {
			return "", false
		}
		for _, c := range cs {
			if strings.EqualFold(c.Email, email) && kiosk.ContactMayWrite(c) {
				return c.ID, true
			}
		}
		return "", false
	}
	for _, h := range d.fac.Held {
		if err := poll(ctx, "the contact approval to reach the kiosk", func() bool {
			_, ok := peer(h.InmateID, h.To)
			return ok
		}); err != nil {
			return err
		}
		if err := session(h.InmateID, func() error {
			id, _ := peer(h.InmateID, h.To)
			_, err := t.Send(h.InmateID, id, h.Subject, h.Body)
			return err
		}); err != nil {
			return err
		}
	}
	if err := drained("the held message to reach the relay"); err != nil {
		return err
	}
	for _, m := range d.fac.Inbound {
		var photos []relay.InboundPhoto
		for n := range m.Photos {
			b, err := demoPhoto(n)
			if err != nil {
				return err
			}
			photos = append(photos, relay.InboundPhoto{Type: "image/png", Data: b})
		}
		msg, err := d.relay.Inbound(relay.InboundRequest{InmateID: m.InmateID, From: m.From, Subject: m.Subject, Body: m.Body,
			Photos: photos})
		if err != nil {
			return fmt.Errorf("seed inbound message: %w", err)
		}
		if len(photos) > 0 { // held for photo review, as every family photo is: the mailroom passed it
			if _, err := d.relay.ApproveInbound(msg.ID); err != nil {
				return fmt.Errorf("approve the demo's photo letter: %w", err)
			}
		}
	}
	if err := d.seedRequestAndNotices(t, session, drained); err != nil {
		return err
	}
	// Wait for the reviewer's "held" and the letters, so the kiosk starts with all of it.
	if err := poll(ctx, "the held status and the letters to reach the kiosk", func() bool {
		for _, h := range d.fac.Held {
			sent, err := t.Sent(h.InmateID)
			if err != nil || len(sent) == 0 || sent[len(sent)-1].State != kiosk.MsgHeld {
				return false
			}
		}
		want := map[string]int{demoRequest.inmate: 1} // Medical's answer
		for _, m := range d.fac.Inbound {
			want[m.InmateID]++
		}
		if ns, err := t.Notices(demoRequest.inmate); err != nil || len(ns) < len(demoNotices) {
			return false
		}
		if cat, err := t.Catalog(); err != nil || len(cat) < len(demoTrackPrices)+len(demoLessons)+1 {
			return false // the library
		}
		for id, n := range want {
			if in, err := t.Inbox(id); err != nil || len(in) < n {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	if e, err := client.LoadEnrollment(dir); err == nil {
		d.logf("demo: kiosk enrolled as %s in facility %s; %d contacts approved, %d message(s) held for review, %d letters",
			e.TerminalID, e.Facility, len(pending), len(d.fac.Held), len(d.fac.Inbound))
	}
	return nil
}

// demoRequest is what James asked Medical yesterday, and Medical's answer, which his inbox
// shows under the request.
var demoRequest = struct{ inmate, dept, subject, body, answer string }{
	inmate: "A100002", dept: "dept-medical", subject: "Glasses",
	body:   "My reading glasses broke. Can I get new ones?",
	answer: "An optometry visit is booked for Thursday at 10:00. Bring the broken pair.",
}

// demoNotices are on the screens: the facility's on the welcome and home screens in each
// language, James's own after he logs in.
var demoNotices = []relay.NoticeRequest{
	{Text: "Library hours this week: 08:00 to 20:00.", Language: "en"},
	{Text: "Horario de la biblioteca esta semana: de 08:00 a 20:00.", Language: "es"},
	{InmateID: demoRequest.inmate, Text: "Your property pickup is on Friday at 14:00."},
}

// seedRequestAndNotices has James write to Medical in a session (requests go straight to the
// department: their own review setting is off, as in TRULINCS), Medical answer it through the relay (POST /admin/v1/requests/{id}/reply), and the facility post the
// notices; all reach the kiosk by sync.
func (d *demo) seedRequestAndNotices(t *kiosk.Terminal, session func(string, func() error) error, drained func(string) error) error {
	var req kiosk.Message
	if err := session(demoRequest.inmate, func() error {
		var err error
		req, err = t.Send(demoRequest.inmate, demoRequest.dept, demoRequest.subject, demoRequest.body)
		return err
	}); err != nil {
		return fmt.Errorf("seed request: %w", err)
	}
	if err := drained("the request to reach the relay"); err != nil {
		return err
	}
	if _, _, err := d.relay.ReplyToRequest(req.ID, relay.ReplyRequest{From: demoRequest.dept, Subject: "Re: " + demoRequest.subject,
		Body: demoRequest.answer}); err != nil {
		return fmt.Errorf("seed answer: %w", err)
	}
	for _, n := range demoNotices {
		n.FacilityID, n.Until = d.fac.ID, time.Now().Add(7*24*time.Hour)
		if _, err := d.relay.PostNotice(n); err != nil {
			return fmt.Errorf("seed notice: %w", err)
		}
	}
	return nil
}

// topUp deposits what yesterday's sessions cost, so the balances are the seed's round figures.
func (d *demo) topUp() error {
	for _, b := range d.fac.Balances {
		bal, err := d.relay.Balance(b.InmateID)
		if err != nil {
			return err
		}
		if diff := kiosk.Cents(b.Cents) - bal.BalanceCents; diff > 0 {
			if _, _, err := d.relay.Deposit(relay.DepositRequest{InmateID: b.InmateID, Cents: diff, Ref: "demo-topup-" + b.InmateID}); err != nil {
				return fmt.Errorf("seed deposit: %w", err)
			}
		}
	}
	return nil
}

// present puts a badge card on the simulated reader.
func (d *demo) present(id string) { d.keys <- func() { d.report(d.badge.Present(id)) } }

// garble sends a frame with a bad checksum.
func (d *demo) garble() {
	d.keys <- func() {
		_, err := d.badge.PresentInvalid(badge.InvalidChecksum)
		d.report(err)
	}
}

// press sends one PIN pad key byte.
func (d *demo) press(b byte) { d.keys <- func() { d.report(d.pad.Press(b)) } }

// typePIN sends the digits and Enter; done is closed once they are written.
func (d *demo) typePIN(pin string, done chan<- time.Time) {
	d.keys <- func() {
		err := d.pad.TypePIN(pin)
		d.report(err)
		done <- time.Now()
	}
}

func (d *demo) report(err error) {
	if err != nil {
		d.logf("demo device: %v", err)
	}
}

// pressLoop writes device input in the order it was asked for.
func (d *demo) pressLoop() {
	for {
		select {
		case <-d.done:
			return
		case f := <-d.keys:
			f()
		}
	}
}

func (d *demo) close() {
	select {
	case <-d.done:
		return
	default:
		close(d.done)
	}
	if d.badge != nil {
		d.badge.Close()
	}
	if d.pad != nil {
		d.pad.Close()
	}
	if d.srv != nil {
		d.srv.Close()
	}
	if d.relay != nil {
		if err := d.relay.Close(); err != nil {
			d.logf("demo: %v", err)
		}
	}
}

// poll checks cond every 20 ms until it holds or ctx ends.
func poll(ctx context.Context, what string, cond func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// acceptInvitation answers contact id's invitation with accept, with the code from the email
// the relay spooled (the demo's stand-in for the family opening their mail).
func (d *demo) acceptInvitation(id string) error {
	files, err := filepath.Glob(filepath.Join(d.dir, "invitations", id+"-*.eml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no invitation spooled for contact %s (%v)", id, err)
	}
	sort.Strings(files)
	raw, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		return fmt.Errorf("read invitation: %w", err)
	}
	code, ok := relay.InvitationCode(raw)
	if !ok {
		return fmt.Errorf("invitation %s has no code", files[len(files)-1])
	}
	_, err = d.relay.AnswerInvitation(code, relay.AnswerAccept)
	return err
}
