package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tether-kiosk/tether/kiosk"
)

// runHashPIN reads one PIN on stdin and prints its argon2id hash, for the pin_hash field of a
// roster file. The PIN itself is never printed, not even in an error.
func runHashPIN(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hash-pin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := kiosk.DefaultPINParams()
	memory := fs.Uint("memory", uint(def.Memory), "argon2id memory in KiB")
	passes := fs.Uint("time", uint(def.Time), "argon2id passes")
	threads := fs.Uint("threads", uint(def.Threads), "argon2id parallelism")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kioskctl hash-pin [flags] < pin.txt\n\nReads one PIN (4 to 12 digits) on standard input and prints its argon2id hash.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		// A PIN on the command line would land in the shell history and in ps.
		return errors.New("hash-pin takes the PIN on standard input, not as an argument")
	}
	if *memory > 1<<21 || *passes > 10 || *threads < 1 || *threads > 16 {
		return errors.New("hash-pin: --memory, --time or --threads is out of range")
	}
	p := kiosk.PINParams{Memory: uint32(*memory), Time: uint32(*passes), Threads: uint8(*threads)}
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "PIN (shown as typed), then Enter: ")
		}
	}
	pin, err := readPIN(stdin)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := kiosk.HashPINWith(pin, p)
	if err != nil {
		return fmt.Errorf("hash-pin: %w", err)
	}
	if err := kiosk.ValidatePINHash(h); err != nil {
		return fmt.Errorf("hash-pin: the costs make a hash Tether cannot verify: %w", err)
	}
	_, err = fmt.Fprintln(stdout, h)
	return err
}

// readPIN reads exactly one line (its line ending optional) holding the PIN.
func readPIN(r io.Reader) (string, error) {
	buf, err := io.ReadAll(io.LimitReader(r, 65))
	if err != nil {
		return "", fmt.Errorf("hash-pin: read standard input: %w", err)
	}
	if len(buf) > 64 {
		return "", errors.New("hash-pin: standard input is too long for a PIN")
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	if len(buf) == 0 {
		return "", errors.New("hash-pin: no PIN on standard input")
	}
	if bytes.ContainsAny(buf, "\r\n") {
		return "", errors.New("hash-pin: give one PIN per run")
	}
	return string(buf), nil
}
