package relay

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

func reportIDs(os []Outbound) []string {
	var ids []string
	for _, o := range os {
		ids = append(ids, o.ID+" "+o.FacilityID)
	}
	return ids
}

// A facility's PREA reports are listed under it, whoever filed them (named, anonymous, or a
// letter to the PREA channel): north's coordinator reads north's, never south's, through the
// Go API and the admin API's facility filter, and no report's text reaches the log. A store
// upgraded from schema 19 lists them, and verify names a report off its list and a report
// listed under a facility not its own, which north's list then does not show.
func TestPREAReportsListedByFacility(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.seedSouth()
	kn, ks := e.enroll(wire.ModeKiosk, ""), e.enrollAt("south", wire.ModeKiosk, "")
	cn, cs := kn.connect(t, 0), ks.connect(t, 0)
	id := func() string { return uuid.Must(uuid.NewV7()).String() }
	named, anonymous, viaLetter, south := id(), id(), id(), id()
	const secret = "the text of a report, for the coordinator's eyes only"
	if ack := cn.batch(kn.item(wire.UpPREA, msg(named, "A1", kiosk.PREAChannel, secret)),
		kn.item(wire.UpPREA, msg(anonymous, "", kiosk.PREAChannel, secret)),
		kn.item(wire.UpMessage, msg(viaLetter, "A2", kiosk.PREAChannel, secret))); len(ack.Rejected) != 0 {
		t.Fatalf("north's reports: ack %+v", ack)
	}
	if ack := cs.batch(ks.item(wire.UpPREA, msg(south, "S1", kiosk.PREAChannel, secret))); len(ack.Rejected) != 0 {
		t.Fatalf("south's report: ack %+v", ack)
	}
	wantNorth := []string{named + " north", anonymous + " north", viaLetter + " north"}
	slices.Sort(wantNorth)
	check := func(when string) {
		t.Helper()
		for fac, want := range map[string][]string{"north": wantNorth, "south": {south + " south"}} {
			got, err := e.r.PREAReportsOf(fac)
			if err != nil || !slices.Equal(reportIDs(got), want) {
				t.Errorf("%s: %s's reports %v (%v), want %v", when, fac, reportIDs(got), err, want)
			}
			for _, o := range got {
				if o.Body != secret {
					t.Errorf("%s: report %s has text %q", when, o.ID, o.Body)
				}
			}
		}
		both, err := e.r.PREAReportsOf("north", "south")
		if want := append(slices.Clone(wantNorth), south+" south"); err != nil || !slices.Equal(reportIDs(both), want) {
			t.Errorf("%s: both facilities' reports %v (%v), want %v", when, reportIDs(both), err, want)
		}
		var pl struct{ Reports []Outbound }
		e.must(http.StatusOK, "GET", "/admin/v1/prea?facility_id=north", nil, &pl)
		if got := reportIDs(pl.Reports); !slices.Equal(got, wantNorth) {
			t.Errorf("%s: the admin API's north reports %v, want %v", when, got, wantNorth)
		}
		e.must(http.StatusOK, "GET", "/admin/v1/prea?facility_id=north&inmate_id=A1", nil, &pl)
		if got := reportIDs(pl.Reports); !slices.Equal(got, []string{named + " north"}) {
			t.Errorf("%s: the admin API's north reports of A1 %v, want %s's", when, got, named)
		}
		e.must(http.StatusOK, "GET", "/admin/v1/prea?facility_id=south&inmate_id=A1", nil, &pl)
		if len(pl.Reports) != 0 {
			t.Errorf("%s: the admin API's south reports of A1 %v, want none", when, reportIDs(pl.Reports))
		}
		e.must(http.StatusOK, "GET", "/admin/v1/prea", nil, &pl)
		if len(pl.Reports) != 4 {
			t.Errorf("%s: every report (the export): %v, want 4", when, reportIDs(pl.Reports))
		}
		if rep, err := e.r.Verify(); err != nil || !rep.OK {
			t.Errorf("%s: verify %+v (%v)", when, rep, err)
		}
	}
	check("as filed")
	if rs, err := e.r.PREAReportsOf(); err != nil || len(rs) != 0 {
		t.Errorf("the reports of no facility: %v (%v), want none", reportIDs(rs), err)
	}
	if _, err := e.r.PREAReportsOf("no/such"); err == nil || !strings.Contains(err.Error(), "facility_id") {
		t.Errorf("a facility id with a slash: %v, want an error naming facility_id", err)
	}
	if status, raw := e.call("GET", "/admin/v1/prea?facility_id=", nil); status != http.StatusBadRequest || !strings.Contains(string(raw), "facility_id") {
		t.Errorf("an empty facility_id: %d %s, want 400 naming facility_id", status, raw)
	}
	if strings.Contains(e.logText(), secret) {
		t.Errorf("a report's text reached the log:\n%s", e.logText())
	}
	if os.Getenv(storeEnv) == "jetstream" {
		return // the rest rewinds the bbolt file
	}
	cn.c.Close(websocket.StatusNormalClosure, "")
	cs.c.Close(websocket.StatusNormalClosure, "")
	e.close()
	e.rewind(func(tx kv.Tx) error { // schema 19 had no lists of reports
		if err := tx.DeleteBucket([]byte(bFacPREA)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(19))
	})
	e.open()
	check("after the upgrade")
	e.close()
	e.rewind(func(tx kv.Tx) error { return deleteKey(tx, bFacPREA, "north/"+anonymous) })
	e.open()
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "prea_list" || !strings.Contains(rep.Problems[0].Detail, anonymous) {
		t.Fatalf("verify of a report off its list: %+v (%v), want one prea_list problem naming %s", rep, err, anonymous)
	}
	e.close()
	e.rewind(func(tx kv.Tx) error { // south's report listed under north too
		if err := putRaw(tx, bFacPREA, "north/"+anonymous, nil); err != nil {
			return err
		}
		return putRaw(tx, bFacPREA, "north/"+south, nil)
	})
	e.open()
	rep, err = e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "prea_list" || !strings.Contains(rep.Problems[0].Detail, south) {
		t.Fatalf("verify of another facility's report on north's list: %+v (%v), want one prea_list problem naming %s", rep, err, south)
	}
	if got, err := e.r.PREAReportsOf("north"); err != nil || !slices.Equal(reportIDs(got), wantNorth) {
		t.Errorf("north's reports with south's listed there: %v (%v), want %v", reportIDs(got), err, wantNorth)
	}
	for _, p := range rep.Problems {
		if strings.Contains(p.Detail, secret) {
			t.Errorf("verify's problem holds a report's text: %+v", p)
		}
	}
}
