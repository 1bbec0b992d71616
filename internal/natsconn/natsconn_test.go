package natsconn

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The flags a command was given are the flags a relayd it starts is given again, and they
// parse back to the same connection.
func TestArgsParseBackToTheSameFlags(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"-nats-creds", "/etc/tether/relay/nats.creds"},
		{"-nats-nkey", "seed.nk", "-nats-ca", "ca.pem", "-nats-cert", "c.pem", "-nats-key", "c.key"},
	} {
		var f Flags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f.Register(fs, "-store")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if got := f.Args(); !slices.Equal(got, args) {
			t.Errorf("%q gave back %q", args, got)
		}
		if f.Any() != (len(args) > 0) {
			t.Errorf("%q: Any() = %v", args, f.Any())
		}
	}
}

// What cannot go together, and files that would leak a secret or are not there, are refused
// before any connection, naming the flag.
func TestBadFlagsAreRefusedByName(t *testing.T) {
	dir := t.TempDir()
	loose, tight := filepath.Join(dir, "loose.key"), filepath.Join(dir, "tight.key")
	for path, mode := range map[string]os.FileMode{loose: 0o644, tight: 0o600} {
		if err := os.WriteFile(path, []byte("not a real key"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		f    Flags
		want string
	}{
		{Flags{Creds: tight, NKey: tight}, "-nats-creds and -nats-nkey exclude each other"},
		{Flags{Cert: "c.pem"}, "-nats-cert and -nats-key go together"},
		{Flags{Creds: loose}, "-nats-creds: " + loose + " is readable by others"},
		{Flags{NKey: filepath.Join(dir, "missing.nk")}, "-nats-nkey: "},
		{Flags{NKey: tight}, "-nats-nkey: "}, // not a seed
		{Flags{CA: filepath.Join(dir, "missing.pem")}, "-nats-ca: "},
		{Flags{Cert: "c.pem", Key: loose}, "-nats-key: " + loose + " is readable by others"},
	} {
		_, err := tc.f.Options()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.f, err, tc.want)
		}
	}
	if opts, err := (Flags{Creds: tight}).Options(); err != nil || len(opts) != 1 {
		t.Errorf("a credentials file of mode 0600: %d options, %v", len(opts), err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	new(Flags).Register(fs, "-store")
	if err := fs.Parse([]string{"-nats-creds"}); err == nil {
		t.Error("-nats-creds without a file parsed")
	}
}
