package relay

import (
	"bytes"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A new letter costs three look-ups that find nothing: its item id in bItemIDs and its message
// id in bLetterAt (bOutbound before v24) and bPREA (one id space). Each was a search of a
// B-tree from its root, some 15 % of the committer's CPU in a drain. Item ids and letter ids
// are UUIDv7s, made in time order by the terminals, so the id of a new letter almost always
// sorts after every key those buckets hold: a write call that stores batches (logTx) reads
// each bucket's last key once and raises it with every key put through it since, and a key
// after it is known absent without a search. An id that does not sort last (a terminal whose clock is behind, ids from before the
// terminals made UUIDv7s) is looked up as before, so nothing rests on the id's time.
//
// Only on a bbolt file (onBolt): there the last key is found down the right edge of the tree,
// where a JetStream cursor would list the whole bucket.

// minBoundedItems is how many items a write call stores before it keeps key bounds: reading a
// bucket's last key and going through the wrapper cost more than the searches they save for a
// batch of one letter (a tenth of the relay's CPU under 1,000 one-letter kiosks), and far less
// than they save for a backlog's batches of hundreds.
const minBoundedItems = 16

// keyBound is a key at or after every key of one bucket in the write call's transaction.
type keyBound struct {
	read bool   // the bucket's last key was read; until then nothing is known
	max  []byte // nil: the bucket held no key
}

// boundedBuckets are the buckets a logTx keeps a keyBound for, in the order of logTx.bounds.
var boundedBuckets = [...]string{bItemIDs, bLetterAt, bPREA}

// Bucket is the transaction's bucket, through a keyBound for those of boundedBuckets on a bbolt
// file. Every read and write of those buckets in the write call goes through it, so the bound
// sees each key put. The bounded bucket is made once a write call: no top-level bucket is
// deleted or made again in a write call that stores batches.
func (t *logTx) Bucket(name []byte) kv.Bucket {
	if t.bounded {
		for i, bn := range boundedBuckets {
			if string(name) != bn {
				continue
			}
			if t.wrapped[i] == nil {
				b := t.Tx.Bucket(name)
				if b == nil {
					return nil
				}
				t.wrapped[i] = boundedBucket{innerBucket: b, bound: &t.bounds[i]}
			}
			return t.wrapped[i]
		}
	}
	return t.Tx.Bucket(name)
}

// boundedBucket is a bucket whose Get answers nil without a search for a key after its bound.
type boundedBucket struct {
	innerBucket
	bound *keyBound
}

// innerBucket names the embedded kv.Bucket, whose method Bucket its field name would hide.
type innerBucket = kv.Bucket

// absent reports whether key sorts after every key of the bucket.
func (b boundedBucket) absent(key []byte) bool {
	if !b.bound.read {
		k, _ := b.innerBucket.Cursor().Last()
		b.bound.max, b.bound.read = bytes.Clone(k), true
	}
	return b.bound.max == nil || bytes.Compare(key, b.bound.max) > 0
}

func (b boundedBucket) Get(key []byte) []byte {
	if b.absent(key) {
		return nil
	}
	return b.innerBucket.Get(key)
}

func (b boundedBucket) Put(key, value []byte) error {
	if err := b.innerBucket.Put(key, value); err != nil {
		return err
	}
	// Once read, the bound follows every key put after it (a key it has not read yet is the
	// bucket's, read with the rest). A deleted key leaves it an upper bound still.
	if b.bound.read && (b.bound.max == nil || bytes.Compare(key, b.bound.max) > 0) {
		b.bound.max = append(b.bound.max[:0], key...)
	}
	return nil
}

// HintAppended passes the hint on (kv.HintAppended looks for it on the bucket it is given).
func (b boundedBucket) HintAppended() { kv.HintAppended(b.innerBucket) }
