package relay

import (
	"sort"
	"time"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Education credits (docs/PROTOCOL.md, "Library"): a terminal sends the answers of an attempt
// at a course's quiz (quiz_attempt); the relay grades them against the key it alone holds
// (catalogRec.Keys: terminals receive the questions, never the answers) and, for a pass, grants
// the credit its facility's policy sets (Policy.QuizCredit), once per inmate and quiz: the
// credit's record id is vocab.QuizRecordID, so a second pass, a resent attempt or a second
// terminal earns nothing more. The credit reaches every terminal of the inmate, the sender
// too, as remote_credit. A terminal never credits itself for learning.

// applyQuizAttempt grades attempt a from terminal t. A failed attempt, or a pass already
// credited, is accepted and changes no balance; the attempt itself is kept with the items.
// Every attempt of an inmate the terminal serves gets a quiz_result (resultOfQuiz), sent to
// the sending terminal and the inmate's tablets (as a letter's status goes, toHolder): a
// kiosk the inmate is not at has no screen waiting for it, and one attempt must not cost a
// downlink on every kiosk. The result is kept under the attempt's id: an attempt that arrives
// again (resent under another item id) is answered with the same result, counted and
// credited once.
func applyQuizAttempt(tx kv.Tx, f *fanout, t TerminalInfo, pol vocab.Policy, a vocab.QuizAttempt, now time.Time) (string, error) {
	if _, ok, err := f.inmateFor(t, a.InmateID); err != nil || !ok {
		return wire.RefuseNotYours, err
	}
	resKey := "r/" + a.InmateID + "/" + a.ID
	var res vocab.QuizResult
	found, err := getJSON(tx, bOwned, resKey, &res)
	if err != nil {
		return "", err
	}
	if found {
		if res.CourseID != a.CourseID || res.QuizID != a.QuizID {
			return wire.RefuseIDConflict, nil
		}
		reason := ""
		if res.Outcome == vocab.QuizRefused {
			reason = res.Reason
		}
		return reason, f.toHolder(t.FacilityID, a.InmateID, t.ID, wire.DownQuizResult, res)
	}
	reason, res, err := gradeQuizAttempt(tx, f, t, pol, a, now)
	if err != nil {
		return "", err
	}
	if err := putJSON(tx, bOwned, resKey, res); err != nil {
		return "", err
	}
	return reason, f.toHolder(t.FacilityID, a.InmateID, t.ID, wire.DownQuizResult, res)
}

// gradeQuizAttempt decides attempt a (the first time its id arrives): the item's refusal
// reason ("" if accepted) and the result the inmate's terminals are told.
func gradeQuizAttempt(tx kv.Tx, f *fanout, t TerminalInfo, pol vocab.Policy, a vocab.QuizAttempt, now time.Time) (string, vocab.QuizResult, error) {
	res := vocab.QuizResult{AttemptID: a.ID, InmateID: a.InmateID, CourseID: a.CourseID, QuizID: a.QuizID, At: now}
	refuse := func(reason string) (string, vocab.QuizResult, error) {
		res.Outcome, res.Reason = vocab.QuizRefused, reason
		return reason, res, nil
	}
	var rec catalogRec
	found, err := getJSON(tx, bCatalog, catalogKey(t.FacilityID, a.CourseID), &rec)
	if err != nil {
		return "", res, err
	}
	if !found || rec.Item.Kind != vocab.CatalogCourse {
		return refuse(wire.RefuseQuizUnknown)
	}
	q, ok := rec.Item.FindQuiz(a.QuizID)
	key, hasKey := rec.Keys[a.QuizID]
	if !ok || !hasKey {
		return refuse(wire.RefuseQuizUnknown)
	}
	res.Questions, res.PassScore = len(q.Questions), q.PassScore
	if len(a.Answers) != len(q.Questions) {
		return refuse(wire.RefuseInvalid)
	}
	// Only the first MaxQuizAttempts attempts of an inmate at a quiz are graded: a terminal
	// must not find the key by trying every combination until a credit comes back.
	countKey := "q/" + a.InmateID + "/" + a.CourseID + "/" + a.QuizID
	n := readU64(tx.Bucket([]byte(bOwned)).Get([]byte(countKey)))
	if n >= vocab.MaxQuizAttempts {
		f.logf("relay: inmate %s tried quiz %s/%s more than %d times: not graded", a.InmateID, a.CourseID, a.QuizID, vocab.MaxQuizAttempts)
		res.Outcome, res.AttemptsUsed = vocab.QuizNotGraded, int(n)
		return "", res, nil
	}
	if err := tx.Bucket([]byte(bOwned)).Put([]byte(countKey), u64(n+1)); err != nil {
		return "", res, err
	}
	res.AttemptsUsed, res.AttemptsLeft = int(n+1), vocab.MaxQuizAttempts-int(n+1)
	res.Right = vocab.GradeQuiz(key, a.Answers)
	if res.Right < q.PassScore {
		f.logf("relay: inmate %s answered %d of %d of quiz %s/%s right (pass %d): no credit",
			a.InmateID, res.Right, len(key), a.CourseID, a.QuizID, q.PassScore)
		res.Outcome = vocab.QuizFailed
		return "", res, nil
	}
	res.Outcome = vocab.QuizPassed
	credit := pol.QuizCredit()
	if credit <= 0 {
		res.NoCredit = vocab.QuizNoCreditPolicy
		return "", res, nil
	}
	recordID := vocab.QuizRecordID(a.CourseID, a.QuizID)
	dbKey := a.InmateID + "/" + recordID
	if getRaw(tx, bCredits, dbKey) != nil {
		res.NoCredit = vocab.QuizAlreadyCredited // passed before: credited once
		return "", res, nil
	}
	u := UsageRecord{Kind: "credit", RecordID: recordID, InmateID: a.InmateID, Cents: credit,
		Reason: vocab.CreditQuizPassed, At: now, CourseID: a.CourseID, QuizID: a.QuizID}
	if err := putJSON(tx, bCredits, dbKey, u); err != nil {
		return "", res, err
	}
	if err := addTotals(tx, a.InmateID, func(tt *totals) { tt.Credits += credit }); err != nil {
		return "", res, err
	}
	f.logf("relay: inmate %s passed quiz %s/%s on terminal %s: credited %d cents", a.InmateID, a.CourseID, a.QuizID, t.ID, credit)
	res.CreditCents = credit
	if pol.RatePerMinute > 0 && pol.QuizCreditCents == 0 {
		res.CreditMinutes = int(credit / pol.RatePerMinute) // a credit set in minutes, told in minutes
	}
	cr := vocab.Credit{RecordID: recordID, InmateID: a.InmateID, Cents: credit, Reason: vocab.CreditQuizPassed, At: now,
		CourseID: a.CourseID, QuizID: a.QuizID}
	return "", res, f.toInmate(t.FacilityID, a.InmateID, "", wire.DownRemoteCredit, cr)
}

// applyLibraryUse keeps terminal t's count of the library minutes an inmate began there on a
// day (docs/PROTOCOL.md, "Library": library minutes per person) and, when it grew, tells the
// inmate's other terminals (library_use, naming t), which add it to their own count against
// the policy's library_minutes_per_day. A count never shrinks: a resent, reordered or lowered
// record changes nothing and is not passed on. The terminal is the one of the connection,
// never one the body names. One record per inmate and terminal holds the latest day's count,
// so a new day replaces the last one, and the relay reads one key: a prefix scan here, once
// per library minute, would read (and on JetStream conflict with) the whole owned bucket.
//
// The record is kept in the inmate's own index (by_inmate, "l/" + terminal), where a snapshot
// finds the inmate's counts with the listing it makes anyway (snapshotLibraryUse). A record a
// relay before it kept in the owned bucket ("l/" + inmate + "/" + terminal) still counts here
// until the index has one; it is not in snapshots (the day it was written is past by now).
func applyLibraryUse(tx kv.Tx, f *fanout, t TerminalInfo, u vocab.LibraryUse) (string, error) {
	if _, ok, err := f.inmateFor(t, u.InmateID); err != nil || !ok {
		return wire.RefuseNotYours, err
	}
	day, n, ok := decodeLibraryUse(getRaw(tx, bByInmate, indexKey(u.InmateID, "l", t.ID)))
	if !ok {
		day, n, ok = decodeLibraryCount(tx.Bucket([]byte(bOwned)).Get([]byte("l/" + u.InmateID + "/" + t.ID)))
	}
	if ok && (day > u.Day || day == u.Day && n >= uint64(u.Minutes)) {
		return "", nil // an earlier day's count, or not more than the relay has: nothing new
	}
	if err := putRaw(tx, bByInmate, indexKey(u.InmateID, "l", t.ID), encodeLibraryUse(u)); err != nil {
		return "", err
	}
	u.TerminalID = t.ID
	return "", f.toInmate(t.FacilityID, u.InmateID, t.ID, wire.DownLibraryUse, u)
}

// encodeLibraryUse is a library-minutes record of the inmate index: the count (8 bytes), when
// the terminal counted it (8 bytes, Unix nanoseconds) and its day.
func encodeLibraryUse(u vocab.LibraryUse) []byte {
	v := append(u64(uint64(u.Minutes)), u64(uint64(u.At.UnixNano()))...)
	return append(v, u.Day...)
}

// decodeLibraryUse reads what encodeLibraryUse wrote.
func decodeLibraryUse(v []byte) (day string, minutes uint64, ok bool) {
	if len(v) < 16 {
		return "", 0, false
	}
	return string(v[16:]), readU64(v[:8]), true
}

// libraryDaysSince is the first day whose library counts a snapshot at now carries: the day
// before the policy's day (the relay's clock and a terminal's may stand either side of
// midnight; a terminal drops an earlier day's count when it applies a later one).
func libraryDaysSince(p vocab.Policy, now time.Time) string {
	local := now.In(p.Location())
	return time.Date(local.Year(), local.Month(), local.Day()-1, 12, 0, 0, 0, local.Location()).Format("2006-01-02")
}

// snapshotLibraryUse queues, for a terminal's snapshot, the library minutes inmate began on
// each other terminal on the days from since on (libraryDaysSince), as library_use names them
// on the downlink. Not the terminal's own counts, nor those of a terminal it replaced (own: its
// lineage): a terminal counts its own minutes apart, and a library_use naming itself would
// count them twice.
func snapshotLibraryUse(tx kv.Tx, f *fanout, termID, inmateID string, own map[string]bool, since string) error {
	var uses []vocab.LibraryUse
	prefix := inmateID + "/l/"
	if err := forEachRaw(tx, bByInmate, prefix, func(k string, v []byte) bool {
		term := k[len(prefix):]
		day, n, ok := decodeLibraryUse(v)
		if !ok || own[term] || day < since || n < 1 || n > vocab.MaxLibraryMinutesPerDay {
			return true
		}
		uses = append(uses, vocab.LibraryUse{InmateID: inmateID, Day: day, TerminalID: term, Minutes: int(n),
			At: time.Unix(0, int64(readU64(v[8:16]))).UTC()})
		return true
	}); err != nil {
		return err
	}
	// The day before first: a terminal drops an inmate's counts of days before the one it applies.
	sort.SliceStable(uses, func(i, j int) bool { return uses[i].Day < uses[j].Day })
	for _, u := range uses {
		if err := f.toTerminal(termID, wire.DownLibraryUse, u); err != nil {
			return err
		}
	}
	return nil
}

// decodeLibraryCount reads a library-minutes record: the count (8 bytes) then its day.
func decodeLibraryCount(v []byte) (day string, minutes uint64, ok bool) {
	if len(v) < 8 {
		return "", 0, false
	}
	return string(v[8:]), readU64(v[:8]), true
}
