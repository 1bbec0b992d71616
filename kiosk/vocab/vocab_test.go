package vocab

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The relay refuses a notice by the rule a terminal shows it by: bytes, not characters.
func TestNoticeTextIsMeasuredInBytes(t *testing.T) {
	for _, tc := range []struct {
		text string
		ok   bool
	}{
		{"Kiosks close at 21:00", true},
		{strings.Repeat("ñ", 1000), true}, // 2000 bytes
		{strings.Repeat("ñ", 1001), false},
		{strings.Repeat("a", MaxNoticeText+1), false},
		{" \n\t", false},
	} {
		if err := ValidateNoticeText(tc.text); (err == nil) != tc.ok {
			t.Errorf("ValidateNoticeText(%d bytes) = %v, want ok %v", len(tc.text), err, tc.ok)
		}
	}
}

// LetterTooLong, which the relay uses to refuse a letter as too large, counts as
// ValidateLetter, which the terminal's Send uses: a letter it calls too long, Send refuses too,
// and one at the limit in multi-byte characters passes both.
func TestLetterTooLongCountsAsValidateLetter(t *testing.T) {
	const limit = 10
	for _, body := range []string{strings.Repeat("é", limit), strings.Repeat("é", limit+1), strings.Repeat("a", limit+1)} {
		long := LetterTooLong(body, limit)
		err := ValidateLetter(body, "", limit)
		if long != (err != nil) {
			t.Errorf("%q: LetterTooLong %v but ValidateLetter %v", body, long, err)
		}
		if long && KindOf(err) != KindInvalid {
			t.Errorf("%q: ValidateLetter kind %v, want invalid", body, KindOf(err))
		}
	}
}

// A roster person's fault is named by its JSON path, as the relay answers an admin and a
// terminal reports a technician's file.
func TestRosterFieldErrorNamesThePath(t *testing.T) {
	in := Inmate{ID: "i-1", Name: "Ana", Language: "pt", Status: StatusActive, Badges: []string{"B1"}}
	field, problem, bad := RosterFieldError("inmates[3]", in)
	if !bad || field != "inmates[3].language" || !strings.Contains(problem, `"pt" is not one of en, es`) {
		t.Fatalf("RosterFieldError = %q, %q, %v; want the language named", field, problem, bad)
	}
	in.Language, in.Badges = "es", []string{"1", "2", "3", "4", "5", "6", "7", "8", "9"}
	if field, problem, bad := RosterFieldError("inmates[3]", in); !bad || field != "inmates[3].badges" || !strings.Contains(problem, "at most 8") {
		t.Fatalf("nine badges: %q, %q, %v; want the badge limit named", field, problem, bad)
	}
	err := ValidateInmateFields("inmates[3]", in)
	var fe *FieldError
	if !errors.As(err, &fe) || FieldOf(err) != "inmates[3].badges" || err.Error() != "inmates[3].badges: "+fe.Msg {
		t.Fatalf("ValidateInmateFields = %v; want a FieldError on inmates[3].badges", err)
	}
	in.Badges = []string{"B1"}
	if _, _, bad := RosterFieldError("inmates[3]", in); bad {
		t.Fatalf("a valid person is refused")
	}
}

func TestQuotedLanguages(t *testing.T) {
	if got := QuotedLanguages(); got != `"en", "es"` {
		t.Fatalf("QuotedLanguages() = %s", got)
	}
}

func TestValidatePhotos(t *testing.T) {
	d := strings.Repeat("ab", 32)
	good := Photo{SHA256: d, Manifest: d, Size: 1000, Type: PhotoJPEG}
	other := good
	other.SHA256 = strings.Repeat("cd", 32)
	if err := ValidatePhotos([]Photo{good, other}, 0); err != nil {
		t.Fatalf("two good photos refused: %v", err)
	}
	six := make([]Photo, 6)
	for i := range six {
		six[i] = good
		six[i].SHA256 = strings.Repeat(string(rune('0'+i)), 64)
	}
	bad := map[string][]Photo{
		"too many for the policy": {good, other},
		"six":                     six,
		"upper case digest":       {{SHA256: strings.ToUpper(d), Manifest: d, Size: 1, Type: PhotoPNG}},
		"short manifest":          {{SHA256: d, Manifest: "ab", Size: 1, Type: PhotoPNG}},
		"empty":                   {{SHA256: d, Manifest: d, Size: 0, Type: PhotoPNG}},
		"over 1 MB":               {{SHA256: d, Manifest: d, Size: MaxPhotoBytes + 1, Type: PhotoPNG}},
		"gif":                     {{SHA256: d, Manifest: d, Size: 1, Type: "image/gif"}},
		"twice":                   {good, good},
	}
	for name, ps := range bad {
		max := 0
		if name == "too many for the policy" {
			max = 1
		}
		if err := ValidatePhotos(ps, max); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if got := (Policy{MaxPhotosPerLetter: 2}).PhotosPerLetter(); got != 2 {
		t.Errorf("policy of 2 photos allows %d", got)
	}
	if got := (Policy{}).PhotosPerLetter(); got != MaxLetterPhotos {
		t.Errorf("default policy allows %d photos", got)
	}
	pol := DefaultPolicy()
	pol.MaxPhotosPerLetter = 6
	if err := pol.Validate(); err == nil || !strings.Contains(err.Error(), "max_photos_per_letter") {
		t.Errorf("a policy of 6 photos a letter: %v", err)
	}
	for _, days := range []int{-1, MaxPhotoKeepDays + 1} {
		pol := DefaultPolicy()
		pol.PhotoKeepDays = days
		if err := pol.Validate(); err == nil || !strings.Contains(err.Error(), "photo_keep_days") {
			t.Errorf("a policy keeping photos %d days: %v", days, err)
		}
	}
	for _, days := range []int{0, 30, MaxPhotoKeepDays} {
		pol := DefaultPolicy()
		pol.PhotoKeepDays = days
		if err := pol.Validate(); err != nil {
			t.Errorf("a policy keeping photos %d days refused: %v", days, err)
		}
	}
}

// FuzzValidatePhotos: whatever a relay sends as a letter's photos, the check answers without
// panicking, and what it accepts is within the rules a content store relies on.
func FuzzValidatePhotos(f *testing.F) {
	d := strings.Repeat("ab", 32)
	f.Add(`[{"sha256":"`+d+`","manifest":"`+d+`","size":1000,"type":"image/jpeg"}]`, 0)
	f.Add(`[{"sha256":"AB","manifest":"","size":-1,"type":"image/gif"}]`, 5)
	f.Add(`null`, 1)
	f.Fuzz(func(t *testing.T, js string, max int) {
		var ps []Photo
		if json.Unmarshal([]byte(js), &ps) != nil {
			return
		}
		if ValidatePhotos(ps, max) != nil {
			return
		}
		if len(ps) > MaxLetterPhotos {
			t.Fatalf("accepted %d photos", len(ps))
		}
		for _, p := range ps {
			if len(p.SHA256) != 64 || len(p.Manifest) != 64 || p.Size < 1 || p.Size > MaxPhotoBytes {
				t.Fatalf("accepted %+v", p)
			}
		}
	})
}
