// Package cupstest starts a real CUPS scheduler for tests: a private cupsd with its own
// configuration, spool and logs in a temporary directory, listening on 127.0.0.1 only, with
// raw queues (the PDF goes through unchanged) to printers the test runs itself. It is for
// tests only; no production package imports it.
//
// The queues: "good" prints to an AppSocket (JetDirect) printer that keeps each job it is
// sent, through CUPS's own socket backend; "broken" prints to an LPD printer that refuses
// every job, through CUPS's lpd backend, on a queue whose error policy aborts the job. Neither
// cups-pdf nor ippeveprinter serves here: cups-pdf writes where /etc/cups/cups-pdf.conf says
// and must run as root; ippeveprinter will not start without a DNS-SD daemon.
package cupstest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
)

// Lab is a private cupsd and its two printers.
type Lab struct {
	// Server is cupsd's host:port.
	Server string
	// Printed receives each job the AppSocket printer of queue "good" was sent.
	Printed chan []byte
	// Refused receives a value for each job the LPD printer of queue "broken" refused.
	Refused chan struct{}
}

// Start starts a private cupsd with the queues "good" and "broken", stopped when the test
// ends, or skips the test saying exactly what is missing.
func Start(t testing.TB) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the CUPS tests start a print scheduler")
	}
	cupsd, lpadmin := lookBin("cupsd"), lookBin("lpadmin")
	if cupsd == "" || lpadmin == "" {
		t.Skip("CUPS is not installed (no cupsd or lpadmin; Debian's cups, installed by 'make deps')")
	}
	for _, be := range []string{"socket", "lpd"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cups/backend", be)); err != nil {
			t.Skipf("CUPS's %s backend is missing: %v", be, err)
		}
	}
	// Not t.TempDir (0700): cupsd running as root runs the backends as user lp, and they must
	// reach the spool.
	dir, err := os.MkdirTemp("", "tether-cups-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"conf", "spool", "cache", "state", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	lab := &Lab{Server: fmt.Sprintf("127.0.0.1:%d", port), Printed: make(chan []byte, 16), Refused: make(chan struct{}, 16)}
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
		// A normal user's cupsd runs its backends as that user.
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
	cmd := exec.Command(cupsd, "-f", "-c", filepath.Join(dir, "conf", "cupsd.conf"), "-s", filepath.Join(dir, "conf", "cups-files.conf"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Skipf("cupsd cannot start here: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "log", "error_log"))
		return string(b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our own child, by its pid
		<-exited
		if t.Failed() {
			t.Logf("cupsd's error log:\n%s", errorLog())
		}
	})
	// cupsd is another process: wait until it listens, or until it gives up.
	dead := false
	testwait.Until(t, "cupsd to listen on "+lab.Server, func() bool {
		select {
		case <-exited:
			dead = true
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", lab.Server, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if dead {
		t.Skipf("cupsd cannot run here: it exited (%v): %s %s", waitErr, out.String(), errorLog())
	}
	good, broken := lab.appSocketPrinter(t), lab.refusingLPDPrinter(t)
	lab.lpadmin(t, lpadmin, "-p", "good", "-E", "-v", "socket://"+good)
	lab.lpadmin(t, lpadmin, "-p", "broken", "-E", "-v", "lpd://"+broken+"/queue", "-o", "printer-error-policy=abort-job")
	return lab
}

func (lab *Lab) lpadmin(t testing.TB, bin string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"-h", lab.Server}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("lpadmin %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// appSocketPrinter keeps every job it is sent (one job a connection) and returns its address.
func (lab *Lab) appSocketPrinter(t testing.TB) string {
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			data, _ := io.ReadAll(io.LimitReader(c, 16<<20))
			c.Close()
			select {
			case lab.Printed <- data:
			default: // a test that does not read them: drop
			}
		}
	}()
	return ln.Addr().String()
}

// refusingLPDPrinter answers every LPD "receive job" with a refusal (RFC 1179: a non-zero byte).
func (lab *Lab) refusingLPDPrinter(t testing.TB) string {
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
			case lab.Refused <- struct{}{}:
			default:
			}
		}
	}()
	return ln.Addr().String()
}

// NextPrinted returns the next job the good printer received, or fails the test if none comes
// (the printer's goroutine hands over what it read just after CUPS reports the job done).
func (lab *Lab) NextPrinted(t testing.TB) []byte {
	t.Helper()
	select {
	case b := <-lab.Printed:
		return b
	case <-time.After(testwait.Limit):
		t.Fatal("the printer received no job")
		return nil
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func lookBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// PDFText extracts each page's text of pdf with poppler's pdftotext, or skips the test saying
// why it cannot.
func PDFText(t testing.TB, pdf []byte) []string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Skip("pdftotext (Debian's poppler-utils, installed by 'make deps') is not installed: cannot read the PDF back")
	}
	path := filepath.Join(t.TempDir(), "out.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-enc", "UTF-8", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	pages := strings.Split(string(out), "\f")
	if len(pages) > 0 && strings.TrimSpace(pages[len(pages)-1]) == "" {
		pages = pages[:len(pages)-1]
	}
	return pages
}
