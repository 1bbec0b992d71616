package relay

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
)

// policyJSON is the whole default policy as a JSON object, changed by change.
func policyJSON(t *testing.T, change func(map[string]any)) string {
	t.Helper()
	raw, err := json.Marshal(kiosk.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(m)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// PUT .../policy takes the whole policy. A body that leaves fields out is refused with 400,
// naming every missing field, and changes nothing (it used to reset them to the defaults: an
// administrator raising the rate silently lost the facility's curfew and contact limit).
func TestPolicyPutRequiresWholePolicy(t *testing.T) {
	e := newEnv(t)
	e.seed() // north: MaxContacts 3, MaxMessageChars 200
	var before kiosk.Policy
	e.must(http.StatusOK, "GET", "/admin/v1/facilities/north/policy", nil, &before)
	before.Curfew = []kiosk.CurfewWindow{{Weekday: 1, Start: "22:00", End: "06:00"}}
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/policy", before, &before)

	status, raw := e.call("PUT", "/admin/v1/facilities/north/policy", `{"facility_name":"North","rate_cents_per_minute":7}`)
	var eb ErrorBody
	if err := json.Unmarshal(raw, &eb); err != nil || status != http.StatusBadRequest {
		t.Fatalf("partial policy: %d %s, want 400", status, raw)
	}
	if eb.Field != "timezone" {
		t.Errorf("field = %q, want the first missing field, timezone", eb.Field)
	}
	for _, name := range []string{"timezone", "max_session", "curfew", "max_contacts", "monitoring_notice", "departments"} {
		if !strings.Contains(eb.Error, name) {
			t.Errorf("error %q does not name missing field %s", eb.Error, name)
		}
	}
	for _, name := range []string{"facility_name", "rate_cents_per_minute"} {
		if strings.Contains(eb.Error, name+",") || strings.HasSuffix(eb.Error, name) {
			t.Errorf("error %q names %s, which was given", eb.Error, name)
		}
	}
	var after kiosk.Policy
	e.must(http.StatusOK, "GET", "/admin/v1/facilities/north/policy", nil, &after)
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("a refused PUT changed the policy:\n got %+v\nwant %+v", after, before)
	}

	// One field missing from an otherwise whole policy is named alone.
	status, raw = e.call("PUT", "/admin/v1/facilities/north/policy", policyJSON(t, func(m map[string]any) { delete(m, "curfew") }))
	if status != http.StatusBadRequest || !strings.Contains(string(raw), `"field": "curfew"`) {
		t.Fatalf("policy without curfew: %d %s", status, raw)
	}

	// The whole policy, changed in one place, changes exactly that place.
	after.RatePerMinute = 7
	var put kiosk.Policy
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/policy", after, &put)
	before.RatePerMinute = 7
	if !reflect.DeepEqual(put, before) {
		t.Fatalf("whole policy PUT:\n got %+v\nwant %+v", put, before)
	}
	// Empty lists are a whole policy too: no curfew, no departments.
	e.must(http.StatusOK, "PUT", "/admin/v1/facilities/north/policy",
		policyJSON(t, func(m map[string]any) { m["curfew"] = []any{}; m["departments"] = nil }), &put)
	if len(put.Curfew) != 0 || len(put.Departments) != 0 {
		t.Fatalf("policy with empty lists = %+v", put)
	}
}
