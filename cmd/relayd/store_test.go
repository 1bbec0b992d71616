package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/jscontent"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// adminCaller makes admin API calls with token: status and body.
func adminCaller(t *testing.T, token string) func(method, url, body string) (int, string) {
	return func(method, url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
}

// relayd -store runs on a NATS cluster: no relay.db in -data, and what the admin API stored
// is there after relayd restarts on another node of the cluster.
func TestStoreFlagRunsOnNATS(t *testing.T) {
	c := natstest.Start(t)
	token := strings.Repeat("t", 20)
	env := map[string]string{TokenEnv: token}
	dir := t.TempDir()
	args := func(node int) []string {
		return []string{"-data", dir, "-listen", "127.0.0.1:0", "-store", c.URL(node) + "," + c.URL((node+1)%3)}
	}
	call := adminCaller(t, token)
	p := kiosk.DefaultPolicy()
	p.FacilityName = "North Unit on NATS"
	raw, _ := json.Marshal(p)
	base, _, stderr, stop := start(t, args(0), env)
	if got := get(t, http.DefaultClient, base+"/readyz", token); got != http.StatusOK {
		t.Fatalf("readyz on NATS: %d\n%s", got, stderr)
	}
	if status, body := call("PUT", base+"/admin/v1/facilities/north/policy", string(raw)); status != http.StatusOK {
		t.Fatalf("put policy: %d %s\n%s", status, body, stderr)
	}
	stop()
	if _, err := os.Stat(filepath.Join(dir, relay.DBFile)); err == nil {
		t.Fatalf("relayd -store made %s", relay.DBFile)
	}
	base, _, stderr, stop = start(t, args(2), env)
	defer stop()
	if status, body := call("GET", base+"/admin/v1/facilities/north/policy", ""); status != http.StatusOK || !strings.Contains(body, p.FacilityName) {
		t.Fatalf("policy after a restart on another node: %d %s\n%s", status, body, stderr)
	}
}

// relayd -store -hold-facilities holds each facility in the cluster's facility log from its
// start: a deposit made while north is held is credited by its holder, and read back after a
// restart of relayd that holds nothing.
func TestHoldFacilitiesOnNATS(t *testing.T) {
	c := natstest.Start(t)
	token := strings.Repeat("t", 20)
	env := map[string]string{TokenEnv: token}
	dir := t.TempDir()
	args := []string{"-data", dir, "-listen", "127.0.0.1:0", "-store", c.URL(0), "-hold-facilities"}
	call := adminCaller(t, token)
	base, _, stderr, stop := start(t, args, env)
	if status, body := call("PUT", base+"/admin/v1/facilities/north/roster",
		`{"inmates":[{"id":"A1","name":"Ana","badges":["B1"],"pin":"4821","language":"en","status":"active"}]}`); status != http.StatusOK {
		t.Fatalf("put roster: %d %s\n%s", status, body, stderr)
	}
	stop()
	base, _, stderr, stop = start(t, args, env) // north exists now: held from the start
	if !strings.Contains(stderr.String(), "holding facility north") {
		stop()
		t.Fatalf("relayd -hold-facilities does not hold north:\n%s", stderr)
	}
	if status, body := call("POST", base+"/admin/v1/deposits", `{"inmate_id":"A1","cents":700,"ref":"d-held"}`); status != http.StatusOK && status != http.StatusCreated {
		stop()
		t.Fatalf("deposit while north is held: %d %s\n%s", status, body, stderr)
	}
	if status, body := call("GET", base+"/admin/v1/balances/A1", ""); status != http.StatusOK || !strings.Contains(body, `"balance_cents": 700`) {
		stop()
		t.Fatalf("A1's balance while held: %d %s", status, body)
	}
	stop()
	base, _, stderr, stop = start(t, args[:len(args)-1], env) // holding nothing
	defer stop()
	if status, body := call("GET", base+"/admin/v1/balances/A1", ""); status != http.StatusOK || !strings.Contains(body, `"balance_cents": 700`) {
		t.Fatalf("A1's balance after north was let go: %d %s\n%s", status, body, stderr)
	}
}

func TestStoreFlagErrors(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.nk")
	os.WriteFile(seed, []byte("SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-data", dir, "-nats-creds", "x.creds"}, "go with -store"},
		{[]string{"-data", dir, "-hold-facilities"}, "-hold-facilities goes with -store"},
		{[]string{"-data", dir, "-store", "nats://n1:4222", "-hold-facilities", "-gateways", "wss://g1:8443,wss://g2:8443"}, "needs -gateway-url"},
		{[]string{"-data", dir, "-gateways", "wss://g1:8443,wss://g2:8443", "-gateway-url", "wss://g1:8443"}, "-gateway-url goes with -store"},
		{[]string{"-data", dir, "-store", "nats://n1:4222", "-gateways", "wss://g1:8443", "-gateway-url", "wss://g3:8443"}, "not one of -gateways"},
		{[]string{"-data", dir, "-store", "nats://n1:4222", "-hold-facilities", "-group-linger", "-5ms"}, "-group-linger -5ms: give 0 to 1s"},
		{[]string{"-data", dir, "-store", "nats://n1:4222", "-hold-facilities", "-group-linger", "2s"}, "-group-linger 2s: give 0 to 1s"},
		{[]string{"-data", dir, "-store", "http://n1:4222"}, "nats://host:port"},
		{[]string{"-data", dir, "-store", "nats://n1"}, "nats://host:port"},
		{[]string{"-data", dir, "-store", "nats://n1:4222,n2:4222"}, "nats://host:port"},
		{[]string{"-data", dir, "-store", "nats://u:pw@n1:4222"}, "shows in ps"},
		{[]string{"-data", dir, "-store", "nats://n1:4222", "-nats-creds", "a", "-nats-nkey", "b"}, "exclude each other"},
		{[]string{"-data", dir, "-listen", "127.0.0.1:0", "-store", "nats://127.0.0.1:1", "-nats-nkey", seed}, "readable by others"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, tc.args, func(k string) string {
			if k == TokenEnv {
				return strings.Repeat("t", 20)
			}
			return ""
		}, io.Discard, io.Discard, nil)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// relayd -store moves what an older relayd on -store kept in -data/content.db (a letter's
// photo, held for a facility and a letter under review) onto the content stream at start,
// keeps the file renamed, and then serves the photo from the stream: another gateway's
// content store reads it whole, with both holders.
func TestStoreFlagMovesContentDBOntoTheStream(t *testing.T) {
	c := natstest.Start(t)
	token := strings.Repeat("t", 20)
	dir := t.TempDir()
	photo := bytes.Repeat([]byte("a photo of the family, "), 30_000) // three chunks
	old, err := content.Open(filepath.Join(dir, content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := old.Put(bytes.NewReader(photo))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"facility:north", "held:letter-1"} {
		if err := old.Retain(m.Ref(), h, true); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	base, _, stderr, stop := start(t, []string{"-data", dir, "-listen", "127.0.0.1:0", "-store", c.URL(0)}, map[string]string{TokenEnv: token})
	if got := get(t, http.DefaultClient, base+"/readyz", token); got != http.StatusOK {
		t.Fatalf("readyz: %d\n%s", got, stderr)
	}
	stop()
	if _, err := os.Stat(filepath.Join(dir, content.File)); err == nil {
		t.Fatalf("%s is still in -data after the import\n%s", content.File, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, content.File+importedSuffix)); err != nil {
		t.Fatalf("the imported file is not kept: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := c.Connect(1)
	meta, err := jskv.Open(ctx, nc, jskv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := jscontent.Open(ctx, nc, meta, jscontent.Options{SweepEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	hs, _, err := cs.Holders(m.Object)
	if err != nil || strings.Join(hs, " ") != "facility:north held:letter-1" {
		t.Fatalf("holders on the stream: %v (err %v)", hs, err)
	}
	rd, err := cs.Open(m.Object)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if got, err := io.ReadAll(rd); err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("the photo read from the stream differs (err %v)", err)
	}
}

// relayd reaches a cluster that speaks only TLS and asks its clients for certificates, as a
// state's does: with the CA that signed the servers' certificates (-nats-ca) and a client
// certificate (-nats-cert, -nats-key) it serves, and console-user works beside it with the
// same flags. Without the client certificate, or without the CA, it fails at start and says
// where; a key others can read is refused before any connection.
func TestStoreFlagOverTLSWithClientCertificates(t *testing.T) {
	files := natstest.NewTLSFiles(t)
	c := natstest.StartTLS(t, files)
	env := map[string]string{TokenEnv: strings.Repeat("t", 20)}
	tlsArgs := []string{"-nats-ca", files.CA, "-nats-cert", files.ClientCert, "-nats-key", files.ClientKey}
	args := append([]string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-store", c.URL(0) + "," + c.URL(1)}, tlsArgs...)
	base, _, stderr, stop := start(t, args, env)
	defer stop()
	if got := get(t, http.DefaultClient, base+"/readyz", ""); got != http.StatusOK {
		t.Fatalf("readyz over TLS: %d\n%s", got, stderr)
	}
	add := append([]string{"add", "-store", c.URL(2), "-username", "root", "-name", "Root", "-roles", "admin", "-facilities", "*"}, tlsArgs...)
	if err := consoleUser(add, strings.NewReader("long enough password\n"), io.Discard, io.Discard); err != nil {
		t.Fatalf("console-user over TLS: %v", err)
	}

	loose := filepath.Join(t.TempDir(), "client.key")
	raw, err := os.ReadFile(files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  []string
		want []string
	}{
		// Under TLS 1.3 the client may finish its handshake before the server's alert comes:
		// it then reads a closed connection instead of "certificate required".
		{"no client certificate", []string{"-nats-ca", files.CA}, []string{"connect to the NATS cluster of -store: ", "tls"}},
		{"not the cluster's CA", []string{"-nats-cert", files.ClientCert, "-nats-key", files.ClientKey}, []string{"certificate signed by unknown authority"}},
		{"a key others can read", []string{"-nats-ca", files.CA, "-nats-cert", files.ClientCert, "-nats-key", loose}, []string{"readable by others"}},
		{"a certificate without its key", []string{"-nats-ca", files.CA, "-nats-cert", files.ClientCert}, []string{"go together"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		args := append([]string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-store", c.URL(0)}, tc.tls...)
		err := run(ctx, args, func(k string) string { return env[k] }, io.Discard, io.Discard, nil)
		cancel()
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want an error naming %q", tc.name, err, want)
			}
		}
	}
}

// The facility log's stream made again (deleted by hand, or restored from a backup older than
// the kv stream): relayd -hold-facilities does not hold north, whose log no longer follows
// the kv state, and says what to do; north is served by kv transactions meanwhile. relayd
// faclog-reset finds it (-dry-run changes nothing) and takes the kv state as it stands; the
// next start holds north again, with nothing lost of what the kv state held.
func TestFaclogResetAfterTheLogIsMadeAgain(t *testing.T) {
	c := natstest.Start(t)
	token := strings.Repeat("t", 20)
	env := map[string]string{TokenEnv: token}
	dir := t.TempDir()
	args := []string{"-data", dir, "-listen", "127.0.0.1:0", "-store", c.URL(0), "-hold-facilities"}
	call := adminCaller(t, token)
	deposit := func(base, ref string, cents int) {
		t.Helper()
		if status, body := call("POST", base+"/admin/v1/deposits", fmt.Sprintf(`{"inmate_id":"A1","cents":%d,"ref":%q}`, cents, ref)); status != http.StatusCreated {
			t.Fatalf("deposit %s: %d %s", ref, status, body)
		}
	}
	balance := func(base string) string {
		t.Helper()
		_, body := call("GET", base+"/admin/v1/balances/A1", "")
		return body
	}
	base, _, stderr, stop := start(t, args, env)
	if status, body := call("PUT", base+"/admin/v1/facilities/north/roster",
		`{"inmates":[{"id":"A1","name":"Ana","badges":["B1"],"pin":"4821","language":"en","status":"active"}]}`); status != http.StatusOK {
		t.Fatalf("put roster: %d %s\n%s", status, body, stderr)
	}
	stop()
	base, _, stderr, stop = start(t, args, env)
	if !strings.Contains(stderr.String(), "holding facility north") {
		stop()
		t.Fatalf("north is not held:\n%s", stderr)
	}
	deposit(base, "d1", 700)
	stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(c.Connect(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, "TETHER_FACLOG"); err != nil {
		t.Fatal(err)
	}
	base, _, stderr, stop = start(t, args, env)
	if strings.Contains(stderr.String(), "holding facility north") || !strings.Contains(stderr.String(), "relayd faclog-reset") {
		stop()
		t.Fatalf("relayd on a log made again, want north not held and faclog-reset named:\n%s", stderr)
	}
	deposit(base, "d2", 200) // through kv transactions
	stop()

	var out, errb bytes.Buffer
	if err := run(ctx, []string{"faclog-reset", "-store", c.URL(1), "-dry-run"}, nil, &out, &errb, nil); err != nil ||
		!strings.Contains(out.String(), "facility north: its log does not follow") {
		t.Fatalf("faclog-reset -dry-run: %v\n%s%s", err, out.String(), errb.String())
	}
	out.Reset()
	if err := run(ctx, []string{"faclog-reset", "-store", c.URL(1)}, nil, &out, &errb, nil); err != nil ||
		!strings.Contains(out.String(), "facility north: the kv state at entry") {
		t.Fatalf("faclog-reset: %v\n%s%s", err, out.String(), errb.String())
	}
	out.Reset()
	if err := run(ctx, []string{"faclog-reset", "-store", c.URL(1)}, nil, &out, &errb, nil); err != nil ||
		!strings.Contains(out.String(), "facility north: its log follows") {
		t.Fatalf("faclog-reset again: %v\n%s%s", err, out.String(), errb.String())
	}
	base, _, stderr, stop = start(t, args, env)
	defer stop()
	if !strings.Contains(stderr.String(), "holding facility north") {
		t.Fatalf("north is not held after the reset:\n%s", stderr)
	}
	deposit(base, "d3", 100)
	if got := balance(base); !strings.Contains(got, `"balance_cents": 1000`) {
		t.Fatalf("A1's balance after the reset: %s, want 1000", got)
	}
}
