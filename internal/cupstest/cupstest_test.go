package cupstest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/testwait"
)

// The lab's two queues do what the print tests rely on: "good" hands the printer exactly the
// bytes submitted (a raw queue), and "broken" reaches a printer that refuses the job.
func TestLabQueues(t *testing.T) {
	lab := Start(t)
	lp := lookBin("lp")
	if lp == "" {
		t.Skip("CUPS's lp client is not installed (Debian's cups-client, installed by 'make deps')")
	}
	job := []byte("%PDF-1.4\n% a raw queue passes these bytes through unchanged\n%%EOF\n")
	path := filepath.Join(t.TempDir(), "job.pdf")
	if err := os.WriteFile(path, job, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, queue := range []string{"good", "broken"} {
		if out, err := exec.Command(lp, "-h", lab.Server, "-d", queue, "-o", "raw", path).CombinedOutput(); err != nil {
			t.Fatalf("lp -d %s: %v: %s", queue, err, out)
		}
	}
	if got := lab.NextPrinted(t); !bytes.Equal(got, job) {
		t.Errorf("the good printer received %q, want the submitted bytes %q", got, job)
	}
	select {
	case <-lab.Refused:
	case <-time.After(testwait.Limit):
		t.Fatal("the broken queue's printer was never sent the job")
	}
}
