package vocab

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The media and education library (docs/PROTOCOL.md, "Library"): staff publish catalog items per
// facility through the relay's admin API; each reaches the facility's terminals as one downlink
// body (DownCatalogItem), its media following as content (by reference, never inline). The
// same types and rules serve the relay (which checks what staff publish) and the terminal
// (which checks what it applies), so the two never disagree on what a valid item is.

// Catalog item kinds.
const (
	CatalogTrack  = "track"  // one MP3 file
	CatalogBook   = "book"   // pages of text and images
	CatalogLesson = "lesson" // pages of text and images, usually one of a course
	CatalogCourse = "course" // ordered lessons and short multiple-choice quizzes
)

// Media types of catalog content. Lessons and books ship as text and images, not PDF: a PDF
// renderer is a large attack surface on a terminal, and text reflows on any screen.
const (
	MediaMP3  = "audio/mpeg"
	MediaText = "text/plain" // always UTF-8
	MediaJPEG = PhotoJPEG
	MediaPNG  = PhotoPNG
)

// Limits of the catalog.
const (
	MaxItemPrice      Cents = 5000      // $50: no single library item costs more
	MaxTrackBytes           = 50 << 20  // one MP3
	MaxPageTextBytes        = 256 << 10 // one page of text
	MaxPageImageBytes       = MaxPhotoBytes
	MaxTrackSeconds         = 2 * 60 * 60
	MaxPages                = 500
	MaxCourseLessons        = 100
	MaxQuizzes              = 50
	MaxQuizQuestions        = 20
	MaxQuizChoices          = 6
	MaxCatalogTitle         = 200 // bytes
	MaxCatalogText          = 2000
	MaxQuizCredit     Cents = 1000 // $10: the most one passed quiz may earn
	// MaxQuizAttempts is how many attempts of an inmate at one quiz the relay grades; later
	// ones are kept and earn nothing (so no terminal can try every answer until one pays).
	MaxQuizAttempts = 3
)

// MediaRef names one content object of a catalog item: the content reference (as Photo's:
// the same JSON names as kiosk/content.Ref) and its media type.
type MediaRef struct {
	SHA256   string `json:"sha256"`
	Manifest string `json:"manifest"`
	Size     int64  `json:"size"`
	Type     string `json:"type"`
}

// CatalogItem is one thing of the library, as every terminal of the facility receives it.
type CatalogItem struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Title string `json:"title"`
	// Track only.
	Artist   string    `json:"artist,omitempty"`
	Duration int       `json:"duration_s,omitempty"` // seconds
	Audio    *MediaRef `json:"audio,omitempty"`
	// Book and lesson: the pages in order, each a text or an image object.
	Pages []MediaRef `json:"pages,omitempty"`
	// Course: the ids of its lessons in order (items of kind lesson) and its quizzes.
	Lessons []string `json:"lessons,omitempty"`
	Quizzes []Quiz   `json:"quizzes,omitempty"`
	// PriceCents is what owning the item costs; 0 is free (education is free by default).
	PriceCents  Cents     `json:"price_cents"`
	Description string    `json:"description,omitempty"`
	PublishedAt time.Time `json:"published_at"`
}

// Quiz is a short multiple-choice quiz of a course, as terminals see it: the questions and
// their choices, never the answers (the relay keeps the key and grades attempts itself).
type Quiz struct {
	ID        string         `json:"id"`
	Title     string         `json:"title"`
	PassScore int            `json:"pass_score"` // questions right needed to pass, 1..len(questions)
	Questions []QuizQuestion `json:"questions"`
}

// QuizQuestion is one question and its choices.
type QuizQuestion struct {
	Text    string   `json:"text"`
	Choices []string `json:"choices"`
}

// CatalogWithdrawn removes an item from the facility's catalog (DownCatalogWithdrawn). Items
// already owned stay with their owners.
type CatalogWithdrawn struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// Media returns every content object the item names, in order (the audio, then the pages).
func (c CatalogItem) Media() []MediaRef {
	var out []MediaRef
	if c.Audio != nil {
		out = append(out, *c.Audio)
	}
	return append(out, c.Pages...)
}

// FindQuiz returns the course's quiz id.
func (c CatalogItem) FindQuiz(id string) (Quiz, bool) {
	for _, q := range c.Quizzes {
		if q.ID == id {
			return q, true
		}
	}
	return Quiz{}, false
}

// CheckMediaRef checks one reference for media type want (one of wants).
func CheckMediaRef(field string, m MediaRef, wants ...string) error {
	switch {
	case !isDigest(m.SHA256):
		return fmt.Errorf("%s.sha256: not a lowercase hex sha256 digest", field)
	case !isDigest(m.Manifest):
		return fmt.Errorf("%s.manifest: not a lowercase hex sha256 digest", field)
	}
	ok := false
	for _, w := range wants {
		ok = ok || m.Type == w
	}
	if !ok {
		return fmt.Errorf("%s.type: %q is not %s", field, cutText(m.Type, 40), strings.Join(wants, " or "))
	}
	if limit := MediaLimit(m.Type); m.Size < 1 || m.Size > limit {
		return fmt.Errorf("%s.size: %d is outside 1..%d", field, m.Size, limit)
	}
	return nil
}

// MediaLimit is the largest object of a media type (0: not a catalog type).
func MediaLimit(typ string) int64 {
	switch typ {
	case MediaMP3:
		return MaxTrackBytes
	case MediaText:
		return MaxPageTextBytes
	case MediaJPEG, MediaPNG:
		return MaxPageImageBytes
	}
	return 0
}

// ValidateCatalogItem checks an item, the same on the relay (before it publishes) and on the
// terminal (before it applies one): a record id, a kind with the fields of its kind and no
// others' media, bounded texts, a price within 0..MaxItemPrice.
func ValidateCatalogItem(c CatalogItem) error {
	bad := func(field, format string, args ...any) error {
		return errInvalid("catalog item", "%s: %s", field, fmt.Sprintf(format, args...))
	}
	if err := checkCatalogID("id", c.ID); err != nil {
		return bad("id", "%v", err)
	}
	if err := checkCatalogText(c.Title, MaxCatalogTitle, true); err != nil {
		return bad("title", "%v", err)
	}
	if err := checkCatalogText(c.Description, MaxCatalogText, false); err != nil {
		return bad("description", "%v", err)
	}
	if c.PriceCents < 0 || c.PriceCents > MaxItemPrice {
		return bad("price_cents", "%d is outside 0..%d", c.PriceCents, MaxItemPrice)
	}
	if c.Kind != CatalogTrack && (c.Artist != "" || c.Duration != 0 || c.Audio != nil) {
		return bad("kind", "only a %s has artist, duration_s and audio", CatalogTrack)
	}
	if c.Kind != CatalogBook && c.Kind != CatalogLesson && len(c.Pages) > 0 {
		return bad("pages", "only a %s or a %s has pages", CatalogBook, CatalogLesson)
	}
	if c.Kind != CatalogCourse && (len(c.Lessons) > 0 || len(c.Quizzes) > 0) {
		return bad("kind", "only a %s has lessons and quizzes", CatalogCourse)
	}
	switch c.Kind {
	case CatalogTrack:
		if err := checkCatalogText(c.Artist, MaxCatalogTitle, true); err != nil {
			return bad("artist", "%v", err)
		}
		if c.Duration < 1 || c.Duration > MaxTrackSeconds {
			return bad("duration_s", "%d is outside 1..%d", c.Duration, MaxTrackSeconds)
		}
		if c.Audio == nil {
			return bad("audio", "a track needs its MP3")
		}
		if err := CheckMediaRef("audio", *c.Audio, MediaMP3); err != nil {
			return bad("audio", "%v", err)
		}
	case CatalogBook, CatalogLesson:
		if len(c.Pages) < 1 || len(c.Pages) > MaxPages {
			return bad("pages", "%d pages, want 1..%d", len(c.Pages), MaxPages)
		}
		for i, p := range c.Pages {
			if err := CheckMediaRef(fmt.Sprintf("pages[%d]", i), p, MediaText, MediaJPEG, MediaPNG); err != nil {
				return bad("pages", "%v", err)
			}
		}
	case CatalogCourse:
		if len(c.Lessons) < 1 || len(c.Lessons) > MaxCourseLessons {
			return bad("lessons", "%d lessons, want 1..%d", len(c.Lessons), MaxCourseLessons)
		}
		seen := map[string]bool{}
		for i, l := range c.Lessons {
			if err := checkCatalogID("lesson", l); err != nil || seen[l] || l == c.ID {
				return bad(fmt.Sprintf("lessons[%d]", i), "must be another item's id, once")
			}
			seen[l] = true
		}
		if len(c.Quizzes) > MaxQuizzes {
			return bad("quizzes", "%d quizzes, limit %d", len(c.Quizzes), MaxQuizzes)
		}
		qs := map[string]bool{}
		for i, q := range c.Quizzes {
			if err := ValidateQuiz(q); err != nil {
				return bad(fmt.Sprintf("quizzes[%d]", i), "%v", err)
			}
			if qs[q.ID] {
				return bad(fmt.Sprintf("quizzes[%d].id", i), "%q is used twice", q.ID)
			}
			qs[q.ID] = true
		}
	default:
		return bad("kind", "%q is not %s, %s, %s or %s", cutText(c.Kind, 40), CatalogTrack, CatalogBook, CatalogLesson, CatalogCourse)
	}
	return nil
}

// ValidateQuiz checks a quiz as terminals see it.
func ValidateQuiz(q Quiz) error {
	if err := checkCatalogID("id", q.ID); err != nil {
		return err
	}
	if err := checkCatalogText(q.Title, MaxCatalogTitle, false); err != nil {
		return fmt.Errorf("title: %w", err)
	}
	if len(q.Questions) < 1 || len(q.Questions) > MaxQuizQuestions {
		return fmt.Errorf("questions: %d, want 1..%d", len(q.Questions), MaxQuizQuestions)
	}
	if q.PassScore < 1 || q.PassScore > len(q.Questions) {
		return fmt.Errorf("pass_score: %d is outside 1..%d", q.PassScore, len(q.Questions))
	}
	for i, qq := range q.Questions {
		if err := checkCatalogText(qq.Text, MaxCatalogText, true); err != nil {
			return fmt.Errorf("questions[%d].text: %w", i, err)
		}
		if len(qq.Choices) < 2 || len(qq.Choices) > MaxQuizChoices {
			return fmt.Errorf("questions[%d].choices: %d, want 2..%d", i, len(qq.Choices), MaxQuizChoices)
		}
		for j, ch := range qq.Choices {
			if err := checkCatalogText(ch, MaxCatalogTitle, true); err != nil {
				return fmt.Errorf("questions[%d].choices[%d]: %w", i, j, err)
			}
		}
	}
	return nil
}

// ValidateQuizKey checks the answer key of quiz q (one choice index per question).
func ValidateQuizKey(q Quiz, key []int) error {
	if len(key) != len(q.Questions) {
		return fmt.Errorf("quiz %s: %d answers for %d questions", q.ID, len(key), len(q.Questions))
	}
	for i, a := range key {
		if a < 0 || a >= len(q.Questions[i].Choices) {
			return fmt.Errorf("quiz %s: answer %d is %d, outside 0..%d", q.ID, i, a, len(q.Questions[i].Choices)-1)
		}
	}
	return nil
}

// GradeQuiz counts the answers that match key; answers beyond or missing count as wrong.
func GradeQuiz(key, answers []int) int {
	right := 0
	for i, a := range key {
		if i < len(answers) && answers[i] == a {
			right++
		}
	}
	return right
}

// checkCatalogID: a record id of at most 64 bytes (letters, digits, . _ - : @).
func checkCatalogID(field, s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%s must be 1 to 64 bytes", field)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:@", r)) {
			return fmt.Errorf("%s may hold only letters, digits and . _ - : @", field)
		}
	}
	return nil
}

func checkCatalogText(s string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return fmt.Errorf("must not be empty")
	case len(s) > max:
		return fmt.Errorf("%d bytes, limit %d", len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("not UTF-8")
	case strings.IndexFunc(s, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f }) >= 0:
		return fmt.Errorf("holds a control character")
	}
	return nil
}

// Purchases: buying a catalog item is a Charge (kept with the minutes and stamps, counted
// against the offline spend cap, settled by the relay's acknowledgement) whose ItemID names
// the item and whose RecordID is PurchaseRecordID of the purchase's own id (a UUIDv7 the
// terminal chooses), so a purchase is charged at most once however often it is sent.

// PurchaseRecordPrefix starts the record id of every purchase charge and of its refund.
const PurchaseRecordPrefix = "buy/"

// PurchaseRecordID is the record id of purchase id.
func PurchaseRecordID(purchaseID string) string { return PurchaseRecordPrefix + purchaseID }

// IsPurchaseRecord reports whether a charge or credit record id is a purchase's.
func IsPurchaseRecord(recordID string) bool { return strings.HasPrefix(recordID, PurchaseRecordPrefix) }

// PurchaseID is the purchase id of a purchase record id ("" if it is not one).
func PurchaseID(recordID string) string {
	if !IsPurchaseRecord(recordID) {
		return ""
	}
	return recordID[len(PurchaseRecordPrefix):]
}

// OwnedHolder is the content-store holder an owned item's media are retained under.
func OwnedHolder(purchaseID string) string { return "own:" + purchaseID }

// LibraryViewHolder is the holder a shared kiosk retains an item's media under while a person
// has it open (a "view:" claim, released at logout and after a crash).
func LibraryViewHolder(itemID string) string { return "view:lib:" + itemID }

// CreditPurchaseRefused: the terminal gives a purchase back when the relay refused the charge.
const CreditPurchaseRefused = "purchase refused"

// Education credits: the relay grants a credit for a passed quiz, once per inmate and quiz,
// under QuizRecordID (so a second pass, or a resent attempt, cannot be credited twice).

// QuizRecordPrefix starts the record id of a quiz's credit.
const QuizRecordPrefix = "quiz/"

// QuizRecordID is the record id of the credit for quiz quizID of course courseID.
func QuizRecordID(courseID, quizID string) string { return QuizRecordPrefix + courseID + "/" + quizID }

// CreditQuizPassed is the reason of a passed quiz's credit.
const CreditQuizPassed = "quiz passed"

// ChargeLimit is the most one charge or credit under recordID may move: an item's price for a
// purchase, a quiz credit for a quiz, the dearest job for a print job, a minute's rate (or a
// stamp) otherwise.
func ChargeLimit(recordID string) Cents {
	switch {
	case IsPurchaseRecord(recordID):
		return MaxItemPrice
	case strings.HasPrefix(recordID, QuizRecordPrefix):
		return MaxQuizCredit
	case IsPrintRecord(recordID):
		return MaxPrintCharge // a print job (print.go)
	}
	return MaxRatePerMinute
}

// QuizAttempt is a terminal's uplink of one attempt at a quiz (ItemQuizAttempt): the answers
// chosen, one choice index per question. The relay grades it against its own key.
type QuizAttempt struct {
	ID       string    `json:"id"` // UUIDv7, chosen by the terminal
	InmateID string    `json:"inmate_id"`
	CourseID string    `json:"course_id"`
	QuizID   string    `json:"quiz_id"`
	Answers  []int     `json:"answers"`
	At       time.Time `json:"at"`
}

// ValidateQuizAttempt checks an attempt's shape.
func ValidateQuizAttempt(a QuizAttempt) error {
	for _, f := range []struct{ name, v string }{{"id", a.ID}, {"inmate_id", a.InmateID}, {"course_id", a.CourseID}, {"quiz_id", a.QuizID}} {
		if err := checkCatalogID(f.name, f.v); err != nil {
			return err
		}
	}
	if len(a.Answers) < 1 || len(a.Answers) > MaxQuizQuestions {
		return fmt.Errorf("answers: %d, want 1..%d", len(a.Answers), MaxQuizQuestions)
	}
	for i, x := range a.Answers {
		if x < 0 || x >= MaxQuizChoices {
			return fmt.Errorf("answers[%d]: %d is outside 0..%d", i, x, MaxQuizChoices-1)
		}
	}
	if a.At.IsZero() {
		return fmt.Errorf("at is missing")
	}
	return nil
}

// Library refusals, shown translated on the screens.
const (
	// ReasonLibraryTimeUsed: the inmate used today's library minutes (Policy.LibraryMinutesPerDay).
	ReasonLibraryTimeUsed Reason = "library_time_used"
	// ReasonAlreadyOwned: the inmate owns the item already.
	ReasonAlreadyOwned Reason = "already_owned"
	// ReasonNotInCatalog: the item is not (or no longer) in the catalog.
	ReasonNotInCatalog Reason = "not_in_catalog"
)

// QuizResult is the relay's verdict on one quiz attempt (DownQuizResult), sent to the terminal
// that sent the attempt and to the inmate's tablets for every attempt the relay graded or
// would not grade: the inmate on the quiz screen learns the outcome, a fail included. It
// never carries the answer key, nor which answers were right: only how many. The relay
// decides it once per attempt id and sends the same result again for a resent attempt.
type QuizResult struct {
	AttemptID string `json:"attempt_id"`
	InmateID  string `json:"inmate_id"`
	CourseID  string `json:"course_id"`
	QuizID    string `json:"quiz_id"`
	Outcome   string `json:"outcome"` // QuizPassed, QuizFailed, QuizNotGraded or QuizRefused
	Right     int    `json:"right"`   // answers right (0 unless graded)
	Questions int    `json:"questions"`
	PassScore int    `json:"pass_score"`
	// CreditCents is the credit this attempt granted (0: none); CreditMinutes, when the policy
	// sets the credit in minutes only, the minutes it stands for (valued in CreditCents
	// already), else 0. NoCredit says why a pass earned nothing: QuizAlreadyCredited or
	// QuizNoCreditPolicy.
	CreditCents   Cents  `json:"credit_cents"`
	CreditMinutes int    `json:"credit_minutes"`
	NoCredit      string `json:"no_credit,omitempty"`
	// Reason is the refusal reason of a refused attempt (the item's, e.g. quiz_unknown).
	Reason       string    `json:"reason,omitempty"`
	AttemptsUsed int       `json:"attempts_used"` // graded attempts of the inmate at this quiz, this one included
	AttemptsLeft int       `json:"attempts_left"` // attempts still graded (MaxQuizAttempts - used)
	At           time.Time `json:"at"`
}

// Quiz outcomes (QuizResult.Outcome).
const (
	QuizPassed    = "passed"     // graded: right >= pass_score
	QuizFailed    = "failed"     // graded: too few right
	QuizNotGraded = "not_graded" // over MaxQuizAttempts: kept, not graded, earns nothing
	QuizRefused   = "refused"    // not a quiz the relay knows (Reason says why)
)

// Why a passed quiz earned nothing (QuizResult.NoCredit).
const (
	QuizAlreadyCredited = "already_credited" // passed and credited before (here or elsewhere)
	QuizNoCreditPolicy  = "no_credit_policy" // the facility's policy grants nothing for a pass
)

// ValidateQuizResult checks a result's shape, as a terminal applies it.
func ValidateQuizResult(r QuizResult) error {
	for _, f := range []struct{ name, v string }{{"attempt_id", r.AttemptID}, {"inmate_id", r.InmateID}, {"course_id", r.CourseID}, {"quiz_id", r.QuizID}} {
		if err := checkCatalogID(f.name, f.v); err != nil {
			return errInvalid("quiz result", "%v", err)
		}
	}
	switch r.Outcome {
	case QuizPassed, QuizFailed, QuizNotGraded, QuizRefused:
	default:
		return errInvalid("quiz result", "outcome %q is not %s, %s, %s or %s", cutText(r.Outcome, 40), QuizPassed, QuizFailed, QuizNotGraded, QuizRefused)
	}
	switch {
	case r.Questions < 0 || r.Questions > MaxQuizQuestions:
		return errInvalid("quiz result", "questions: %d is outside 0..%d", r.Questions, MaxQuizQuestions)
	case r.Right < 0 || r.Right > r.Questions:
		return errInvalid("quiz result", "right: %d is outside 0..%d", r.Right, r.Questions)
	case r.PassScore < 0 || r.PassScore > r.Questions:
		return errInvalid("quiz result", "pass_score: %d is outside 0..%d", r.PassScore, r.Questions)
	case r.CreditCents < 0 || r.CreditCents > MaxQuizCredit:
		return errInvalid("quiz result", "credit_cents: %d is outside 0..%d", r.CreditCents, MaxQuizCredit)
	case r.CreditCents > 0 && r.Outcome != QuizPassed:
		return errInvalid("quiz result", "credit_cents: only a pass earns a credit")
	case r.CreditMinutes < 0 || r.CreditMinutes > MaxLibraryMinutesPerDay:
		return errInvalid("quiz result", "credit_minutes: %d is outside 0..%d", r.CreditMinutes, MaxLibraryMinutesPerDay)
	case r.AttemptsUsed < 0 || r.AttemptsLeft < 0 || r.AttemptsLeft > MaxQuizAttempts:
		return errInvalid("quiz result", "attempts_used %d, attempts_left %d", r.AttemptsUsed, r.AttemptsLeft)
	case len(r.NoCredit) > 40 || len(r.Reason) > 64:
		return errInvalid("quiz result", "no_credit or reason too long")
	}
	return nil
}

// LibraryUse is how many library minutes an inmate began on one terminal on one day
// (ItemLibraryUse up, DownLibraryUse down): the count so far, so a later record supersedes an
// earlier one and a resent or reordered one changes nothing (the larger count stands). The
// relay keeps each terminal's count and tells the inmate's other terminals, which add them
// to their own to hold the inmate to Policy.LibraryMinutesPerDay across terminals.
type LibraryUse struct {
	InmateID string `json:"inmate_id"`
	Day      string `json:"day"` // YYYY-MM-DD in the policy's timezone
	// TerminalID is the terminal that counted the minutes: set by the relay downlink (from
	// the connection, never the body), empty uplink.
	TerminalID string    `json:"terminal_id,omitempty"`
	Minutes    int       `json:"minutes"`
	At         time.Time `json:"at"`
}

// ValidateLibraryUse checks a library-use record's shape.
func ValidateLibraryUse(u LibraryUse) error {
	if err := checkCatalogID("inmate_id", u.InmateID); err != nil {
		return errInvalid("library use", "%v", err)
	}
	if d, err := time.Parse("2006-01-02", u.Day); err != nil || d.Format("2006-01-02") != u.Day {
		return errInvalid("library use", "day %q is not YYYY-MM-DD", cutText(u.Day, 20))
	}
	if u.TerminalID != "" {
		if err := checkCatalogID("terminal_id", u.TerminalID); err != nil {
			return errInvalid("library use", "%v", err)
		}
	}
	if u.Minutes < 1 || u.Minutes > MaxLibraryMinutesPerDay {
		return errInvalid("library use", "minutes: %d is outside 1..%d", u.Minutes, MaxLibraryMinutesPerDay)
	}
	if u.At.IsZero() {
		return errInvalid("library use", "at is missing")
	}
	return nil
}
