package kvtest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

// The suite is what stands between a new store and the relay's money, so it must fail a store
// that gets things wrong. Each broken store below is boltkv with one defect; the suite runs
// against it in a child test process (a failing suite fails its *testing.T, which cannot be
// caught in-process), and the child must fail in the part that covers the defect.

const brokenEnv = "KVTEST_BROKEN_STORE"

func TestSuiteFailsBrokenStores(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the suite in child processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ defect, part string }{
		{"lost-delete", "--- FAIL: TestBrokenStoreChild/GetPutDelete"},
		{"sequence-not-kept", "--- FAIL: TestBrokenStoreChild/Sequences"},
		{"cursor-skips-last", "--- FAIL: TestBrokenStoreChild/OrderedIteration"},
		{"differential-lost-delete", ") differs:"},
	} {
		t.Run(c.defect, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run", "^TestBrokenStoreChild$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+c.defect)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store whose defect is %s:\n%s", c.defect, out)
			}
			if !strings.Contains(string(out), c.part) {
				t.Fatalf("the suite failed, but not in %s:\n%s", c.part, out)
			}
		})
	}
}

// TestSuitePassesBolt is the control: the same child run with no defect passes, so the
// failures above come from the defects, not from the way the child is run.
func TestSuitePassesBolt(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the suite in a child process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^TestBrokenStoreChild$")
	cmd.Env = append(os.Environ(), brokenEnv+"=none")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the suite failed plain boltkv: %v\n%s", err, out)
	}
}

func TestBrokenStoreChild(t *testing.T) {
	defect := os.Getenv(brokenEnv)
	if defect == "" {
		t.Skip("run by TestSuiteFailsBrokenStores in a child process")
	}
	open := func(t *testing.T) kv.Store {
		s, err := boltkv.Open(filepath.Join(t.TempDir(), "kv.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	if defect == "differential-lost-delete" {
		kvtest.Differential(t, open(t), brokenStore{open(t), "lost-delete"}, 1, 300)
		return
	}
	kvtest.Run(t, func(t *testing.T) kv.Store { return brokenStore{open(t), defect} })
}

type brokenStore struct {
	kv.Store
	defect string
}

func (s brokenStore) Update(ctx context.Context, fn func(kv.Tx) error) error {
	return s.Store.Update(ctx, func(tx kv.Tx) error { return fn(brokenTx{tx, s.defect}) })
}

func (s brokenStore) View(ctx context.Context, fn func(kv.Tx) error) error {
	return s.Store.View(ctx, func(tx kv.Tx) error { return fn(brokenTx{tx, s.defect}) })
}

type brokenTx struct {
	kv.Tx
	defect string
}

func (tx brokenTx) Bucket(name []byte) kv.Bucket { return wrap(tx.Tx.Bucket(name), tx.defect) }

func (tx brokenTx) CreateBucket(name []byte) (kv.Bucket, error) {
	b, err := tx.Tx.CreateBucket(name)
	return wrap(b, tx.defect), err
}

func (tx brokenTx) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	b, err := tx.Tx.CreateBucketIfNotExists(name)
	return wrap(b, tx.defect), err
}

func wrap(b kv.Bucket, defect string) kv.Bucket {
	if b == nil {
		return nil
	}
	return brokenBucket{b, defect}
}

// innerBucket names the embedded bucket apart from the Bucket method that opens a nested one.
type innerBucket = kv.Bucket

type brokenBucket struct {
	innerBucket
	defect string
}

func (b brokenBucket) Delete(key []byte) error {
	if b.defect == "lost-delete" {
		return nil
	}
	return b.innerBucket.Delete(key)
}

func (b brokenBucket) NextSequence() (uint64, error) {
	if b.defect == "sequence-not-kept" {
		return b.innerBucket.Sequence() + 1, nil
	}
	return b.innerBucket.NextSequence()
}

func (b brokenBucket) Cursor() kv.Cursor { return brokenCursor{b.innerBucket.Cursor(), b.defect} }

func (b brokenBucket) Bucket(name []byte) kv.Bucket {
	return wrap(b.innerBucket.Bucket(name), b.defect)
}

func (b brokenBucket) CreateBucket(name []byte) (kv.Bucket, error) {
	nb, err := b.innerBucket.CreateBucket(name)
	return wrap(nb, b.defect), err
}

func (b brokenBucket) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	nb, err := b.innerBucket.CreateBucketIfNotExists(name)
	return wrap(nb, b.defect), err
}

type brokenCursor struct {
	kv.Cursor
	defect string
}

// Next hides the bucket's last key from a forward walk.
func (c brokenCursor) Next() ([]byte, []byte) {
	k, v := c.Cursor.Next()
	if c.defect == "cursor-skips-last" && k != nil {
		if k2, _ := c.Cursor.Next(); k2 == nil {
			return nil, nil
		}
		c.Cursor.Prev()
	}
	return k, v
}
