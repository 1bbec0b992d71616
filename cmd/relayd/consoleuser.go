package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/console"
)

// consoleUser is `relayd console-user add|list|disable|enable -data DIR|-store URL ...`: staff
// accounts of the web console, written into a stopped relay's file (a running relayd holds
// it; there, an admin uses the console's Accounts page) or into the stream of gateways on a
// NATS cluster, which may keep running (every gateway reads its accounts from the stream). The
// first admin is made this way. The password is read from the first line of standard input,
// so it never shows in ps or a shell history.
func consoleUser(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErrorf("console-user needs add, list, disable or enable")
	}
	cmd := args[0]
	fs := flag.NewFlagSet("relayd console-user "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := addStateFlags(fs)
	username := fs.String("username", "", "login name (a-z, 0-9, '.', '-', '_')")
	name := fs.String("name", "", "the person's full name (add)")
	roles := fs.String("roles", "", "comma-separated roles (add): "+strings.Join(console.Roles(), ", "))
	facs := fs.String("facilities", "", "comma-separated facility ids the account acts on, or * for all (add)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relayd console-user add -data DIR -username U -name NAME -roles admin -facilities '*' < password-file\n"+
			"       relayd console-user list -data DIR\n"+
			"       relayd console-user disable|enable -data DIR -username U\n"+
			"       (or -store nats://host:port[,...] [-nats-creds FILE | -nats-nkey FILE] instead of -data DIR)\n\n"+
			"Staff accounts of the web console at /console/. With -data, relayd must be stopped; with -store,\n"+
			"the gateways may keep running. add reads the password (at least 10 characters) from the first\n"+
			"line of standard input.")
		fs.PrintDefaults()
	}
	switch cmd {
	case "add", "list", "disable", "enable":
	default:
		return usageErrorf("console-user %q: want add, list, disable or enable", cmd)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if cmd != "list" && *username == "" {
		return usageErrorf("-username is required")
	}
	r, closeRelay, err := state.open(context.Background(), stderr)
	if err != nil {
		return err
	}
	defer closeRelay()
	st, err := console.OpenStore(r, kiosk.PINParams{}) // the default argon2id costs
	if err != nil {
		return err
	}
	now := time.Now()
	switch cmd {
	case "list":
		all, err := st.Accounts()
		if err != nil {
			return err
		}
		for _, a := range all {
			state := ""
			if a.Disabled {
				state = " (disabled)"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s%s\n", a.Username, a.Name, strings.Join(a.Roles, ","), strings.Join(a.Facilities, ","), state)
		}
		return nil
	case "disable", "enable":
		if err := st.SetDisabled(now, "relayd console-user", *username, cmd == "disable"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "account %s %sd\n", *username, cmd)
		return nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the password from standard input: %w", err)
	}
	pass := strings.TrimRight(line, "\r\n")
	if pass == "" {
		return usageErrorf("no password on standard input (give it as the first line)")
	}
	a, err := st.AddAccount(now, "relayd console-user", console.NewAccount{Username: *username, Name: *name, Password: pass,
		Roles: splitList(*roles), Facilities: splitList(*facs)})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "account %s added: roles %s, facilities %s\n", a.Username, strings.Join(a.Roles, ","), strings.Join(a.Facilities, ","))
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
