package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/faclog/jsfaclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Every root bucket is placed: a facility's own, its terminals', its inmates', or the
// state's. A new root must be placed before a held facility could write it.
func TestEveryRootHasAnOwnerKind(t *testing.T) {
	for _, root := range everyRoot() {
		if _, known := rootOwner(root); !known {
			t.Errorf("root %q is not placed in rootOwner (facscope.go)", root)
		}
	}
}

// everyRoot is every root the relay makes: those of a new store (allBuckets), the two a store
// shared by gateways has besides (owner.go: a terminal passed by a prune, which its resync on
// a held facility clears, and the connections' claims), those made on first use (the holders
// of held facilities among them), and the plan of a migration longer than a transaction
// (migrate_steps.go).
func everyRoot() []string {
	return append(allBuckets(), bDownCut, bOwners, bStaff, bInboundHeld, bDepositsDue, bRefundsDue, bDepositRefunds, bFanoutsDue, bMigration, bHolds, bHandovers)
}

// A root made on first use (tx.CreateBucketIfNotExists in the package's code) is one
// everyRoot lists, so that TestEveryRootHasAnOwnerKind asks where it is placed: three such
// roots (the console's, the letters held for photo review, a migration's plan) went unplaced
// until stop 36.
func TestEveryRootMadeIsListed(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	var made []*ast.Ident
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if i < len(n.Values) {
						if lit, ok := n.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "CreateBucketIfNotExists" && sel.Sel.Name != "CreateBucket") || len(n.Args) != 1 {
					return true
				}
				if recv, ok := sel.X.(*ast.Ident); !ok || recv.Name != "tx" {
					return true // a nested bucket's
				}
				if conv, ok := n.Args[0].(*ast.CallExpr); ok && len(conv.Args) == 1 {
					if id, ok := conv.Args[0].(*ast.Ident); ok && strings.HasPrefix(id.Name, "b") {
						made = append(made, id)
					}
				}
			}
			return true
		})
	}
	if len(made) < 10 {
		t.Fatalf("found %d roots made by name, want the package's (more than 10): the search is broken", len(made))
	}
	listed := everyRoot()
	for _, id := range made {
		root, ok := consts[id.Name]
		if !ok {
			t.Errorf("%s: %s is no string constant of the package", fset.Position(id.Pos()), id.Name)
		} else if !slices.Contains(listed, root) {
			t.Errorf("%s: root %s (%q) is made there but not listed in everyRoot", fset.Position(id.Pos()), id.Name, root)
		}
	}
}

// After a day of two facilities' terminals, every record of a root that owners hold names an
// owner the records know, and exactly one facility's scope holds it: the one its terminal,
// inmate or own record belongs to. What the state shares, no facility holds.
func TestEveryRecordHasOneFacility(t *testing.T) {
	e := dayOfTwoFacilities(t)
	facilities, ownerFacility := owners(t, e.r)
	var held []record
	if err := e.r.db.View(context.Background(), func(tx kv.Tx) error {
		for _, root := range allBuckets() {
			if kind, _ := rootOwner(root); kind == sharedRecords {
				continue
			}
			b := tx.Bucket([]byte(root))
			if err := b.ForEach(func(k, _ []byte) error { held = append(held, record{root, string(k)}); return nil }); err != nil {
				return err
			}
			if err := b.ForEachBucket(func(n []byte) error { held = append(held, record{root, string(n)}); return nil }); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(facilities) != 2 {
		t.Fatalf("facilities %v, want north and south", facilities)
	}
	ours := func(facility string) func(ownerKind, string) bool {
		return func(kind ownerKind, id string) bool { return ownerFacility[kind][id] == facility }
	}
	checkHolders(t, facilities, ownerFacility, ours, held)
	roots := map[string]bool{}
	for _, r := range held {
		roots[r.root] = true
	}
	// The day touched most of the owners' roots; a root that held nothing tests nothing.
	var missing []string
	for _, root := range allBuckets() {
		if kind, _ := rootOwner(root); kind != sharedRecords && !roots[root] {
			missing = append(missing, root)
		}
	}
	t.Logf("%d records in %d roots; roots left empty: %s", len(held), len(roots), strings.Join(missing, " "))
	if len(roots) < 22 {
		t.Fatalf("only %d roots held records: the day does not exercise the map", len(roots))
	}
	for f := range facilities {
		scope := facilityScope(f, ours(f), nil)
		for _, root := range []string{bTerminals, bEnrollments, bOutbound, bItemIDs, bDeposits} {
			if r := scope([][]byte{[]byte(root), []byte("x")}); r != faclog.Outside {
				t.Errorf("%s holds %s records: %v", f, root, r)
			}
		}
	}
}

// record is a key, or a nested bucket's name, directly in a root bucket.
type record struct{ root, name string }

// checkHolders checks that each record names an owner the records know, and that exactly
// its facility's scope holds it.
func checkHolders(t *testing.T, facilities map[string]bool, ownerFacility map[ownerKind]map[string]string,
	ours func(string) func(ownerKind, string) bool, records []record) {
	t.Helper()
	for _, r := range records {
		root, name := r.root, r.name
		kind, _ := rootOwner(root)
		owner, ok := ownerIn(root, []byte(name))
		if !ok {
			t.Errorf("%s %q names no owner", root, name)
			continue
		}
		want := owner
		if kind != facilityRecords {
			want = ownerFacility[kind][owner]
		}
		if !facilities[want] {
			t.Errorf("%s %q: owner %q belongs to no facility (%q)", root, name, owner, want)
			continue
		}
		var holders []string
		for f := range facilities {
			if facilityScope(f, ours(f), nil)([][]byte{[]byte(root), []byte(name)}) == faclog.Inside {
				holders = append(holders, f)
			}
		}
		if !slices.Equal(holders, []string{want}) {
			t.Errorf("%s %q (owner %s of %s) is held by %v", root, name, owner, want, holders)
		}
	}
}

// dayOfTwoFacilities is a relay after a day of north's and south's terminals: charges,
// credits, a session, letters held for review, a PREA report, an audit event, device
// statuses, a library use, a quiz, a deposit, an inbound letter, a roster change and a
// revocation.
func dayOfTwoFacilities(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, func(c *Config) { c.FacilityIDs = true }) // the ids in facilities' records, as a held facility keeps them
	e.seed()
	e.seedSouth()
	holdRequests(t, e)
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 900, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	e.letterContact("A1", "pal")
	if _, err := e.r.Inbound(InboundRequest{InmateID: "A1", From: "pal", Body: "from home"}); err != nil {
		t.Fatal(err)
	}
	at := "2026-03-02T10:00:00Z"
	north, tablet := e.enroll(wire.ModeKiosk, ""), e.enroll(wire.ModeTablet, "A1")
	south := e.enrollAt("south", wire.ModeKiosk, "")
	cn, ct, cs := north.connect(t, 0), tablet.connect(t, 0), south.connect(t, 0)
	cn.batch(north.item(wire.UpCharge, charge("A1", "s1", 0, 5)), north.item(wire.UpCharge, charge("S1", "s9", 0, 5)),
		letter(north, "A1", 0, "a letter"),
		north.item(wire.UpSessionEnd, map[string]any{"id": "s1", "inmate_id": "A1", "start": at, "end": "2026-03-02T10:02:00Z",
			"minutes": 1, "rate_cents": 5, "charged_cents": 5, "credited_cents": 0, "end_reason": "logout"}),
		north.item(wire.UpCredit, map[string]any{"record_id": "s1/0", "session_id": "s1", "inmate_id": "A1", "minute": 0, "cents": 5, "reason": "stall", "at": at}),
		north.item(wire.UpPREA, map[string]any{"id": "p-1", "inmate_id": "A1", "box": "outbox", "peer": "prea", "peer_name": "PREA report",
			"body": "report", "state": "queued", "created_at": at, "updated_at": at}),
		north.item(wire.UpAudit, map[string]any{"id": "ev-1", "at": at, "kind": "login_ok", "actor": "A1"}),
		north.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 3}))
	ct.batch(tablet.item(wire.UpCredit, map[string]any{"record_id": "s2/000000", "session_id": "s2", "inmate_id": "A1", "minute": 0, "cents": 5, "reason": "stall", "at": at}),
		tablet.item(wire.UpLibraryUse, map[string]any{"inmate_id": "A1", "day": "2026-03-02", "minutes": 40, "at": at}),
		tablet.item(wire.UpQuizAttempt, map[string]any{"id": "qa-1", "inmate_id": "A1", "course_id": "crs-1", "quiz_id": "q1", "answers": []int{1, 0}, "at": at}))
	cs.batch(south.item(wire.UpCharge, charge("S1", "s3", 0, 7)), south.item(wire.UpDeviceStatus, map[string]any{"items_waiting": 0}))
	for _, c := range []*tconn{cn, ct, cs} {
		c.c.Close(websocket.StatusNormalClosure, "")
	}
	// A2 and the technician leave north's roster; a south kiosk is revoked.
	if err := e.r.PutRoster("north", Roster{Inmates: []RosterInmate{
		{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en", Status: kiosk.StatusActive}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Revoke(e.enrollAt("south", wire.ModeKiosk, "").id); err != nil {
		t.Fatal(err)
	}
	return e
}

// owners is the relay's facilities, and the facility of each terminal and inmate.
func owners(t *testing.T, r *Relay) (facilities map[string]bool, ownerFacility map[ownerKind]map[string]string) {
	t.Helper()
	facilities = map[string]bool{}
	ownerFacility = map[ownerKind]map[string]string{terminalRecords: {}, inmateRecords: {}}
	if err := r.db.View(context.Background(), func(tx kv.Tx) error {
		if err := tx.Bucket([]byte(bFacilities)).ForEach(func(k, _ []byte) error { facilities[string(k)] = true; return nil }); err != nil {
			return err
		}
		for root, kind := range map[string]ownerKind{bTerminals: terminalRecords, bInmates: inmateRecords} {
			if err := tx.Bucket([]byte(root)).ForEach(func(k, v []byte) error {
				var rec struct {
					FacilityID string `json:"facility_id"`
				}
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("%s %s: %w", root, k, err)
				}
				ownerFacility[kind][string(k)] = rec.FacilityID
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return facilities, ownerFacility
}

// North, held over the relay's store with the map's scope, writes its own terminals', inmates'
// and own records, and none of south's or the state's: a refused write appends nothing, and
// what it wrote reaches the store through its projection when it lets go.
func TestAHeldFacilityWritesOnlyItsOwn(t *testing.T) {
	e := dayOfTwoFacilities(t)
	_, ownerFacility := owners(t, e.r)
	terminalOf := map[string]string{}
	for id, f := range ownerFacility[terminalRecords] {
		terminalOf[f] = id
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := natstest.Start(t)
	nc := c.Connect(0)
	l, err := natstest.Placed(ctx, func() (*jsfaclog.Log, error) { return jsfaclog.Open(ctx, nc, jsfaclog.Options{}) })
	if err != nil {
		t.Fatal(err)
	}
	ours := func(kind ownerKind, id string) bool { return ownerFacility[kind][id] == "north" }
	// North's holder numbers its items from blocks of its own, taken in kv transactions of
	// their own (itemnums.go); the items log's records below them are another gateway's.
	nums := &itemNumbers{block: 4096, keep: true}
	if err := nums.reserve(ctx, e.r.db, 3); err != nil {
		t.Fatal(err)
	}
	// A store shared by gateways has the prunes' marks too (owner.go).
	if err := e.r.db.Update(ctx, func(tx kv.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte(bDownCut)); return err }); err != nil {
		t.Fatal(err)
	}
	block := nums.blocks[0].first
	h, err := faclog.Hold(ctx, l, e.r.db, "north", "gw-test", faclog.HoldOptions{Scope: facilityScope("north", ours, nums.reserved),
		Clock: clock.NewFake(t0)}) // never moved: projected at release
	if err != nil {
		t.Fatal(err)
	}
	put := func(path ...string) error {
		return h.Store().Update(ctx, func(tx kv.Tx) error {
			b := tx.Bucket([]byte(path[0]))
			for _, name := range path[1 : len(path)-1] {
				nb, err := b.CreateBucketIfNotExists([]byte(name))
				if err != nil {
					return err
				}
				b = nb
			}
			return b.Put([]byte(path[len(path)-1]), []byte(`{"probe":true}`))
		})
	}
	for _, w := range []struct {
		path []string
		held bool
	}{
		{[]string{bDevices, terminalOf["north"]}, true},
		{[]string{bDevices, terminalOf["south"]}, false},
		{[]string{bDownCut, terminalOf["north"]}, true},
		{[]string{bDownCut, terminalOf["south"]}, false},
		{[]string{bBalances, "A1"}, true},
		{[]string{bBalances, "S1"}, false},
		{[]string{bFacTerms, "north", "t-probe"}, true},
		{[]string{bFacTerms, "south", "t-probe"}, false},
		{[]string{bTerminals, terminalOf["north"]}, false},
		{[]string{bItemIDs, "0193f0c2-0000-7000-8000-000000000001"}, false},
		{[]string{bFacIDs, "north", "s001734567890.0000"}, true},
		{[]string{bFacIDs, "south", "s001734567890.0000"}, false},
		{[]string{bItems, string(u64(block + 7))}, true},
		{[]string{bItems, string(u64(block - 1))}, false},
		{[]string{bItems, string(u64(block + 4096))}, false},
		{[]string{bItems, "not-a-number"}, false},
	} {
		err := put(w.path...)
		switch {
		case w.held && err != nil:
			t.Errorf("north writes %q: %v", w.path, err)
		case !w.held && !errors.Is(err, faclog.ErrNotHeld):
			t.Errorf("north writes %q: %v, want ErrNotHeld", w.path, err)
		}
	}
	// The items log's sequence is the state's: a holder takes its blocks in kv transactions
	// of their own, and a group commit on the held state numbers its items from them.
	if err := h.Store().Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte(bItems)).SetSequence(block + 8192) }); !errors.Is(err, faclog.ErrNotHeld) {
		t.Errorf("north takes a block of arrival numbers: %v, want ErrNotHeld", err)
	}
	takeThree := func(nums *itemNumbers) ([]uint64, error) {
		var got []uint64
		err := h.Store().Update(ctx, func(tx kv.Tx) error {
			nums.began()
			got = got[:0]
			for range 3 {
				n, err := nums.take(tx)
				if err != nil {
					return err
				}
				got = append(got, n)
			}
			return nil
		})
		nums.ended(err, false)
		return got, err
	}
	if got, err := takeThree(nums); err != nil || !slices.Equal(got, []uint64{block, block + 1, block + 2}) {
		t.Errorf("north numbers three items from its block: %v, %v, want %d.. and no error", got, err, block)
	}
	if _, err := takeThree(&itemNumbers{block: 4096}); !errors.Is(err, faclog.ErrNotHeld) {
		t.Errorf("north numbers three items with no block taken: %v, want ErrNotHeld", err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := e.r.db.View(ctx, func(tx kv.Tx) error {
		for _, p := range [][]string{{bDevices, terminalOf["north"]}, {bDevices, terminalOf["south"]}, {bBalances, "A1"}, {bBalances, "S1"}} {
			got = append(got, fmt.Sprintf("%s/%s=%v", p[0], p[1], strings.Contains(string(tx.Bucket([]byte(p[0])).Get([]byte(p[1]))), "probe")))
		}
		nb := tx.Bucket([]byte(bFacTerms)).Bucket([]byte("north"))
		got = append(got, fmt.Sprintf("fac_terms/north/t-probe=%v", nb != nil && nb.Get([]byte("t-probe")) != nil))
		items := tx.Bucket([]byte(bItems))
		got = append(got, fmt.Sprintf("items/block+7=%v", items.Get(u64(block+7)) != nil), fmt.Sprintf("items/block-1=%v", items.Get(u64(block-1)) != nil))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"devices/" + terminalOf["north"] + "=true", "devices/" + terminalOf["south"] + "=false",
		"balances/A1=true", "balances/S1=false", "fac_terms/north/t-probe=true", "items/block+7=true", "items/block-1=false"}
	if !slices.Equal(got, want) {
		t.Fatalf("the relay's store after north let go:\n%v\nwant\n%v", got, want)
	}
}
