package logging

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestTextAndJSON: the flags pick the format and the level; a library line gets its
// component and level; the logger's attributes are on every line.
func TestTextAndJSON(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.Register(fs)
	if err := fs.Parse([]string{"-log-format", "json", "-log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l := New(&buf, o, nil).With("terminal", "t-1", "facility", "north")
	logf := Logf(l)
	logf("relay: terminal %s connected", "t-1")       // info: below -log-level warn
	logf("sync: store batch failed: %v", "disk full") // warn
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want the warning only:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	want := map[string]any{"level": "WARN", "msg": "sync: store batch failed: disk full", "component": "sync", "terminal": "t-1", "facility": "north"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, rec[k], v, lines[0])
		}
	}
}

func TestTextUnderJournal(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Format: Text}, func(k string) string {
		if k == "JOURNAL_STREAM" {
			return "8:1234"
		}
		return ""
	})
	Logf(l)("window shown (%dms after start)", 12)
	line := buf.String()
	if strings.Contains(line, "time=") || !strings.Contains(line, `level=INFO msg="window shown (12ms after start)"`) {
		t.Fatalf("journal line = %q: want no time, level and message", line)
	}
	buf.Reset()
	New(&buf, Options{Format: Text}, func(string) string { return "" }).Info("x")
	if !strings.HasPrefix(buf.String(), "time=") {
		t.Fatalf("plain text line %q has no time", buf.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-log-format", "xml"}, {"-log-level", "loud"}} {
		var o Options
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.Register(fs)
		if err := fs.Parse(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestLevelWords(t *testing.T) {
	for msg, want := range map[string]slog.Level{
		"refused terminal t: bad signature":                 slog.LevelWarn,
		"terminal t connected":                              slog.LevelInfo,
		"stopping: devices closed in 3ms":                   slog.LevelInfo,
		"read downlink position: EOF error":                 slog.LevelWarn,
		"relay: admin GET /admin/v1/terminals -> 401 (2ms)": slog.LevelWarn,
		"relay: admin GET /admin/v1/terminals -> 200 (2ms)": slog.LevelInfo,
	} {
		if got := Level(msg); got != want {
			t.Errorf("Level(%q) = %v, want %v", msg, got, want)
		}
	}
}
