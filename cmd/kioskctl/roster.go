package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
)

// defaultDataDir is where a terminal keeps its store unless told otherwise.
func defaultDataDir() string {
	if d := os.Getenv("TETHER_DATA"); d != "" {
		return d
	}
	return "/var/lib/tether"
}

const rosterUsage = `usage:
  kioskctl roster import [--data DIR] FILE   add or replace inmates and technicians from a JSON file
  kioskctl roster list [--data DIR]          show the roster (never PINs or their hashes)
`

// runRoster handles `kioskctl roster ...`; the store is opened for the command and closed after.
func runRoster(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rosterUsage)
		return errors.New("roster: say import or list")
	}
	fs, cf := newFlags("roster "+args[0], rosterUsage, stderr)
	switch args[0] {
	case "import":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			fs.Usage()
			return errors.New("roster import: give exactly one FILE")
		}
		return rosterImport(ctx, cf.data, fs.Arg(0), stdin, stdout)
	case "list":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return rosterList(cf.data, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, rosterUsage)
		return nil
	}
	return fmt.Errorf("roster: unknown subcommand %q (import or list)", args[0])
}

func rosterImport(ctx context.Context, dir, file string, stdin io.Reader, stdout io.Writer) error {
	var raw []byte
	var err error
	name := filepath.Base(file)
	if file == "-" {
		name = "stdin"
		raw, err = io.ReadAll(io.LimitReader(stdin, kiosk.MaxRosterBytes+1))
	} else {
		raw, err = readLimited(file, kiosk.MaxRosterBytes+1)
	}
	if err != nil {
		return fmt.Errorf("roster import: %w", err)
	}
	// Parse before opening the store, so a bad file never touches it.
	r, err := kiosk.ParseRoster(name, raw)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		return err
	}
	st, err := s.ImportRoster(time.Now(), name, r, actorName())
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d inmates and %d technicians from %s into %s\n", st.Inmates, st.Technicians, name, dir)
	return nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

func rosterList(dir string, stdout io.Writer) error {
	s, err := kiosk.OpenStore(dir, kiosk.StoreOptions{})
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.Roster()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tID\tNAME\tBADGES\tLANG/ROLE\tSTATUS\tPRIVILEGES")
	for _, in := range r.Inmates {
		var priv []string
		if in.Messaging {
			priv = append(priv, "messaging")
		}
		if in.Media {
			priv = append(priv, "media")
		}
		if in.TabletBound {
			priv = append(priv, "tablet")
		}
		fmt.Fprintf(w, "inmate\t%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.Name, strings.Join(in.Badges, ","), in.Language, in.Status, strings.Join(priv, ","))
	}
	for _, tc := range r.Technicians {
		fmt.Fprintf(w, "technician\t%s\t%s\t%s\t%s\t\t\n", tc.ID, tc.Name, strings.Join(tc.Badges, ","), tc.Role)
	}
	return w.Flush()
}
