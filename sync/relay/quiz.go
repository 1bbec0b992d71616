package relay

import (
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
func applyQuizAttempt(tx kv.Tx, f *fanout, t TerminalInfo, pol vocab.Policy, a vocab.QuizAttempt, now time.Time) (string, error) {
	if _, ok, err := f.inmateFor(t, a.InmateID); err != nil || !ok {
		return wire.RefuseNotYours, err
	}
	var rec catalogRec
	found, err := getJSON(tx, bCatalog, catalogKey(t.FacilityID, a.CourseID), &rec)
	if err != nil {
		return "", err
	}
	if !found || rec.Item.Kind != vocab.CatalogCourse {
		return wire.RefuseQuizUnknown, nil
	}
	q, ok := rec.Item.FindQuiz(a.QuizID)
	key, hasKey := rec.Keys[a.QuizID]
	if !ok || !hasKey {
		return wire.RefuseQuizUnknown, nil
	}
	if len(a.Answers) != len(q.Questions) {
		return wire.RefuseInvalid, nil
	}
	// Only the first MaxQuizAttempts attempts of an inmate at a quiz are graded: a terminal
	// must not find the key by trying every combination until a credit comes back.
	countKey := "q/" + a.InmateID + "/" + a.CourseID + "/" + a.QuizID
	n := readU64(tx.Bucket([]byte(bOwned)).Get([]byte(countKey)))
	if n >= vocab.MaxQuizAttempts {
		f.logf("relay: inmate %s tried quiz %s/%s more than %d times: not graded", a.InmateID, a.CourseID, a.QuizID, vocab.MaxQuizAttempts)
		return "", nil
	}
	if err := tx.Bucket([]byte(bOwned)).Put([]byte(countKey), u64(n+1)); err != nil {
		return "", err
	}
	right := vocab.GradeQuiz(key, a.Answers)
	credit := pol.QuizCredit()
	if right < q.PassScore || credit <= 0 {
		f.logf("relay: inmate %s answered %d of %d of quiz %s/%s right (pass %d): no credit",
			a.InmateID, right, len(key), a.CourseID, a.QuizID, q.PassScore)
		return "", nil
	}
	recordID := vocab.QuizRecordID(a.CourseID, a.QuizID)
	dbKey := a.InmateID + "/" + recordID
	if getRaw(tx, bCredits, dbKey) != nil {
		return "", nil // passed before: credited once
	}
	u := UsageRecord{Kind: "credit", RecordID: recordID, InmateID: a.InmateID, Cents: credit,
		Reason: vocab.CreditQuizPassed, At: now, CourseID: a.CourseID, QuizID: a.QuizID}
	if err := putJSON(tx, bCredits, dbKey, u); err != nil {
		return "", err
	}
	if err := addTotals(tx, a.InmateID, func(tt *totals) { tt.Credits += credit }); err != nil {
		return "", err
	}
	f.logf("relay: inmate %s passed quiz %s/%s on terminal %s: credited %d cents", a.InmateID, a.CourseID, a.QuizID, t.ID, credit)
	cr := vocab.Credit{RecordID: recordID, InmateID: a.InmateID, Cents: credit, Reason: vocab.CreditQuizPassed, At: now,
		CourseID: a.CourseID, QuizID: a.QuizID}
	return "", f.toInmate(t.FacilityID, a.InmateID, "", wire.DownRemoteCredit, cr)
}
