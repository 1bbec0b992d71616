package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
)

const backupUsage = `usage: kioskctl backup [--data DIR] [--json] FILE

Writes a consistent copy of the store to FILE (temp file, fsync, rename), also while kioskd runs.
`

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newFlags("backup", backupUsage, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("backup: give exactly one FILE")
	}
	dst, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return err
	}
	if same, _ := filepath.Abs(filepath.Join(cf.data, kiosk.StoreFile)); same == dst {
		return errors.New("backup: FILE is the store itself")
	}
	c, err := dial(cf.data)
	if err != nil {
		return err
	}
	var n int64
	write := func(w io.Writer) error {
		if c != nil {
			var err error
			n, err = c.Backup(ctx, w)
			return err
		}
		return withTerminal(cf.data, func(t *kiosk.Terminal) error {
			var err error
			n, err = t.Backup(w, actorName(), nil)
			return err
		})
	}
	if c != nil {
		defer c.Close()
	}
	if err := kiosk.WriteFileAtomic(dst, write); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if cf.json {
		return printJSON(stdout, map[string]any{"file": dst, "bytes": n})
	}
	fmt.Fprintf(stdout, "backed up %s to %s\n", bytesHuman(uint64(n)), dst)
	return nil
}

const verifyUsage = `usage: kioskctl verify [--data DIR] [--json]

Checks the store's pages and the schema's rules (charges, sessions, balances, queue, boxes).
Exits non-zero when anything is wrong.
`

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newFlags("verify", verifyUsage, stderr)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	c, err := dial(cf.data)
	if err != nil {
		return err
	}
	var rep kiosk.VerifyReport
	if c != nil {
		defer c.Close()
		rep, err = c.Verify(ctx)
	} else {
		err = withTerminal(cf.data, func(t *kiosk.Terminal) error {
			rep, err = t.Verify(actorName())
			return err
		})
	}
	if err != nil {
		return err
	}
	if cf.json {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(stdout, "store"); err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("verify: %d problems found", len(rep.Problems))
	}
	return nil
}

const compactUsage = `usage: kioskctl compact [--data DIR] [--json]

Rewrites the store without its free pages. Only with kioskd stopped.
`

func runCompact(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newFlags("compact", compactUsage, stderr)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	c, err := dial(cf.data)
	if err != nil {
		return err
	}
	if c != nil {
		c.Close()
		return errors.New("compact: kioskd is running on this data directory; stop it first")
	}
	info, err := kiosk.CompactStore(cf.data, time.Now(), actorName(), kiosk.StoreOptions{})
	if kiosk.KindOf(err) == kiosk.KindConflict {
		return fmt.Errorf("compact: %w; stop kioskd first", err)
	}
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, info)
	}
	fmt.Fprintf(stdout, "compacted %s: %s -> %s\n", info.Path, bytesHuman(uint64(info.BeforeBytes)), bytesHuman(uint64(info.AfterBytes)))
	return nil
}
