package vocab

import (
	"bytes"
	"strings"
	"testing"
)

// mp3Frames makes n silent MPEG-1 Layer III frames, 128 kb/s, 44.1 kHz (417 bytes each).
func mp3Frames(n int) []byte {
	frame := make([]byte, 417)
	copy(frame, []byte{0xff, 0xfb, 0x90, 0x00})
	return bytes.Repeat(frame, n)
}

func TestCheckMP3(t *testing.T) {
	id3 := append([]byte("ID3\x04\x00\x00\x00\x00\x00\x05"), "hello"...)
	tag := append([]byte("TAG"), make([]byte, 125)...)
	for _, tc := range []struct {
		name    string
		data    []byte
		seconds int
		wrong   string
	}{
		{"ten seconds", mp3Frames(382), 10, ""}, // 382 * 1152 / 44100 = 9.98 s, rounded up
		{"with tags", append(append(id3, mp3Frames(100)...), tag...), 3, ""},
		{"a PNG", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 2000)...), 0, "not an MPEG Layer III frame"},
		{"empty", nil, 0, "0 frames"},
		{"two frames", mp3Frames(2), 0, "at least 4"},
		{"junk after", append(mp3Frames(10), bytes.Repeat([]byte("x"), 4000)...), 0, "are not audio"},
		{"tag cut short", []byte("ID3\x04\x00\x00\x00\x00\x7f\x7f"), 0, "ID3v2 tag"},
	} {
		s, err := CheckMP3(bytes.NewReader(tc.data))
		if tc.wrong == "" {
			if err != nil || s != tc.seconds {
				t.Errorf("%s: %d s, %v; want %d s", tc.name, s, err, tc.seconds)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wrong) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.wrong)
		}
	}
}

func FuzzCheckMP3(f *testing.F) {
	f.Add(mp3Frames(5))
	f.Add(append([]byte("ID3\x04\x00\x00\x00\x00\x00\x01x"), mp3Frames(5)...))
	f.Add([]byte{0xff, 0xf3, 0x10, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := CheckMP3(bytes.NewReader(b))
		if err == nil && (s < 0 || len(b) < MinMP3Frames*24) {
			t.Fatalf("accepted %d bytes as %d s", len(b), s)
		}
	})
}

func validTrack() CatalogItem {
	d := strings.Repeat("ab", 32)
	return CatalogItem{ID: "trk-1", Kind: CatalogTrack, Title: "Song", Artist: "Band", Duration: 180,
		Audio: &MediaRef{SHA256: d, Manifest: d, Size: 4000, Type: MediaMP3}, PriceCents: 129}
}

func TestValidateCatalogItem(t *testing.T) {
	d := strings.Repeat("cd", 32)
	course := CatalogItem{ID: "crs-1", Kind: CatalogCourse, Title: "GED math", Lessons: []string{"les-1"},
		Quizzes: []Quiz{{ID: "q1", PassScore: 1, Questions: []QuizQuestion{{Text: "2+2?", Choices: []string{"3", "4"}}}}}}
	lesson := CatalogItem{ID: "les-1", Kind: CatalogLesson, Title: "Fractions",
		Pages: []MediaRef{{SHA256: d, Manifest: d, Size: 10, Type: MediaText}, {SHA256: d, Manifest: d, Size: 10, Type: MediaPNG}}}
	for _, ok := range []CatalogItem{validTrack(), course, lesson} {
		if err := ValidateCatalogItem(ok); err != nil {
			t.Errorf("%s: %v", ok.ID, err)
		}
	}
	for _, tc := range []struct {
		field string
		edit  func(*CatalogItem)
	}{
		{"price_cents", func(c *CatalogItem) { c.PriceCents = MaxItemPrice + 1 }},
		{"price_cents", func(c *CatalogItem) { c.PriceCents = -1 }},
		{"audio", func(c *CatalogItem) { c.Audio.Type = MediaPNG }},
		{"audio", func(c *CatalogItem) { c.Audio.Size = MaxTrackBytes + 1 }},
		{"audio", func(c *CatalogItem) { c.Audio = nil }},
		{"duration_s", func(c *CatalogItem) { c.Duration = 0 }},
		{"title", func(c *CatalogItem) { c.Title = " " }},
		{"id", func(c *CatalogItem) { c.ID = "a/b" }},
		{"kind", func(c *CatalogItem) { c.Kind = "game" }},
		{"pages", func(c *CatalogItem) { c.Pages = lesson.Pages }},
	} {
		c := validTrack()
		a := *c.Audio
		c.Audio = &a
		tc.edit(&c)
		if err := ValidateCatalogItem(c); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("edit of %s: %v", tc.field, err)
		}
	}
	bad := course
	bad.Quizzes = []Quiz{{ID: "q1", PassScore: 2, Questions: course.Quizzes[0].Questions}}
	if err := ValidateCatalogItem(bad); err == nil || !strings.Contains(err.Error(), "pass_score") {
		t.Errorf("pass score beyond the questions: %v", err)
	}
	if err := ValidateQuizKey(course.Quizzes[0], []int{2}); err == nil {
		t.Error("an answer beyond the choices was accepted")
	}
	if GradeQuiz([]int{1, 0, 2}, []int{1, 1}) != 1 {
		t.Error("grading counted a missing answer")
	}
}

func TestPolicyLibraryFields(t *testing.T) {
	p := DefaultPolicy()
	if p.LibraryMinutesPerDay != 60 {
		t.Fatalf("default library minutes %d, want TRULINCS's 60", p.LibraryMinutesPerDay)
	}
	for _, tc := range []struct {
		field string
		edit  func(*Policy)
	}{
		{"library_minutes_per_day", func(p *Policy) { p.LibraryMinutesPerDay = -1 }},
		{"library_minutes_per_day", func(p *Policy) { p.LibraryMinutesPerDay = 24*60 + 1 }},
		{"quiz_credit_cents", func(p *Policy) { p.QuizCreditCents = MaxQuizCredit + 1 }},
		{"quiz_credit_minutes", func(p *Policy) { p.QuizCreditMinutes = 1000 }},
	} {
		q := DefaultPolicy()
		tc.edit(&q)
		if err := q.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
	p.QuizCreditCents, p.QuizCreditMinutes = 50, 10
	if err := p.Validate(); err != nil || p.QuizCredit() != 50+10*p.RatePerMinute {
		t.Errorf("quiz credit %d, %v", p.QuizCredit(), err)
	}
}

func FuzzValidateCatalogItem(f *testing.F) {
	f.Add("trk-1", "track", "Song", "Band", 180, int64(4000), "audio/mpeg", 129)
	f.Add("les-1", "lesson", "L", "", 0, int64(10), "text/plain", 0)
	f.Fuzz(func(t *testing.T, id, kind, title, artist string, dur int, size int64, typ string, price int) {
		d := strings.Repeat("ab", 32)
		c := CatalogItem{ID: id, Kind: kind, Title: title, Artist: artist, Duration: dur, PriceCents: Cents(price)}
		ref := MediaRef{SHA256: d, Manifest: d, Size: size, Type: typ}
		if kind == CatalogTrack {
			c.Audio = &ref
		} else {
			c.Pages = []MediaRef{ref}
		}
		if ValidateCatalogItem(c) == nil && (c.PriceCents < 0 || c.PriceCents > MaxItemPrice || size < 1) {
			t.Fatalf("accepted %+v", c)
		}
	})
}
