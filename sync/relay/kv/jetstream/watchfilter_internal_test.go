package jskv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// matches is NATS's subject matching of subj against filter ("*" one token, ">" the rest).
func matches(filter, subj string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subj, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(f) == len(s)
}

// followSet.follows is what a commit uses to tell which of its messages the feed's consumer
// takes (a feed waits for the last of them); filters is what the consumer is given. If the
// two disagreed, a feed would wait for a message it never gets and be reported lost (or not
// wait for one it does). Any subject, of the store or not, gets the same answer from both.
func FuzzFollowsMatchesFilters(f *testing.F) {
	for _, subj := range []string{"p.b.R.bmFtZQ", "p.b.R.id.bmFtZQ", "p.k.R.id.a2V5", "p.k.R.a2V5", "p.s.R.id", "p.s.R",
		"p.k.G.a2V5", "p.s.G", "p.b.G.bmFtZQ", "p.v.R.id", "p.v.G", "p.k.O.a2V5", "p.k.O.id.a2V5", "p.r", "q.k.R.id.a2V5",
		"p.k.R.id.x.y", "p.kk.R.id.a2V5", "p.k", "p.k.R", "p.s.G.x", "p.b.R"} {
		f.Add(subj)
	}
	thin := &followSet{roots: map[string]bool{"R": true}, own: map[string]bool{"G": true}}
	wide := &followSet{wide: true}
	f.Fuzz(func(t *testing.T, subj string) {
		if subj == "" || strings.Contains(subj, "..") || strings.HasPrefix(subj, ".") || strings.HasSuffix(subj, ".") ||
			strings.ContainsAny(subj, "*> \t\r\n") {
			return // not a subject a message is published on
		}
		for _, fs := range []*followSet{thin, wide} {
			want := false
			for _, filter := range fs.filters("p") {
				want = want || matches(filter, subj)
			}
			if got := fs.follows("p", subj); got != want {
				t.Fatalf("follows(%q) = %v, the consumer's filters %q say %v (wide %v)", subj, got, fs.filters("p"), want, fs.wide)
			}
		}
	})
}

// A feed that takes only its roots' buckets waits for no commit that wrote nothing there:
// a status report's commit, whose messages its consumer never delivers, would otherwise leave
// it waiting, and after three heartbeats it was reported lost.
func TestCommitsElsewhereAreNotWaitedFor(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, c, c.Connect(0), Options{Stream: "CE", Prefix: "ce", WatchRoots: [][]byte{[]byte("down")}})
	if err := s.Update(ctx, func(tx kv.Tx) error {
		d, err := tx.CreateBucket([]byte("down"))
		if err != nil {
			return err
		}
		if _, err := d.CreateBucket([]byte("t1")); err != nil {
			return err
		}
		o, err := tx.CreateBucket([]byte("other"))
		if err != nil {
			return err
		}
		_, err = o.CreateBucket([]byte("o1"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	stop, err := s.Watch([][]byte{[]byte("down")}, func(kv.Changes) {})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	w := (*s.feeds.Load())[0]
	put := func(root, bucket string) {
		t.Helper()
		if err := s.Update(ctx, func(tx kv.Tx) error {
			return tx.Bucket([]byte(root)).Bucket([]byte(bucket)).Put([]byte("k"), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	before := w.lastCommit.Load()
	put("other", "o1")
	if got := w.lastCommit.Load(); got != before {
		t.Fatalf("a commit in another root moved the feed's awaited commit from %d to %d", before, got)
	}
	put("down", "t1")
	if got := w.lastCommit.Load(); got <= before {
		t.Fatalf("a commit in the watched root left the feed's awaited commit at %d", got)
	}
}

// feedMsg is a message as a push consumer delivers it: its subject, headers, and the
// metadata of its reply subject (v1 ack form: stream and consumer sequences, pending count).
func feedMsg(subj string, streamSeq, consSeq, pending uint64, hdr map[string]string) *nats.Msg {
	m := nats.NewMsg(subj)
	m.Sub = &nats.Subscription{} // nats.go reads metadata only of a message a subscription got
	m.Reply = fmt.Sprintf("$JS.ACK.S.C.1.%d.%d.1700000000000000000.%d", streamSeq, consSeq, pending)
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	return m
}

// The server's count of what a consumer has pending after a message is an estimate, and
// under load it was zero between two messages of one transaction: the feed handed the
// transaction over as two Changes (a kv.Watcher promises one), and tests saw a key without
// the sequence its commit set. A message in the watched roots now says whether more of its
// transaction follow there (hdrFed), and until the last the estimate is not asked. A
// message without it (an older build's commit) is handed over at the estimate, as before.
func TestFeedKeepsATransactionTogetherWhenNothingSeemsPending(t *testing.T) {
	s := &Store{o: Options{Prefix: "p"}}
	var got []kv.Changes
	w := &watcher{s: s, run: 1, fn: func(cs kv.Changes) { got = append(got, cs) },
		rootGens: map[string][]byte{"R": []byte("down")}, gens: map[string]nestedBucket{"R.G": {root: []byte("down"), name: []byte("t1"), rg: "R"}},
		byName: map[string]string{"R." + tok([]byte("t1")): "R.G"}}
	key := "p.k.R.G." + tok([]byte("1"))
	w.handle(1, feedMsg(key, 10, 1, 0, map[string]string{hdrTx: "A", hdrFed: fedMore}))
	// A feed taking the whole stream gets the transaction's messages elsewhere too.
	w.handle(1, feedMsg("p.k.O."+tok([]byte("x")), 11, 2, 0, map[string]string{hdrTx: "A"}))
	if len(got) != 0 {
		t.Fatalf("before the last of the transaction's watched messages, with nothing said pending, the feed handed over %d Changes", len(got))
	}
	w.handle(1, feedMsg("p.s.R.G", 12, 3, 0, map[string]string{hdrTx: "A", hdrFed: fedEnd, hdrTxEnd: "1"}))
	if len(got) != 1 || len(got[0].List) != 2 {
		t.Fatalf("the transaction was handed over as %d Changes (%v), want one of 2 changes", len(got), got)
	}
	// An older build's commit: no hdrFed, handed over when nothing is said pending.
	w.handle(1, feedMsg(key, 13, 4, 0, map[string]string{hdrTx: "B"}))
	if len(got) != 2 {
		t.Fatalf("an older build's commit was not handed over at its last pending message: %d Changes", len(got))
	}
}

// A commit marks its messages in the watched roots' buckets: each says more of the
// transaction follows there, the last that none does; messages elsewhere say nothing.
func TestCommitMarksItsLastMessageInTheWatchedRoots(t *testing.T) {
	c := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, c, c.Connect(0), Options{Stream: "FM", Prefix: "fm", WatchRoots: [][]byte{[]byte("down")}})
	var t1Gen, o1Gen string
	if err := s.Update(ctx, func(tx kv.Tx) error {
		d, err := tx.CreateBucket([]byte("down"))
		if err != nil {
			return err
		}
		t1, err := d.CreateBucket([]byte("t1"))
		if err != nil {
			return err
		}
		o, err := tx.CreateBucket([]byte("other"))
		if err != nil {
			return err
		}
		o1, err := o.CreateBucket([]byte("o1"))
		if err != nil {
			return err
		}
		t1Gen, o1Gen = t1.(*bucket).gen, o1.(*bucket).gen
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx kv.Tx) error {
		t1 := tx.Bucket([]byte("down")).Bucket([]byte("t1"))
		for _, k := range []string{"1", "2"} {
			if err := t1.Put([]byte(k), []byte("item")); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("other")).Bucket([]byte("o1")).Put([]byte("x"), []byte("status"))
	}); err != nil {
		t.Fatal(err)
	}
	for subj, want := range map[string]string{
		s.subj('k', t1Gen, tok([]byte("1"))): fedMore,
		s.subj('k', t1Gen, tok([]byte("2"))): fedEnd,
		s.subj('k', o1Gen, tok([]byte("x"))): "",
		s.subj('v', t1Gen, ""):               "",
	} {
		m, err := s.st.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(hdrFed); got != want {
			t.Errorf("%s carries %s %q, want %q", subj, hdrFed, got, want)
		}
	}
}
