package relay

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

func terminalIDs(ts []TerminalInfo) []string {
	var ids []string
	for _, t := range ts {
		id := t.ID
		if t.Revoked {
			id += " (revoked)"
		}
		ids = append(ids, id)
	}
	return ids
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// A facility's staff see its terminals, live and revoked, and none of another facility's;
// one terminal reads as the list shows it.
func TestTerminalsOfAFacility(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.seedSouth()
	n1, n2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeTablet, "A1")
	s1 := e.enrollAt("south", wire.ModeKiosk, "")
	if err := e.r.Revoke(n2.id); err != nil {
		t.Fatal(err)
	}
	north, err := e.r.TerminalsOf("north")
	want := sortedIDs(n1.id, n2.id+" (revoked)")
	if err != nil || !slices.Equal(terminalIDs(north), want) {
		t.Fatalf("north's terminals: %v (%v), want %v", terminalIDs(north), err, want)
	}
	both, err := e.r.TerminalsOf("south", "north", "south")
	want = sortedIDs(n1.id, n2.id+" (revoked)", s1.id)
	if err != nil || !slices.Equal(terminalIDs(both), want) {
		t.Fatalf("both facilities' terminals: %v (%v), want %v", terminalIDs(both), err, want)
	}
	var tl struct{ Terminals []TerminalInfo }
	e.must(http.StatusOK, "GET", "/admin/v1/terminals?facility_id=south", nil, &tl)
	if got := terminalIDs(tl.Terminals); !slices.Equal(got, []string{s1.id}) {
		t.Errorf("GET /admin/v1/terminals?facility_id=south: %v, want %v", got, []string{s1.id})
	}
	if ts, err := e.r.TerminalsOf(); err != nil || len(ts) != 0 {
		t.Errorf("the terminals of no facility: %v (%v), want none", terminalIDs(ts), err)
	}
	if _, err := e.r.TerminalsOf("north", "no/such"); err == nil || !strings.Contains(err.Error(), "facility_id") {
		t.Errorf("a facility id with a slash: %v, want an error naming facility_id", err)
	}
	info, found, err := e.r.Terminal(n2.id)
	if err != nil || !found || !info.Revoked || info.FacilityID != "north" || info.InmateID != "A1" {
		t.Errorf("terminal %s: %+v found %v (%v), want north's revoked tablet of A1", n2.id, info, found, err)
	}
	if _, found, err := e.r.Terminal("nobody"); err != nil || found {
		t.Errorf("an unknown terminal: found %v (%v)", found, err)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify: %+v (%v)", rep, err)
	}
}

// Terminals revoked before schema 14 are listed under their facility after the upgrade, and
// verify names a revoked terminal missing from its facility's list.
func TestRevokedTerminalsListedAfterUpgrade(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k1, k2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	if err := e.r.Revoke(k2.id); err != nil {
		t.Fatal(err)
	}
	e.close()
	e.rewind(func(tx kv.Tx) error { // schema 13 had no list of revoked terminals
		if err := tx.DeleteBucket([]byte(bFacRevoked)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(13))
	})
	e.open()
	north, err := e.r.TerminalsOf("north")
	want := sortedIDs(k1.id, k2.id+" (revoked)")
	if err != nil || !slices.Equal(terminalIDs(north), want) {
		t.Fatalf("north's terminals after the upgrade: %v (%v), want %v", terminalIDs(north), err, want)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify after the upgrade: %+v (%v)", rep, err)
	}
	e.close()
	e.rewind(func(tx kv.Tx) error { return deleteKey(tx, bFacRevoked, "north/"+k2.id) })
	e.open()
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "terminal_list" ||
		!strings.Contains(rep.Problems[0].Detail, k2.id) {
		t.Fatalf("verify of a revoked terminal off its list: %+v (%v), want one terminal_list problem naming %s", rep, err, k2.id)
	}
}

// rewind changes the closed relay's bbolt file with fn, as an older relay or damage would
// have left it.
func (e *env) rewind(fn func(tx kv.Tx) error) {
	e.t.Helper()
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(context.Background(), func(tx kv.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if readU64(tx.Bucket([]byte(bMeta)).Get([]byte(kSchema))) < 24 {
			return oldLetters(tx)
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

// oldLetters puts the letters back where a store before schema 24 kept them (bOutbound, by
// id, with no index), for a test that rewinds a store to an older schema.
func oldLetters(tx kv.Tx) error {
	lb, out := tx.Bucket([]byte(bLetters)), tx.Bucket([]byte(bOutbound))
	var facilities [][]byte
	if err := lb.ForEachBucket(func(name []byte) error { facilities = append(facilities, bytes.Clone(name)); return nil }); err != nil {
		return err
	}
	for _, f := range facilities {
		if err := lb.Bucket(f).ForEach(func(k, v []byte) error { return out.Put(bytes.Clone(k), bytes.Clone(v)) }); err != nil {
			return err
		}
		if err := lb.DeleteBucket(f); err != nil {
			return err
		}
	}
	at := tx.Bucket([]byte(bLetterAt))
	var ids [][]byte
	if err := at.ForEach(func(k, _ []byte) error { ids = append(ids, bytes.Clone(k)); return nil }); err != nil {
		return err
	}
	for _, id := range ids {
		if err := at.Delete(id); err != nil {
			return err
		}
	}
	return nil
}
