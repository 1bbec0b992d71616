package kiosk

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// Quiz results (docs/PROTOCOL.md, "Library"): the relay alone grades an attempt and answers
// every one with a quiz_result; the terminal keeps the attempts it sent and the results it
// was told, so the quiz screen says "Sent for grading" until the relay's word arrives (offline
// too) and then exactly what the relay said, never a verdict of its own.

// bQuizResults (schema 6): inmate id + "/" + course id + "/" + quiz id + "/" + attempt id ->
// QuizStatus. Attempt ids are UUIDv7, so a quiz's attempts sort in the order they were made.
const bQuizResults = "quiz_results"

// maxQuizStatuses bounds the attempts kept per inmate and quiz (the oldest go first): the
// screen shows the newest, and the relay grades no more than vocab.MaxQuizAttempts anyway.
const maxQuizStatuses = 2 * vocab.MaxQuizAttempts

// migrate5to6 brings in the quiz results; no attempt before schema 6 has one to show.
func migrate5to6(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bQuizResults)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bQuizResults, err)
	}
	return nil
}

// QuizStatus is one attempt at a quiz as this terminal knows it: sent (Result nil: waiting
// for the relay) or answered by the relay.
type QuizStatus struct {
	AttemptID string            `json:"attempt_id"`
	InmateID  string            `json:"inmate_id"`
	CourseID  string            `json:"course_id"`
	QuizID    string            `json:"quiz_id"`
	SentAt    time.Time         `json:"sent_at,omitzero"` // zero: sent from another terminal
	Result    *vocab.QuizResult `json:"result,omitempty"`
}

func quizStatusKey(inmateID, courseID, quizID, attemptID string) string {
	return quizPrefix(inmateID, courseID, quizID) + attemptID
}

func quizPrefix(inmateID, courseID, quizID string) string {
	return inmateID + "/" + courseID + "/" + quizID + "/"
}

// putQuizSentTx records attempt a as sent and waiting for its result.
func putQuizSentTx(tx *bolt.Tx, a vocab.QuizAttempt) error {
	st := QuizStatus{AttemptID: a.ID, InmateID: a.InmateID, CourseID: a.CourseID, QuizID: a.QuizID, SentAt: a.At}
	if err := putJSON(tx, bQuizResults, quizStatusKey(a.InmateID, a.CourseID, a.QuizID, a.ID), st); err != nil {
		return err
	}
	return pruneQuizTx(tx, quizPrefix(a.InmateID, a.CourseID, a.QuizID))
}

// applyQuizResultTx keeps the relay's result of an attempt. The first result of an attempt
// stands: the relay sends the same one again for a resent attempt, and a second, different
// one could only be a replay of something else, so the screen never contradicts itself.
func applyQuizResultTx(tx *bolt.Tx, r vocab.QuizResult) error {
	if err := vocab.ValidateQuizResult(r); err != nil {
		return err
	}
	key := quizStatusKey(r.InmateID, r.CourseID, r.QuizID, r.AttemptID)
	st := QuizStatus{AttemptID: r.AttemptID, InmateID: r.InmateID, CourseID: r.CourseID, QuizID: r.QuizID}
	found, err := getJSON(tx, bQuizResults, key, &st)
	if err != nil {
		return err
	}
	if found && st.Result != nil {
		return nil
	}
	st.Result = &r
	if err := putJSON(tx, bQuizResults, key, st); err != nil {
		return err
	}
	return pruneQuizTx(tx, quizPrefix(r.InmateID, r.CourseID, r.QuizID))
}

// pruneQuizTx drops the oldest attempts under prefix beyond maxQuizStatuses.
func pruneQuizTx(tx *bolt.Tx, prefix string) error {
	b := tx.Bucket([]byte(bQuizResults))
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
		if !strings.Contains(string(k[len(prefix):]), "/") {
			keys = append(keys, append([]byte(nil), k...))
		}
	}
	for len(keys) > maxQuizStatuses {
		if err := b.Delete(keys[0]); err != nil {
			return err
		}
		keys = keys[1:]
	}
	return nil
}

// LastQuizAttempt is the inmate's newest attempt at quiz quizID of course courseID that this
// terminal knows of, with the relay's result if it came (ok false: none).
func (t *Terminal) LastQuizAttempt(inmateID, courseID, quizID string) (st QuizStatus, ok bool, err error) {
	prefix := quizPrefix(inmateID, courseID, quizID)
	err = t.store.view(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bQuizResults)).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			if strings.Contains(string(k[len(prefix):]), "/") {
				continue // another course or quiz whose id continues this one's with a slash
			}
			var s QuizStatus
			if err := json.Unmarshal(v, &s); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read quiz results", Err: fmt.Errorf("%q: %w", k, err)}
			}
			st, ok = s, true
		}
		return nil
	})
	return st, ok, err
}
