package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tether-kiosk/tether/hardware/badge"
	"github.com/tether-kiosk/tether/hardware/sim"
	"github.com/tether-kiosk/tether/internal/testwait"
)

// syncBuffer is written by the command's goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startTest runs "kioskctl test ARGS" until the returned stop is called.
func startTest(t *testing.T, args ...string) (stdout, stderr *syncBuffer, stop func() error) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, append([]string{"test"}, args...), strings.NewReader(""), stdout, stderr) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

// waitLines waits until stdout holds n JSON lines and returns them decoded.
func waitLines(t *testing.T, out *syncBuffer, n int) []map[string]string {
	t.Helper()
	var lines []string
	testwait.UntilSaw(t, fmt.Sprintf("%d lines on stdout", n), func() (bool, string) {
		lines = strings.Split(strings.TrimSpace(out.String()), "\n")
		return len(lines) >= n && lines[0] != "", out.String()
	})
	var got []map[string]string
	for _, l := range lines {
		var m map[string]string
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not a JSON object of strings: %v", l, err)
		}
		got = append(got, m)
	}
	return got
}

func TestTestBadgeJSON(t *testing.T) {
	s, err := sim.NewBadgeReaderWith(badge.EM4100, sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stdout, _, stop := startTest(t, "badge", "--port", s.Path(), "--framing", "em4100", "--json")
	waitLines(t, stdout, 1) // connected
	s.Present("3808980205")
	s.PresentInvalid(badge.InvalidChecksum)
	got := waitLines(t, stdout, 3)
	if err := stop(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	want := []map[string]string{{"kind": "connected"}, {"kind": "badge", "id": "3808980205"}, {"kind": "rejected", "reason": "bad checksum"}}
	for i, w := range want {
		if len(got[i]) != len(w) {
			t.Errorf("line %d = %v, want %v", i, got[i], w)
		}
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("line %d = %v, want %v", i, got[i], w)
			}
		}
	}
}

func TestTestPinPadJSONNeverShowsDigits(t *testing.T) {
	pad, err := sim.NewPinPadWith(sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer pad.Close()
	stdout, stderr, stop := startTest(t, "pinpad", "--port", pad.Path(), "--json")
	waitLines(t, stdout, 1)
	const secret = "739184625017"
	pad.TypePIN(secret)
	pad.Press(sim.Backspace)
	pad.Press(sim.Cancel)
	got := waitLines(t, stdout, 1+len(secret)+1+1+2)
	stop()
	var keys []string
	for _, m := range got {
		if m["kind"] == "key" {
			keys = append(keys, m["key"])
		}
		if _, ok := m["pin"]; ok {
			t.Errorf("line carries a PIN field: %v", m)
		}
	}
	wantKeys := strings.Repeat("digit ", len(secret)) + "enter backspace cancel"
	if strings.Join(keys, " ") != wantKeys {
		t.Errorf("keys %q, want %q", strings.Join(keys, " "), wantKeys)
	}
	all := stdout.String() + stderr.String()
	for i := 0; i+6 <= len(secret); i++ {
		if strings.Contains(all, secret[i:i+6]) {
			t.Fatalf("PIN digits %s printed:\n%s", secret[i:i+6], all)
		}
	}
}

func TestTestDeviceText(t *testing.T) {
	s, err := sim.NewBadgeReaderWith(badge.Wiegand26, sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stdout, stderr, stop := startTest(t, "badge", "--port", s.Path(), "--framing", "wiegand26")
	testwait.UntilSaw(t, "the reader to connect", func() (bool, string) {
		return strings.Contains(stdout.String(), "connected"), stdout.String()
	})
	s.Present("101-04095")
	testwait.UntilSaw(t, "the badge on stdout", func() (bool, string) {
		return strings.Contains(stdout.String(), "badge 101-04095"), stdout.String()
	})
	stop()
	if !strings.Contains(stdout.String(), "badge 101-04095") || !strings.Contains(stderr.String(), "listening on "+s.Path()) {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

func TestTestDeviceBadArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"test"}, "say badge, pinpad or ports"},
		{[]string{"test", "scale"}, `"scale" unknown`},
		{[]string{"test", "badge", "--framing", "em4100"}, "--port is required"},
		{[]string{"test", "badge", "--port", "/dev/x", "--framing", "foo"}, `framing "foo" unknown (want em4100, wiegand26, magstripe, line)`},
		{[]string{"test", "pinpad", "--port", "/dev/x", "--baud", "7"}, "baud 7 unsupported"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), c.args, strings.NewReader(""), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
