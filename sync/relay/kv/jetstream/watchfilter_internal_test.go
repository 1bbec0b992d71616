package jskv

import (
	"context"
	"strings"
	"testing"
	"time"

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
