package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/sync/relay"
)

// backup is `relayd backup`: it asks a running relay for a consistent copy of its store
// (GET /admin/v1/backup) and writes it to -o, whole or not at all: the copy goes to a
// temporary file beside -o, is checked (its length, and bbolt's page check), synced, and only
// then renamed into place.
func backup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relayd backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("relay", "https://127.0.0.1:8443", "the running relay's base URL")
	out := fs.String("o", "", "file to write the copy to (made with mode 0600); required")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin token (default: $"+TokenEnv+")")
	caFile := fs.String("ca", "", "PEM certificate(s) to trust for the relay's TLS (an internal CA)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relayd backup -o FILE [-relay URL] [-admin-token-file FILE] [-ca FILE]\n\n"+
			"Copies a running relay's store. To restore: stop relayd, put FILE in place of\n"+
			"DIR/relay.db (owner tether-relay, mode 0600), run relayd verify -data DIR, start relayd.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return usageErrorf("-o FILE is required")
	}
	token := strings.TrimSpace(getenv(TokenEnv))
	if *tokenFile != "" {
		t, err := readTokenFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("-admin-token-file: %w", err)
		}
		token = t
	}
	if token == "" {
		return usageErrorf("no admin token: give -admin-token-file or set $%s", TokenEnv)
	}
	client := &http.Client{}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca %s holds no PEM certificate", *caFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	start := time.Now()
	n, err := fetchBackup(ctx, client, strings.TrimSuffix(*url, "/")+relay.PathBackup, token, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "relayd: backup of %s written to %s (%d bytes in %v)\n", *url, *out, n, time.Since(start).Round(time.Millisecond))
	return nil
}

func fetchBackup(ctx context.Context, client *http.Client, url, token, out string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, fmt.Errorf("backup request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("backup: the relay answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	want, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("backup: the relay sent no length (Content-Length %q)", resp.Header.Get("Content-Length"))
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".part-*")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	n, err := io.Copy(tmp, resp.Body)
	if err != nil {
		return n, fmt.Errorf("backup: cut short after %d of %d bytes: %w", n, want, err)
	}
	if n != want {
		return n, fmt.Errorf("backup: got %d of %d bytes", n, want)
	}
	if err := tmp.Sync(); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if err := checkCopy(tmp.Name()); err != nil {
		return n, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	ok = true
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		_ = d.Sync() // the rename survives a crash
		d.Close()
	}
	return n, nil
}

// checkCopy opens the copy read-only and runs bbolt's page check on it.
func checkCopy(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("backup: the copy does not open: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("backup: the copy fails the page check: %w", errors.Join(errs...))
		}
		return nil
	})
}
