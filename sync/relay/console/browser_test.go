package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/client"
)

// The browser tests drive the console in Debian's headless Chromium (`make deps` installs the
// chromium package). Without it they are skipped, saying so. TETHER_CONSOLE_SHOTS=DIR saves
// the README's screenshots of the review queue and the fleet into DIR.

// chromium finds the browser, or skips the test saying why.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("TETHER_CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("skipped: Chromium is not installed (apt-get install chromium, or `make deps`); the console's browser tests need it")
	return ""
}

// tab is one browser profile (its own cookies) on the console of e.
type tab struct {
	t   *testing.T
	e   *env
	ctx context.Context
}

// newBrowser starts a headless Chromium for the test, with a throwaway profile.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		// Chromium makes its singleton socket under TMPDIR and leaves it when the test stops
		// it; without this every run left a directory in /tmp.
		chromedp.Env("TMPDIR=" + t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	if err := chromedp.Do(browser); err != nil { // starts the browser
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return browser
}

// open makes a tab in a fresh browser context: a staff member at their own desk.
func (e *env) open(t *testing.T, browser context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	return &tab{t: t, e: e, ctx: ctx}
}

func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		b.t.Fatalf("%s: %v (at %s: %.400s)", what, err, loc, body)
	}
}

func (b *tab) text() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// waitText waits until the page shows s.
func (b *tab) waitText(s string) {
	b.t.Helper()
	testwait.UntilSaw(b.t, fmt.Sprintf("%q on the page", s), func() (bool, string) {
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		return err == nil && strings.Contains(got, s), fmt.Sprintf("%.300s %v", got, err)
	})
}

// signIn sends the sign-in form and returns as soon as it is sent.
func (b *tab) signIn(user, pass string) {
	b.t.Helper()
	b.do("sign in as "+user,
		chromedp.Navigate(b.e.url("/console/")),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), pass),
		chromedp.Click(chromedp.CSS("#signin")),
	)
}

// login signs in and waits for the signed-in page by a query of chromedp's own. The click
// returns before the browser has followed the redirect; waiting only for the page's text
// (an evaluation) let a form be filled while chromedp still took the sign-in page's nodes
// for the document's, and CI once saw "No node with given id found" in the deposit form.
func (b *tab) login(user, pass string) {
	b.t.Helper()
	b.signIn(user, pass)
	b.do("wait for the signed-in page", chromedp.WaitVisible(chromedp.CSS("form.logout")))
}

func (b *tab) shot(name string) {
	b.t.Helper()
	dir := os.Getenv("TETHER_CONSOLE_SHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100 gives a PNG, less a JPEG
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func TestBrowserLoginAndWrongPassword(t *testing.T) {
	browser := newBrowser(t)
	e := newEnv(t, false)
	b := e.open(t, browser)
	b.signIn("mia", "not the password")
	b.waitText("Wrong username or password")
	b.login("mia", password)
	b.waitText("Nothing is waiting for review")
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); !strings.HasSuffix(loc, "/console/review") {
		t.Errorf("after signing in the browser is at %s, want the review queue", loc)
	}
	// The session cookie is out of the page's reach (HttpOnly).
	if c, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.cookie`)); strings.Contains(c, "tether_console=") {
		t.Errorf("the page's script can read the session cookie: %q", c)
	}
}

func TestBrowserCSRFRefusal(t *testing.T) {
	browser := newBrowser(t)
	e := newEnv(t, false)
	b := e.open(t, browser)
	b.login("bob", password)
	b.waitText("Record a deposit")
	// A forged form is one without the page's token: take it out and send the form.
	b.do("send the deposit form without its token",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#deposit-form input[name=csrf]').remove()`),
		chromedp.SendKeys(chromedp.CSS(`#deposit-form input[name=amount]`), "25.00"),
		chromedp.Click(chromedp.CSS(`#deposit-form button`)),
	)
	b.waitText("missing its security token")
	if bal, _ := e.r.Balance("A1"); bal.BalanceCents != 5000 {
		t.Errorf("the refused form moved money: %s", bal.BalanceCents)
	}
}

func TestBrowserEachRoleSeesOnlyItsScreens(t *testing.T) {
	browser := newBrowser(t)
	e := newEnv(t, false)
	want := map[string][]string{}
	for path, role := range screens {
		want[role] = append(want[role], strings.TrimPrefix(path, "/console/"))
	}
	for user, roles := range staff {
		b := e.open(t, browser)
		b.login(user, password)
		b.waitText("Sign out")
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll('nav a')).map(a => a.dataset.screen)`))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		exp := want[roles[0]]
		sort.Strings(exp)
		if !slices.Equal(got, exp) {
			t.Errorf("%s (%s) sees %v, want %v", user, roles[0], got, exp)
		}
		// Typing another role's address gets the refusal, not the page.
		for path, role := range screens {
			if role == roles[0] {
				continue
			}
			b.do("open "+path, chromedp.Navigate(e.url(path)))
			if txt := b.text(); !strings.Contains(txt, "does not have the "+role+" role") {
				t.Errorf("%s opening %s sees %.200q", user, path, txt)
			}
		}
	}
}

func TestBrowserReviewChangesTheKiosk(t *testing.T) {
	browser := newBrowser(t)
	e := newEnv(t, false)
	tm := e.kiosk("")
	approveID := e.heldLetter(tm, "Dear Medical, my knee hurts since Monday.\nPlease see me.")
	rejectID := e.heldLetter(tm, "Tell Bo in cell 4 about the plan.")
	b := e.open(t, browser)
	b.login("mia", password)
	b.waitText("my knee hurts since Monday")
	b.shot("console-review.png")
	b.do("approve the first letter", chromedp.Click(chromedp.CSS("#letter-"+approveID+" button.approve")))
	b.waitText("Approved the letter")
	b.do("reject the second letter with a note",
		chromedp.SendKeys(chromedp.CSS("#letter-"+rejectID+" input[name=note]"), "names another inmate"),
		chromedp.Click(chromedp.CSS("#letter-"+rejectID+" button.reject")),
	)
	b.waitText("Rejected the letter")
	testwait.UntilSaw(t, "the kiosk's Sent box to show both decisions", func() (bool, string) {
		s1, _ := tm.sentState(approveID)
		s2, r2 := tm.sentState(rejectID)
		return s1 == kiosk.MsgDelivered && s2 == kiosk.MsgRejected && r2 == "content_policy: names another inmate", s1 + " / " + s2 + " " + r2
	})
	if !strings.Contains(b.text(), "Nothing is waiting for review") {
		t.Errorf("the queue is not empty after both decisions")
	}
}

func TestBrowserDepositReachesTheKiosk(t *testing.T) {
	browser := newBrowser(t)
	e := newEnv(t, false)
	tm := e.kiosk("")
	b := e.open(t, browser)
	b.login("bob", password)
	b.waitText("Record a deposit")
	b.do("record a deposit for A1",
		chromedp.SetValue(chromedp.CSS(`#deposit-form select[name=inmate]`), "A1"),
		chromedp.SendKeys(chromedp.CSS(`#deposit-form input[name=amount]`), "12.34"),
		chromedp.Click(chromedp.CSS(`#deposit-form button`)),
	)
	b.waitText("Deposited $12.34 for A1")
	testwait.UntilSaw(t, "the deposit in the kiosk's balance", func() (bool, string) {
		bal, err := tm.term.Balance("A1")
		return err == nil && bal == 5000+1234, fmt.Sprint(bal, err)
	})
	if txt := b.text(); !strings.Contains(txt, "Balance $62.34") {
		t.Errorf("the ledger does not show the new balance: %.400s", txt)
	}
}

func TestBrowserEnrollmentCodeEnrollsAKiosk(t *testing.T) {
	browser := newBrowser(t)
	e := newEnv(t, false)
	old := e.kiosk("") // a terminal already in the fleet
	b := e.open(t, browser)
	b.login("tess", password)
	b.waitText("New enrollment code")
	b.do("create a kiosk enrollment code", chromedp.Click(chromedp.CSS(`#enroll-form button`)))
	b.waitText("Enrollment code for a kiosk of north")
	// Read in one evaluation: chromedp.Text looks the node up and then reads it, and CI once
	// saw the node gone in between ("No node with given id found").
	code, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('#enroll-code').innerText`))
	if err != nil {
		t.Fatal(err)
	}
	qrWidth, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelector('#enroll-qr').naturalWidth`))
	if err != nil || qrWidth < 100 {
		t.Errorf("the QR code did not load as an image: width %d, %v", qrWidth, err)
	}
	// The function `kioskctl enroll` calls, with the code as the technician read it.
	tm := e.kiosk(strings.TrimSpace(code))
	testwait.Until(t, "the new kiosk to report in", func() bool {
		ts, _ := e.r.Terminals()
		for _, x := range ts {
			if x.ID == tm.en.TerminalID && !x.LastSeen.IsZero() {
				return true
			}
		}
		return false
	})
	b.do("open the fleet", chromedp.Navigate(e.url("/console/terminals")))
	b.waitText(tm.en.TerminalID)
	if !strings.Contains(b.text(), old.en.TerminalID) {
		t.Errorf("the fleet does not list the first kiosk")
	}
	b.shot("console-terminals.png")
	// The code worked once: a second terminal cannot spend it again.
	dir := t.TempDir()
	st, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: st, Clock: clock.NewReal(), PINParams: kiosk.TestPINParams()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := client.Enroll(ctx, client.EnrollConfig{DataDir: dir, RelayURL: e.srv.URL, Code: code, Terminal: term}); err == nil {
		t.Errorf("the enrollment code from the console enrolled a second terminal")
	}
}

func TestBrowserRefundReachesTheKiosk(t *testing.T) {
	browser := newBrowser(t)
	e := newEnv(t, false)
	tm := e.kiosk("")
	b := e.open(t, browser)
	b.login("bob", password)
	b.waitText("Record a deposit")
	b.do("open A1's ledger",
		chromedp.Navigate(e.url("/console/money?inmate=A1")),
		chromedp.WaitVisible(chromedp.CSS(`#refund-form`)),
		chromedp.SetValue(chromedp.CSS(`#refund-form select[name=deposit]`), "seed-A1"),
		chromedp.SendKeys(chromedp.CSS(`#refund-form input[name=amount]`), "7.50"),
		chromedp.SendKeys(chromedp.CSS(`#refund-form input[name=reason]`), "Released"),
		chromedp.Click(chromedp.CSS(`#refund-form button`)),
	)
	b.waitText("Refunded $7.50 to A1 from deposit seed-A1")
	testwait.UntilSaw(t, "the refund in the kiosk's balance", func() (bool, string) {
		bal, err := tm.term.Balance("A1")
		return err == nil && bal == 5000-750, fmt.Sprint(bal, err)
	})
	if txt := b.text(); !strings.Contains(txt, "Balance $42.50") || !strings.Contains(txt, "-$7.50") {
		t.Errorf("the ledger does not show the refund: %.600s", txt)
	}
	// More than is left of the deposit: the page says so, nothing moves.
	b.do("refund too much",
		chromedp.SendKeys(chromedp.CSS(`#refund-form input[name=amount]`), "45.00"),
		chromedp.Click(chromedp.CSS(`#refund-form button`)),
	)
	b.waitText("refund refused, nothing given back: $45.00 is more than is left of deposit")
	if bal, _ := e.r.Balance("A1"); bal.BalanceCents != 4250 {
		t.Errorf("a refused refund moved money: %s", bal.BalanceCents)
	}
}
