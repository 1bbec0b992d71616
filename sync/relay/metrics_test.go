package relay

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/wire"
)

// scrape reads /metrics over HTTP as Prometheus would and returns the families by name.
func (e *env) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	resp, err := http.Get(e.srv.URL + PathMetrics)
	if err != nil {
		e.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		e.t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the sample of family name whose labels include want (nil: the only one); a
// missing sample is 0, as Prometheus treats a counter not yet created.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.Metric {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

func (e *env) get(path string) (int, string) {
	e.t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsMoveWithSyncTraffic: a scrape after real terminals enrolled, handshook, forwarded
// items (one refused) and staff used the admin API shows every tether_ series move, and no
// label a hostile terminal made up.
func TestMetricsMoveWithSyncTraffic(t *testing.T) {
	e := newEnv(t)
	e.seed()
	before := e.scrape()
	for _, name := range []string{"tether_terminals_enrolled", "tether_terminals_connected", "tether_downlink_backlog_items"} {
		if before[name] == nil {
			t.Fatalf("%s missing from the first scrape", name)
		}
	}
	if v := value(before, "tether_terminals_enrolled", nil); v != 0 {
		t.Fatalf("enrolled before any enrollment = %v", v)
	}

	k1 := e.enroll(wire.ModeKiosk, "")
	k2 := e.enroll(wire.ModeKiosk, "")
	c1 := k1.connect(t, 0)
	c1.waitDown(wire.DownPolicy, nil)
	ack := c1.batch(
		k1.item(wire.UpCharge, charge("A1", "s1", 0, 5)),
		k1.item(wire.UpAudit, kiosk.AuditEvent{ID: "ev1", At: t0, Kind: "login_ok", Actor: "A1"}),
		k1.item("made_up_kind_x", map[string]string{"a": "b"}),
	)
	if ack.Seq != 3 || len(ack.Rejected) != 1 || ack.Rejected[0].Reason != wire.RefuseUnknownKind {
		t.Fatalf("ack = %+v, want 3 with one unknown_kind refusal", ack)
	}
	// A terminal that signs with the wrong key is refused at the handshake.
	bad := *k2
	bad.priv = k1.priv
	c := dial(t, e.wsURL())
	send(t, c, wire.Hello{TerminalID: bad.id, Epoch: bad.epoch, Software: "test"})
	f := read(t, c)
	send(t, c, wire.Auth{Signature: wire.SignAuth(bad.priv, bad.id, f.Challenge.Nonce)})
	expectClose(t, c, 1008, wire.ReasonBadSignature)
	// The relay counts a handshake when its handler returns, which may be after the client
	// has read the close frame.
	testwait.Until(t, "the refused handshake counted", func() bool {
		return value(e.scrape(), "tether_handshakes_total", map[string]string{"result": "refused"}) == 1
	})
	e.must(http.StatusOK, "GET", "/admin/v1/terminals", nil, nil)
	if st, _ := e.callAuth("GET", "/admin/v1/terminals", nil, "Bearer wrong-token-0123456789"); st != http.StatusUnauthorized {
		t.Fatalf("wrong token: status %d", st)
	}

	after := e.scrape()
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tether_terminals_enrolled", nil, 2},
		{"tether_terminals_connected", nil, 1},
		{"tether_items_stored_total", map[string]string{"kind": wire.UpCharge}, 1},
		{"tether_items_stored_total", map[string]string{"kind": wire.UpAudit}, 1},
		{"tether_refusals_total", map[string]string{"reason": wire.RefuseUnknownKind}, 1},
		{"tether_handshakes_total", map[string]string{"result": "ok"}, 1},
		{"tether_handshakes_total", map[string]string{"result": "refused"}, 1},
		{"tether_admin_requests_total", map[string]string{"route": "/admin/v1/terminals", "method": "GET", "code": "200"}, 1},
		{"tether_admin_requests_total", map[string]string{"route": "/admin/v1/terminals", "code": "401"}, 1},
		{"tether_batch_store_seconds", nil, 1},
		{"tether_terminal_connected", map[string]string{"terminal": k1.id, "facility": "north"}, 1},
		{"tether_terminal_connected", map[string]string{"terminal": k2.id}, 0},
	}
	for _, c := range checks {
		if got := value(after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if value(after, "tether_store_write_transactions_total", nil) <= value(before, "tether_store_write_transactions_total", nil) {
		t.Error("tether_store_write_transactions_total did not move")
	}
	// The kiosk has not acknowledged its snapshot: its downlink is the fleet's backlog; the
	// other kiosk, never connected, waits for its own.
	backlog := value(after, "tether_downlink_backlog_items", nil)
	b1 := value(after, "tether_terminal_downlink_backlog_items", map[string]string{"terminal": k1.id})
	if b1 == 0 || backlog < b1 {
		t.Errorf("backlog = %v, kiosk 1's = %v: want kiosk 1's > 0 and within the total", backlog, b1)
	}
	c1.ackDown(c1.lastSeq())
	testwait.Until(t, "the backlog to shrink", func() bool {
		return value(e.scrape(), "tether_terminal_downlink_backlog_items", map[string]string{"terminal": k1.id}) == 0
	})
	// A made-up kind never becomes a label.
	for _, m := range after["tether_items_stored_total"].GetMetric() {
		for _, l := range m.Label {
			if strings.Contains(l.GetValue(), "made_up") {
				t.Errorf("a hostile kind became a label: %v", m)
			}
		}
	}
}

// TestHealthAndReady: /healthz answers; /readyz takes a real write without changing what the
// store holds, and says 503 once the store is closed.
func TestHealthAndReady(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if st, body := e.get(PathHealthz); st != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthz = %d %q", st, body)
	}
	txs := e.r.writeTxs.Load()
	if st, body := e.get(PathReadyz); st != http.StatusOK || body != "ready\n" {
		t.Fatalf("readyz = %d %q", st, body)
	}
	if e.r.writeTxs.Load() != txs+1 {
		t.Fatalf("readyz took %d write transactions, want 1", e.r.writeTxs.Load()-txs)
	}
	// Within a second, a probe is answered again without another write.
	if st, _ := e.get(PathReadyz); st != http.StatusOK || e.r.writeTxs.Load() != txs+1 {
		t.Fatalf("a second probe: status %d, %d writes", st, e.r.writeTxs.Load()-txs)
	}
	e.clock.Advance(2 * readyEvery)
	if st, _ := e.get(PathReadyz); st != http.StatusOK || e.r.writeTxs.Load() != txs+2 {
		t.Fatalf("a later probe: status %d, %d writes, want a second write", st, e.r.writeTxs.Load()-txs)
	}
	rep, err := e.r.Verify()
	if err != nil || !rep.OK {
		t.Fatalf("verify after probes: %+v, %v", rep, err)
	}
	if err := e.r.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.get(PathReadyz); st != http.StatusServiceUnavailable {
		t.Fatalf("readyz after close = %d, want 503", st)
	}
	if st, _ := e.get(PathHealthz); st != http.StatusOK {
		t.Fatalf("healthz after close = %d: the process still answers", st)
	}
}

// TestRelaysKeepTheirOwnCounts: two relays in one process do not share a registry.
func TestRelaysKeepTheirOwnCounts(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	a.must(http.StatusOK, "GET", "/admin/v1/terminals", nil, nil)
	if v := value(b.scrape(), "tether_admin_requests_total", nil); v != 0 {
		t.Fatalf("relay b counts %v admin requests made to relay a", v)
	}
	if v := value(a.scrape(), "tether_admin_requests_total", nil); v != 1 {
		t.Fatalf("relay a counts %v admin requests, want 1", v)
	}
}

// TestDeviceHealthMetrics: a kiosk's health report (kiosk.Health in a device_status item)
// becomes tether_terminal_device_connected per device; a hostile report of many devices
// with long names mints at most kiosk.MaxHealthDevices series of cut names.
func TestDeviceHealthMetrics(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	c := k.connect(t, 0)
	c.batch(k.item(wire.UpDeviceStatus, kiosk.Health{Software: "tether kioskd test", ItemsWaiting: 3, Devices: []kiosk.DeviceHealth{
		{Name: "badge reader", Role: "badge", State: "connected"},
		{Name: "PIN pad", Role: "pinpad", State: "disconnected"},
	}}))
	fams := e.scrape()
	for _, c := range []struct {
		device string
		want   float64
	}{{"badge reader", 1}, {"PIN pad", 0}} {
		if got := value(fams, "tether_terminal_device_connected", map[string]string{"terminal": k.id, "device": c.device}); got != c.want {
			t.Errorf("device %q = %v, want %v", c.device, got, c.want)
		}
	}
	if got := len(fams["tether_terminal_device_connected"].GetMetric()); got != 2 {
		t.Errorf("%d device series, want 2", got)
	}
	if got := value(fams, "tether_terminal_uplink_waiting_items", map[string]string{"terminal": k.id}); got != 3 {
		t.Errorf("items waiting = %v, want 3 from the report", got)
	}

	h := kiosk.Health{}
	for i := 0; i < 50; i++ {
		h.Devices = append(h.Devices, kiosk.DeviceHealth{Name: fmt.Sprintf("%03d-%s", i, strings.Repeat("é", 100)), Role: "badge", State: "connected"})
	}
	c.batch(k.item(wire.UpDeviceStatus, h))
	fams = e.scrape()
	ms := fams["tether_terminal_device_connected"].GetMetric()
	if len(ms) != kiosk.MaxHealthDevices {
		t.Fatalf("%d device series from a hostile report, want %d", len(ms), kiosk.MaxHealthDevices)
	}
	for _, m := range ms {
		for _, l := range m.Label {
			if l.GetName() == "device" && (len(l.GetValue()) > kiosk.MaxHealthNameBytes || !utf8.ValidString(l.GetValue())) {
				t.Errorf("device label %q: longer than %d bytes or not UTF-8", l.GetValue(), kiosk.MaxHealthNameBytes)
			}
		}
	}
}
