package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/kiosk"
)

const enrollUsage = `usage: kioskctl enroll --relay URL --code CODE|- [--ca FILE | --pin-sha256 FP] [--data DIR] [--json]

Enrolls this terminal with a one-time code from the relay and reports its terminal id,
facility, mode and, for a tablet, the inmate it is bound to. With --code - the code is read
from standard input, so it stays out of the process list and the shell history.
`

func runEnroll(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, cf := newFlags("enroll", enrollUsage, stderr)
	var r control.EnrollRequest
	fs.StringVar(&r.RelayURL, "relay", "", "relay base URL, e.g. wss://relay.example:8443")
	fs.StringVar(&r.Code, "code", "", "one-time enrollment code, or - to read it from standard input")
	fs.StringVar(&r.CAFile, "ca", "", "PEM file of CAs to trust instead of the system roots")
	fs.StringVar(&r.PinSHA256, "pin-sha256", "", "SHA-256 of the relay's leaf certificate (hex)")
	fs.BoolVar(&r.Insecure, "insecure", false, "allow plain ws:// to a relay off loopback")
	fs.StringVar(&r.Label, "label", "", "name shown to the technicians on the relay")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if r.Code == "-" {
		line, err := bufio.NewReader(io.LimitReader(stdin, 256)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("enroll: read the code from standard input: %w", err)
		}
		r.Code = strings.TrimSpace(line)
	}
	if r.RelayURL == "" || r.Code == "" {
		fs.Usage()
		return errors.New("enroll: --relay and --code are required")
	}
	c, err := dial(cf.data)
	if err != nil {
		return err
	}
	var res control.EnrollResult
	if c != nil {
		defer c.Close()
		res, err = c.Enroll(ctx, r)
	} else {
		err = withTerminal(cf.data, func(t *kiosk.Terminal) error {
			res, _, err = control.Enroll(ctx, cf.data, t, actorName(), "tether kioskctl "+control.Version, r)
			return err
		})
	}
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "enrolled as terminal %s of facility %s (%s)", res.TerminalID, res.Facility, res.Mode)
	if res.InmateID != "" {
		fmt.Fprintf(stdout, ", bound to inmate %s", res.InmateID)
	}
	fmt.Fprintf(stdout, "\nrelay %s\n", res.RelayURL)
	return nil
}
