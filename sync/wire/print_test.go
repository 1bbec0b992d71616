package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// A print charge has its own shape (a job's record id, pages, no session) and may cost more
// than a minute; anything else under a print record id is refused naming what is wrong.
func TestCheckUpBodyPrintCharge(t *testing.T) {
	body := func(c vocab.Charge) json.RawMessage {
		b, _ := json.Marshal(c)
		return b
	}
	ok := vocab.Charge{RecordID: vocab.PrintRecordID("job-1"), InmateID: "A1", Cents: 20 * 15, Pages: 20}
	if err := CheckUpBody(UpCharge, body(ok)); err != nil {
		t.Fatalf("a 20-page job at 15¢: %v", err)
	}
	for _, tc := range []struct {
		name string
		c    vocab.Charge
		want string
	}{
		{"no job id", vocab.Charge{RecordID: vocab.PrintRecordPrefix, InmateID: "A1", Cents: 15, Pages: 1}, "record_id"},
		{"a session", vocab.Charge{RecordID: vocab.PrintRecordID("j"), SessionID: "s", InmateID: "A1", Cents: 15, Pages: 1}, "session_id"},
		{"a letter", vocab.Charge{RecordID: vocab.PrintRecordID("j"), MessageID: "m", InmateID: "A1", Cents: 15, Pages: 1}, "message_id"},
		{"pages on a minute", vocab.Charge{RecordID: "s/000001", SessionID: "s", Minute: 1, InmateID: "A1", Cents: 5, Pages: 1}, "record_id"},
		{"no pages", vocab.Charge{RecordID: vocab.PrintRecordID("j"), InmateID: "A1", Cents: 15}, "pages"},
		{"too many pages", vocab.Charge{RecordID: vocab.PrintRecordID("j"), InmateID: "A1", Cents: 15, Pages: vocab.MaxPrintPagesLimit + 1}, "pages"},
		{"too dear", vocab.Charge{RecordID: vocab.PrintRecordID("j"), InmateID: "A1", Cents: vocab.MaxPrintCharge + 1, Pages: 1}, "cents"},
		{"a minute as dear as a print", vocab.Charge{RecordID: "s/000001", SessionID: "s", Minute: 1, InmateID: "A1", Cents: 101}, "cents"},
	} {
		if err := CheckUpBody(UpCharge, body(tc.c)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}
