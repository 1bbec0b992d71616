// Package boltkv is the kv interface over an embedded bbolt file: the relay's single-node
// store. It is a thin wrapper; each call is the bbolt call of the same name, and a transaction
// runs once (bbolt serializes writers, so nothing conflicts).
package boltkv

import (
	"context"
	"errors"
	"fmt"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Store is a kv.Store over one bbolt database.
type Store struct {
	db    *bolt.DB
	owned bool
	// notify is the in-process kv.Notifier (notify.go).
	notify notifyHub
}

// New wraps an open database; Close leaves it open (its opener closes it).
func New(db *bolt.DB) *Store { return &Store{db: db} }

// Open opens (or creates) the bbolt file at path; Close closes it.
func Open(path string, opts *bolt.Options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, opts)
	if err != nil {
		return nil, fmt.Errorf("open kv store %s: %w", path, err)
	}
	return &Store{db: db, owned: true}, nil
}

// DB is the underlying database, for what only bbolt has (backups, page checks).
func (s *Store) DB() *bolt.DB { return s.db }

// Close closes the database if Open opened it.
func (s *Store) Close() error {
	if s.owned {
		return s.db.Close()
	}
	return nil
}

// Update runs fn in one bbolt read-write transaction. The context is looked at only before it
// starts: a bbolt commit cannot be abandoned half way.
func (s *Store) Update(ctx context.Context, fn func(kv.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(btx *bolt.Tx) error { return fn(tx{btx}) })
}

// View runs fn in one bbolt read-only transaction (a consistent snapshot).
func (s *Store) View(ctx context.Context, fn func(kv.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(btx *bolt.Tx) error { return fn(tx{btx}) })
}

// kind maps bbolt's errors onto kv's, keeping bbolt's in the chain.
func kind(err error) error {
	var k error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrBucketExists):
		k = kv.ErrBucketExists
	case errors.Is(err, berrors.ErrBucketNotFound):
		k = kv.ErrBucketNotFound
	case errors.Is(err, berrors.ErrKeyRequired):
		k = kv.ErrKeyRequired
	case errors.Is(err, berrors.ErrBucketNameRequired):
		k = kv.ErrNameRequired
	case errors.Is(err, berrors.ErrTxNotWritable):
		k = kv.ErrTxNotWritable
	default:
		return err
	}
	return fmt.Errorf("%w (%w)", k, err)
}

type tx struct{ t *bolt.Tx }

func (t tx) Writable() bool { return t.t.Writable() }

func (t tx) Bucket(name []byte) kv.Bucket {
	if b := t.t.Bucket(name); b != nil {
		return bucket{b}
	}
	return nil // a nil interface, not a bucket{nil}
}

func (t tx) CreateBucket(name []byte) (kv.Bucket, error) {
	b, err := t.t.CreateBucket(name)
	if err != nil {
		return nil, kind(err)
	}
	return bucket{b}, nil
}

func (t tx) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	b, err := t.t.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, kind(err)
	}
	return bucket{b}, nil
}

func (t tx) DeleteBucket(name []byte) error { return kind(t.t.DeleteBucket(name)) }

func (t tx) ForEachBucket(fn func(name []byte) error) error {
	return t.t.ForEach(func(name []byte, _ *bolt.Bucket) error { return fn(name) })
}

type bucket struct{ b *bolt.Bucket }

// Get is bbolt's, which already answers nil for a nested bucket's name (kv: a nested bucket
// is not a key); asking Bucket(key) as well cost a second search of the tree on every Get that
// found something, several of them in every batch.
func (b bucket) Get(key []byte) []byte { return b.b.Get(key) }

func (b bucket) Put(key, value []byte) error {
	if value == nil {
		value = []byte{} // bbolt stores nil as empty; say so rather than rely on it
	}
	return kind(b.b.Put(key, value))
}

func (b bucket) Delete(key []byte) error {
	if b.b.Bucket(key) != nil {
		return nil // bbolt refuses to delete a nested bucket as a key; it is not a key here
	}
	return kind(b.b.Delete(key))
}

func (b bucket) Cursor() kv.Cursor { return cursor{c: b.b.Cursor(), off: new(int)} }

func (b bucket) ForEach(fn func(k, v []byte) error) error {
	return b.b.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil
		}
		return fn(k, v)
	})
}

func (b bucket) KeyN() int {
	n := 0
	_ = b.ForEach(func(_, _ []byte) error { n++; return nil })
	return n
}

func (b bucket) Bucket(name []byte) kv.Bucket {
	if nb := b.b.Bucket(name); nb != nil {
		return bucket{nb}
	}
	return nil
}

func (b bucket) CreateBucket(name []byte) (kv.Bucket, error) {
	nb, err := b.b.CreateBucket(name)
	if err != nil {
		return nil, kind(err)
	}
	return bucket{nb}, nil
}

func (b bucket) CreateBucketIfNotExists(name []byte) (kv.Bucket, error) {
	nb, err := b.b.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, kind(err)
	}
	return bucket{nb}, nil
}

func (b bucket) DeleteBucket(name []byte) error { return kind(b.b.DeleteBucket(name)) }

func (b bucket) ForEachBucket(fn func(name []byte) error) error {
	return b.b.ForEachBucket(fn)
}

// HintAppended is kv.Appended: pages of a bucket whose keys come in increasing order are split
// full rather than half full. bbolt keeps FillPercent on the *Bucket of the transaction (the
// same one each lookup of the bucket returns in it), not in the file, so the hint lasts for
// the transaction and changes nothing already written.
func (b bucket) HintAppended() { b.b.FillPercent = appendedFill }

// appendedFill is the FillPercent of a hinted bucket: a little under 1.0, so that the page
// split off before the next key still has room for a few keys put out of order before it
// must split again.
const appendedFill = 0.95

func (b bucket) Sequence() uint64              { return b.b.Sequence() }
func (b bucket) SetSequence(v uint64) error    { return kind(b.b.SetSequence(v)) }
func (b bucket) NextSequence() (uint64, error) { n, err := b.b.NextSequence(); return n, kind(err) }

// cursor skips nested buckets (bbolt's nil values), so both stores list the same keys, and
// keeps kv.Cursor's rule at the ends: after a step finds nothing the cursor is past that end,
// so the opposite step finds the key there. (bbolt's own cursor stays on the last element it
// read, which may be a nested bucket, so its answer would depend on what else the bucket holds.)
type cursor struct {
	c *bolt.Cursor
	// off is +1 past the last key, -1 before the first, 0 on a key.
	off *int
}

// land skips nested buckets from k, v onwards with step and records where that left the
// cursor: on a key, or off the end (off) if it found none.
func (c cursor) land(k, v []byte, step func() ([]byte, []byte), off int) ([]byte, []byte) {
	for k != nil && v == nil {
		k, v = step()
	}
	*c.off = 0
	if k == nil {
		*c.off = off
	}
	return k, v
}

func (c cursor) First() ([]byte, []byte) { k, v := c.c.First(); return c.land(k, v, c.c.Next, 1) }
func (c cursor) Last() ([]byte, []byte)  { k, v := c.c.Last(); return c.land(k, v, c.c.Prev, -1) }

func (c cursor) Next() ([]byte, []byte) {
	switch *c.off {
	case 1:
		return nil, nil
	case -1:
		return c.First()
	}
	k, v := c.c.Next()
	return c.land(k, v, c.c.Next, 1)
}

func (c cursor) Prev() ([]byte, []byte) {
	switch *c.off {
	case -1:
		return nil, nil
	case 1:
		return c.Last()
	}
	k, v := c.c.Prev()
	return c.land(k, v, c.c.Prev, -1)
}

func (c cursor) Seek(s []byte) ([]byte, []byte) {
	k, v := c.c.Seek(s)
	return c.land(k, v, c.c.Next, 1)
}

// Own wraps what bolt.Open (or a checked opener such as kiosk/boltfile.Open) returned; Close
// closes the database. An error comes back unchanged, so errors.Is still finds bbolt's.
func Own(db *bolt.DB, err error) (*Store, error) {
	if err != nil {
		return nil, err
	}
	return &Store{db: db, owned: true}, nil
}

// BoltTx is the bbolt transaction under t, or nil if t is not one of this package's: for what
// only a bbolt file has (Tx.WriteTo for a backup, Tx.Check for a page check). A caller checks
// for nil, or knows its store is a bbolt file.
func BoltTx(t kv.Tx) *bolt.Tx {
	if bt, ok := t.(tx); ok {
		return bt.t
	}
	return nil
}
