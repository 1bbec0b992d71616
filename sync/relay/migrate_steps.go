package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
)

// Migrating a store that commits a bounded transaction (JetStream: 1,000 messages, an atomic
// batch) in steps (docs/SCALE.md, "Migrations on JetStream").
//
// The migrations are written as one transaction each, and bbolt runs them so. A JetStream
// store holding a real deployment's records cannot: migrate8to9 alone moves every record of
// nine buckets. So the store is copied, in one read, into a bbolt file beside the relay's
// data; the migrations run there, as on bbolt; what they changed (the difference between the
// copy and the migrated copy) becomes a plan of writes, each absolute (put this value, delete
// this key, make or delete this bucket, set this sequence); and the plan is applied in steps:
//
//  1. the plan's writes are stored in the store, in a bucket of their own (bMigration), in
//     steps; nothing reads them, so a step re-run writes the same again;
//  2. one transaction marks the plan whole (kPlan in meta), if the schema is still the one it
//     was made from;
//  3. the writes are applied in order, some at a time, each step moving kPlan's count of
//     applied writes in the same transaction as its writes;
//  4. one transaction deletes the plan (one tombstone on a JetStream store, whatever it
//     holds) and writes the schema number: last.
//
// A migration cut anywhere (an error, a lost connection, a crash) and run again ends as one run
// straight through: before 2, the store holds its old records and a plan nobody applied,
// which is deleted and made again from the same records, to the same writes; after 2, the
// plan is resumed where the last committed step left it. Gateways opening the store at once
// read kPlan in every step's transaction, so no step is applied twice.

// bMigration holds the plan of a stepped migration: write number (8 bytes) -> planOp.
const bMigration = "migration"

// kPlan (in meta) is the header of a migration plan: planHeader.
const kPlan = "migration_plan"

// planStepOps bounds the writes of one step: each costs a message, plus the buckets' versions
// and read markers, well under JetStream's 1,000 a transaction.
const planStepOps = 200

// planStepBytes bounds the bytes of one step's values.
const planStepBytes = 4 << 20

// planHeader is a plan marked whole: made from schema From, it moves the store to To in Ops
// writes, of which Applied are applied.
type planHeader struct {
	From    uint64 `json:"from"`
	To      uint64 `json:"to"`
	Ops     uint64 `json:"ops"`
	Applied uint64 `json:"applied"`
	// Sum is the sha256 of the plan's writes as stored, in order.
	Sum string `json:"sum"`
}

// planOp is one absolute write: in the bucket at Path (root first), one of put Key=Value,
// delete Key, make the bucket (create), delete it (drop), set its sequence (seq).
type planOp struct {
	Op    string   `json:"op"`
	Path  [][]byte `json:"path"`
	Key   []byte   `json:"key,omitempty"`
	Value []byte   `json:"value,omitempty"`
	Seq   uint64   `json:"seq,omitempty"`
}

// migrateHooks lets a test cut a migration: after is called after each committed step (phase
// "plan" or "apply", step number from 0) and a non-nil error ends the migration with it.
type migrateHooks struct {
	after func(phase string, step int) error
	// stepOps, when set, bounds a step's writes instead of planStepOps: a test takes as many
	// steps through a store a tenth the size.
	stepOps int
}

// ops is the most writes one step applies.
func (h *migrateHooks) ops() int {
	if h == nil || h.stepOps <= 0 {
		return planStepOps
	}
	return h.stepOps
}

func (h *migrateHooks) cut(phase string, step int) error {
	if h == nil || h.after == nil {
		return nil
	}
	return h.after(phase, step)
}

// isBolt reports whether db is the bbolt store, which runs a migration in one transaction.
func isBolt(ctx context.Context, db kv.Store) bool {
	bolt := false
	_ = db.View(ctx, func(tx kv.Tx) error {
		bolt = boltkv.BoltTx(tx) != nil
		return nil
	})
	return bolt
}

// migrateInSteps brings a store that bounds its transactions to this program's schema, as
// described above; dir holds the bbolt copies while it runs.
func migrateInSteps(ctx context.Context, db kv.Store, dir, where string, hooks *migrateHooks) error {
	var version uint64
	var hdr *planHeader
	readState := func() error {
		return retryOpening(ctx, func() error {
			return db.View(ctx, func(tx kv.Tx) error {
				version, hdr = 0, nil
				m := tx.Bucket([]byte(bMeta))
				if m == nil {
					return nil
				}
				version = readU64(m.Get([]byte(kSchema)))
				if v := m.Get([]byte(kPlan)); v != nil {
					hdr = new(planHeader)
					if err := json.Unmarshal(v, hdr); err != nil {
						return fmt.Errorf("migration plan: %w", err)
					}
				}
				return nil
			})
		})
	}
	if err := readState(); err != nil {
		return &vocab.Error{Kind: vocab.KindIO, Op: "open relay", Err: fmt.Errorf("read the schema version of %s: %w", where, err)}
	}
	if version > schemaVersion {
		return &vocab.Error{Kind: vocab.KindCorrupt, Op: "open relay", Err: fmt.Errorf(
			"%s has schema version %d, newer than this program's %d: install a newer relayd", where, version, schemaVersion)}
	}
	if version == schemaVersion {
		return nil
	}
	if hdr == nil || hdr.From != version || hdr.To != schemaVersion {
		err := makePlan(ctx, db, dir, version, hooks)
		for try := 0; errors.Is(err, errPlanStale) && try < 3; try++ {
			err = makePlan(ctx, db, dir, version, hooks)
		}
		if err != nil {
			return fmt.Errorf("open relay %s: migrate schema %d to %d: %w", where, version, schemaVersion, err)
		}
	}
	if err := applyPlan(ctx, db, version, hooks); err != nil {
		return fmt.Errorf("open relay %s: migrate schema %d to %d: %w", where, version, schemaVersion, err)
	}
	return nil
}

// makePlan copies the store, migrates the copy and stores the writes that make the difference,
// then marks the plan whole.
func makePlan(ctx context.Context, db kv.Store, dir string, from uint64, hooks *migrateHooks) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make the data directory for the copy: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, "migrate-*")
	if err != nil {
		return fmt.Errorf("make a directory for the copy: %w", err)
	}
	defer os.RemoveAll(tmp)
	open := func(name string) (*boltkv.Store, error) {
		return boltkv.Open(filepath.Join(tmp, name), &bolt.Options{Timeout: time.Second, NoSync: true})
	}
	before, err := open("before.db")
	if err != nil {
		return err
	}
	defer before.Close()
	after, err := open("after.db")
	if err != nil {
		return err
	}
	defer after.Close()
	// One read of everything: the plan is made from one state of the store.
	if err := retryOpening(ctx, func() error {
		return db.View(ctx, func(src kv.Tx) error {
			for _, dst := range []*boltkv.Store{before, after} {
				// View may run this again: each run copies into emptied files.
				if err := dst.Update(ctx, func(tx kv.Tx) error { return copyTree(src, tx) }); err != nil {
					return err
				}
			}
			return nil
		})
	}); err != nil {
		return fmt.Errorf("copy the store: %w", err)
	}
	if err := after.Update(ctx, func(tx kv.Tx) error {
		for v := from; v < schemaVersion; v++ {
			if err := migrations()[v].fn(tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	var ops []planOp
	if err := before.View(ctx, func(a kv.Tx) error {
		return after.View(ctx, func(b kv.Tx) error {
			ops = diffTree(a, b)
			return nil
		})
	}); err != nil {
		return fmt.Errorf("compare the migrated copy: %w", err)
	}
	sum := sha256.New()
	for _, op := range ops {
		raw, err := json.Marshal(op)
		if err != nil {
			return err
		}
		sum.Write(raw)
	}
	planSum := hex.EncodeToString(sum.Sum(nil))
	// A plan left by a cut run that is longer goes; one as long or shorter is written over
	// (another gateway making the same plan from the same records at once writes the same),
	// and checked whole against planSum before it is marked.
	// (Whole-plan reads are made in Views: an Update validates what it read, a message each,
	// and a plan is longer than a transaction.)
	n, err := storedPlan(ctx, db)
	if err == nil && n.count > len(ops) {
		err = dropPlan(ctx, db)
	}
	if err == nil {
		err = retryOpening(ctx, func() error {
			return db.Update(ctx, func(tx kv.Tx) error {
				_, err := tx.CreateBucketIfNotExists([]byte(bMigration))
				return err
			})
		})
	}
	if err != nil {
		return fmt.Errorf("start the plan: %w", err)
	}
	for i, step := 0, 0; i < len(ops); step++ {
		j := stepEnd(ops, i, hooks.ops())
		if err := retryOpening(ctx, func() error {
			return db.Update(ctx, func(tx kv.Tx) error {
				b := tx.Bucket([]byte(bMigration))
				for n := i; n < j; n++ {
					raw, err := json.Marshal(ops[n])
					if err != nil {
						return err
					}
					if err := b.Put(u64(uint64(n)), raw); err != nil {
						return err
					}
				}
				return nil
			})
		}); err != nil {
			return fmt.Errorf("store the plan's writes %d to %d: %w", i, j, err)
		}
		if err := hooks.cut("plan", step); err != nil {
			return err
		}
		i = j
	}
	if n, err := storedPlan(ctx, db); err != nil {
		return fmt.Errorf("read the stored plan: %w", err)
	} else if n.count != len(ops) || n.sum != planSum {
		// Written over by a run that read other records: it goes, and a new run makes it again.
		if err := dropPlan(ctx, db); err != nil {
			return err
		}
		return errPlanStale
	}
	err = retryOpening(ctx, func() error {
		return db.Update(ctx, func(tx kv.Tx) error {
			m := tx.Bucket([]byte(bMeta))
			if m == nil {
				var err error
				if m, err = tx.CreateBucket([]byte(bMeta)); err != nil {
					return err
				}
			}
			plan := tx.Bucket([]byte(bMigration))
			if v := readU64(m.Get([]byte(kSchema))); v == schemaVersion {
				// Another gateway migrated the store meanwhile; what this one wrote goes.
				if plan != nil {
					return tx.DeleteBucket([]byte(bMigration))
				}
				return nil
			} else if v != from {
				return fmt.Errorf("the schema moved from %d to %d while the plan was made", from, v)
			}
			if raw := m.Get([]byte(kPlan)); raw != nil {
				var hdr planHeader
				if json.Unmarshal(raw, &hdr) == nil && hdr.From == from && hdr.To == schemaVersion && hdr.Sum == planSum {
					return nil // marked by another gateway, which may be applying it: left as it is
				}
			}
			if plan == nil {
				return errors.New("the plan's writes are gone (another gateway finished or dropped it): open the relay again")
			}
			raw, err := json.Marshal(planHeader{From: from, To: schemaVersion, Ops: uint64(len(ops)), Sum: planSum})
			if err != nil {
				return err
			}
			return m.Put([]byte(kPlan), raw)
		})
	})
	if err != nil {
		return fmt.Errorf("mark the plan whole: %w", err)
	}
	return nil
}

// planState is what a store holds of a plan: count writes (-1: no plan bucket) whose sha256
// in order is sum.
type planState struct {
	count int
	sum   string
}

func storedPlan(ctx context.Context, db kv.Store) (planState, error) {
	var st planState
	err := retryOpening(ctx, func() error {
		return db.View(ctx, func(tx kv.Tx) error {
			st = planState{count: -1}
			plan := tx.Bucket([]byte(bMigration))
			if plan == nil {
				return nil
			}
			h := sha256.New()
			st.count = 0
			if err := plan.ForEach(func(_, v []byte) error { h.Write(v); st.count++; return nil }); err != nil {
				return err
			}
			st.sum = hex.EncodeToString(h.Sum(nil))
			return nil
		})
	})
	return st, err
}

// dropPlan deletes the plan's writes (one tombstone on JetStream, whatever they are).
func dropPlan(ctx context.Context, db kv.Store) error {
	return retryOpening(ctx, func() error {
		return db.Update(ctx, func(tx kv.Tx) error {
			if tx.Bucket([]byte(bMigration)) == nil {
				return nil
			}
			return tx.DeleteBucket([]byte(bMigration))
		})
	})
}

// errPlanStale: the plan stored is not the one made (a run cut before marking its plan left
// writes made from other records); it was dropped, and the plan is made again.
var errPlanStale = errors.New("the stored migration plan was made from other records")

// stepEnd is where the step starting at ops[i] ends: at most the given number of writes
// (planStepOps but in tests) and planStepBytes of values, and at least one.
func stepEnd(ops []planOp, i, most int) int {
	j, size := i, 0
	for j < len(ops) && j-i < most && (j == i || size+len(ops[j].Value) <= planStepBytes) {
		size += len(ops[j].Value)
		j++
	}
	return j
}

// applyPlan applies the plan marked whole, from where its last step left it, and then deletes
// it and writes the schema number in one transaction.
func applyPlan(ctx context.Context, db kv.Store, from uint64, hooks *migrateHooks) error {
	for step := 0; ; step++ {
		done := false
		if err := retryOpening(ctx, func() error {
			return db.Update(ctx, func(tx kv.Tx) error {
				m := tx.Bucket([]byte(bMeta))
				var hdr planHeader
				if raw := m.Get([]byte(kPlan)); raw == nil {
					// Another gateway finished it: the schema says so.
					if v := readU64(m.Get([]byte(kSchema))); v != schemaVersion {
						return fmt.Errorf("the migration plan is gone and the schema is %d", v)
					}
					done = true
					return nil
				} else if err := json.Unmarshal(raw, &hdr); err != nil {
					return fmt.Errorf("migration plan: %w", err)
				}
				if hdr.From != from || hdr.To != schemaVersion {
					return fmt.Errorf("the migration plan is from schema %d to %d, not %d to %d", hdr.From, hdr.To, from, schemaVersion)
				}
				plan := tx.Bucket([]byte(bMigration))
				if plan == nil {
					return errors.New("the migration plan's writes are missing")
				}
				if hdr.Applied == hdr.Ops {
					// Last: the plan goes and the schema number is written, together.
					if err := tx.DeleteBucket([]byte(bMigration)); err != nil {
						return err
					}
					if err := m.Delete([]byte(kPlan)); err != nil {
						return err
					}
					done = true
					return m.Put([]byte(kSchema), u64(schemaVersion))
				}
				size, start := 0, hdr.Applied
				for n := start; n < hdr.Ops && n-start < uint64(hooks.ops()); n++ {
					raw := plan.Get(u64(n))
					if raw == nil {
						return fmt.Errorf("the migration plan's write %d is missing", n)
					}
					var op planOp
					if err := json.Unmarshal(raw, &op); err != nil {
						return fmt.Errorf("the migration plan's write %d: %w", n, err)
					}
					if n > start && size+len(op.Value) > planStepBytes {
						break
					}
					size += len(op.Value)
					if err := applyOp(tx, op); err != nil {
						return fmt.Errorf("write %d (%s in %q): %w", n, op.Op, op.Path, err)
					}
					hdr.Applied = n + 1
				}
				raw, err := json.Marshal(hdr)
				if err != nil {
					return err
				}
				return m.Put([]byte(kPlan), raw)
			})
		}); err != nil {
			return fmt.Errorf("apply the plan, step %d: %w", step, err)
		}
		if done {
			return nil
		}
		if err := hooks.cut("apply", step); err != nil {
			return err
		}
	}
}

// parent is the bucket a path names (the root transaction for a path of one name, whose
// bucket is then path[0] in tx); nil if a bucket on the way is missing.
type bucketParent interface {
	Bucket(name []byte) kv.Bucket
	CreateBucketIfNotExists(name []byte) (kv.Bucket, error)
	DeleteBucket(name []byte) error
}

func walk(tx kv.Tx, path [][]byte) kv.Bucket {
	var b kv.Bucket
	for i, name := range path {
		if i == 0 {
			b = tx.Bucket(name)
		} else {
			b = b.Bucket(name)
		}
		if b == nil {
			return nil
		}
	}
	return b
}

// applyOp makes one write; each is absolute, so applying it again changes nothing.
func applyOp(tx kv.Tx, op planOp) error {
	if len(op.Path) == 0 {
		return errors.New("empty bucket path")
	}
	switch op.Op {
	case "create", "drop":
		var parent bucketParent = tx
		if len(op.Path) > 1 {
			p := walk(tx, op.Path[:len(op.Path)-1])
			if p == nil {
				return kv.ErrBucketNotFound
			}
			parent = p
		}
		name := op.Path[len(op.Path)-1]
		if op.Op == "create" {
			_, err := parent.CreateBucketIfNotExists(name)
			return err
		}
		if parent.Bucket(name) == nil {
			return nil
		}
		return parent.DeleteBucket(name)
	}
	b := walk(tx, op.Path)
	if b == nil {
		return kv.ErrBucketNotFound
	}
	switch op.Op {
	case "put":
		return b.Put(op.Key, op.Value)
	case "delete":
		return b.Delete(op.Key)
	case "seq":
		return b.SetSequence(op.Seq)
	}
	return fmt.Errorf("unknown write %q", op.Op)
}

// copyTree copies every bucket of src (but a migration plan's) into dst, emptied first.
func copyTree(src, dst kv.Tx) error {
	var old [][]byte
	if err := dst.ForEachBucket(func(name []byte) error { old = append(old, bytes.Clone(name)); return nil }); err != nil {
		return err
	}
	for _, name := range old {
		if err := dst.DeleteBucket(name); err != nil {
			return err
		}
	}
	return src.ForEachBucket(func(name []byte) error {
		if string(name) == bMigration {
			return nil
		}
		nb, err := dst.CreateBucketIfNotExists(bytes.Clone(name))
		if err != nil {
			return err
		}
		return copyBucket(src.Bucket(name), nb)
	})
}

func copyBucket(src, dst kv.Bucket) error {
	if err := src.ForEach(func(k, v []byte) error { return dst.Put(bytes.Clone(k), bytes.Clone(v)) }); err != nil {
		return err
	}
	if err := dst.SetSequence(src.Sequence()); err != nil {
		return err
	}
	return src.ForEachBucket(func(name []byte) error {
		nb, err := dst.CreateBucketIfNotExists(bytes.Clone(name))
		if err != nil {
			return err
		}
		return copyBucket(src.Bucket(name), nb)
	})
}

// diffTree lists the writes that make a into b, buckets made before what they hold, in an
// order that depends on a and b alone: two gateways making the plan at once store the same.
func diffTree(a, b kv.Tx) []planOp {
	var ops []planOp
	an, bn := bucketNames(a.ForEachBucket), bucketNames(b.ForEachBucket)
	for _, n := range an {
		if !slices.Contains(bn, n) {
			ops = append(ops, planOp{Op: "drop", Path: [][]byte{[]byte(n)}})
		}
	}
	for _, n := range bn {
		path := [][]byte{[]byte(n)}
		var old kv.Bucket
		if slices.Contains(an, n) {
			old = a.Bucket([]byte(n))
		} else {
			ops = append(ops, planOp{Op: "create", Path: path})
		}
		ops = diffBucket(ops, path, old, b.Bucket([]byte(n)))
	}
	return ops
}

// bucketNames lists the names a ForEachBucket gives, in its (key) order.
func bucketNames(each func(func([]byte) error) error) []string {
	var out []string
	_ = each(func(n []byte) error { out = append(out, string(n)); return nil })
	return out
}

// diffBucket appends the writes that make bucket a (nil: new and empty) into b, at path: the
// nested buckets a has and b has not are dropped, then keys are put and deleted in key order,
// the sequence set, and b's nested buckets compared in turn.
func diffBucket(ops []planOp, path [][]byte, a, b kv.Bucket) []planOp {
	var aseq uint64
	type kvp struct{ k, v []byte }
	var akeys []kvp
	var an []string
	if a != nil {
		aseq = a.Sequence()
		_ = a.ForEach(func(k, v []byte) error { akeys = append(akeys, kvp{bytes.Clone(k), bytes.Clone(v)}); return nil })
		an = bucketNames(a.ForEachBucket)
	}
	bn := bucketNames(b.ForEachBucket)
	for _, n := range an {
		if !slices.Contains(bn, n) {
			ops = append(ops, planOp{Op: "drop", Path: append(clonePath(path), []byte(n))})
		}
	}
	i := 0 // merge of two key-ordered lists
	_ = b.ForEach(func(k, v []byte) error {
		for i < len(akeys) && bytes.Compare(akeys[i].k, k) < 0 {
			ops = append(ops, planOp{Op: "delete", Path: path, Key: akeys[i].k})
			i++
		}
		if i < len(akeys) && bytes.Equal(akeys[i].k, k) {
			same := bytes.Equal(akeys[i].v, v)
			i++
			if same {
				return nil
			}
		}
		ops = append(ops, planOp{Op: "put", Path: path, Key: bytes.Clone(k), Value: bytes.Clone(v)})
		return nil
	})
	for ; i < len(akeys); i++ {
		ops = append(ops, planOp{Op: "delete", Path: path, Key: akeys[i].k})
	}
	if s := b.Sequence(); s != aseq {
		ops = append(ops, planOp{Op: "seq", Path: path, Seq: s})
	}
	for _, n := range bn {
		sub := append(clonePath(path), []byte(n))
		var old kv.Bucket
		if slices.Contains(an, n) {
			old = a.Bucket([]byte(n))
		} else {
			ops = append(ops, planOp{Op: "create", Path: sub})
		}
		ops = diffBucket(ops, sub, old, b.Bucket([]byte(n)))
	}
	return ops
}

func clonePath(p [][]byte) [][]byte { return append([][]byte(nil), p...) }
