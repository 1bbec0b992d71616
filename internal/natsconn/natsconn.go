// Package natsconn is how a command reaches a NATS cluster that asks who it is: the flags of
// its credentials (a user credentials file or an nkey seed) and of TLS (the CA that signed the
// servers' certificates, a client certificate for a cluster that verifies clients), checked
// once and turned into nats.Options. relayd and tetherload take the same flags, so a load run
// reaches the cluster its gateways do, and a spawned relayd is given them again (Args).
package natsconn

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// Flags are the connection's credentials and TLS files; the zero value is a plain connection.
type Flags struct {
	Creds, NKey, CA, Cert, Key string
}

// Register adds the flags to fs; what names the cluster they are for in their help.
func (f *Flags) Register(fs *flag.FlagSet, what string) {
	fs.StringVar(&f.Creds, "nats-creds", "", "NATS user credentials file (JWT and nkey seed, mode 0600) for "+what)
	fs.StringVar(&f.NKey, "nats-nkey", "", "NATS nkey seed file (mode 0600) for "+what)
	fs.StringVar(&f.CA, "nats-ca", "", "PEM file of the CA(s) that signed the NATS servers' certificates (TLS to "+what+"; default: the system's)")
	fs.StringVar(&f.Cert, "nats-cert", "", "PEM client certificate for a NATS cluster that verifies clients (with -nats-key)")
	fs.StringVar(&f.Key, "nats-key", "", "PEM private key of -nats-cert, mode 0600")
}

// Any reports whether any of the flags is set.
func (f Flags) Any() bool { return f != Flags{} }

// Check says what is wrong with the flags taken together: one kind of credentials at a time,
// a client certificate with its key. It reads no file (Options does).
func (f Flags) Check() error {
	if f.Creds != "" && f.NKey != "" {
		return errors.New("-nats-creds and -nats-nkey exclude each other")
	}
	if (f.Cert == "") != (f.Key == "") {
		return errors.New("-nats-cert and -nats-key go together: a client certificate and its key")
	}
	return nil
}

// Options are the nats.Options the flags ask for. A credentials file, seed or key others can
// read is refused (SecretFile), and a CA file that is not there is named.
func (f Flags) Options() ([]nats.Option, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case f.Creds != "":
		if err := SecretFile("-nats-creds", f.Creds); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(f.Creds))
	case f.NKey != "":
		if err := SecretFile("-nats-nkey", f.NKey); err != nil {
			return nil, err
		}
		opt, err := nats.NkeyOptionFromSeed(f.NKey)
		if err != nil {
			return nil, fmt.Errorf("-nats-nkey: %w", err)
		}
		opts = append(opts, opt)
	}
	// TLS: a state's cluster carries letters and money between sites, so it is usually
	// signed by the department's own CA and asks its clients for certificates.
	if f.CA != "" {
		if _, err := os.Stat(f.CA); err != nil {
			return nil, fmt.Errorf("-nats-ca: %w", err)
		}
		opts = append(opts, nats.RootCAs(f.CA))
	}
	if f.Cert != "" {
		if err := SecretFile("-nats-key", f.Key); err != nil {
			return nil, err
		}
		opts = append(opts, nats.ClientCert(f.Cert, f.Key))
	}
	return opts, nil
}

// Args are the flags as a command line takes them again: those set, for a relayd started
// with the same cluster.
func (f Flags) Args() []string {
	var args []string
	for _, a := range []struct{ name, val string }{
		{"-nats-creds", f.Creds}, {"-nats-nkey", f.NKey}, {"-nats-ca", f.CA}, {"-nats-cert", f.Cert}, {"-nats-key", f.Key},
	} {
		if a.val != "" {
			args = append(args, a.name, a.val)
		}
	}
	return args
}

// SecretFile refuses a file of secrets others can read (the admin token's rule too), naming
// the flag that gave it.
func SecretFile(flagName, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: %s is readable by others (mode %v): chmod 600 it", flagName, path, fi.Mode().Perm())
	}
	return nil
}
