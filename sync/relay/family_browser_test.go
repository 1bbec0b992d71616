package relay

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tether-kiosk/tether/kiosk"
)

// TestFamilyPageInABrowser: a contact answers in a real browser (headless Chromium): types the
// code, sees who invites, presses Accept; the page thanks them and the kiosk learns it. Skipped
// where no Chromium is installed (apt-get install chromium).
func TestFamilyPageInABrowser(t *testing.T) {
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no Chromium on this machine (chromium, chromium-browser or google-chrome on PATH): the browser test needs one")
	}
	if testing.Short() {
		t.Skip("starts a browser: not in -short")
	}
	e := newEnv(t)
	_, c := e.approvedContact()
	code := spooledCode(t, e.spool, "c1")

	// Chromium's singleton socket goes under TMPDIR and outlives a browser the test stops.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless,
		chromedp.UserDataDir(t.TempDir()), chromedp.Env("TMPDIR="+t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The first call starts the browser and must not carry a timeout (it would bound the
	// browser's life); the steps after it do.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/family/"),
		chromedp.WaitVisible(chromedp.CSS(`#code`)),
		chromedp.SendKeys(chromedp.CSS(`#code`), strings.ToLower(code)),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[value=accept]`)),
	)
	if err != nil {
		t.Fatalf("browser: enter the code: %v", err)
	}
	invites, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`body p`)))
	if err != nil {
		t.Fatalf("browser: read the invitation: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value=accept]`)), chromedp.WaitVisible(chromedp.CSS(`.ok`))); err != nil {
		t.Fatalf("browser: accept: %v", err)
	}
	done, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.ok`)))
	if err != nil {
		t.Fatalf("browser: read the answer: %v", err)
	}
	if !strings.Contains(invites, "Ana at facility north invites Mom") || !strings.Contains(done, "You accepted") {
		t.Fatalf("the page said %q, then %q", invites, done)
	}
	if got := downContact(t, c, "c1", kiosk.InviteAccepted); !kiosk.ContactMayWrite(got) {
		t.Fatalf("the kiosk sees %+v", got)
	}
}
