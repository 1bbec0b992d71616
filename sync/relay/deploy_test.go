package relay

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// deployDir holds the Prometheus rules and the Grafana dashboard shipped with the relay.
const deployDir = "../../deploy"

var seriesName = regexp.MustCompile(`\btether_[a-z0-9_]+`)

// exportedSeries is every series name a busy relay exports (histograms with their _bucket,
// _sum and _count), after traffic that creates each labelled series at least once.
func exportedSeries(t *testing.T) map[string]bool {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(k.item(wire.UpCharge, charge("A1", "s1", 0, 5)), k.item("no_such_kind", map[string]int{}),
		k.item(wire.UpDeviceStatus, kiosk.Health{Devices: []kiosk.DeviceHealth{{Name: "badge reader", Role: "badge", State: "connected"}}}))
	e.must(http.StatusOK, "GET", "/admin/v1/terminals", nil, nil)
	e.r.CountConsole(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/console/", nil))
	fams, err := e.r.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		n := f.GetName()
		names[n] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[n+s] = true
			}
		}
	}
	return names
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string            `yaml:"alert"`
			Expr   string            `yaml:"expr"`
			For    string            `yaml:"for"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRulesNameExportedSeries: every alert expression names only series the relay
// exports, has a severity, and the two the issue asks for (terminals offline, backlog
// growing) are there. promtool, when installed, checks the PromQL too.
func TestAlertRulesNameExportedSeries(t *testing.T) {
	names := exportedSeries(t)
	path := filepath.Join(deployDir, "prometheus", "tether-alerts.yml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: a rule without alert or expr: %+v", path, r)
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s: alert %s has no severity", path, r.Alert)
			}
			alerts[r.Alert] = true
			checkNames(t, path+": "+r.Alert, r.Expr, names)
		}
	}
	for _, want := range []string{"TetherTerminalOffline", "TetherDownlinkBacklogGrowing"} {
		if !alerts[want] {
			t.Errorf("%s: no alert %s", path, want)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed: PromQL syntax not checked, series names are")
	}
}

// TestDashboardNamesExportedSeries: the Grafana dashboard is valid JSON and every panel's
// query names only exported series.
func TestDashboardNamesExportedSeries(t *testing.T) {
	names := exportedSeries(t)
	path := filepath.Join(deployDir, "grafana", "tether-relay.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(d.Panels) == 0 {
		t.Fatalf("%s: no panels", path)
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", path, p.Title)
		}
		for _, tg := range p.Targets {
			checkNames(t, path+": "+p.Title, tg.Expr, names)
		}
	}
}

func checkNames(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	found := seriesName.FindAllString(expr, -1)
	if len(found) == 0 && !strings.Contains(expr, "up{") {
		t.Errorf("%s: %q names no tether_ series", where, expr)
	}
	for _, n := range found {
		if !names[n] {
			t.Errorf("%s: %q names %s, which the relay does not export", where, expr, n)
		}
	}
}
