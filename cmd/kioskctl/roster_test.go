package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

func kioskctl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

// writeRoster writes a roster file whose PIN hashes come from `kioskctl hash-pin`.
func writeRoster(t *testing.T, dir, name string, pins map[string]string, edit func(m map[string]any)) string {
	t.Helper()
	hash := func(id string) string {
		h, err := hashPIN(t, pins[id], cheap...)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	m := map[string]any{
		"inmates": []map[string]any{
			{"id": "I-1", "name": "Ana Ruiz", "badges": []string{"B-1001"}, "pin_hash": hash("I-1"), "language": "es", "messaging": true},
			{"id": "I-2", "name": "Ben Ode", "badges": []string{"B-2001"}, "pin_hash": hash("I-2"), "status": "suspended"},
		},
		"technicians": []map[string]any{
			{"id": "T-1", "name": "Sam Lee", "badges": []string{"T-9001"}, "pin_hash": hash("T-1"), "role": "installer"},
		},
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var pins = map[string]string{"I-1": "739158264027", "I-2": "864201975311", "T-1": "913572468024"}

func TestRosterImportThenLogin(t *testing.T) {
	data := t.TempDir()
	file := writeRoster(t, t.TempDir(), "roster.json", pins, nil)
	out, err := kioskctl(t, "", "roster", "import", "--data", data, file)
	if err != nil || !strings.Contains(out, "imported 2 inmates and 1 technicians from roster.json") {
		t.Fatalf("roster import: %q, %v", out, err)
	}
	out, err = kioskctl(t, "", "roster", "list", "--data", data)
	if err != nil || !strings.Contains(out, "Ana Ruiz") || !strings.Contains(out, "B-2001") ||
		!strings.Contains(out, "suspended") || !strings.Contains(out, "installer") || strings.Contains(out, "argon2") {
		t.Fatalf("roster list: %q, %v", out, err)
	}

	// The terminal now knows the people and their PINs.
	s, err := kiosk.OpenStore(data, kiosk.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The import is audited under the Unix user who ran it, like every other kioskctl change.
	if ev, err := s.RecentAudit(10, func(ev kiosk.AuditEvent) bool { return ev.Kind == "roster_imported" }); err != nil ||
		len(ev) != 1 || ev[0].Actor != actorName() {
		t.Fatalf("roster_imported audit: %+v, %v", ev, err)
	}
	term, err := kiosk.NewTerminal(kiosk.TerminalConfig{Store: s, Clock: clock.NewReal(), PINParams: kiosk.TestPINParams()})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := term.EnterPIN("T-9001", pins["T-1"]); err != nil || p.PersonID != "T-1" {
		t.Fatalf("technician login after import: %+v, %v", p, err)
	}
	if _, err := term.EnterPIN("B-2001", pins["I-2"]); kiosk.ReasonOf(err) != kiosk.ReasonSuspended {
		t.Fatalf("suspended inmate after import: %v", err)
	}
	if in, err := term.Inmate("I-1"); err != nil || in.Language != "es" || in.Status != kiosk.StatusActive || !in.Messaging {
		t.Fatalf("Inmate(I-1) after import: %+v, %v", in, err)
	}
}

func TestRosterImportRefusesBadFiles(t *testing.T) {
	data := t.TempDir()
	files := t.TempDir()
	// A bad file is refused before the store is even opened.
	bad := writeRoster(t, files, "bad.json", pins, func(m map[string]any) {
		m["inmates"].([]map[string]any)[1]["badges"] = []string{"T-9001"}
	})
	_, err := kioskctl(t, "", "roster", "import", "--data", data, bad)
	want := `bad.json: technicians[0].badges[0]: badge "T-9001" already belongs to inmate I-2`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("import of a bad file: %v; want %q", err, want)
	}
	if _, err := os.Stat(filepath.Join(data, kiosk.StoreFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused file created the store: %v", err)
	}

	good := writeRoster(t, files, "good.json", pins, nil)
	if _, err := kioskctl(t, "", "roster", "import", "--data", data, good); err != nil {
		t.Fatal(err)
	}
	before, _ := kioskctl(t, "", "roster", "list", "--data", data)
	// Valid on its own, but clashing with what the store holds: nothing of it is kept.
	clash := writeRoster(t, files, "clash.json", map[string]string{"I-1": "1111", "I-2": "2222", "T-1": "3333"}, func(m map[string]any) {
		ins := m["inmates"].([]map[string]any)
		ins[0]["id"], ins[0]["badges"] = "I-7", []string{"B-7001"}
		ins[1]["id"], ins[1]["badges"] = "I-8", []string{"B-1001"}
		m["technicians"] = []map[string]any{}
	})
	_, err = kioskctl(t, "", "roster", "import", "--data", data, clash)
	want = `clash.json: inmates[1].badges[0]: badge "B-1001" already belongs to inmate I-1`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("import of a clashing file: %v; want %q", err, want)
	}
	after, _ := kioskctl(t, "", "roster", "list", "--data", data)
	if before != after || strings.Contains(after, "I-7") {
		t.Fatalf("a refused import changed the roster:\n%s\n%s", before, after)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"roster", "import", "--data", data, filepath.Join(files, "missing.json")}, "no such file"},
		{[]string{"roster", "import", "--data", data}, "exactly one FILE"},
		{[]string{"roster"}, "say import or list"},
		{[]string{"roster", "export"}, `unknown subcommand "export"`},
	} {
		if _, err := kioskctl(t, "", c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("kioskctl %v = %v; want %q", c.args, err, c.want)
		}
	}
}

func TestRosterImportFromStdin(t *testing.T) {
	data := t.TempDir()
	raw, err := os.ReadFile(writeRoster(t, t.TempDir(), "r.json", pins, nil))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kioskctl(t, string(raw), "roster", "import", "--data", data, "-"); err != nil || !strings.Contains(out, "from stdin") {
		t.Fatalf("import from stdin: %q, %v", out, err)
	}
}
