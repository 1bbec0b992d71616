package jskv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// errHoldsBuckets: a bucket with nested buckets of its own is not moved (their markers live
// under its generation, and moving them would move their contents' markers too).
var errHoldsBuckets = errors.New("it holds buckets of its own")

// MoveUnderRoots moves each bucket of Options.WatchRoots that has a generation of its own (made
// before the option, or by a gateway of an older build) under its root's generation, one
// transaction a bucket: its keys, values and sequence are written into a bucket made again
// under the same name, and the old generation is purged. Until then a watch feed takes each
// such bucket with a filter of its own, or past maxOwnGenFilters the whole stream's key
// messages; once they are moved it takes its roots' buckets alone.
//
// It is safe while gateways of this build serve from the stream: every transaction that
// opens such a bucket validates its marker (bucket.Bucket), so one that took the old
// generation from its cache or a replica runs again instead of writing where nobody reads.
// A gateway of an older build does not, and must not run meanwhile (gateways are upgraded
// together). A bucket too large for one commit, or holding buckets of its own, is left where
// it is and counted in left. Moving a bucket twice at once is a conflict, and the run again
// finds it moved.
func (s *Store) MoveUnderRoots(ctx context.Context) (moved, left int, err error) {
	for _, root := range s.o.WatchRoots {
		names, err := s.ownGenBuckets(ctx, root)
		if err != nil {
			return moved, left, err
		}
		for _, name := range names {
			done, err := s.moveUnderRoot(ctx, root, name)
			switch {
			case errors.Is(err, kv.ErrTxTooLarge), errors.Is(err, errHoldsBuckets):
				left++
			case err != nil:
				return moved, left, fmt.Errorf("jskv: move %q in %q under its root: %w", name, root, err)
			case done:
				moved++
			}
		}
	}
	return moved, left, nil
}

// ownGenBuckets names root's buckets with a generation of their own: as a running feed of the
// root knows them (it listed them when it started and follows their markers), or else listed.
func (s *Store) ownGenBuckets(ctx context.Context, root []byte) ([][]byte, error) {
	if feeds := s.feeds.Load(); feeds != nil {
		for _, w := range *feeds {
			if names, ok := w.ownGenBuckets(root); ok {
				return names, nil
			}
		}
	}
	e, err := s.fetch(ctx, s.subj('b', rootGen, tok(root)))
	if err != nil || !e.present {
		return nil, err
	}
	rg := string(e.val)
	subjs, err := s.list(ctx, s.subj('b', rg, "*"))
	if err != nil {
		return nil, err
	}
	found, err := s.fetchAll(ctx, subjs)
	if err != nil {
		return nil, err
	}
	var names [][]byte
	for i, subj := range subjs {
		if !found[i].present || underRoot(string(found[i].val), rg) {
			continue
		}
		if name, err := untok(subj[strings.LastIndexByte(subj, '.')+1:]); err == nil {
			names = append(names, name)
		}
	}
	return names, nil
}

// ownGenBuckets is what the feed knows of root's buckets with a generation of their own, if
// it follows root.
func (w *watcher) ownGenBuckets(root []byte) ([][]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	follows := false
	for _, r := range w.rootGens {
		follows = follows || bytes.Equal(r, root)
	}
	if !follows || w.stopped {
		return nil, false
	}
	var names [][]byte
	for gen, nb := range w.gens {
		if bytes.Equal(nb.root, root) && !underRoot(gen, nb.rg) {
			names = append(names, bytes.Clone(nb.name))
		}
	}
	return names, true
}

// moveUnderRoot moves bucket name of root under the root's generation, if it is not there yet.
func (s *Store) moveUnderRoot(ctx context.Context, root, name []byte) (moved bool, err error) {
	err = s.Update(ctx, func(tx kv.Tx) error {
		moved = false
		r, ok := tx.Bucket(root).(*bucket)
		if !ok {
			return nil
		}
		old, ok := r.Bucket(name).(*bucket)
		if !ok || underRoot(old.gen, r.gen) {
			return nil
		}
		holds := false
		stop := errors.New("stop")
		if err := old.ForEachBucket(func([]byte) error { holds = true; return stop }); err != nil && !errors.Is(err, stop) {
			return err
		}
		if holds {
			return errHoldsBuckets
		}
		type kvPair struct{ k, v []byte }
		var pairs []kvPair
		if err := old.ForEach(func(k, v []byte) error {
			pairs = append(pairs, kvPair{bytes.Clone(k), bytes.Clone(v)})
			return nil
		}); err != nil {
			return err
		}
		seq := old.Sequence()
		if err := r.DeleteBucket(name); err != nil {
			return err
		}
		nb, err := r.CreateBucket(name)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if err := nb.Put(p.k, p.v); err != nil {
				return err
			}
		}
		if seq != 0 {
			if err := nb.SetSequence(seq); err != nil {
				return err
			}
		}
		moved = true
		return nil
	})
	return moved, err
}
