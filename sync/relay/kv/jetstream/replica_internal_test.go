package jskv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A cursor takes values from a replica only from a moment where the bucket's version is the
// one the transaction read: asked with another version, the replica's answer is refused
// whole and every subject is left to the leader; with the right one, every subject is
// answered, absent ones as having no message.
func TestReplicaValuesOnlyAtTheVersionRead(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, c, nc, Options{Stream: "RV", Prefix: "rv"})
	if err := s.Update(ctx, func(tx kv.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := range 5 {
			if err := b.Put(fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(ktx kv.Tx) error {
		tx := ktx.(*tx)
		b := tx.Bucket([]byte("b")).(*bucket)
		ver := s.subj('v', b.gen, "")
		cur := s.subj('k', b.gen, tok([]byte("k0")))
		v, err := s.fetch(ctx, ver)
		if err != nil {
			return err
		}
		subjs := []string{cur, s.subj('k', b.gen, tok([]byte("k4"))), s.subj('k', b.gen, tok([]byte("none")))}
		got, missed := tx.readReplicas(subjs, ver, v.seq-1)
		if len(got) != 0 || len(missed) != len(subjs) {
			t.Errorf("at a version the transaction did not read: %d answered, %d left to the leader; want 0 and %d", len(got), len(missed), len(subjs))
		}
		got, missed = tx.readReplicas(subjs, ver, v.seq)
		if len(missed) != 0 || !got[subjs[0]].present || string(got[subjs[1]].val) != "v" || got[subjs[2]].present || got[subjs[2]].seq != 0 {
			t.Errorf("at the version read: %v answered, %v missed; want k0 and k4 present, none absent", got, missed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
