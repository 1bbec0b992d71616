// Command kioskctl provisions, inspects and looks after a Tether terminal.
package main

import (
	// First, before Fyne reads the locale: quiet under C.UTF-8, a service's default.
	_ "github.com/tether-kiosk/tether/internal/plainlocale"

	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tether-kiosk/tether/internal/version"
	"github.com/tether-kiosk/tether/kiosk/boltfile"
)

const usage = `usage: kioskctl COMMAND [flags]

commands:
  roster import FILE   load inmates and technicians from a JSON file
  hash-pin             read a PIN on standard input and print its argon2id hash
  test badge|pinpad    show decoded events from a serial device live
  enroll               enroll this terminal with a relay's one-time code
  status               terminal, relay link, queue, devices, store, session
  config show|set|check  the terminal's configuration
  backup FILE          a consistent copy of the store, also while kioskd runs
  verify               check the store's pages and rules
  compact              rewrite the store smaller (kioskd stopped)
  reissue              wipe the last inmate's records before handing a tablet on
  version              the version of this build

exit status: 0 done, 1 failed, 3 the store is damaged (left untouched: restore a backup
into its place with kioskd stopped, or move it aside and enroll the terminal again)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kioskctl:", err)
		os.Exit(exitStatus(err))
	}
}

// exitStatus is 3 for a damaged store, so scripts (and a technician) can tell it from other
// failures, and 1 otherwise.
func exitStatus(err error) int {
	if errors.Is(err, boltfile.ErrDamaged) {
		return 3
	}
	return 1
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "kioskctl", version.String())
		return nil
	case "roster":
		return runRoster(ctx, args[1:], stdin, stdout, stderr)
	case "hash-pin":
		return runHashPIN(ctx, args[1:], stdin, stdout, stderr)
	case "test":
		return runTestDevice(ctx, args[1:], stdout, stderr)
	case "enroll":
		return runEnroll(ctx, args[1:], stdin, stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "config":
		return runConfig(ctx, args[1:], stdout, stderr)
	case "backup":
		return runBackup(ctx, args[1:], stdout, stderr)
	case "verify":
		return runVerify(ctx, args[1:], stdout, stderr)
	case "compact":
		return runCompact(ctx, args[1:], stdout, stderr)
	case "reissue":
		return runReissue(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (see kioskctl help)", args[0])
}
