package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-kiosk/tether/internal/natstest"
)

// consoleLogin signs in to the console at base and returns the page it lands on.
func consoleLogin(t *testing.T, base, user, pass string) (status int, path string, page []byte) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(base + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	form, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(form)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET %s/console/: %d, not a login form: %.300s", base, resp.StatusCode, form)
	}
	resp, err = c.PostForm(base+"/console/login", url.Values{"csrf": {string(m[1])}, "username": {user}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Request.URL.Path, page
}

// On a NATS cluster the first console admin is made with `relayd console-user -store` while
// two gateways serve, and both sign it in at once; disabling it there locks it out of both;
// `relayd verify -store` checks the same stream. Before any gateway made the stream, the
// command says to start one.
func TestConsoleUserAndVerifyBesideRunningGateways(t *testing.T) {
	c := natstest.Start(t)
	store := c.URL(0) + "," + c.URL(1)
	const pass = "long enough password"
	var out, errb bytes.Buffer
	add := []string{"add", "-store", store, "-username", "root", "-name", "First Admin", "-roles", "admin", "-facilities", "*"}
	if err := consoleUser(add, strings.NewReader(pass+"\n"), &out, &errb); err == nil || !strings.Contains(err.Error(), "start a relayd gateway on it first") {
		t.Fatalf("console-user add before any gateway: %v", err)
	}
	if err := verify([]string{"-store", store}, &out, &errb); err == nil || !strings.Contains(err.Error(), "holds no relay") {
		t.Fatalf("verify before any gateway: %v", err)
	}
	// Pointed at a cluster by mistake, neither left a stream there.
	js, err := jetstream.New(c.Connect(0))
	if err != nil {
		t.Fatal(err)
	}
	for name := range js.StreamNames(context.Background()).Name() {
		t.Errorf("the commands beside no gateway made stream %s", name)
	}
	env := map[string]string{TokenEnv: strings.Repeat("t", 20)}
	gw := func(node int) string {
		base, _, _, stop := start(t, []string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-store", c.URL(node)}, env)
		t.Cleanup(stop)
		return base
	}
	g1, g2 := gw(1), gw(2)
	if status, _, page := consoleLogin(t, g1, "root", pass); status != http.StatusUnauthorized || !bytes.Contains(page, []byte("Wrong username or password.")) {
		t.Fatalf("signing in before the account exists: %d %.300s", status, page)
	}
	errb.Reset()
	if err := consoleUser(add, strings.NewReader(pass+"\n"), &out, &errb); err != nil {
		t.Fatalf("console-user add -store: %v\n%s", err, errb.String())
	}
	out.Reset()
	if err := consoleUser([]string{"list", "-store", c.URL(2)}, nil, &out, &errb); err != nil || !strings.Contains(out.String(), "root\tFirst Admin\tadmin\t*") {
		t.Errorf("list -store: %v %q", err, out.String())
	}
	for _, base := range []string{g1, g2} {
		status, path, page := consoleLogin(t, base, "root", pass)
		if status != http.StatusOK || path != "/console/policy" || !bytes.Contains(page, []byte("Audit log")) {
			t.Errorf("signing in at %s with the account made beside it: %d at %s: %.300s", base, status, path, page)
		}
	}
	if err := consoleUser([]string{"disable", "-store", store, "-username", "root"}, nil, &out, &errb); err != nil {
		t.Fatalf("disable -store: %v", err)
	}
	if status, _, page := consoleLogin(t, g2, "root", pass); status != http.StatusUnauthorized || !bytes.Contains(page, []byte("Wrong username or password.")) {
		t.Errorf("a disabled account signing in at %s: %d %.300s", g2, status, page)
	}
	out.Reset()
	if err := verify([]string{"-store", store, "-verify-max-mib", "1"}, &out, &errb); err != nil || !strings.Contains(out.String(), "relay ok") {
		t.Errorf("verify -store: %v\n%s", err, out.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "-data", t.TempDir(), "-store", store}, "exclude each other"},
		{[]string{"list"}, "-data DIR or -store"},
		{[]string{"list", "-data", t.TempDir(), "-nats-creds", "x.creds"}, "go with -store"},
		{[]string{"list", "-store", "nats://u:pw@127.0.0.1:4222"}, "shows in ps"},
	} {
		if err := consoleUser(tc.args, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("console-user %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
