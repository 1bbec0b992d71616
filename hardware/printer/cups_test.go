package printer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// These tests print through a real CUPS scheduler: a private cupsd with its own configuration
// and spool under a temporary directory, listening on 127.0.0.1 only. Its queues are raw (the
// PDF goes through unchanged) and point at printers the test runs itself: an AppSocket
// (JetDirect) printer that keeps what it is sent, through CUPS's own socket backend, and an
// LPD printer that refuses every job, through CUPS's lpd backend, on a queue whose error
// policy aborts the job. Neither cups-pdf nor ippeveprinter serves here: cups-pdf writes
// where /etc/cups/cups-pdf.conf says and must run as root; ippeveprinter will not start
// without a DNS-SD daemon.

// cupsLab is a private cupsd and its two printers.
type cupsLab struct {
	server  string        // cupsd's host:port
	printed chan []byte   // each job the AppSocket printer received
	cmd     *exec.Cmd     // cupsd
	dir     string        // its configuration, spool and logs
	refused chan struct{} // each job the LPD printer refused
}

// startCUPS starts a private cupsd with the queues "good" and "broken", or skips the test
// saying exactly what is missing.
func startCUPS(t *testing.T) *cupsLab {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the CUPS tests start a print scheduler")
	}
	cupsd := lookBin("cupsd")
	lpadmin := lookBin("lpadmin")
	if cupsd == "" || lpadmin == "" {
		t.Skip("CUPS is not installed (no cupsd or lpadmin; Debian's cups, installed by 'make deps')")
	}
	for _, be := range []string{"socket", "lpd"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cups/backend", be)); err != nil {
			t.Skipf("CUPS's %s backend is missing: %v", be, err)
		}
	}
	// Not t.TempDir: cupsd runs the backends as user lp when it runs as root, and they must
	// reach the spool.
	dir, err := os.MkdirTemp("", "tether-cups-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"conf", "spool", "cache", "state", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	lab := &cupsLab{server: fmt.Sprintf("127.0.0.1:%d", port), printed: make(chan []byte, 8), refused: make(chan struct{}, 8), dir: dir}
	conf := fmt.Sprintf(`Listen 127.0.0.1:%d
LogLevel info
WebInterface No
Browsing No
DefaultAuthType None
<Location />
  Order allow,deny
  Allow from 127.0.0.1
</Location>
<Location /admin>
  Order allow,deny
  Allow from 127.0.0.1
</Location>
`, port)
	files := strings.NewReplacer("$D", dir).Replace(`ServerRoot $D/conf
RequestRoot $D/spool
CacheDir $D/cache
StateDir $D/state
TempDir $D/spool
ErrorLog $D/log/error_log
AccessLog $D/log/access_log
PageLog $D/log/page_log
ServerBin /usr/lib/cups
DataDir /usr/share/cups
`)
	if os.Geteuid() != 0 {
		u := os.Getenv("USER")
		if u == "" {
			u = fmt.Sprint(os.Geteuid())
		}
		files += "User " + u + "\n"
	}
	for name, text := range map[string]string{"cupsd.conf": conf, "cups-files.conf": files} {
		if err := os.WriteFile(filepath.Join(dir, "conf", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lab.cmd = exec.Command(cupsd, "-f", "-c", filepath.Join(dir, "conf", "cupsd.conf"), "-s", filepath.Join(dir, "conf", "cups-files.conf"))
	var out strings.Builder
	lab.cmd.Stdout, lab.cmd.Stderr = &out, &out
	if err := lab.cmd.Start(); err != nil {
		t.Skipf("cupsd cannot start here: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- lab.cmd.Wait() }()
	t.Cleanup(func() {
		_ = lab.cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "log", "error_log"))
			t.Logf("cupsd's error log:\n%s", log)
		}
	})
	// cupsd is another process: wait for it to listen, or for it to give up.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", lab.server, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "log", "error_log"))
			t.Skipf("cupsd cannot run here: it exited (%v): %s %s", err, out.String(), log)
		case <-time.After(50 * time.Millisecond):
		}
		if i == 200 {
			t.Fatalf("cupsd did not listen on %s within 10s: %s", lab.server, out.String())
		}
	}
	good := lab.appSocketPrinter(t)
	broken := lab.refusingLPDPrinter(t)
	lab.lpadmin(t, lpadmin, "-p", "good", "-E", "-v", "socket://"+good)
	lab.lpadmin(t, lpadmin, "-p", "broken", "-E", "-v", "lpd://"+broken+"/queue", "-o", "printer-error-policy=abort-job")
	return lab
}

func (lab *cupsLab) lpadmin(t *testing.T, bin string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"-h", lab.server}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("lpadmin %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// appSocketPrinter keeps every job it is sent (a job is one connection) and returns its address.
func (lab *cupsLab) appSocketPrinter(t *testing.T) string {
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			data, _ := io.ReadAll(io.LimitReader(c, 16<<20))
			c.Close()
			lab.printed <- data
		}
	}()
	return ln.Addr().String()
}

// refusingLPDPrinter answers every LPD "receive job" with a refusal (RFC 1179: a non-zero byte).
func (lab *cupsLab) refusingLPDPrinter(t *testing.T) string {
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = bufio.NewReader(c).ReadString('\n')
			_, _ = c.Write([]byte{1})
			c.Close()
			select {
			case lab.refused <- struct{}{}:
			default:
			}
		}
	}()
	return ln.Addr().String()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func freePort(t *testing.T) int {
	ln := listen(t)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func lookBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// kioskRig is a real terminal store with one inmate, A1, logged in with $1.00.
type kioskRig struct {
	dir   string
	store *kiosk.Store
	term  *kiosk.Terminal
}

func newKiosk(t *testing.T, dir string) *kioskRig {
	t.Helper()
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewReal(), PINParams: kiosk.TestPINParams(), ID: "kiosk-north-3"})
	if err != nil {
		t.Fatal(err)
	}
	return &kioskRig{dir: dir, store: s, term: term}
}

func newKioskWithInmate(t *testing.T) *kioskRig {
	t.Helper()
	k := newKiosk(t, t.TempDir())
	t.Cleanup(func() { k.store.Close() })
	p := kiosk.DefaultPolicy()
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, 25 // sessions unbilled: only pages cost
	p.PrintPagePrice, p.MaxPrintPages = 15, 5
	if err := k.term.SetPolicy(p, "test"); err != nil {
		t.Fatal(err)
	}
	h, err := kiosk.HashPINWith("1234", kiosk.TestPINParams())
	if err != nil {
		t.Fatal(err)
	}
	in := kiosk.Inmate{ID: "A1", Name: "Ana Pérez", Badges: []string{"B-A1"}, PINHash: h, Language: "en", Status: kiosk.StatusActive, Messaging: true}
	if err := k.term.UpsertInmate(in, "test"); err != nil {
		t.Fatal(err)
	}
	if err := k.term.Deposit("A1", 100, "d1"); err != nil {
		t.Fatal(err)
	}
	pend, err := k.term.EnterPIN("B-A1", "1234")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.term.AcceptNotice(pend); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *kioskRig) service(lab *cupsLab, queue string) *Service {
	return &Service{Term: k.term, Printer: &Printer{Server: lab.server, Queue: queue, User: "kiosk-north-3"},
		Terminal: "kiosk-north-3", Clock: clock.NewReal(), Every: 100 * time.Millisecond}
}

func (k *kioskRig) balance(t *testing.T) kiosk.Cents {
	t.Helper()
	b, err := k.term.Balance("A1")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (k *kioskRig) queuedCharges(t *testing.T) []kiosk.Item {
	t.Helper()
	items, err := k.store.Pending(0, 1000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var out []kiosk.Item
	for _, it := range items {
		if it.Kind == kiosk.ItemCharge || it.Kind == kiosk.ItemCredit {
			out = append(out, it)
		}
	}
	return out
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// A two-page letter printed through CUPS comes out of the printer as a two-page PDF with the
// watermark on each page, and costs two pages once the printer reports it completed.
func TestCUPSPrintsAWatermarkedLetterAndChargesIt(t *testing.T) {
	lab := startCUPS(t)
	k := newKioskWithInmate(t)
	svc := k.service(lab, "good")

	pages, price, err := svc.Quote(twoPageLetter())
	if err != nil || pages != 2 || price != 30 {
		t.Fatalf("quote: %d pages, %s, %v; want 2 pages for 30¢", pages, price, err)
	}
	job, err := svc.Print(ctxFor(t), "A1", "Ana Pérez (A1)", twoPageLetter())
	if err != nil {
		t.Fatal(err)
	}
	if job.State != kiosk.PrintCharged || job.Pages != 2 || job.Cents != 30 {
		t.Fatalf("job %+v, want charged 2 pages for 30¢", job)
	}
	var pdf []byte
	select {
	case pdf = <-lab.printed:
	case <-time.After(10 * time.Second): // the printer's goroutine hands over what it read
		t.Fatal("CUPS reported the job completed but the printer received nothing")
	}
	if !strings.HasPrefix(string(pdf), "%PDF-") {
		t.Fatalf("the printer received %d bytes that are not a PDF", len(pdf))
	}
	// The watermark's time is the kiosk's clock's when it printed: any time, to the minute.
	assertWatermarked(t, pdf, 2, Watermark{Person: "Ana Pérez (A1)", Terminal: "kiosk-north-3"})
	if b := k.balance(t); b != 70 {
		t.Fatalf("balance after printing 2 pages = %s, want 70¢", b)
	}
	if got := k.queuedCharges(t); len(got) != 1 {
		t.Fatalf("queued %d money items for the relay, want the one print charge", len(got))
	}
}

// A job the printer refuses is aborted by CUPS and costs nothing: the balance the inmate sees
// is what it was, and the relay hears nothing of it.
func TestCUPSFailedJobIsReleased(t *testing.T) {
	lab := startCUPS(t)
	k := newKioskWithInmate(t)
	job, err := k.service(lab, "broken").Print(ctxFor(t), "A1", "Ana Pérez (A1)", twoPageLetter())
	if err != nil {
		t.Fatal(err)
	}
	if job.State != kiosk.PrintReleased || job.Reason != "printer: aborted" {
		t.Fatalf("job %+v, want released after the printer aborted it", job)
	}
	select {
	case <-lab.refused:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never reached the refusing printer")
	}
	if b := k.balance(t); b != 100 {
		t.Fatalf("balance after a failed job = %s, want 100¢ unchanged", b)
	}
	if got := k.queuedCharges(t); len(got) != 0 {
		t.Fatalf("a failed job queued %d money items for the relay", len(got))
	}
	// A queue that does not exist: a clear error naming it, and nothing held.
	job, err = k.service(lab, "nosuchqueue").Print(ctxFor(t), "A1", "Ana Pérez (A1)", Document{Body: "x"})
	if !errors.Is(err, ErrNoSuchQueue) || !strings.Contains(err.Error(), "nosuchqueue") || job.State != kiosk.PrintReleased {
		t.Fatalf("printing to a missing queue: %+v, %v", job, err)
	}
	t.Logf("a missing queue: %v", err)
	if b := k.balance(t); b != 100 {
		t.Fatalf("balance after printing to a missing queue = %s", b)
	}
}

// A kiosk that stopped while the printer worked settles the job when it starts again, by
// asking CUPS: a completed job is charged once.
func TestCUPSSettlesAJobAfterARestart(t *testing.T) {
	lab := startCUPS(t)
	k := newKioskWithInmate(t)
	pdf, pages, err := Render(twoPageLetter(), Watermark{Person: "Ana Pérez (A1)", Terminal: "kiosk-north-3", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	job, err := k.term.HoldPrint("A1", pages)
	if err != nil {
		t.Fatal(err)
	}
	pr := &Printer{Server: lab.server, Queue: "good"}
	id, err := pr.Submit(ctxFor(t), "tether-"+job.ID, pdf)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.term.PrintSubmitted(job.ID, id); err != nil {
		t.Fatal(err)
	}
	// The kiosk stops here; the printer finishes meanwhile.
	if err := k.store.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := pr.Follow(ctxFor(t), clock.NewReal(), id, 100*time.Millisecond); err != nil || st.State != JobCompleted {
		t.Fatalf("CUPS job %d: %+v, %v", id, st, err)
	}
	k = newKiosk(t, k.dir)
	t.Cleanup(func() { k.store.Close() })
	if printing, err := k.service(lab, "good").SettleHeld(ctxFor(t)); err != nil || printing != 0 {
		t.Fatalf("settle after restart: %d still printing, %v", printing, err)
	}
	got, err := k.term.PrintJobByID(job.ID)
	if err != nil || got.State != kiosk.PrintCharged {
		t.Fatalf("job after restart: %+v, %v", got, err)
	}
	if b := k.balance(t); b != 70 {
		t.Fatalf("balance = %s, want 70¢", b)
	}
	// Asking again charges nothing more.
	if _, err := k.service(lab, "good").SettleHeld(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if got := k.queuedCharges(t); len(got) != 1 {
		t.Fatalf("queued %d money items, want one charge", len(got))
	}
}
