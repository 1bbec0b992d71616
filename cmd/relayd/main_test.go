package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs relayd until the test ends and returns its base URL and outputs.
func start(t *testing.T, args []string, env map[string]string) (base string, stdout, stderr *syncBuf, stop func()) {
	t.Helper()
	stdout, stderr = &syncBuf{}, &syncBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, stdout, stderr, ready) }()
	select {
	case base = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("relayd exited: %v\n%s", err, stderr)
	}
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relayd: %v", err)
		}
	}
	return base, stdout, stderr, stop
}

func get(t *testing.T, client *http.Client, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// With no token given, relayd makes one on first start, keeps it 0600 and shows it once.
func TestGeneratedTokenShownOnce(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-data", dir, "-listen", "127.0.0.1:0"}
	base, stdout, stderr, stop := start(t, args, nil)
	raw, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	fi, _ := os.Stat(filepath.Join(dir, TokenFile))
	if fi.Mode().Perm() != 0o600 || len(token) != 64 {
		t.Fatalf("token file mode %v, token length %d", fi.Mode().Perm(), len(token))
	}
	if !strings.Contains(stdout.String(), token) {
		t.Fatalf("token not shown: %q", stdout)
	}
	if get(t, http.DefaultClient, base+"/admin/v1/terminals", token) != 200 {
		t.Fatal("generated token refused")
	}
	if get(t, http.DefaultClient, base+"/admin/v1/terminals", "wrong") != 401 {
		t.Fatal("wrong token accepted")
	}
	stop()
	if strings.Contains(stderr.String(), token) {
		t.Fatal("the token reached the log")
	}

	base, stdout, stderr, stop = start(t, args, nil)
	defer stop()
	if strings.Contains(stdout.String(), token) || strings.Contains(stderr.String(), token) {
		t.Fatal("the token was shown again on the second start")
	}
	if get(t, http.DefaultClient, base+"/admin/v1/terminals", token) != 200 {
		t.Fatal("stored token refused after restart")
	}
}

func TestTokenFromFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	base, _, _, stop := start(t, []string{"-data", dir, "-listen", "127.0.0.1:0"}, map[string]string{TokenEnv: "from-the-environment-1"})
	if get(t, http.DefaultClient, base+"/admin/v1/terminals", "from-the-environment-1") != 200 {
		t.Fatal("env token refused")
	}
	stop()
	file := writeToken(t, "from-the-file-0002")
	base, _, _, stop = start(t, []string{"-data", dir, "-listen", "127.0.0.1:0", "-admin-token-file", file}, map[string]string{TokenEnv: "from-the-environment-1"})
	defer stop()
	if get(t, http.DefaultClient, base+"/admin/v1/terminals", "from-the-file-0002") != 200 {
		t.Fatal("token file refused")
	}
	if _, err := os.Stat(filepath.Join(dir, TokenFile)); !os.IsNotExist(err) {
		t.Fatal("a token file was written although a token was given")
	}
}

// writeToken puts token in a 0600 file and returns its path.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every source of the admin token needs 16 characters, and the refusal names the source; a
// token on the command line is refused, saying why (ps shows it).
func TestShortTokensRefusedFromEverySource(t *testing.T) {
	short := "short-token"
	dir := t.TempDir()
	file := writeToken(t, short)
	inDir := t.TempDir()
	os.WriteFile(filepath.Join(inDir, TokenFile), []byte(short+"\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"file flag", []string{"-data", dir, "-admin-token-file", file}, nil, "-admin-token-file: " + file + " holds a token of 11 characters; at least 16"},
		{"environment", []string{"-data", dir}, map[string]string{TokenEnv: short}, "$" + TokenEnv + " holds a token of 11 characters; at least 16"},
		{"data directory", []string{"-data", inDir}, nil, filepath.Join(inDir, TokenFile) + " holds a token of 11 characters"},
		{"value flag", []string{"-data", dir, "-admin-token", "a-long-enough-token-123"}, nil, "-admin-token is gone (a token on the command line shows in ps)"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, append(tc.args, "-listen", "127.0.0.1:0"), func(k string) string { return tc.env[k] }, io.Discard, io.Discard, nil)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if strings.Contains(err.Error(), short) {
			t.Fatalf("%s: the refusal shows the token: %v", tc.name, err)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-data DIR is required"},
		{[]string{"-data", dir, "-listen", "0.0.0.0:8443"}, "not a loopback address"},
		{[]string{"-data", dir, "-listen", ":8443"}, "not a loopback address"},
		{[]string{"-data", dir, "-cert", "c.pem"}, "-cert and -key go together"},
		{[]string{"-data", dir, "-hold", "maybe"}, "hold_policy"},
		{[]string{"-data", dir, "extra"}, "unexpected argument"},
		{[]string{"-data", dir, "-max-pending-per-addr", "0"}, "outside 1..64"},
		{[]string{"-data", dir, "-max-pending-per-addr", "65"}, "outside 1..64"},
		{[]string{"-data", dir, "-smtp", "mail:25", "-invite-spool", dir}, "exclude each other"},
		{[]string{"-data", dir, "-smtp", "mail:25"}, "-smtp needs -smtp-from"},
		{[]string{"-data", dir, "-smtp", "mail:25", "-smtp-from", "a@b.c", "-smtp-user", "u"}, "go together"},
		{[]string{"-data", dir, "-invite-ttl", "0s"}, "must be positive"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, tc.args, func(string) string { return "" }, io.Discard, io.Discard, nil)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// A token file others can read is refused, not used.
	open := t.TempDir()
	os.WriteFile(filepath.Join(open, TokenFile), []byte("0123456789abcdef0123\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := run(ctx, []string{"-data", open, "-listen", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("open token file: %v", err)
	}
}

// With -cert and -key relayd serves TLS, on any address.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, certPEM, 0o600)
	os.WriteFile(key, keyPEM, 0o600)
	base, _, _, stop := start(t, []string{"-data", filepath.Join(dir, "d"), "-listen", "127.0.0.1:0", "-cert", cert, "-key", key, "-admin-token-file", writeToken(t, "tls-token-0123456")}, nil)
	defer stop()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base %s", base)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if get(t, client, base+"/admin/v1/terminals", "tls-token-0123456") != 200 {
		t.Fatal("TLS admin call failed")
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// A damaged relay.db stops relayd with exit status 3, naming the file; bad flags exit 2; -h
// documents both.
func TestDamagedStoreExitsThree(t *testing.T) {
	dir := t.TempDir()
	_, _, _, stop := start(t, []string{"-data", dir, "-listen", "127.0.0.1:0"}, nil)
	stop()
	path := filepath.Join(dir, "relay.db")
	if err := os.Truncate(path, 4096*2+10); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, []string{"-data", dir, "-listen", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard, io.Discard, nil)
	if exitStatus(err) != 3 || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("exit %d: %v", exitStatus(err), err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 4096*2+10 {
		t.Fatalf("the damaged file was changed: %d bytes", fi.Size())
	}
	err = run(ctx, []string{"-data", dir, "-listen", "0.0.0.0:1"}, func(string) string { return "" }, io.Discard, io.Discard, nil)
	if exitStatus(err) != 2 {
		t.Fatalf("bad flags: exit %d: %v", exitStatus(err), err)
	}
	var help syncBuf
	err = run(ctx, []string{"-h"}, func(string) string { return "" }, io.Discard, &help, nil)
	if exitStatus(err) != 2 || !strings.Contains(help.String(), "3 when relay.db") {
		t.Fatalf("-h: exit %d, %q", exitStatus(err), help.String())
	}
}

// -max-pending-per-addr reaches the relay: with 1, a second socket from the same address that
// has not said hello yet is turned away with 1013, as a facility's NAT address would be.
func TestMaxPendingPerAddrFlag(t *testing.T) {
	dir := t.TempDir()
	base, _, _, stop := start(t, []string{"-data", dir, "-listen", "127.0.0.1:0", "-max-pending-per-addr", "1"},
		map[string]string{TokenEnv: "pending-test-token-0123456789"})
	defer stop()
	url := "ws" + strings.TrimPrefix(base, "http") + wire.PathTerminal
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer first.CloseNow()
	second, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer second.CloseNow()
	// Which of the two the relay admits first is the relay's order of handling, not the
	// dial's; the other is turned away at once. The admitted one waits for its hello, so the
	// first answer to arrive is the refusal.
	answers := make(chan error, 2)
	for _, c := range []*websocket.Conn{first, second} {
		go func() {
			_, _, err := c.Read(ctx)
			answers <- err
		}()
	}
	err = <-answers
	if code := websocket.CloseStatus(err); code != websocket.StatusTryAgainLater {
		t.Fatalf("a second idle socket from the same address: %v (close %d), want 1013", err, code)
	}
}

// With -invite-spool relayd writes each contact invitation there, names -family-url in it,
// and serves the family page where the contact answers.
func TestInviteSpoolFlag(t *testing.T) {
	dir, spool := t.TempDir(), t.TempDir()
	token := "invite-test-token-0123456789"
	base, _, _, stop := start(t, []string{"-data", dir, "-listen", "127.0.0.1:0", "-invite-spool", spool,
		"-smtp-from", "Tether <invite@example.org>", "-family-url", "https://relay.example.org/family/"},
		map[string]string{TokenEnv: token})
	defer stop()
	resp, err := http.Get(base + "/family/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Identification code") {
		t.Fatalf("family page: %d\n%s", resp.StatusCode, page)
	}
	if st := get(t, http.DefaultClient, base+"/admin/v1/invitations?unsent=true", token); st != http.StatusOK {
		t.Fatalf("invitations list: %d", st)
	}
	// The notifier relayd builds from its flags.
	o, err := parseFlags([]string{"-data", dir, "-invite-spool", spool, "-smtp-from", "x@example.org"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := inviteNotifier(o); err != nil || n.(relay.SpoolNotifier).Dir != spool || n.(relay.SpoolNotifier).From != "x@example.org" {
		t.Fatalf("spool notifier = %#v, %v", n, err)
	}
	pass := filepath.Join(t.TempDir(), "smtp-pass")
	os.WriteFile(pass, []byte("s3cret\n"), 0o644)
	o, _ = parseFlags([]string{"-data", dir, "-smtp", "mail.example.org:587", "-smtp-from", "x@example.org", "-smtp-user", "u",
		"-smtp-password-file", pass}, io.Discard)
	if _, err := inviteNotifier(o); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a password file others can read: %v", err)
	}
	os.Chmod(pass, 0o600)
	n, err := inviteNotifier(o)
	if sn, ok := n.(relay.SMTPNotifier); err != nil || !ok || sn.Password != "s3cret" || !sn.RequireTLS || sn.Addr != "mail.example.org:587" {
		t.Fatalf("smtp notifier = %#v, %v", n, err)
	}
}
