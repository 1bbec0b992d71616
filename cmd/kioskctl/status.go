package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tether-kiosk/tether/cmd/internal/control"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/status"
)

const statusUsage = `usage: kioskctl status [--data DIR] [--config FILE] [--json]

Terminal, relay link, forwarding queue, devices, store and the session in progress. Asks the
running kioskd; with none running, opens the store (link "kioskd not running", devices "unknown").
`

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newFlags("status", statusUsage, stderr)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	st, err := getStatus(ctx, cf)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, st)
	}
	return printStatus(stdout, st, time.Now())
}

// getStatus asks kioskd, or computes the same answer from the store.
func getStatus(ctx context.Context, cf *ctlFlags) (control.Status, error) {
	c, err := dial(cf.data)
	if err != nil {
		return control.Status{}, err
	}
	if c != nil {
		defer c.Close()
		return c.Status(ctx)
	}
	cfg, err := loadConfig(cf.config)
	if err != nil {
		return control.Status{}, err
	}
	var st control.Status
	err = withTerminal(cf.data, func(t *kiosk.Terminal) error {
		st, err = control.ComputeStatus(t, control.StoppedSources(cf.data, cfg))
		return err
	})
	return st, err
}

func printStatus(w io.Writer, st control.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	id := st.TerminalID
	if !st.Enrolled {
		id = "(not enrolled: kioskctl enroll)"
	}
	fmt.Fprintf(tw, "terminal\t%s\n", id)
	if st.Enrolled {
		fmt.Fprintf(tw, "facility\t%s\n", st.Facility)
	}
	mode := st.Mode
	if st.BoundInmate != "" {
		mode += ", bound to inmate " + st.BoundInmate
	}
	fmt.Fprintf(tw, "mode\t%s\n", mode)
	fmt.Fprintf(tw, "version\t%s (kioskd %s)\n", st.Version, st.Kioskd)
	relay := st.Relay.URL
	if relay == "" {
		relay = "(none)"
	}
	fmt.Fprintf(tw, "relay\t%s\n", relay)
	link, sync := st.Relay.Link, st.Relay.Sync
	if sync != nil && sync.LastError != "" && !sync.Connected {
		link += ": " + sync.LastError
	}
	fmt.Fprintf(tw, "link\t%s\n", link)
	if sync != nil && !sync.LastSuccess.IsZero() {
		fmt.Fprintf(tw, "last sync\t%s\n", ago(sync.LastSuccess, now))
	} else if st.Kioskd == "running" {
		fmt.Fprintf(tw, "last sync\tnot since kioskd started\n")
	}
	if sync != nil && (sync.ClockOffset >= status.ClockOffsetShown || sync.ClockOffset <= -status.ClockOffsetShown) {
		off, how := sync.ClockOffset, "behind"
		if off < 0 {
			how, off = "ahead of", -off
		}
		fmt.Fprintf(tw, "clock\t%s %s the relay's: check the time settings\n", off.Round(time.Minute), how)
	}
	waiting := fmt.Sprintf("%d items", st.Queue.Waiting)
	if st.Queue.Waiting > 0 {
		waiting += ", oldest " + ago(st.Queue.Oldest, now)
	}
	fmt.Fprintf(tw, "waiting\t%s\n", waiting)
	fmt.Fprintf(tw, "store\t%s, %s, %s free, schema %d, next seq %d\n", st.Store.Path, bytesHuman(uint64(st.Store.SizeBytes)),
		bytesHuman(st.Store.FreeBytes), st.Store.Schema, st.Store.NextSeq)
	switch {
	case st.Session == nil && st.Kioskd != "running":
		fmt.Fprintf(tw, "session\tnone (kioskd not running)\n")
	case st.Session == nil:
		fmt.Fprintf(tw, "session\tnone\n")
	case st.Session.Technician:
		fmt.Fprintf(tw, "session\ta technician\n")
	default:
		fmt.Fprintf(tw, "session\tinmate %s, %d minutes, since %s\n", st.Session.InmateID, st.Session.Minutes, st.Session.Started.Local().Format("15:04:05"))
	}
	if len(st.Devices) == 0 {
		fmt.Fprintf(tw, "devices\tnone configured\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Devices) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tROLE\tSTATE\tLAST EVENT\tACCEPTED\tREJECTED\tKEYS\tPATH")
		for _, d := range st.Devices {
			last, acc, rej, keys := "-", "-", "-", "-"
			if d.State != status.DeviceUnknown {
				last = ago(d.LastEvent, now)
				if !d.LastEvent.IsZero() {
					last = d.LastEventKind + " " + last
				}
				acc, rej, keys = fmt.Sprint(d.Accepted), fmt.Sprint(d.RejectedTotal()), fmt.Sprint(d.Keys)
			}
			state := string(d.State)
			if d.LastError != "" && d.State == status.DeviceDisconnected {
				state += " (" + d.LastError + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Role, state, last, acc, rej, keys, d.Path)
		}
		return tw.Flush()
	}
	return nil
}

func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
