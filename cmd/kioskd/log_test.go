package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/client"
)

// TestLogLinesNameTheTerminal: with an enrollment in the data directory, each kioskd line
// names the terminal and its facility, in text and in JSON; before one, "unenrolled".
func TestLogLinesNameTheTerminal(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	o := options{dataDir: dir}
	newLogger(&buf, o, func(string) string { return "" }).Info("hello")
	if !strings.Contains(buf.String(), "terminal=unenrolled facility=unenrolled") {
		t.Fatalf("unenrolled line = %q", buf.String())
	}
	raw, _ := json.Marshal(client.Enrollment{TerminalID: "t-77", Facility: "north", Mode: "kiosk", RelayURL: "wss://relay.example:8443", EnrolledAt: time.Now()})
	if err := os.WriteFile(filepath.Join(dir, client.EnrollmentFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if _, err := parseFlagsInto(&o, []string{"-config", "x", "-data", dir, "-log-format", "json"}); err != nil {
		t.Fatal(err)
	}
	newLogger(&buf, o, func(string) string { return "" }).Warn("link down")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON: %q", buf.String())
	}
	if rec["terminal"] != "t-77" || rec["facility"] != "north" || rec["level"] != "WARN" {
		t.Fatalf("line = %v", rec)
	}
}

func parseFlagsInto(o *options, args []string) (options, error) {
	var buf bytes.Buffer
	got, err := parseFlags(args, &buf)
	if err == nil {
		*o = got
	}
	return got, err
}
