package kiosk

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestLayering guards the direction of dependencies across the module: cmd wires everything;
// ui, sync and hardware may use kiosk; kiosk uses none of them; ui never opens bbolt; only cmd
// starts a real Fyne driver.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "github.com/tether-kiosk/tether/...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	const mod = "github.com/tether-kiosk/tether/"
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for _, imp := range p.Imports {
			irel := "" // empty for imports from outside the module, like the standard library's sync/atomic
			if strings.HasPrefix(imp, mod) {
				irel = strings.TrimPrefix(imp, mod)
			}
			switch {
			case strings.HasPrefix(rel, "kiosk") && (strings.HasPrefix(irel, "sync/") || strings.HasPrefix(irel, "hardware/") || strings.HasPrefix(irel, "ui") || strings.HasPrefix(irel, "cmd/")):
				t.Errorf("%s imports %s: the domain must not depend on the layers around it", rel, irel)
			case strings.HasPrefix(rel, "ui") && strings.HasPrefix(imp, "go.etcd.io/bbolt"):
				t.Errorf("%s imports bbolt: screens go through the kiosk domain", rel)
			case !strings.HasPrefix(rel, "cmd/") && imp == "fyne.io/fyne/v2/app":
				t.Errorf("%s imports fyne.io/fyne/v2/app: only cmd/ may start a real driver", rel)
			case (strings.HasPrefix(rel, "hardware") || strings.HasPrefix(rel, "sync/")) && strings.HasPrefix(irel, "ui"):
				t.Errorf("%s imports %s: devices and sync hand updates to the screens, never import them", rel, irel)
			case !strings.HasPrefix(rel, "cmd/") && strings.HasPrefix(irel, "cmd/"):
				t.Errorf("%s imports %s: nothing imports a command", rel, irel)
			}
		}
	}
}
