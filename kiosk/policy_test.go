package kiosk

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestDefaultPolicyIsValid(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyNamesTheBadField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(p *Policy)
	}{
		{"rate_cents_per_minute", func(p *Policy) { p.RatePerMinute = 0 }},
		{"rate_cents_per_minute", func(p *Policy) { p.RatePerMinute = -5 }},
		{"rate_cents_per_minute", func(p *Policy) { p.RatePerMinute = 100000 }},
		{"max_session", func(p *Policy) { p.MaxSession = Duration(10 * time.Second) }},
		{"idle_timeout", func(p *Policy) { p.IdleTimeout = Duration(2 * time.Hour) }},
		{"idle_warning", func(p *Policy) { p.IdleWarning = p.IdleTimeout }},
		{"max_wrong_pins", func(p *Policy) { p.MaxWrongPINs = 0 }},
		{"max_contacts", func(p *Policy) { p.MaxContacts = -1 }},
		{"max_deposit_cents", func(p *Policy) { p.MaxDeposit = 0 }},
		{"offline_spend_cap_cents", func(p *Policy) { p.OfflineSpendCap = -1 }},
		{"curfew[0].start", func(p *Policy) { p.Curfew = []CurfewWindow{{Weekday: 1, Start: "25:00", End: "06:00"}} }},
		{"curfew[0].weekday", func(p *Policy) { p.Curfew = []CurfewWindow{{Weekday: 9, Start: "22:00", End: "06:00"}} }},
		{"warn_before[1]", func(p *Policy) { p.WarnBefore = []Duration{Duration(time.Minute), Duration(-time.Minute)} }},
		{"monitoring_notice.es", func(p *Policy) { p.MonitoringNotice = map[string]string{"en": "x"} }},
		{"timezone", func(p *Policy) { p.Timezone = "Mars/Olympus" }},
		{"departments[1]", func(p *Policy) { p.Departments = []Department{{ID: "a", Name: "A"}, {ID: "a", Name: "B"}} }},
		{"pricing", func(p *Policy) { p.Pricing = "per_letter" }},
		{"stamp_price_cents", func(p *Policy) { p.StampPrice = -1 }},
		{"stamp_price_cents", func(p *Policy) { p.StampPrice = MaxStampPrice + 1 }},
		{"stamp_price_cents", func(p *Policy) { p.Pricing, p.StampPrice = PricingBoth, 0 }},
		{"stamps_per_photo", func(p *Policy) { p.StampsPerPhoto = -1 }},
		{"stamps_per_photo", func(p *Policy) { p.StampsPerPhoto = 11 }},
	}
	for _, c := range cases {
		p := DefaultPolicy()
		c.edit(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) || KindOf(err) != KindInvalid {
			t.Errorf("%s: Validate() = %v, want an invalid error naming %s", c.field, err, c.field)
		}
	}
}

// A policy stored or sent before stamps existed has no pricing: it keeps today's per-minute
// billing, and a stamp price of 0 is valid while no stamps are charged.
func TestPolicyWithoutPricingKeepsPerMinute(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"rate_cents_per_minute": 7}`))
	if err != nil || p.Pricing != PricingPerMinute || !p.ChargesMinutes() || p.ChargesStamps() || p.StampPrice != 25 {
		t.Fatalf("defaults: %+v %v", p, err)
	}
	old := DefaultPolicy()
	old.Pricing, old.StampPrice, old.StampsPerPhoto = "", 0, 0 // as an old relay record decodes
	if err := old.Validate(); err != nil || !old.ChargesMinutes() || old.StampCost("contact-1", 0) != 0 {
		t.Fatalf("a policy without pricing fields: %v", err)
	}
	both := DefaultPolicy()
	both.Pricing, both.StampPrice, both.StampsPerPhoto = PricingBoth, 30, 2
	if got := both.StampCost("contact-1", 2); got != 150 || !both.ChargesMinutes() {
		t.Fatalf("a letter with 2 photos at 30¢ and 2 stamps a photo = %s, want $1.50", got)
	}
	if got := both.StampCost(both.Departments[0].ID, 0); got != 0 {
		t.Fatalf("a letter to a department costs %s", got)
	}
}

func TestParsePolicyRejectsBrokenJSON(t *testing.T) {
	if _, err := ParsePolicy([]byte(`{"idle_timeout": 5}`)); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Fatalf("err = %v, want a duration complaint", err)
	}
	p, err := ParsePolicy([]byte(`{"rate_cents_per_minute": 7, "cooldown": "45m"}`))
	if err != nil || p.RatePerMinute != 7 || p.Cooldown.D() != 45*time.Minute || p.MaxContacts != 30 {
		t.Fatalf("ParsePolicy = %+v, %v; want overrides over defaults", p, err)
	}
}

func TestCurfewWindows(t *testing.T) {
	p := DefaultPolicy()
	p.Timezone = "UTC"
	// Thursday 22:00 to Friday 06:00.
	p.Curfew = []CurfewWindow{{Weekday: time.Thursday, Start: "22:00", End: "06:00"}}
	thu := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) // a Thursday
	cases := []struct {
		at       time.Time
		in       bool
		boundary time.Time
	}{
		{thu.Add(21*time.Hour + 59*time.Minute), false, thu.Add(22 * time.Hour)},
		{thu.Add(22 * time.Hour), true, thu.Add(30 * time.Hour)},
		{thu.Add(29 * time.Hour), true, thu.Add(30 * time.Hour)},
		{thu.Add(30 * time.Hour), false, thu.Add(7*24*time.Hour + 22*time.Hour)},
	}
	for _, c := range cases {
		in, b := p.CurfewAt(c.at)
		if in != c.in || !b.Equal(c.boundary) {
			t.Errorf("CurfewAt(%v) = %v, %v; want %v, %v", c.at, in, b, c.in, c.boundary)
		}
	}
}

func TestCentsString(t *testing.T) {
	for c, want := range map[Cents]string{0: "$0.00", 5: "$0.05", 1205: "$12.05", -5: "-$0.05"} {
		if got := c.String(); got != want {
			t.Errorf("Cents(%d) = %q, want %q", int64(c), got, want)
		}
	}
}

func TestPINHashes(t *testing.T) {
	h, err := HashPINWith("4821", TestPINParams())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "4821") || !strings.HasPrefix(h, "$argon2id$") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := HashPINWith("4821", TestPINParams())
	if h == h2 {
		t.Fatal("two hashes of one PIN are equal: the salt is not fresh")
	}
	if !VerifyPIN(h, "4821") || VerifyPIN(h, "4822") || VerifyPIN("garbage", "4821") {
		t.Fatal("VerifyPIN gives wrong answers")
	}
	for _, bad := range []string{"", "123", "12a4", "1234567890123"} {
		if _, err := HashPINWith(bad, TestPINParams()); err == nil {
			t.Errorf("PIN %q accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error %q repeats the PIN", err)
		}
	}
}

func FuzzPINHashParse(f *testing.F) {
	h, _ := HashPINWith("4821", TestPINParams())
	f.Add(h)
	f.Add("$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		if ValidatePINHash(s) == nil {
			VerifyPIN(s, "1234") // must not panic or allocate without bound
		}
	})
}

// FuzzParsePolicy: nothing panics, and whatever is accepted is valid and survives a round trip.
func FuzzParsePolicy(f *testing.F) {
	f.Add(`{"rate_cents_per_minute": 7, "cooldown": "45m"}`)
	f.Add(`{"curfew": [{"weekday": 4, "start": "22:00", "end": "06:00"}], "lockdown": true}`)
	f.Add(`{"max_session": "1m", "idle_timeout": "30s", "idle_warning": "10s", "warn_before": ["30s"]}`)
	f.Add(`{"pricing": "both", "stamp_price_cents": 30, "stamps_per_photo": 2}`)
	f.Add(`{"pricing": "per_message", "stamp_price_cents": 0}`)
	f.Add(`{"pricing": "", "stamp_price_cents": 0, "stamps_per_photo": 0}`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy([]byte(s))
		if err != nil {
			if KindOf(err) != KindInvalid {
				t.Fatalf("refusal of %q is not KindInvalid: %v", s, err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted policy is invalid: %v", err)
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePolicy(raw); err != nil {
			t.Fatalf("accepted policy re-encoded as %s is refused: %v", raw, err)
		}
		p.CurfewAt(time.Date(2026, 11, 26, 23, 0, 0, 0, time.UTC))
		// A valid policy never prices a letter above what one charge may carry on the wire.
		if c := p.StampCost("contact-1", 0); c < 0 || c > MaxRatePerMinute || (p.ChargesStamps() && c == 0) {
			t.Fatalf("policy %s prices a letter at %d cents", raw, c)
		}
	})
}

// A stored policy that does not decode, or decodes to values no facility may set, stops the
// terminal at start with a message saying which, and is left in the store for a technician.
func TestStoredPolicyIsCheckedAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		kind Kind
		says string
	}{
		{"garbled", `{"rate_cents_per_minute": `, KindCorrupt, "load policy"},
		{"out of range", `{"rate_cents_per_minute": 0}`, KindInvalid, "rate_cents_per_minute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			if err := r.store.update("damage", func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bMeta)).Put([]byte(kPolicy), []byte(tc.raw))
			}); err != nil {
				t.Fatal(err)
			}
			_, err := NewTerminal(TerminalConfig{Store: r.store, Clock: r.clk, PINParams: TestPINParams()})
			if KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("start over a %s policy: %v, want kind %v naming %q", tc.name, err, tc.kind, tc.says)
			}
			var raw string
			r.store.view(func(tx *bolt.Tx) error {
				raw = string(tx.Bucket([]byte(bMeta)).Get([]byte(kPolicy)))
				return nil
			})
			if raw != tc.raw {
				t.Fatalf("stored policy changed to %q", raw)
			}
		})
	}
}
