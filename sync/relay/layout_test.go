package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// flattenLayout rewrites a store of this schema into the layout of schema 8: each owner-keyed
// bucket flat (owner + "/" + key), refused_items numbered by one global sequence, no list of
// each facility's inmates and no index of inbound letters. Tests use it to make a store as an
// older relay left it.
func flattenLayout(tx kv.Tx) error {
	if err := oldLetters(tx); err != nil { // letters were the state's records, by id, until v24
		return err
	}
	if err := tx.DeleteBucket([]byte(bFacInmates)); err != nil {
		return err
	}
	for _, name := range allBuckets() {
		if !ownerKeyed(name) || name == bFacInmates {
			continue
		}
		b := tx.Bucket([]byte(name))
		var owners []string
		if err := b.ForEachBucket(func(n []byte) error { owners = append(owners, string(n)); return nil }); err != nil {
			return err
		}
		for _, owner := range owners {
			type rec struct{ k, v []byte }
			var recs []rec
			if err := b.Bucket([]byte(owner)).ForEach(func(k, v []byte) error {
				recs = append(recs, rec{bytes.Clone(k), bytes.Clone(v)})
				return nil
			}); err != nil {
				return err
			}
			if err := b.DeleteBucket([]byte(owner)); err != nil {
				return err
			}
			for _, r := range recs {
				key := owner + "/" + string(r.k)
				if name == bByInmate && bytes.HasPrefix(r.k, []byte("i/")) {
					continue
				}
				if name == bRefused {
					n, err := b.NextSequence()
					if err != nil {
						return err
					}
					key = string(u64(n))
				}
				if err := b.Put([]byte(key), r.v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// dumpOwnerKeyed lists every record of the owner-keyed buckets by its logical key (what the
// relay's readers see), refusals by terminal in their order.
func dumpOwnerKeyed(t *testing.T, r *Relay) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := r.db.View(context.Background(), func(tx kv.Tx) error {
		clear(out)
		for _, name := range allBuckets() {
			if !ownerKeyed(name) {
				continue
			}
			i := 0
			if err := forEachRaw(tx, name, "", func(k string, raw []byte) bool {
				if name == bRefused {
					var rf Refusal
					_ = json.Unmarshal(raw, &rf)
					i++
					k = fmt.Sprintf("%s#%d", rf.TerminalID, i)
				}
				out[name+" "+k] = string(raw)
				return true
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// seedSouth makes a second facility, "south", with inmate S1.
func (e *env) seedSouth() {
	e.t.Helper()
	p := kiosk.DefaultPolicy()
	p.FacilityName = "South"
	if err := e.r.PutPolicy("south", p); err != nil {
		e.t.Fatal(err)
	}
	if err := e.r.PutRoster("south", Roster{
		Inmates:     []RosterInmate{{ID: "S1", Name: "Sol", Badges: []string{"SB1"}, PIN: "4567", Language: "en", Status: kiosk.StatusActive}},
		Technicians: []RosterTechnician{{ID: "T9", Name: "Tom", Badges: []string{"TB9"}, PIN: "8888", Role: "installer"}},
	}); err != nil {
		e.t.Fatal(err)
	}
}

// A store written by schema 8 (every owner-keyed bucket flat, refusals numbered globally)
// opens as schema 9 with nothing lost: balances, statements, refusals in their order, letter
// history, technicians and the fan-out to each facility's terminals read as before.
func TestSchema8FlatBucketsMigrate(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	e.seedSouth()
	holdRequests(t, e)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 500, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	e.letterContact("A1", "pal")
	home, err := e.r.Inbound(InboundRequest{InmateID: "A1", From: "pal", Body: "from home"})
	if err != nil {
		t.Fatal(err)
	}
	north, north2 := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeKiosk, "")
	south := e.enrollAt("south", wire.ModeKiosk, "")
	cn, cs := north.connect(t, 0), south.connect(t, 0)
	cn.batch(north.item(wire.UpCharge, charge("A1", "s1", 0, 5)), north.item(wire.UpCharge, charge("A1", "s1", 1, 5)),
		north.item(wire.UpCharge, charge("S1", "s9", 0, 5)), // not north's: refused
		letter(north, "A1", 0, "before the upgrade"))
	cs.batch(south.item(wire.UpCharge, charge("S1", "s2", 0, 7)), south.item(wire.UpCharge, charge("A1", "s8", 0, 7)))
	cn.batch(north.item(wire.UpCharge, charge("A2", "s7", 0, 9)))
	cn.batch(north.item(wire.UpCharge, charge("S1", "s6", 0, 1))) // north's second refusal
	// A2 leaves north's roster: released.
	if err := e.r.PutRoster("north", Roster{Inmates: []RosterInmate{
		{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive}},
		Technicians: []RosterTechnician{{ID: "T1", Name: "Tess", Badges: []string{"TB1"}, PIN: "9999", Role: "installer"}}}); err != nil {
		t.Fatal(err)
	}
	cn.c.Close(websocket.StatusNormalClosure, "")
	cs.c.Close(websocket.StatusNormalClosure, "")

	usageA1, err := e.r.Usage("A1")
	if err != nil {
		t.Fatal(err)
	}
	refusals, err := e.r.Refusals(RefusalFilter{})
	if err != nil || len(refusals) != 3 {
		t.Fatalf("refusals before the upgrade: %+v, %v; want 3", refusals, err)
	}
	before := dumpOwnerKeyed(t, e.r)
	e.close()

	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		if err := flattenLayout(tx); err != nil {
			return err
		}
		if n := tx.Bucket([]byte(bCharges)).KeyN(); n != 4 {
			t.Errorf("the flat store holds %d charges at its top, want 4", n)
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(8))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	e.open()
	var version uint64
	_ = e.r.db.View(context.Background(), func(tx kv.Tx) error { version = readU64(tx.Bucket([]byte(bMeta)).Get([]byte(kSchema))); return nil })
	if version != schemaVersion {
		t.Fatalf("schema %d after open, want %d", version, schemaVersion)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Fatalf("verify after the migration: %+v, %v", rep, err)
	}
	if after := dumpOwnerKeyed(t, e.r); !reflect.DeepEqual(after, before) {
		t.Fatalf("records after the migration differ:\nbefore %v\nafter  %v", before, after)
	}
	if u, err := e.r.Usage("A1"); err != nil || !reflect.DeepEqual(u, usageA1) {
		t.Fatalf("A1's statement after the migration: %+v, %v; before %+v", u, err, usageA1)
	}
	if b := e.balanceOf("A1"); b != 500-5-5 {
		t.Fatalf("A1's balance after the migration: %s", b)
	}
	if got, err := e.r.Refusals(RefusalFilter{}); err != nil || !reflect.DeepEqual(got, refusals) {
		t.Fatalf("refusals after the migration: %+v, %v; before %+v", got, err, refusals)
	}
	if got, err := e.r.Refusals(RefusalFilter{TerminalID: north.id}); err != nil || len(got) != 2 || got[0].Seq >= got[1].Seq {
		t.Fatalf("north's refusals after the migration: %+v, %v; want its 2 in order", got, err)
	}
	// New refusals are numbered after the moved ones.
	cn = north.connect(t, 0)
	defer cn.c.Close(websocket.StatusNormalClosure, "")
	cn.batch(north.item(wire.UpCharge, charge("S1", "s5", 0, 1)))
	if got, _ := e.r.Refusals(RefusalFilter{TerminalID: north.id}); len(got) != 3 || got[2].Seq != north.seq {
		t.Fatalf("north's refusals after one more: %+v", got)
	}
	// The fan-out index moved too: a charge from north reaches north's other kiosk.
	cn.batch(north.item(wire.UpCharge, charge("A1", "s3", 0, 2)))
	reached := false
	for _, it := range e.downKinds(north2.id, wire.DownRemoteCharge) {
		reached = reached || bytes.Contains(it.Body, []byte(`"s3/0"`))
	}
	if !reached {
		t.Fatal("north's charge after the migration did not reach north's second kiosk")
	}
	if n := len(e.downKinds(south.id, wire.DownRemoteCharge)); n != 0 {
		t.Fatalf("south's kiosk was sent %d of north's charges", n)
	}
	// A kiosk enrolled after the upgrade gets north's inmates (fac_inmates, filled by the
	// migration) and the letter A1 received before it (by_inmate "i"), and none of south's.
	fresh := e.enroll(wire.ModeKiosk, "")
	var names []string
	for _, it := range e.downKinds(fresh.id, wire.DownInmate) {
		names = append(names, decodeAs[kiosk.Inmate](t, it.Body).ID)
	}
	if !slices.Equal(names, []string{"A2", "A3", "A1"}) { // the released first, then the roster
		t.Fatalf("inmates in the snapshot of a kiosk enrolled after the upgrade: %v", names)
	}
	if got := e.downKinds(fresh.id, wire.DownInboundMessage); len(got) != 1 || decodeAs[kiosk.Message](t, got[0].Body).ID != home.ID {
		t.Fatalf("inbound letters in its snapshot: %+v, want %s", got, home.ID)
	}
	// A session start brings the letter written before the upgrade (by_inmate moved).
	cn.batch(north.item(wire.UpAudit, sessionStarted("A1", "s-h")))
	hs := histories(t, e.r, north.id)
	if len(hs) == 0 || len(hs[len(hs)-1].Letters) != 1 || hs[len(hs)-1].Letters[0].Body != "before the upgrade" {
		t.Fatalf("history after the upgrade = %+v", hs)
	}
}

// An owner-keyed record left at the top of its bucket (a key naming no owner, which the
// migration leaves where it is) is reported by verify, not silently unseen.
func TestVerifyReportsAKeyWithNoOwner(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	if err := e.r.db.Update(context.Background(), func(tx kv.Tx) error {
		return tx.Bucket([]byte(bCharges)).Put([]byte("no-owner"), []byte(`{}`))
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.r.Verify()
	if err != nil || rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "layout" {
		t.Fatalf("verify = %+v, %v; want one layout problem", rep, err)
	}
}

// hotWork is what one terminal's commits do outside the items log, for inmate on terminal t:
// a charge (its fan-out to the facility's terminals and the inmate's totals), a refusal, a
// letter indexed for history, a session start's history, the inmate's contacts, a tablet's
// snapshot of the inmate (deposits, charges, credits, sessions) and a restored kiosk's whole
// snapshot. during runs between its reads and its commit.
func hotWork(r *Relay, tx kv.Tx, t TerminalInfo, inmate, record string, during func()) error {
	f := &fanout{r: r, tx: tx}
	var fac facilityRec
	if _, err := getJSON(tx, bFacilities, t.FacilityID, &fac); err != nil {
		return err
	}
	tm := &term{id: t.ID, epoch: "e1", mode: t.Mode}
	it := tm.item(wire.UpCharge, charge(inmate, record, 0, 3))
	if reason, err := r.applyUsage(tx, f, t, fac, fac.policy(), it, t0); err != nil || reason != "" {
		return fmt.Errorf("charge: %q %w", reason, err)
	}
	if err := recordRefusal(tx, Refusal{TerminalID: t.ID, Epoch: "e1", Seq: 9, ItemID: record, Kind: wire.UpCharge, Reason: wire.RefuseInvalid, At: t0}); err != nil {
		return err
	}
	if err := indexLetterTx(tx, inmate, uuid.Must(uuid.NewV7()).String()); err != nil {
		return err
	}
	if _, err := historyOf(tx, inmate, "s-"+record); err != nil {
		return err
	}
	if _, err := inmateContacts(tx, "", inmate); err != nil {
		return err
	}
	var in inmateRec
	if _, err := getJSON(tx, bInmates, inmate, &in); err != nil {
		return err
	}
	if err := r.snapshotInmate(tx, f, t.ID, in.Inmate, mail{}); err != nil {
		return err
	}
	if err := r.snapshot(tx, f, t, t0); err != nil { // a wiped kiosk's whole snapshot
		return err
	}
	if during != nil {
		during()
	}
	return nil
}

// Two gateways over one JetStream cluster commit at once for terminals of different
// facilities: neither transaction makes the other run again. Before schema 9 every such pair
// conflicted (refused_items' one sequence, the scans of by_inmate, charges and sessions, all
// one bucket each). The same work for one inmate from two terminals still conflicts: the
// counter is seen to count.
func TestGatewaysOfTwoFacilitiesDoNotConflict(t *testing.T) {
	c := natstest.Start(t)
	st1, st2 := jetStore(t, c, 0, "relay"), jetStore(t, c, 1, "relay")
	e1 := newEnv(t, func(cfg *Config) { cfg.Store = st1 })
	e2 := newEnv(t, func(cfg *Config) { cfg.Store = st2 })
	e1.seed()
	e1.seedSouth()
	north := TerminalInfo{ID: e1.enroll(wire.ModeKiosk, "").id, FacilityID: "north", Mode: wire.ModeKiosk}
	north2 := TerminalInfo{ID: e1.enroll(wire.ModeKiosk, "").id, FacilityID: "north", Mode: wire.ModeKiosk}
	south := TerminalInfo{ID: e2.enrollAt("south", wire.ModeKiosk, "").id, FacilityID: "south", Mode: wire.ModeKiosk}
	ctx := context.Background()

	// interleaved runs a's work on gateway 1 and, between its reads and its commit, b's whole
	// transaction on gateway 2; it returns how often gateway 1 ran its transaction again.
	interleaved := func(a TerminalInfo, aInmate string, b TerminalInfo, bInmate string, round int) int64 {
		t.Helper()
		before := st1.Stats().Conflicts
		first := true
		err := st1.Update(ctx, func(tx kv.Tx) error {
			return hotWork(e1.r, tx, a, aInmate, fmt.Sprintf("a%d", round), func() {
				if !first {
					return
				}
				first = false
				if err := st2.Update(ctx, func(tx kv.Tx) error {
					return hotWork(e2.r, tx, b, bInmate, fmt.Sprintf("b%d", round), nil)
				}); err != nil {
					t.Errorf("gateway 2: %v", err)
				}
			})
		})
		if err != nil {
			t.Fatalf("gateway 1: %v", err)
		}
		return st1.Stats().Conflicts - before
	}
	// The first round makes each owner's buckets; the later ones are the steady state.
	for round := range 3 {
		if n := interleaved(north, "A1", south, "S1", round); n != 0 && round > 0 {
			t.Errorf("round %d: north's commit on gateway 1 ran again %d times for south's on gateway 2", round, n)
		}
	}
	if n := interleaved(north, "A1", north2, "A1", 9); n == 0 {
		t.Error("two terminals' work for one inmate did not conflict: the conflict counter counts nothing")
	}
	// Every charge of the rounds landed once.
	if u, err := e1.r.Usage("S1"); err != nil || len(u.Records) != 3 {
		t.Fatalf("S1's statement: %+v, %v; want the 3 charges from south", u, err)
	}
}
