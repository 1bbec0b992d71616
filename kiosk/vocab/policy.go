package vocab

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Policy is every rule a facility sets, in one validated place.
type Policy struct {
	FacilityName string `json:"facility_name"`
	// Timezone is the IANA zone curfew windows are read in ("" means the terminal's local zone).
	Timezone string `json:"timezone"`

	RatePerMinute Cents    `json:"rate_cents_per_minute"`
	MaxSession    Duration `json:"max_session"`
	IdleTimeout   Duration `json:"idle_timeout"`
	IdleWarning   Duration `json:"idle_warning"` // how long before an idle logout "Are you still there?" shows
	Cooldown      Duration `json:"cooldown"`
	// IdleCooldown replaces Cooldown after a session the idle timeout ended: walking away
	// from the terminal should not cost the full wait a chosen logout does.
	IdleCooldown Duration `json:"idle_cooldown"`
	// WarnBefore lists how long before a forced end the session warns, e.g. 5m and 1m.
	WarnBefore []Duration `json:"warn_before"`

	MaxWrongPINs int      `json:"max_wrong_pins"`
	Lockout      Duration `json:"lockout"`

	MaxContacts     int `json:"max_contacts"`
	MaxMessageChars int `json:"max_message_chars"`
	// DraftSaveEvery bounds how often a draft is written while the inmate types.
	DraftSaveEvery Duration `json:"draft_save_every"`
	// StallThreshold is how long the terminal may freeze before the minute it froze in is credited.
	StallThreshold Duration `json:"stall_threshold"`

	// OfflineSpendCap bounds what one inmate may spend on this terminal while it has not synced.
	OfflineSpendCap Cents `json:"offline_spend_cap_cents"`
	// MaxDeposit refuses absurd deposits outright.
	MaxDeposit Cents `json:"max_deposit_cents"`

	Curfew   []CurfewWindow `json:"curfew"`
	Lockdown bool           `json:"lockdown"`

	// MonitoringNotice is shown at every login, by language ("en", "es").
	MonitoringNotice map[string]string `json:"monitoring_notice"`
	ScrambleKeypad   bool              `json:"scramble_keypad"`
	Departments      []Department      `json:"departments"`

	// FreeServices lets an inmate whose balance (or offline spending cap) cannot pay for a
	// minute log in anyway, to an unbilled session for these only: FreeDepartments (write to
	// the departments: the default, as TRULINCS makes requests to staff free) and
	// FreeReadMail (read the inbox). Empty: too little money refuses the login before the
	// PIN. PREA reports are free whatever this says.
	FreeServices []string `json:"free_services"`

	// Pricing is how letters are paid for: PricingPerMinute (TRULINCS: the session's minutes,
	// today's only mode and what "" means), PricingPerMessage (JPay: a stamp per letter, the
	// session itself unbilled) or PricingBoth.
	Pricing string `json:"pricing"`
	// StampPrice is one stamp, charged per letter to a contact when Pricing charges stamps.
	// Letters to departments and PREA reports never cost a stamp.
	StampPrice Cents `json:"stamp_price_cents"`
	// StampsPerPhoto is how many stamps each photo attached to a letter adds (photos are not
	// sent yet: every letter counts 0 photos today).
	StampsPerPhoto int `json:"stamps_per_photo"`
	// MaxPhotosPerLetter bounds the photos of one inbound letter (0: MaxLetterPhotos, JPay's
	// 5; never more). Read it with PhotosPerLetter.
	MaxPhotosPerLetter int `json:"max_photos_per_letter"`

	// PrintPagePrice is one printed page on the facility printer (0: printing is free), and
	// MaxPrintPages the most pages one print job may have (0: printing is off); print.go.
	PrintPagePrice Cents `json:"print_page_price_cents"`
	MaxPrintPages  int   `json:"max_print_pages"`
	// LibraryMinutesPerDay bounds the minutes an inmate may spend in the library (browsing,
	// listening, reading) per day, in the policy's timezone (TRULINCS allows 60); 0 means no
	// limit. Metered per inmate across terminals (Terminal.UseLibraryMinute, ItemLibraryUse).
	LibraryMinutesPerDay int `json:"library_minutes_per_day"`
	// QuizCreditCents and QuizCreditMinutes are what a passed quiz earns, once per inmate and
	// quiz, as a ledger credit the relay grants after grading the attempt itself: cents, plus
	// minutes valued at rate_cents_per_minute. Both 0 (the default): quizzes earn nothing.
	QuizCreditCents   Cents `json:"quiz_credit_cents"`
	QuizCreditMinutes int   `json:"quiz_credit_minutes"`
	// PhotoKeepDays is how many days a tablet keeps the photos of a letter, counted from the
	// letter's date (0: until the person deletes them). A kiosk keeps none past a session.
	PhotoKeepDays int `json:"photo_keep_days"`
}

// MaxLibraryMinutesPerDay bounds Policy.LibraryMinutesPerDay (a whole day).
const MaxLibraryMinutesPerDay = 24 * 60

// QuizCredit is what a passed quiz earns under p, at most MaxQuizCredit.
func (p Policy) QuizCredit() Cents {
	return min(p.QuizCreditCents+Cents(p.QuizCreditMinutes)*p.RatePerMinute, MaxQuizCredit)
}

// Pricing modes (Policy.Pricing).
const (
	PricingPerMinute  = "per_minute"
	PricingPerMessage = "per_message"
	PricingBoth       = "both"
)

// MaxStampPrice refuses absurd stamp prices; a letter's stamps, photos included, must also fit
// the largest single charge the wire carries (MaxRatePerMinute cents).
const MaxStampPrice Cents = 100

// MaxStampsPerPhoto bounds Policy.StampsPerPhoto.
const MaxStampsPerPhoto = 10

// ChargesMinutes reports whether sessions are billed by the minute.
func (p Policy) ChargesMinutes() bool { return p.Pricing != PricingPerMessage }

// ChargesStamps reports whether letters to contacts cost stamps.
func (p Policy) ChargesStamps() bool {
	return p.Pricing == PricingPerMessage || p.Pricing == PricingBoth
}

// StampCost is what a letter to peer with photos photos costs under p: nothing unless p charges
// stamps, nothing to a department or the PREA channel (free services), else one stamp plus
// StampsPerPhoto for each photo.
func (p Policy) StampCost(peer string, photos int) Cents {
	if !p.ChargesStamps() || peer == PREAChannel || peer == "" {
		return 0
	}
	for _, d := range p.Departments {
		if d.ID == peer {
			return 0
		}
	}
	return p.StampPrice * Cents(1+max(photos, 0)*p.StampsPerPhoto)
}

// Services a policy may make free (Policy.FreeServices).
const (
	FreeDepartments = "departments"
	FreeReadMail    = "read_mail"
)

// Free reports whether the policy makes service free for an inmate who cannot pay.
func (p Policy) Free(service string) bool {
	for _, s := range p.FreeServices {
		if s == service {
			return true
		}
	}
	return false
}

// CooldownAfter is how long an inmate waits after a session that ended for reason.
func (p Policy) CooldownAfter(reason Reason) time.Duration {
	if reason == EndIdle {
		return p.IdleCooldown.D()
	}
	return p.Cooldown.D()
}

// CurfewWindow closes the terminals on one weekday between Start and End ("22:00", "06:00");
// an End before Start runs past midnight into the next day.
type CurfewWindow struct {
	Weekday time.Weekday `json:"weekday"`
	Start   string       `json:"start"`
	End     string       `json:"end"`
}

// Department is a facility office an inmate may write to without a contact slot or charge.
type Department struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// MaxRatePerMinute refuses absurd rates: no facility charges more than a dollar a minute.
const MaxRatePerMinute Cents = 100

// MaxDepositLimit is the largest max_deposit_cents a policy may set ($10,000), and so the
// largest deposit a terminal applies from the relay whatever its policy says now.
const MaxDepositLimit Cents = 10_000_00

// DefaultPolicy is what a terminal uses before the facility says otherwise (TRULINCS-like).
func DefaultPolicy() Policy {
	return Policy{
		FacilityName:    "Tether Demo Facility",
		RatePerMinute:   5,
		MaxSession:      Duration(60 * time.Minute),
		IdleTimeout:     Duration(3 * time.Minute),
		IdleWarning:     Duration(30 * time.Second),
		Cooldown:        Duration(30 * time.Minute),
		IdleCooldown:    Duration(5 * time.Minute),
		WarnBefore:      []Duration{Duration(5 * time.Minute), Duration(time.Minute)},
		MaxWrongPINs:    5,
		Lockout:         Duration(15 * time.Minute),
		MaxContacts:     30,
		MaxMessageChars: 13000,
		DraftSaveEvery:  Duration(3 * time.Second),
		StallThreshold:  Duration(10 * time.Second),
		OfflineSpendCap: 60 * 5,
		MaxDeposit:      100000,
		MonitoringNotice: map[string]string{
			"en": "This system is monitored. Messages you send and receive may be read by facility staff. By continuing you accept this.",
			"es": "Este sistema está vigilado. El personal puede leer los mensajes que envíe y reciba. Al continuar, usted lo acepta.",
		},
		Departments: []Department{
			{ID: "dept-medical", Name: "Medical"},
			{ID: "dept-chaplain", Name: "Chaplain"},
			{ID: "dept-education", Name: "Education"},
			{ID: "dept-records", Name: "Records"},
		},
		FreeServices:         []string{FreeDepartments},
		Pricing:              PricingPerMinute,
		StampPrice:           25,
		StampsPerPhoto:       1,
		MaxPhotosPerLetter:   MaxLetterPhotos,
		LibraryMinutesPerDay: 60,
		PrintPagePrice:       15,
		MaxPrintPages:        20,
	}
}

// Validate reports the first bad value, naming its field.
func (p Policy) Validate() error {
	bad := func(field, format string, args ...any) error {
		return errInvalid("policy", "%s: %s", field, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(p.FacilityName) == "" {
		return bad("facility_name", "must not be empty")
	}
	if p.Timezone != "" {
		if _, err := time.LoadLocation(p.Timezone); err != nil {
			return bad("timezone", "unknown zone %q", p.Timezone)
		}
	}
	if p.RatePerMinute <= 0 || p.RatePerMinute > MaxRatePerMinute {
		return bad("rate_cents_per_minute", "%d is outside 1..%d", p.RatePerMinute, MaxRatePerMinute)
	}
	if d := p.MaxSession.D(); d < time.Minute || d > 24*time.Hour {
		return bad("max_session", "%v is outside 1m..24h", d)
	}
	if d := p.IdleTimeout.D(); d < 30*time.Second || d > p.MaxSession.D() {
		return bad("idle_timeout", "%v is outside 30s..max_session", d)
	}
	if d := p.IdleWarning.D(); d < 0 || d >= p.IdleTimeout.D() {
		return bad("idle_warning", "%v must be shorter than idle_timeout", d)
	}
	if d := p.Cooldown.D(); d < 0 || d > 24*time.Hour {
		return bad("cooldown", "%v is outside 0..24h", d)
	}
	if d := p.IdleCooldown.D(); d < 0 || d > 24*time.Hour {
		return bad("idle_cooldown", "%v is outside 0..24h", d)
	}
	for i, w := range p.WarnBefore {
		if w.D() <= 0 || w.D() >= p.MaxSession.D() {
			return bad(fmt.Sprintf("warn_before[%d]", i), "%v must be between 0 and max_session", w.D())
		}
	}
	if p.MaxWrongPINs < 1 || p.MaxWrongPINs > 100 {
		return bad("max_wrong_pins", "%d is outside 1..100", p.MaxWrongPINs)
	}
	if d := p.Lockout.D(); d < 0 || d > 7*24*time.Hour {
		return bad("lockout", "%v is outside 0..168h", d)
	}
	if p.MaxContacts < 1 || p.MaxContacts > 1000 {
		return bad("max_contacts", "%d is outside 1..1000", p.MaxContacts)
	}
	if p.MaxMessageChars < 1 || p.MaxMessageChars > 100000 {
		return bad("max_message_chars", "%d is outside 1..100000", p.MaxMessageChars)
	}
	if d := p.DraftSaveEvery.D(); d <= 0 || d > time.Minute {
		return bad("draft_save_every", "%v is outside 0..1m", d)
	}
	if d := p.StallThreshold.D(); d < time.Second || d > 10*time.Minute {
		return bad("stall_threshold", "%v is outside 1s..10m", d)
	}
	if p.OfflineSpendCap < 0 || p.OfflineSpendCap > p.MaxDeposit {
		return bad("offline_spend_cap_cents", "%d is outside 0..max_deposit_cents", p.OfflineSpendCap)
	}
	if p.MaxDeposit <= 0 || p.MaxDeposit > MaxDepositLimit {
		return bad("max_deposit_cents", "%d is outside 1..%d", p.MaxDeposit, MaxDepositLimit)
	}
	for i, w := range p.Curfew {
		field := fmt.Sprintf("curfew[%d]", i)
		if w.Weekday < time.Sunday || w.Weekday > time.Saturday {
			return bad(field+".weekday", "%d is not a weekday (0=Sunday..6=Saturday)", w.Weekday)
		}
		s, err := parseClock(w.Start)
		if err != nil {
			return bad(field+".start", "%v", err)
		}
		e, err := parseClock(w.End)
		if err != nil {
			return bad(field+".end", "%v", err)
		}
		if s == e {
			return bad(field, "start and end are both %s", w.Start)
		}
	}
	for _, lang := range Languages() {
		if strings.TrimSpace(p.MonitoringNotice[lang]) == "" {
			return bad("monitoring_notice."+lang, "must not be empty")
		}
	}
	free := map[string]bool{}
	for i, s := range p.FreeServices {
		if s != FreeDepartments && s != FreeReadMail {
			return bad(fmt.Sprintf("free_services[%d]", i), "%q is not %q or %q", s, FreeDepartments, FreeReadMail)
		}
		if free[s] {
			return bad(fmt.Sprintf("free_services[%d]", i), "%q is listed twice", s)
		}
		free[s] = true
	}
	switch p.Pricing {
	case "", PricingPerMinute, PricingPerMessage, PricingBoth:
	default:
		return bad("pricing", "%q is not %q, %q or %q", p.Pricing, PricingPerMinute, PricingPerMessage, PricingBoth)
	}
	if p.StampPrice < 0 || p.StampPrice > MaxStampPrice {
		return bad("stamp_price_cents", "%d is outside 0..%d", p.StampPrice, MaxStampPrice)
	}
	if p.ChargesStamps() && p.StampPrice == 0 {
		return bad("stamp_price_cents", "must be at least 1 when pricing is %q", p.Pricing)
	}
	if p.StampsPerPhoto < 0 || p.StampsPerPhoto > MaxStampsPerPhoto {
		return bad("stamps_per_photo", "%d is outside 0..%d", p.StampsPerPhoto, MaxStampsPerPhoto)
	}
	if p.MaxPhotosPerLetter < 0 || p.MaxPhotosPerLetter > MaxLetterPhotos {
		return bad("max_photos_per_letter", "%d is outside 0..%d", p.MaxPhotosPerLetter, MaxLetterPhotos)
	}
	if err := p.validatePrint(bad); err != nil {
		return err
	}
	if p.LibraryMinutesPerDay < 0 || p.LibraryMinutesPerDay > MaxLibraryMinutesPerDay {
		return bad("library_minutes_per_day", "%d is outside 0..%d", p.LibraryMinutesPerDay, MaxLibraryMinutesPerDay)
	}
	if p.QuizCreditCents < 0 || p.QuizCreditCents > MaxQuizCredit {
		return bad("quiz_credit_cents", "%d is outside 0..%d", p.QuizCreditCents, MaxQuizCredit)
	}
	if p.QuizCreditMinutes < 0 || Cents(p.QuizCreditMinutes)*p.RatePerMinute > MaxQuizCredit {
		return bad("quiz_credit_minutes", "%d minutes at the rate is outside 0..%d cents", p.QuizCreditMinutes, MaxQuizCredit)
	}
	if p.QuizCreditCents+Cents(p.QuizCreditMinutes)*p.RatePerMinute > MaxQuizCredit {
		return bad("quiz_credit_cents", "with quiz_credit_minutes, more than %d cents", MaxQuizCredit)
	}
	if p.PhotoKeepDays < 0 || p.PhotoKeepDays > MaxPhotoKeepDays {
		return bad("photo_keep_days", "%d is outside 0..%d", p.PhotoKeepDays, MaxPhotoKeepDays)
	}
	seen := map[string]bool{}
	for i, d := range p.Departments {
		if d.ID == "" || d.Name == "" || seen[d.ID] {
			return bad(fmt.Sprintf("departments[%d]", i), "needs a unique id and a name")
		}
		seen[d.ID] = true
	}
	return nil
}

// Location is the zone curfew windows are read in.
func (p Policy) Location() *time.Location {
	if p.Timezone == "" {
		return time.Local
	}
	if loc, err := time.LoadLocation(p.Timezone); err == nil {
		return loc
	}
	return time.Local
}

// CurfewAt reports whether t falls in a curfew window and, if so, when that window ends;
// otherwise it reports when the next window starts within a week (zero if none).
func (p Policy) CurfewAt(t time.Time) (in bool, boundary time.Time) {
	t = t.In(p.Location())
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	var next time.Time
	// Windows that start yesterday may still be open; look from yesterday to a week ahead.
	for offset := -1; offset <= 7; offset++ {
		d := day.AddDate(0, 0, offset)
		for _, w := range p.Curfew {
			if d.Weekday() != w.Weekday {
				continue
			}
			s, _ := parseClock(w.Start)
			e, _ := parseClock(w.End)
			start := d.Add(s)
			end := d.Add(e)
			if e <= s {
				end = end.AddDate(0, 0, 1)
			}
			if !t.Before(start) && t.Before(end) {
				return true, end
			}
			if start.After(t) && (next.IsZero() || start.Before(next)) {
				next = start
			}
		}
	}
	return false, next
}

func parseClock(s string) (time.Duration, error) {
	var h, m int
	if _, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil || len(s) != 5 || h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day like 22:00", s)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

// ParsePolicy reads a policy from JSON over the defaults and validates it.
func ParsePolicy(data []byte) (Policy, error) {
	p := DefaultPolicy()
	if err := json.Unmarshal(data, &p); err != nil {
		return Policy{}, errInvalid("policy", "parse: %v", err)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Duration is a time.Duration written as "30m" in JSON.
type Duration time.Duration

// D converts to time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}
