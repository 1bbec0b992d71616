package relay

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
)

// seedSchema8 writes, a few hundred keys a transaction, a store at schema 8 holding more
// records to migrate than one JetStream transaction commits: 1,200 terminals of facilities
// and 300 charges in the flat buckets schema 9 nests by owner, and 300 inmates to list; or,
// with tenth, a tenth of each.
func seedSchema8(t *testing.T, db kv.Store, tenth bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	update := func(fn func(tx kv.Tx) error) {
		t.Helper()
		if err := db.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx kv.Tx) error {
		if err := migrate0to1(tx); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(8))
	})
	put := func(bucket string, n int, rec func(i int) (string, []byte)) {
		for i := 0; i < n; i += 200 {
			update(func(tx kv.Tx) error {
				for j := i; j < min(n, i+200); j++ {
					k, v := rec(j)
					if err := tx.Bucket([]byte(bucket)).Put([]byte(k), v); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	terms, charges, inmates := 1200, 300, 300
	if tenth {
		terms, charges, inmates = 120, 30, 30
	}
	put(bFacTerms, terms, func(i int) (string, []byte) { return fmt.Sprintf("fac-%02d/term-%04d", i%7, i), nil })
	put(bCharges, charges, func(i int) (string, []byte) {
		return fmt.Sprintf("inm-%03d/charge-%04d", i%50, i), []byte(fmt.Sprintf(`{"cents":%d}`, i))
	})
	put(bInmates, inmates, func(i int) (string, []byte) {
		b, _ := json.Marshal(inmateRec{Inmate: vocab.Inmate{ID: fmt.Sprintf("inm-%03d", i)}, FacilityID: fmt.Sprintf("fac-%02d", i%7)})
		return fmt.Sprintf("inm-%03d", i), b
	})
}

// dumpStore lists everything a store holds: each key with its value and each bucket's
// sequence, by path.
func dumpStore(t *testing.T, db kv.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(path string, b kv.Bucket)
	walk = func(path string, b kv.Bucket) {
		out[path+" seq"] = fmt.Sprint(b.Sequence())
		_ = b.ForEach(func(k, v []byte) error { out[path+" "+hex.EncodeToString(k)] = string(v); return nil })
		_ = b.ForEachBucket(func(n []byte) error { walk(path+"/"+string(n), b.Bucket(n)); return nil })
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.View(ctx, func(tx kv.Tx) error {
		return tx.ForEachBucket(func(n []byte) error { walk(string(n), tx.Bucket(n)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameStore fails the test with the first differences between two dumps.
func sameStore(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok || g != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s: %q, want %q", k, g, want[k]))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %q, not in the store migrated in one transaction", k, got[k]))
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("%s differs from the bbolt store migrated in one transaction in %d places, first: %s", what, len(diffs), strings.Join(diffs[:min(5, len(diffs))], "; "))
	}
}

// A JetStream store holding more records to migrate than one transaction commits is migrated
// in steps: cut by an error half way through applying the plan, or while storing the plan,
// and run again, it ends holding exactly what the same store on bbolt holds after the
// migrations ran there in one transaction, at the current schema, with no plan left. Before
// the steps, a relay could not open such a store (kv: transaction too large).
func TestMigrationInStepsSurvivesACut(t *testing.T) {
	// want is what the bbolt reference holds after migrating the seed in one transaction:
	// want[true] a tenth of the seed, which the cut runs migrate in steps a tenth the size
	// (migrateHooks.stepOps), so that they take as many steps for a tenth of the work.
	want := map[bool]map[string]string{}
	for _, tenth := range []bool{false, true} {
		ref, err := boltkv.Open(filepath.Join(t.TempDir(), "ref.db"), &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		seedSchema8(t, ref, tenth)
		if err := migrateStore(ref, t.TempDir(), "the bbolt reference"); err != nil {
			t.Fatal(err)
		}
		want[tenth] = dumpStore(t, ref)
		if want[tenth][bMeta+" "+hex.EncodeToString([]byte(kSchema))] != string(u64(schemaVersion)) {
			t.Fatal("the reference was not migrated")
		}
	}
	const tenthStep = planStepOps / 10

	c := natstest.Start(t)
	cut := errors.New("cut")
	for _, tc := range []struct {
		name  string
		phase string
		step  int
		close bool // the gateway's connection closes instead of the step returning an error
	}{{"cut applying", "apply", 3, false}, {"cut storing the plan", "plan", 2, false}, {"connection lost applying", "apply", 5, true}} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "_")
			db := jetStore(t, c, 0, name)
			seedSchema8(t, db, true)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			// A gateway that lost its connection retries until its deadline: here, at once.
			cutCtx, cutCancel := context.WithCancel(ctx)
			defer cutCancel()
			steps := 0
			hooks := &migrateHooks{stepOps: tenthStep, after: func(phase string, step int) error {
				if phase == "apply" {
					steps++
				}
				if phase == tc.phase && step == tc.step {
					if tc.close {
						db.Conn().Close()
						cutCancel()
						return nil
					}
					return cut
				}
				return nil
			}}
			err := migrateInSteps(cutCtx, db, t.TempDir(), name, hooks)
			if !errors.Is(err, cut) && !(tc.close && (kv.Retryable(err) || errors.Is(err, context.Canceled))) {
				t.Fatalf("the cut migration returned %v, want the cut", err)
			}
			half := dumpStore(t, jetStore(t, c, 2, name))
			if half[bMeta+" "+hex.EncodeToString([]byte(kSchema))] != string(u64(8)) {
				t.Fatal("the schema number moved before the migration finished")
			}
			// Run again, through another node, as a restarted gateway would.
			again := jetStore(t, c, 1, name)
			resumed := 0
			count := &migrateHooks{stepOps: tenthStep, after: func(phase string, _ int) error {
				if phase == "apply" {
					resumed++
				}
				return nil
			}}
			if err := migrateInSteps(ctx, again, t.TempDir(), name, count); err != nil {
				t.Fatalf("the migration run again: %v", err)
			}
			sameStore(t, "the JetStream store migrated across a cut", dumpStore(t, again), want[true])
			if tc.phase == "apply" && (steps != tc.step+1 || resumed == 0) {
				t.Fatalf("%d steps applied before the cut and %d after it: the cut was not half way", steps, resumed)
			}
			// A relay opens it as it is.
			r, err := Open(Config{DataDir: t.TempDir(), Store: again})
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
		})
	}
	t.Run("two gateways at once", func(t *testing.T) {
		a, b := jetStore(t, c, 0, "together"), jetStore(t, c, 1, "together")
		seedSchema8(t, a, true)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		errs := make(chan error, 2)
		for _, db := range []kv.Store{a, b} {
			go func() {
				errs <- migrateInSteps(ctx, db, t.TempDir(), "together", &migrateHooks{stepOps: tenthStep})
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("a gateway migrating beside another: %v", err)
			}
		}
		sameStore(t, "the JetStream store two gateways migrated at once", dumpStore(t, b), want[true])
	})
	t.Run("straight through, by relay.Open", func(t *testing.T) {
		db := jetStore(t, c, 2, "straight")
		seedSchema8(t, db, false)
		dir := filepath.Join(t.TempDir(), "not-yet-made")
		r, err := Open(Config{DataDir: dir, Store: db})
		if err != nil {
			t.Fatalf("open a relay on a schema 8 store of 1,800 records: %v", err)
		}
		r.Close()
		if left, _ := filepath.Glob(filepath.Join(dir, "migrate-*")); len(left) != 0 {
			t.Fatalf("the migration left its copies: %v", left)
		}
		got := dumpStore(t, db)
		// The gateway's own buckets (owner.go, startOwners).
		maps.DeleteFunc(got, func(k, _ string) bool {
			return strings.HasPrefix(k, bOwners) || strings.HasPrefix(k, bDownCut)
		})
		sameStore(t, "the JetStream store migrated by relay.Open", got, want[false])
	})
}

// buildTree writes into tx what data says, three bytes at a time: a key put or deleted, a
// nested bucket made, a sequence set, in root buckets r0..r2 and their nested n0..n2. What
// bbolt refuses (a bucket where a key is) is skipped.
func buildTree(tx kv.Tx, data []byte) {
	for i := 0; i+2 < len(data); i += 3 {
		op, where, key := data[i], data[i+1], data[i+2]
		b, err := tx.CreateBucketIfNotExists([]byte{'r', '0' + where%3})
		if err != nil {
			continue
		}
		if n := where / 3 % 4; n < 3 {
			if b, err = b.CreateBucketIfNotExists([]byte{'n', '0' + n}); err != nil {
				continue
			}
		}
		k := []byte{'k', '0' + key%5}
		switch op % 4 {
		case 0:
			_ = b.Put(k, []byte{op, key})
		case 1:
			_ = b.Delete(k)
		case 2:
			_ = b.SetSequence(uint64(op))
		case 3:
			if where%2 == 0 {
				_ = tx.DeleteBucket([]byte{'r', '0' + key%3})
			}
		}
	}
}

// FuzzMigrationPlan: the plan made from two stores (diffTree), applied to the first one write
// at a time (applyOp), makes it hold exactly what the second holds: every key, value, nested
// bucket and sequence. This is what makes a migration in steps end as the one transaction.
func FuzzMigrationPlan(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 3, 2}, []byte{0, 1, 1, 2, 4, 0})
	f.Add([]byte{0, 0, 1, 1, 5, 1, 2, 7, 0}, []byte{3, 0, 0, 0, 9, 4})
	f.Add([]byte{0, 2, 3, 0, 11, 3, 2, 2, 2}, []byte{})
	f.Add([]byte{}, []byte{0, 4, 1, 0, 10, 2, 2, 9, 1, 0, 1, 4})
	f.Fuzz(func(t *testing.T, before, after []byte) {
		open := func(name string, data []byte) *boltkv.Store {
			s, err := boltkv.Open(filepath.Join(t.TempDir(), name), &bolt.Options{Timeout: time.Second, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if err := s.Update(context.Background(), func(tx kv.Tx) error { buildTree(tx, data); return nil }); err != nil {
				t.Fatal(err)
			}
			return s
		}
		a, b := open("a.db", before), open("b.db", after)
		var ops []planOp
		if err := a.View(context.Background(), func(ta kv.Tx) error {
			return b.View(context.Background(), func(tb kv.Tx) error { ops = diffTree(ta, tb); return nil })
		}); err != nil {
			t.Fatal(err)
		}
		for i, op := range ops {
			// Each write in a transaction of its own, through its JSON form, as a step stores it.
			raw, err := json.Marshal(op)
			if err != nil {
				t.Fatal(err)
			}
			var back planOp
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if err := a.Update(context.Background(), func(tx kv.Tx) error { return applyOp(tx, back) }); err != nil {
				t.Fatalf("write %d (%s %q %q): %v", i, op.Op, op.Path, op.Key, err)
			}
		}
		got, want := dumpStore(t, a), dumpStore(t, b)
		if !maps.Equal(got, want) {
			t.Fatalf("after the plan's %d writes the store holds %v, want %v", len(ops), got, want)
		}
	})
}
