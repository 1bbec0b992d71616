// Command relayd is the reference Tether relay: terminals enroll and sync over websockets, staff
// use the web console under /console/ and scripts the admin API under /admin/v1/. Everything is
// stored in one bbolt file in -data, or with -store in a JetStream stream of a NATS cluster.
//
//	relayd -data DIR [-listen 127.0.0.1:8443] [-cert FILE -key FILE] [-insecure] [-admin-token-file FILE]
//	       [-store nats://host:port[,host:port...] [-nats-creds FILE | -nats-nkey FILE]]
//	relayd console-user add -data DIR -username U -name NAME -roles admin -facilities '*' < password
//	relayd console-user add -store nats://host:port[,...] [-nats-creds FILE] -username U ... < password
package main

import (
	// First, before Fyne reads the locale: quiet under C.UTF-8, a service's default.
	_ "github.com/tether-kiosk/tether/internal/plainlocale"

	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tether-kiosk/tether/internal/gctune"
	"github.com/tether-kiosk/tether/internal/logging"
	"github.com/tether-kiosk/tether/internal/natsconn"
	"github.com/tether-kiosk/tether/internal/sdnotify"
	"github.com/tether-kiosk/tether/internal/version"
	"github.com/tether-kiosk/tether/kiosk/boltfile"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/relay/console"
)

// TokenFile is where a generated admin token is kept, inside the data directory.
const TokenFile = "admin-token"

// TokenEnv is the environment variable that may carry the admin token.
const TokenEnv = "RELAYD_ADMIN_TOKEN"

// MinTokenLen is the shortest admin token accepted, from any source.
const MinTokenLen = 16

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "console-user" {
		if err := consoleUser(os.Args[2:], os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "relayd:", err)
			os.Exit(exitStatus(err))
		}
		return
	}
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "relayd:", err)
		os.Exit(exitStatus(err))
	}
}

// exitStatuses is the end of -h.
const exitStatuses = `exit status: 0 after SIGINT/SIGTERM, 1 on a failure, 2 on a bad command line, 3 when relay.db
is damaged (left untouched; restarting will not help: restore it from a backup). A unit file
lists 2 and 3 in RestartPreventExitStatus.`

// exitStatus maps run's error to the process's exit status (see exitStatuses).
func exitStatus(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, boltfile.ErrDamaged):
		return 3
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// usageError is a bad command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usageErrorf(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

type options struct {
	gateways                                 string
	gatewayURL                               string
	data, listen, cert, key, tokenFile, hold string
	insecure, noConsole, secureCookies       bool
	enrollTTL                                time.Duration
	downLogCap                               uint64
	pendingPerAddr                           int
	log                                      logging.Options
	// Contact invitations: sent by SMTP or written to a spool directory.
	smtp, smtpFrom, smtpUser, smtpPassFile, inviteSpool, familyURL string
	smtpTLS                                                        bool
	inviteTTL, inviteRetry                                         time.Duration
	// The store: empty for DIR/relay.db, or NATS servers and their credentials (store.go).
	store string
	nats  natsconn.Flags
	// holdFacilities: hold every facility in the cluster's facility log (relay.Config.FacilityLog).
	holdFacilities bool
	// groupLinger: how long a busy held facility's group commit waits for company (relay.Config.GroupLinger).
	groupLinger time.Duration
	// beside: a command run beside the gateways opens only the streams they made, as they are.
	beside bool
	// debugListen serves net/http/pprof (loopback only), for heap and goroutine profiles.
	debugListen string
	// verifyMaxMiB bounds the store a verify reads whole into memory (relay.Config.VerifyMaxBytes).
	verifyMaxMiB uint64
	// The garbage collector (internal/gctune).
	gc gctune.Options
}

// gcDefaults: relayd's live heap is small and it allocates fast under load; at GOGC=100 the
// collector took some 15-25% of a drain's CPU (docs/BENCHMARKS.md, sixth round). That holds
// only while batches are stored: an idle relay holding 10,000 connections had twice the RSS
// at 400 (docs/SCALE.md, memory per idle terminal), so it runs at 50 when no batch came for
// gcAdaptEvery*5. At 100, 10,000 idle kiosks on two gateways cost 33-36 KiB of RSS each with
// their enrollment (the gateways' mean), at 50 26-28 KiB, for some 2 % more of an idle
// gateway's CPU (docs/SCALE.md, "10,000 idle kiosks, stop 44"). No memory limit by default: a server's memory is the
// operator's to give (-memory-limit-mib).
func gcDefaults() gctune.Options { return gctune.Options{Percent: 400, IdlePercent: 50} }

// gcAdaptEvery is how often relayd looks whether batches are being stored (gctune.Adapt).
const gcAdaptEvery = 2 * time.Second

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("relayd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.data, "data", "", "data directory (holds relay.db and, if generated, admin-token); required")
	gctune.Flags(fs, &o.gc, gcDefaults())
	gctune.IdleFlag(fs, &o.gc, gcDefaults())
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8443", "address to listen on")
	fs.StringVar(&o.cert, "cert", "", "TLS certificate file (PEM); with -key")
	fs.StringVar(&o.key, "key", "", "TLS private key file (PEM); with -cert")
	fs.BoolVar(&o.insecure, "insecure", false, "allow plain HTTP on a non-loopback address (testing only)")
	fs.StringVar(&o.tokenFile, "admin-token-file", "", "file holding the admin API bearer token, mode 0600 (default: $"+TokenEnv+
		", else DIR/"+TokenFile+", generated at the first start)")
	var oldToken string
	fs.StringVar(&oldToken, "admin-token", "", "removed: a token given on the command line shows in ps to every user; use -admin-token-file or $"+TokenEnv)
	fs.StringVar(&o.hold, "hold", string(relay.HoldAll), "outbound review: all (hold every message), none, or facility (each facility decides)")
	fs.DurationVar(&o.enrollTTL, "enroll-ttl", 24*time.Hour, "how long an enrollment code stays valid")
	fs.Uint64Var(&o.downLogCap, "down-log-cap", relay.DefaultDownLogCap,
		"how many downlink numbers of its facility a terminal may lag before it stops holding the facility's log and gets a snapshot when it returns")
	fs.IntVar(&o.pendingPerAddr, "max-pending-per-addr", 8, "connections from one source address allowed between upgrade and welcome (1-64):\n"+
		"raise it for a facility whose kiosks reach the relay through one NAT address")
	fs.BoolVar(&o.noConsole, "no-console", false, "do not serve the staff web console under /console/")
	fs.BoolVar(&o.secureCookies, "console-secure-cookies", false, "mark console cookies Secure even on plain HTTP (TLS ends at a proxy in front)")
	o.log.Register(fs)
	fs.StringVar(&o.smtp, "smtp", "", "SMTP server host:port that contact invitations are sent through (with -smtp-from)")
	fs.StringVar(&o.smtpFrom, "smtp-from", "", "sender address of contact invitations, e.g. \"Tether <invite@example.org>\"")
	fs.StringVar(&o.smtpUser, "smtp-user", "", "SMTP user name (PLAIN auth, over TLS only; password in -smtp-password-file)")
	fs.StringVar(&o.smtpPassFile, "smtp-password-file", "", "file holding the SMTP password, mode 0600")
	fs.BoolVar(&o.smtpTLS, "smtp-starttls", true, "require STARTTLS with the SMTP server")
	fs.StringVar(&o.inviteSpool, "invite-spool", "", "directory to write contact invitations to, one email file each (instead of -smtp)")
	fs.StringVar(&o.familyURL, "family-url", "", "address of this relay's /family/ page as contacts reach it, put in each invitation")
	fs.DurationVar(&o.inviteTTL, "invite-ttl", relay.DefaultInviteTTL, "how long a contact invitation's code stays valid")
	fs.DurationVar(&o.inviteRetry, "invite-retry", 5*time.Minute, "how often invitations that could not be sent are tried again")
	fs.StringVar(&o.store, "store", "", "keep the relay's state in a JetStream stream of this NATS cluster instead of DIR/relay.db:\n"+
		"nats://host:port[,host:port...] (tls:// for TLS); -data still holds the content store")
	fs.StringVar(&o.gateways, "gateways", "", "comma-separated base URLs of every gateway of this relay (wss://gw1:8443,wss://gw2:8443),\n"+
		"announced to terminals so they reconnect to another when one is down (at most 8)")
	fs.StringVar(&o.gatewayURL, "gateway-url", "", "this gateway's own URL, one of -gateways: with -store, each facility's terminals are then\n"+
		"served by one gateway and sent there when they connect elsewhere (docs/SCALE.md \"Facility homes\")")
	o.nats.Register(fs, "-store")
	fs.BoolVar(&o.holdFacilities, "hold-facilities", false, "with -store: hold every facility in the cluster's facility log, so that a facility's\n"+
		"group commit is one log entry rather than its kv writes (docs/SCALE.md \"The per-facility log\");\n"+
		"with several -gateways, each holds its home facilities and needs -gateway-url")
	fs.DurationVar(&o.groupLinger, "group-linger", relay.DefaultGroupLinger, "with -hold-facilities: how long a busy facility's group commit waits for more batches,\n"+
		"so that one log entry carries more of them (0: none; docs/SCALE.md \"Group commits that wait for company\")")
	registerVerifyMax(fs, &o.verifyMaxMiB)
	fs.StringVar(&o.debugListen, "debug-listen", "", "serve Go profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060; off by default")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relayd -data DIR [flags]\n       relayd verify -data DIR|-store URL [-json]   (check a stopped relay's file, or the gateways' stream)\n"+
			"       relayd repair-ids -data DIR|-store URL [-json]   (rebuild the item id records verify names)\n"+
			"       relayd backup -o FILE [-relay URL]   (copy a running relay's store)\n"+
			"       relayd faclog-reset -store URL [-facility ID] [-dry-run]   (after a restore: facility logs that do not follow the kv state)\n"+
			"       relayd console-user add|list|disable|enable -data DIR|-store URL ...   (staff accounts of the web console)\n       relayd -version")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, exitStatuses)
	}
	if err := fs.Parse(args); err != nil {
		return o, usageError{err}
	}
	if fs.NArg() > 0 {
		return o, usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if oldToken != "" {
		return o, usageErrorf("-admin-token is gone (a token on the command line shows in ps): put it in a file for -admin-token-file, or in $%s", TokenEnv)
	}
	if o.data == "" {
		return o, usageErrorf("-data DIR is required")
	}
	if o.pendingPerAddr < 1 || o.pendingPerAddr > 64 {
		return o, usageErrorf("-max-pending-per-addr %d is outside 1..64 (64 is the relay's limit for all addresses together)", o.pendingPerAddr)
	}
	if o.smtp != "" && o.inviteSpool != "" {
		return o, usageErrorf("-smtp and -invite-spool exclude each other")
	}
	if o.smtp != "" && o.smtpFrom == "" {
		return o, usageErrorf("-smtp needs -smtp-from")
	}
	if (o.smtpUser == "") != (o.smtpPassFile == "") {
		return o, usageErrorf("-smtp-user and -smtp-password-file go together")
	}
	if o.inviteTTL <= 0 || o.inviteRetry <= 0 {
		return o, usageErrorf("-invite-ttl and -invite-retry must be positive")
	}
	if err := checkStoreFlags(o); err != nil {
		return o, err
	}
	if o.debugListen != "" && !loopback(o.debugListen) {
		return o, usageErrorf("-debug-listen %s is not a loopback address: profiles show the relay's memory to whoever reads them", o.debugListen)
	}
	if (o.cert == "") != (o.key == "") {
		return o, usageErrorf("-cert and -key go together")
	}
	if o.cert == "" && !o.insecure && !loopback(o.listen) {
		return o, usageErrorf("-listen %s is not a loopback address: give -cert and -key, or -insecure for testing", o.listen)
	}
	return o, nil
}

// loopback reports whether addr (host:port) listens only on a loopback interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// adminToken picks the token: -admin-token-file, then the environment, then DIR/admin-token,
// and else makes one, stores it with mode 0600 and reports it once (shown is true only then).
// Every source must give at least MinTokenLen characters; a token file others can read is refused.
func adminToken(tokenFile string, getenv func(string) string, dir string) (token string, shown bool, err error) {
	if tokenFile != "" {
		t, err := readTokenFile(tokenFile)
		if err != nil {
			return "", false, fmt.Errorf("-admin-token-file: %w", err)
		}
		return t, false, nil
	}
	if v := strings.TrimSpace(getenv(TokenEnv)); v != "" {
		if len(v) < MinTokenLen {
			return "", false, fmt.Errorf("$%s holds a token of %d characters; at least %d are needed", TokenEnv, len(v), MinTokenLen)
		}
		return v, false, nil
	}
	path := filepath.Join(dir, TokenFile)
	if _, err := os.Stat(path); err == nil {
		t, err := readTokenFile(path)
		return t, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("make data directory: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, fmt.Errorf("make admin token: %w", err)
	}
	token = hex.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("store admin token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", false, fmt.Errorf("store admin token: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return "", false, fmt.Errorf("store admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("store admin token: %w", err)
	}
	return token, true, nil
}

// readTokenFile reads a token from path, refusing a file others can read and a short token.
func readTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	t := strings.TrimSpace(string(raw))
	if len(t) < MinTokenLen {
		return "", fmt.Errorf("%s holds a token of %d characters; at least %d are needed", path, len(t), MinTokenLen)
	}
	return t, nil
}

// run serves until ctx ends; ready, if set, receives the listening base URL. `relayd verify`
// checks a stopped relay's file instead, and `relayd repair-ids` rebuilds its damaged item id
// records.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready chan<- string) error {
	if len(args) > 0 && args[0] == "verify" {
		return verify(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "repair-ids" {
		return repairIDs(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "faclog-reset" {
		return faclogReset(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "backup" {
		return backup(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "-version" || args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, "relayd", version.String())
		return nil
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	token, shown, err := adminToken(o.tokenFile, getenv, o.data)
	if err != nil {
		return err
	}
	logger := logging.New(stderr, o.log, getenv)
	gcSet, err := gctune.Apply(o.gc, getenv)
	if err != nil {
		return err
	}
	notifier, err := inviteNotifier(o)
	if err != nil {
		return err
	}
	store, media, flog, closeStore, err := openStore(ctx, o, logging.Logf(logger))
	if err != nil {
		return err
	}
	defer closeStore() // after r.Close, deferred below
	r, err := relay.Open(relay.Config{DataDir: o.data, Store: store, Content: media, Logf: logging.Logf(logger), AdminToken: token,
		HoldPolicy: relay.HoldPolicy(o.hold), EnrollTTL: o.enrollTTL, DownLogCap: o.downLogCap, MaxPendingPerAddr: o.pendingPerAddr,
		Notifier: notifier, InviteTTL: o.inviteTTL, FamilyURL: o.familyURL, Gateways: splitList(o.gateways),
		GatewayURL: o.gatewayURL, VerifyMaxBytes: o.verifyMaxMiB << 20, FacilityLog: flog,
		GroupLinger: o.groupLinger})
	if err != nil {
		return err
	}
	defer r.Close()
	go retryInvitations(ctx, r, o.inviteRetry, logger)
	if m, ok := store.(underRootsMover); ok {
		go moveUnderRoots(ctx, m, logger)
	}
	gcTick := time.NewTicker(gcAdaptEvery)
	defer gcTick.Stop()
	gcCtx, gcStop := context.WithCancel(ctx)
	defer gcStop()
	go gctune.Adapt(gcCtx, o.gc, getenv, r.BatchesStored, gcTick.C)
	if shown {
		// The only time the token is ever written out; the log never carries it.
		fmt.Fprintf(stdout, "relayd: generated admin token (shown once, kept in %s):\n%s\n", filepath.Join(o.data, TokenFile), token)
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	scheme := "http"
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	var handler http.Handler = r
	if !o.noConsole {
		cons, err := console.New(console.Config{Relay: r, Logf: logging.Logf(logger), SecureCookies: o.secureCookies})
		if err != nil {
			ln.Close()
			return err
		}
		mux := http.NewServeMux()
		mux.Handle(console.Prefix, r.CountConsole(cons))
		mux.Handle("/", r)
		handler = mux
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// A whole request, body included (an admin roster may be 32 MiB); POST /v1/enroll has
		// its own, shorter deadline; a websocket is no longer bound by it once upgraded.
		ReadTimeout:    2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	base := scheme + "://" + ln.Addr().String()
	storeAt := filepath.Join(o.data, relay.DBFile)
	if o.store != "" {
		storeAt = o.store // servers only: checkStoreFlags refuses credentials in it
	}
	logger.Info("serving", "url", base, "data", o.data, "store", storeAt, "outbound_review", o.hold, "gc", gcSet)
	if !o.noConsole {
		logger.Info("staff console", "url", base+console.Prefix, "accounts", "relayd console-user add")
	}
	if ready != nil {
		ready <- base
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if o.debugListen != "" {
		stopDebug, err := serveDebug(o.debugListen, logger)
		if err != nil {
			srv.Close()
			r.Close()
			return err
		}
		defer stopDebug()
	}
	// The socket listens: connections queue until Serve takes them, so systemd may start
	// what depends on the relay.
	if _, err := sdnotify.Notify(sdnotify.Ready); err != nil {
		logger.Warn("systemd notify failed", "err", err)
	}
	sdnotify.Status("serving " + base)
	if every := sdnotify.WatchdogEvery(getenv, os.Getpid(), os.Getppid()); every > 0 {
		go watchdog(ctx, r, every, logger)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "cause", context.Cause(ctx))
	_, _ = sdnotify.Notify(sdnotify.Stopping)
	// Websockets are hijacked, so Shutdown does not see them: the relay closes them first.
	cerr := r.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return cerr
}

// watchdog pings systemd each time the store's write queue answers a readiness probe: a
// relay whose writes hang (a stuck commit, a wedged disk) stops pinging and is restarted
// after WatchdogSec. A probe that fails (a full disk) still pings, since a restart would
// not help, and says why in the log and in systemctl status.
func watchdog(ctx context.Context, r *relay.Relay, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		err := r.Ready(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !failing:
			logger.Warn("the store does not take writes", "err", err)
			sdnotify.Status("store not writable: " + err.Error())
		case err == nil && failing:
			logger.Info("the store takes writes again")
			sdnotify.Status("serving")
		}
		failing = err != nil
		_, _ = sdnotify.Notify(sdnotify.Watchdog)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// inviteNotifier is how contact invitations leave the relay: SMTP, a spool directory, or
// nothing (each invitation then waits, listed for staff, until one is configured).
func inviteNotifier(o options) (relay.Notifier, error) {
	switch {
	case o.smtp != "":
		n := relay.SMTPNotifier{Addr: o.smtp, From: o.smtpFrom, StartTLS: o.smtpTLS, RequireTLS: o.smtpTLS}
		if o.smtpUser != "" {
			pass, err := readPasswordFile(o.smtpPassFile)
			if err != nil {
				return nil, err
			}
			n.Username, n.Password = o.smtpUser, pass
		}
		return n, nil
	case o.inviteSpool != "":
		return relay.SpoolNotifier{Dir: o.inviteSpool, From: o.smtpFrom}, nil
	}
	return nil, nil
}

// retryInvitations sends again, every interval, the invitations that could not be sent.
func retryInvitations(ctx context.Context, r *relay.Relay, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent, failed, err := r.RetryInvitations(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("retry invitations", "err", err)
		case sent+failed > 0:
			logger.Info("invitations retried", "sent", sent, "still_failing", failed)
		}
	}
}

// readPasswordFile reads the SMTP password, refusing a file others can read or an empty one.
func readPasswordFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("-smtp-password-file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("-smtp-password-file: %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("-smtp-password-file: %w", err)
	}
	p := strings.TrimRight(string(raw), "\r\n")
	if p == "" {
		return "", fmt.Errorf("-smtp-password-file: %s is empty", path)
	}
	return p, nil
}
