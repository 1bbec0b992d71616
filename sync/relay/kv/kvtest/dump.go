package kvtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// Dump writes out everything tx sees, bucket by bucket, nested buckets after keys, with each
// bucket's sequence, leaving out the root buckets named in skip: two reads of one state give
// the same text, whatever the store.
func Dump(tx kv.Tx, skip ...string) (string, error) {
	var sb strings.Builder
	var walk func(path string, b kv.Bucket) error
	walk = func(path string, b kv.Bucket) error {
		fmt.Fprintf(&sb, "%s seq=%d keys=%d\n", path, b.Sequence(), b.KeyN())
		if err := b.ForEach(func(k, v []byte) error {
			fmt.Fprintf(&sb, "%s/%s=%q\n", path, k, v)
			return nil
		}); err != nil {
			return err
		}
		// A cursor's landing, as the relay's "newest item" reads take it.
		if k, _ := b.Cursor().Last(); k != nil {
			fmt.Fprintf(&sb, "%s last=%s\n", path, k)
		}
		return b.ForEachBucket(func(name []byte) error { return walk(path+"/"+string(name), b.Bucket(name)) })
	}
	err := tx.ForEachBucket(func(name []byte) error {
		if slices.Contains(skip, string(name)) {
			return nil
		}
		return walk(string(name), tx.Bucket(name))
	})
	return sb.String(), err
}

// DumpStore is Dump of what a View of s sees now; a failed View fails the test.
func DumpStore(tb testing.TB, s kv.Store, skip ...string) string {
	tb.Helper()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out string
	if err := s.View(c, func(tx kv.Tx) error {
		var err error
		out, err = Dump(tx, skip...)
		return err
	}); err != nil {
		tb.Fatalf("dump the store: %v", err)
	}
	return out
}
