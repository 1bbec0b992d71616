package status

import (
	"encoding/json"
	"strings"
	"testing"
)

// The JSON a technician reads from kioskctl status --json: a PIN pad's key count never shows
// as accepted frames, rejections keep their reasons and add up, and an unknown device is not
// connected.
func TestDeviceAsKioskctlShowsIt(t *testing.T) {
	pad := Device{Name: "PIN pad", Role: "pinpad", State: DeviceConnected, Keys: 12}
	reader := Device{Name: "badge reader", Role: "badge", State: DeviceUnknown, Accepted: 3,
		Rejected: map[string]uint64{"checksum": 2, "too short": 1}}
	if !pad.Connected() || reader.Connected() {
		t.Fatalf("connected: pad %v, reader in state %q %v", pad.Connected(), reader.State, reader.Connected())
	}
	if got := reader.RejectedTotal(); got != 3 {
		t.Fatalf("rejected total = %d, want 3", got)
	}
	raw, err := json.Marshal(pad)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(raw); !strings.Contains(s, `"keys":12`) || !strings.Contains(s, `"accepted":0`) || strings.Contains(s, "disconnected_since") {
		t.Fatalf("PIN pad as JSON: %s", s)
	}
	raw, _ = json.Marshal(reader)
	if s := string(raw); !strings.Contains(s, `"rejected":{"checksum":2,"too short":1}`) || !strings.Contains(s, `"state":"unknown"`) {
		t.Fatalf("badge reader as JSON: %s", s)
	}
}
