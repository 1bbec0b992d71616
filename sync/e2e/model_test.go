package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The lifecycle model test drives two kiosks and a tablet of one facility, and a real relay,
// through random sequences of everything that happens to terminals in a facility's life:
// billed sessions, fault credits, letters, contact requests, staff reviews, link cuts mid-frame,
// SIGKILL of a terminal process, backups and restores, reissue, re-enrollment with the same key
// and a new one, wiped stores, badges moving to new inmates, inmates moved to another facility
// and back, policy changes and deposits.
//
// After every step each store and the relay pass their production verifiers (kioskctl verify's
// and relay.Verify; on JetStream the relay's after every fourth step and every settle); at
// checkpoints and at the end, once everything has synced, each terminal's ledger is reconciled
// with the relay's (kiosk.Reconcile): the same balances, every letter held by the relay with
// the state its sender sees, and the relay's deposits equal the model's.
//
// A run is replayable: TETHER_LIFECYCLE_SEED picks the seed (default: a fixed few) and
// TETHER_LIFECYCLE_STEPS the number of steps. Timing of link cuts and kills is not part of the
// seed, so a replay takes the same steps, not always the same byte-exact interleaving.
const (
	lifecycleSeedEnv  = "TETHER_LIFECYCLE_SEED"
	lifecycleStepsEnv = "TETHER_LIFECYCLE_STEPS"
)

func TestLifecycleModel(t *testing.T) {
	if testing.Short() {
		t.Skip("long: spawns terminal processes")
	}
	seeds, steps := []uint64{1, 2, 3}, 45
	if onJetStream() {
		// One seed on JetStream in every go test (three in-process nodes under -race take some
		// 100 s a seed); TETHER_LIFECYCLE_SEED runs any other there.
		seeds = seeds[:1]
	}
	if s := os.Getenv(lifecycleSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", lifecycleSeedEnv, s, err)
		}
		seeds = []uint64{v}
	}
	if s := os.Getenv(lifecycleStepsEnv); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("%s=%q: want a positive number", lifecycleStepsEnv, s)
		}
		steps = v
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("replay with %s=%d %s=%d", lifecycleSeedEnv, seed, lifecycleStepsEnv, steps)
			runLifecycle(t, seed, steps)
		})
	}
}

// lcPerson is an inmate on the facility's roster, as the model knows them.
type lcPerson struct {
	id, badge, pin string
	released       bool
	away           bool // moved to facility south, which has no terminals; may come back
}

// here says whether the person is on north's roster now.
func (p *lcPerson) here() bool { return !p.released && !p.away }

// lcTerm is one terminal of the model: a data directory that outlives stores and processes.
type lcTerm struct {
	name, mode, inmate string
	dir                string
	tm                 *terminal
	backup             string // the last backup file, "" until one is taken
}

type lcWorld struct {
	t        *testing.T
	rng      *rand.Rand
	rl       *relayEnv
	px       *proxy
	clk      *clock.Fake
	terms    []*lcTerm
	people   []*lcPerson
	deposits kiosk.Cents // every deposit the model made, seed ones included
	nextRef  int
	trail    []string // the steps taken, printed when a check fails
}

func runLifecycle(t *testing.T, seed uint64, steps int) {
	w := &lcWorld{t: t, rng: rand.New(rand.NewPCG(seed, 0x7e7e)), clk: clock.NewFake(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))}
	w.rl = startRelayHold(t, "", relay.HoldAll)
	w.px = startProxy(t, w.rl.addr())
	w.setup()
	if os.Getenv(storeEnv) == storeHeld {
		// The facility, made by the setup, is held from the relay's next start (a relay
		// holds those made since at its next beat, seconds away): every step below runs on
		// its held state, through the facility log.
		w.rl.restart()
		w.px.setBackend(w.rl.addr())
		if n := w.rl.metric("tether_facilities_held"); n != 1 {
			t.Fatalf("the relay holds %v facilities, want the model's one", n)
		}
	}
	t.Cleanup(func() {
		for _, lt := range w.terms {
			lt.close()
		}
	})

	type step struct {
		name   string
		weight int
		run    func()
	}
	menu := []step{
		{"deposit", 4, w.deposit},
		{"session", 10, w.session},
		{"contact", 3, w.contactRequest},
		{"staff", 4, w.staff},
		{"cut", 3, func() { w.px.cutAll() }},
		{"flaky", 2, func() { w.px.setBudget(1500, 30000, w.rng.Uint64()) }},
		{"steady", 2, func() { w.px.setBudget(0, 0, 0) }},
		{"kill", 2, w.kill},
		{"backup", 2, w.backup},
		{"restore", 2, w.restore},
		{"reissue", 1, w.reissue},
		{"reenroll-same-key", 2, func() { w.reenroll(false) }},
		{"reenroll-new-key", 1, func() { w.reenroll(true) }},
		{"wipe", 2, w.wipe},
		{"badge-move", 2, w.badgeMove},
		{"transfer", 2, w.transfer},
		{"come-back", 2, w.comeBack},
		{"policy", 2, w.policy},
		{"settle", 3, w.settle},
	}
	total := 0
	for _, s := range menu {
		total += s.weight
	}
	for i := range steps {
		n := w.rng.IntN(total)
		var s step
		for _, s = range menu {
			if n < s.weight {
				break
			}
			n -= s.weight
		}
		w.note("step %d: %s", i, s.name)
		s.run()
		w.check()
	}
	w.px.setBudget(0, 0, 0)
	w.settle()
	w.check()
	var made kiosk.Cents
	for _, p := range w.people {
		if b, err := w.rl.r.Balance(p.id); err == nil {
			made += b.Deposits
		}
	}
	if made != w.deposits {
		w.fail("the relay holds %s of deposits; the model made %s", made, w.deposits)
	}
	t.Logf("steps taken:\n  %s", strings.Join(w.trail, "\n  "))
}

func (w *lcWorld) note(format string, args ...any) {
	w.trail = append(w.trail, fmt.Sprintf(format, args...))
}

func (w *lcWorld) fail(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("%s\nsteps taken:\n  %s", fmt.Sprintf(format, args...), strings.Join(w.trail, "\n  "))
}

// setup seeds the facility with four inmates (A1 owns the tablet), enrolls the terminals
// through the proxy and waits until each has the roster.
func (w *lcWorld) setup() {
	p := kiosk.DefaultPolicy()
	p.FacilityName = "North"
	p.MaxSession = kiosk.Duration(24 * time.Hour)
	p.Cooldown = 0
	p.OfflineSpendCap = 100000
	p.Curfew = nil
	if err := w.rl.r.PutPolicy("north", p); err != nil {
		w.t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		w.people = append(w.people, &lcPerson{id: fmt.Sprintf("A%d", i), badge: fmt.Sprintf("B%d", i), pin: fmt.Sprintf("%d%d%d%d", i, i, i, i)})
	}
	w.putRoster()
	for _, p := range w.people {
		w.depositTo(p.id, 20000)
	}
	w.terms = []*lcTerm{
		{name: "kiosk-1", mode: wire.ModeKiosk, dir: w.t.TempDir()},
		{name: "kiosk-2", mode: wire.ModeKiosk, dir: w.t.TempDir()},
		{name: "tablet-A1", mode: wire.ModeTablet, inmate: "A1", dir: w.t.TempDir()},
	}
	for _, lt := range w.terms {
		w.open(lt)
		w.enroll(lt)
		lt.tm.start()
	}
	w.settle()
}

// putRoster puts north's roster: everyone here.
func (w *lcWorld) putRoster() {
	w.putRosterOf("north", func(p *lcPerson) bool { return p.here() })
}

// putRosterOf puts facility's roster: the people on says.
func (w *lcWorld) putRosterOf(facility string, on func(*lcPerson) bool) {
	ro := relay.Roster{Inmates: []relay.RosterInmate{}}
	for _, p := range w.people {
		if on(p) {
			ro.Inmates = append(ro.Inmates, relay.RosterInmate{ID: p.id, Name: "Inmate " + p.id, Badges: []string{p.badge},
				PIN: p.pin, Language: "en", Status: kiosk.StatusActive})
		}
	}
	ro.Technicians = []relay.RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, PIN: "9999", Role: "installer"}}
	if err := w.rl.r.PutRoster(facility, ro); err != nil {
		w.fail("put %s's roster: %v", facility, err)
	}
}

func (w *lcWorld) depositTo(inmate string, cents kiosk.Cents) {
	w.nextRef++
	if _, _, err := w.rl.r.Deposit(relay.DepositRequest{InmateID: inmate, Cents: cents, Ref: fmt.Sprintf("dep-%d", w.nextRef)}); err != nil {
		w.fail("deposit: %v", err)
	}
	w.deposits += cents
}

// open opens the terminal's store on the shared fake clock, as kioskd does at start (a session
// cut by a crash is closed and its last minute credited by NewTerminal).
func (w *lcWorld) open(lt *lcTerm) {
	s, err := kiosk.OpenStore(lt.dir, kiosk.StoreOptions{NoSync: true})
	if err != nil {
		w.fail("%s: open store: %v", lt.name, err)
	}
	id := ""
	if en, err := client.LoadEnrollment(lt.dir); err == nil {
		id = en.TerminalID
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: w.clk, PINParams: kiosk.TestPINParams(), ID: id})
	if err != nil {
		w.fail("%s: new terminal: %v", lt.name, err)
	}
	lt.tm = &terminal{t: w.t, dir: lt.dir, store: s, term: term}
}

func (lt *lcTerm) close() {
	if lt.tm != nil {
		lt.tm.close()
		lt.tm = nil
	}
}

// reopen is a restart of the terminal's program: store closed, opened again, sync running.
func (w *lcWorld) reopen(lt *lcTerm) {
	lt.close()
	w.open(lt)
	lt.tm.start()
}

func (w *lcWorld) enroll(lt *lcTerm) {
	en, err := w.rl.r.CreateEnrollment(relay.EnrollmentRequest{FacilityID: "north", Mode: lt.mode, InmateID: lt.inmate})
	if err != nil {
		w.fail("%s: enrollment code: %v", lt.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := client.Enroll(ctx, client.EnrollConfig{DataDir: lt.dir, RelayURL: w.px.url(), Code: en.Code, Terminal: lt.tm.term, Label: lt.name}); err != nil {
		w.fail("%s: enroll: %v", lt.name, err)
	}
}

func (w *lcWorld) pickTerm() *lcTerm { return w.terms[w.rng.IntN(len(w.terms))] }

// pickPerson picks someone the terminal serves: a tablet's own inmate, or anyone on the roster.
func (w *lcWorld) pickPerson(lt *lcTerm) *lcPerson {
	if lt.mode == wire.ModeTablet {
		return w.people[0]
	}
	var on []*lcPerson
	for _, p := range w.people {
		if p.here() {
			on = append(on, p)
		}
	}
	return on[w.rng.IntN(len(on))]
}

// login goes through the real login flow; a refusal (not synced yet, no money...) is a skip.
func (w *lcWorld) login(lt *lcTerm, p *lcPerson) bool {
	term := lt.tm.term
	var pend kiosk.Pending
	var err error
	if lt.mode == wire.ModeTablet {
		if _, err = term.PrecheckBound(); err == nil {
			pend, err = term.EnterBoundPIN(p.pin)
		}
	} else if _, err = term.Badge(p.badge); err == nil {
		pend, err = term.EnterPIN(p.badge, p.pin)
	}
	if err == nil {
		_, err = term.AcceptNotice(pend)
	}
	if err != nil {
		var ke *kiosk.Error
		if !errors.As(err, &ke) || ke.Kind == kiosk.KindIO || ke.Kind == kiosk.KindCorrupt || ke.Kind == kiosk.KindInternal {
			w.fail("%s: login of %s: %v", lt.name, p.id, err)
		}
		w.note("  %s: %s not let in: %v", lt.name, p.id, err)
		return false
	}
	return true
}

// use keeps the person at the screen for d, touching and ticking as the kiosk's loop does.
func (w *lcWorld) use(lt *lcTerm, d time.Duration) {
	for step := 2 * time.Second; d > 0; d -= step {
		w.clk.Advance(min(step, d))
		lt.tm.term.Touch()
		lt.tm.term.Tick()
	}
}

func (w *lcWorld) deposit() {
	var on []*lcPerson
	for _, p := range w.people {
		if !p.released {
			on = append(on, p)
		}
	}
	p := on[w.rng.IntN(len(on))]
	cents := kiosk.Cents(100 + w.rng.IntN(4900))
	w.depositTo(p.id, cents)
	w.note("  %s gets %s", p.id, cents)
}

// session: a billed session of a few minutes; sometimes a letter, sometimes a frozen screen
// (its minute credited), sometimes a power cut mid-session (closed and credited at restart).
func (w *lcWorld) session() {
	lt := w.pickTerm()
	p := w.pickPerson(lt)
	if !w.login(lt, p) {
		return
	}
	w.use(lt, time.Duration(20+w.rng.IntN(150))*time.Second)
	if w.rng.IntN(3) == 0 {
		w.letter(lt, p)
	}
	if w.rng.IntN(5) == 0 {
		w.clk.Advance(15 * time.Second) // longer than the stall threshold: a frozen terminal
		lt.tm.term.Tick()
		w.note("  %s froze during %s's session", lt.name, p.id)
	}
	w.use(lt, time.Duration(w.rng.IntN(90))*time.Second)
	if w.rng.IntN(6) == 0 {
		w.note("  %s loses power during %s's session", lt.name, p.id)
		w.reopen(lt)
		return
	}
	if err := lt.tm.term.Logout(); err != nil {
		var ke *kiosk.Error
		if !errors.As(err, &ke) || ke.Kind != kiosk.KindConflict { // the session may have ended itself
			w.fail("%s: logout: %v", lt.name, err)
		}
	}
	w.note("  %s used %s for a while", p.id, lt.name)
}

// letter sends a letter to an approved contact, or to a department when there is none.
func (w *lcWorld) letter(lt *lcTerm, p *lcPerson) {
	peer := ""
	cs, err := lt.tm.term.Contacts(p.id)
	if err != nil {
		w.fail("%s: contacts: %v", lt.name, err)
	}
	for _, c := range cs {
		if c.State == kiosk.ContactApproved {
			peer = c.ID
		}
	}
	if peer == "" {
		deps := lt.tm.term.Policy().Departments
		if len(deps) == 0 {
			return
		}
		peer = deps[w.rng.IntN(len(deps))].ID
	}
	m, err := lt.tm.term.Send(p.id, peer, "", fmt.Sprintf("letter from %s on %s", p.id, lt.name))
	if err != nil {
		w.note("  %s: letter refused: %v", lt.name, err)
		return
	}
	w.note("  %s wrote %s to %s", p.id, m.ID, peer)
}

func (w *lcWorld) contactRequest() {
	lt := w.pickTerm()
	p := w.pickPerson(lt)
	if !w.login(lt, p) {
		return
	}
	if c, err := lt.tm.term.AddContact(p.id, "Family of "+p.id, fmt.Sprintf("family-%s-%d@example.org", strings.ToLower(p.id), w.rng.IntN(1000))); err != nil {
		w.note("  %s: contact refused: %v", lt.name, err)
	} else {
		w.note("  %s asks for contact %s", p.id, c.ID)
	}
	if err := lt.tm.term.Logout(); err != nil {
		w.fail("%s: logout: %v", lt.name, err)
	}
}

// staff decides what waits on the relay: pending contacts and held letters.
func (w *lcWorld) staff() {
	cs, err := w.rl.r.Contacts(kiosk.ContactPending, "")
	if err != nil {
		w.fail("pending contacts: %v", err)
	}
	for _, c := range cs {
		if w.rng.IntN(4) == 0 {
			_, err = w.rl.r.DeclineContact(c.ID, "unknown person")
		} else {
			if _, err = w.rl.r.ApproveContact(c.ID); err == nil {
				_, err = w.rl.r.AnswerInvitation(spooledCode(w.t, w.rl.spool(), c.ID), relay.AnswerAccept)
			}
		}
		if err != nil {
			w.fail("decide contact %s: %v", c.ID, err)
		}
	}
	held, err := w.rl.r.Outbound(relay.OutboundFilter{Status: kiosk.MsgHeld})
	if err != nil {
		w.fail("held letters: %v", err)
	}
	for _, o := range held {
		if w.rng.IntN(4) == 0 {
			_, err = w.rl.r.RejectOutbound(o.ID, "content_policy")
		} else {
			_, err = w.rl.r.ApproveOutbound(o.ID)
		}
		if err != nil {
			w.fail("review %s: %v", o.ID, err)
		}
	}
	w.note("  staff decided %d contacts and %d letters", len(cs), len(held))
}

// kill hands the terminal's store to a child process that syncs it, and SIGKILLs the child.
func (w *lcWorld) kill() {
	lt := w.pickTerm()
	lt.close()
	child := startChild(w.t, lt.dir)
	// Give the child a moment on the link so the kill lands mid-batch more often than not.
	time.Sleep(time.Duration(w.rng.IntN(150)) * time.Millisecond)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		w.fail("kill child: %v", err)
	}
	child.Wait()
	w.open(lt)
	lt.tm.start()
	w.note("  %s killed while syncing", lt.name)
}

func (w *lcWorld) backup() {
	lt := w.pickTerm()
	path := filepath.Join(w.t.TempDir(), lt.name+".backup")
	f, err := os.Create(path)
	if err != nil {
		w.fail("backup: %v", err)
	}
	if _, err := lt.tm.term.Backup(f, "lifecycle", nil); err != nil {
		w.fail("%s: backup: %v", lt.name, err)
	}
	if err := f.Close(); err != nil {
		w.fail("backup: %v", err)
	}
	lt.backup = path
	w.note("  %s backed up", lt.name)
}

// restore puts the terminal's last backup back in place of its store, as a technician does.
func (w *lcWorld) restore() {
	lt := w.pickTerm()
	if lt.backup == "" {
		w.note("  %s has no backup", lt.name)
		return
	}
	lt.close()
	copyFile(w.t, lt.backup, filepath.Join(lt.dir, kiosk.StoreFile))
	w.open(lt)
	lt.tm.start()
	w.note("  %s restored from its backup", lt.name)
}

// reissue: once everything is forwarded, the technician reissues the terminal and enrolls it
// again with the same key.
func (w *lcWorld) reissue() {
	lt := w.pickTerm()
	w.settle()
	lt.tm.stopSync()
	if _, err := lt.tm.term.Reissue("lifecycle"); err != nil {
		w.fail("%s: reissue: %v", lt.name, err)
	}
	w.enroll(lt)
	lt.tm.start()
	w.note("  %s reissued and enrolled again", lt.name)
}

// reenroll enrolls the terminal again keeping its store, with its key or a new one.
func (w *lcWorld) reenroll(newKey bool) {
	lt := w.pickTerm()
	lt.tm.stopSync()
	if newKey {
		if err := os.Remove(filepath.Join(lt.dir, client.KeyFile)); err != nil {
			w.fail("%s: remove key: %v", lt.name, err)
		}
	}
	w.enroll(lt)
	lt.tm.start()
	w.note("  %s enrolled again (new key: %v)", lt.name, newKey)
}

// wipe replaces a terminal's store with an empty one; the enrollment file and key stay, and the
// sync engine records the enrollment in the new store as it starts.
func (w *lcWorld) wipe() {
	lt := w.pickTerm()
	lt.close()
	if err := os.Remove(filepath.Join(lt.dir, kiosk.StoreFile)); err != nil {
		w.fail("%s: wipe: %v", lt.name, err)
	}
	w.open(lt)
	lt.tm.start()
	w.note("  %s wiped", lt.name)
}

// badgeMove releases an inmate (not the tablet's) and gives their badge to a newcomer, in one
// roster update.
func (w *lcWorld) badgeMove() {
	candidates := w.movable()
	if len(candidates) < 2 {
		return
	}
	old := candidates[w.rng.IntN(len(candidates))]
	old.released = true
	p := &lcPerson{id: fmt.Sprintf("A%d", len(w.people)+1), badge: old.badge, pin: fmt.Sprintf("%04d", 1000+len(w.people))}
	w.people = append(w.people, p)
	w.putRoster()
	w.depositTo(p.id, 5000)
	w.note("  badge %s moves from %s to %s", p.badge, old.id, p.id)
}

// movable is everyone on north's roster but the tablet's inmate: who may leave it.
func (w *lcWorld) movable() []*lcPerson {
	var out []*lcPerson
	for _, p := range w.people[1:] {
		if p.here() {
			out = append(out, p)
		}
	}
	return out
}

// transfer moves someone (not the tablet's inmate) to facility south, which no terminal of the
// model serves: on a relay holding north, north's holder hands their records over first.
// North's terminals stop letting them in; what they were charged goes with them.
func (w *lcWorld) transfer() {
	candidates := w.movable()
	if len(candidates) < 2 {
		return
	}
	p := candidates[w.rng.IntN(len(candidates))]
	p.away = true
	w.putRosterOf("south", func(p *lcPerson) bool { return p.away })
	w.note("  %s moves to south", p.id)
}

// comeBack moves someone from south back to north: north's terminals get their account,
// with what was deposited while they were away.
func (w *lcWorld) comeBack() {
	var away []*lcPerson
	for _, p := range w.people {
		if p.away {
			away = append(away, p)
		}
	}
	if len(away) == 0 {
		return
	}
	p := away[w.rng.IntN(len(away))]
	p.away = false
	w.putRoster()
	w.putRosterOf("south", func(p *lcPerson) bool { return p.away })
	w.note("  %s comes back from south", p.id)
}

func (w *lcWorld) policy() {
	p, err := w.rl.r.Policy("north")
	if err != nil {
		w.fail("policy: %v", err)
	}
	p.RatePerMinute = kiosk.Cents(3 + w.rng.IntN(7))
	if err := w.rl.r.PutPolicy("north", p); err != nil {
		w.fail("put policy: %v", err)
	}
	w.note("  rate now %s a minute", p.RatePerMinute)
}

// check runs the production verifiers of every store and of the relay, after every step. On
// JetStream the relay's reads the stream once, in order (kv.WholeView); read key by key from
// the stream's leader, as a View reads, it made the model about seventeen times as long.
func (w *lcWorld) check() {
	w.t.Helper()
	for _, lt := range w.terms {
		rep, err := lt.tm.term.Verify("lifecycle")
		if err != nil {
			w.fail("%s: verify: %v", lt.name, err)
		}
		if !rep.OK {
			w.fail("%s: verify found: %+v", lt.name, rep.Problems)
		}
	}
	rep, err := w.rl.r.Verify()
	if err != nil {
		w.fail("relay verify: %v", err)
	}
	if !rep.OK {
		w.fail("relay verify found: %+v", rep.Problems)
	}
}

// settle waits until every terminal has forwarded everything and applied all its downlink,
// then reconciles each with the relay.
func (w *lcWorld) settle() {
	w.t.Helper()
	for _, lt := range w.terms {
		if lt.tm.cancel == nil {
			lt.tm.start()
		}
	}
	// Every terminal at once, and twice in a row with the same downlink positions: a terminal
	// that drains its queue last fans records out to the others after they were looked at, so
	// one terminal settled before another drains proves nothing.
	last := ""
	testwait.UntilSaw(w.t, "every terminal to settle", func() (bool, string) {
		var state, detail []string
		settled := true
		for _, lt := range w.terms {
			waiting, _, err := lt.tm.store.QueueStats()
			if err != nil {
				return false, err.Error()
			}
			applied, err := lt.tm.term.DownlinkApplied()
			if err != nil {
				return false, err.Error()
			}
			queued, ok := w.downQueued(lt)
			settled = settled && waiting == 0 && ok && applied >= queued
			state = append(state, fmt.Sprintf("%s: %d waiting, downlink %d of %d", lt.name, waiting, applied, queued))
			detail = append(detail, fmt.Sprintf("%s status %+v", lt.name, lt.tm.eng.Status()))
		}
		now := strings.Join(state, "; ")
		done := settled && now == last
		last = now
		return done, now + "; " + strings.Join(detail, "; ")
	})
	for _, lt := range w.terms {
		mine, err := lt.tm.term.Ledger()
		if err != nil {
			w.fail("%s: ledger: %v", lt.name, err)
		}
		theirs, err := w.rl.r.LedgerFor(lt.tm.eng.Enrollment().TerminalID, mine.LetterIDs())
		if err != nil {
			w.fail("%s: relay ledger: %v", lt.name, err)
		}
		if probs := kiosk.Reconcile(mine, theirs); len(probs) > 0 {
			w.fail("%s disagrees with the relay: %+v", lt.name, probs)
		}
	}
	w.note("  settled and reconciled")
}

// downQueued is the last downlink seq the relay queued for the terminal's current enrollment.
func (w *lcWorld) downQueued(lt *lcTerm) (uint64, bool) {
	id := lt.tm.eng.Enrollment().TerminalID
	ts, err := w.rl.r.Terminals()
	if err != nil {
		return 0, false
	}
	for _, ti := range ts {
		if ti.ID == id {
			return ti.DownQueued, true
		}
	}
	return 0, false
}
