package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/console"
)

// demoStaff are the console's demo logins, one per role: the username is the role and the
// password "tether-<role>-demo" (README). They are published, so they live only in the
// demo's throwaway data.
func demoStaff() []console.NewAccount {
	var out []console.NewAccount
	names := map[string]string{console.RoleMailroom: "Mo Mailroom", console.RoleBusiness: "Bea Business",
		console.RoleTechnician: "Tex Technician", console.RoleAdmin: "Ada Admin", console.RolePREA: "Pat PREA Coordinator",
		console.RoleLibrary: "Lee Librarian"}
	for _, role := range console.Roles() {
		out = append(out, console.NewAccount{Username: role, Name: names[role], Password: "tether-" + role + "-demo", Roles: []string{role}})
	}
	return out
}

// demoAdminToken makes the demo relay's bearer token for the admin API and keeps it in
// relay/admin-token (mode 0600), as relayd does, so scripts and curl work on the demo too.
func demoAdminToken(dir string) (token, path string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("demo admin token: %w", err)
	}
	token = hex.EncodeToString(b)
	path = filepath.Join(dir, "relay", "admin-token")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", "", fmt.Errorf("demo admin token: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("demo admin token: %w", err)
	}
	return token, path, nil
}

// withConsole mounts the staff console beside the relay, with one demo login per role, and
// says where it is and how to sign in.
func (d *demo) withConsole() (http.Handler, error) {
	cons, err := console.New(console.Config{Relay: d.relay, Logf: d.logf, PasswordParams: kiosk.TestPINParams()})
	if err != nil {
		return nil, err
	}
	var logins []string
	for _, a := range demoStaff() {
		a.Facilities = []string{d.fac.ID}
		if _, err := cons.Store().AddAccount(time.Now(), "tetherdemo", a); err != nil {
			return nil, fmt.Errorf("demo staff: %w", err)
		}
		logins = append(logins, fmt.Sprintf("%s / %s", a.Username, a.Password))
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, cons)
	mux.Handle("/", d.relay)
	d.consoleURL = d.url + console.Prefix
	fmt.Fprintf(d.out, "Staff console: %s\n  logins (user / password): %s\n", d.consoleURL, strings.Join(logins, ", "))
	return mux, nil
}
