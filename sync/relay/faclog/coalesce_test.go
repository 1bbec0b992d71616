package faclog_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

// applied is the kv state ws leave on an empty store, applied in one transaction, as a
// projection applies an entry; err is Apply's.
func applied(tb testing.TB, dir string, ws []faclog.Write) (string, error) {
	tb.Helper()
	s, err := boltkv.Open(filepath.Join(dir, "kv"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Update(ctx, func(tx kv.Tx) error { return faclog.Apply(tx, ws) }); err != nil {
		return "", err
	}
	return kvtest.DumpStore(tb, s), nil
}

// busyWrites is a group commit's writes where keys are written again and again, as a
// kiosk's device report and high-water mark are by each of its batches in one group, with
// buckets made and dropped between.
func busyWrites(rng *rand.Rand) []faclog.Write {
	paths := [][][]byte{{[]byte("devices")}, {[]byte("dedupe")}, {[]byte("acct"), []byte("t1")}, {[]byte("acct")}}
	ws := make([]faclog.Write, 1+rng.IntN(14))
	for i := range ws {
		p := paths[rng.IntN(len(paths))]
		k := fmt.Appendf(nil, "k%d", rng.IntN(3))
		switch r := rng.IntN(30); {
		case r < 16:
			ws[i] = faclog.Write{Op: faclog.OpPut, Path: p, Key: k, Value: fmt.Appendf(nil, "v%d", i)}
		case r < 21:
			ws[i] = faclog.Write{Op: faclog.OpAppend, Path: p, Key: k, Value: fmt.Appendf(nil, "+%d", i)}
		case r < 25:
			ws[i] = faclog.Write{Op: faclog.OpDelete, Path: p, Key: k}
		case r < 27:
			ws[i] = faclog.Write{Op: faclog.OpSequence, Path: p, Seq: uint64(i)}
		case r < 29:
			ws[i] = faclog.Write{Op: faclog.OpDeleteBucket, Path: p}
		default:
			ws[i] = faclog.Write{Op: faclog.OpCreateBucket, Path: p}
		}
	}
	return ws
}

// Coalesced writes leave the kv state the writes leave, and where keys are written again
// they are fewer.
func TestCoalescedWritesLeaveTheSameState(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 16))
	var before, after int
	for i := range 300 {
		ws := busyWrites(rng)
		want, werr := applied(t, t.TempDir(), ws)
		got, gerr := applied(t, t.TempDir(), faclog.Coalesce(ws))
		if werr != nil || gerr != nil || got != want {
			t.Fatalf("writes %d %+v\ncoalesced %+v\nleave\n%s (%v)\nwant\n%s (%v)", i, ws, faclog.Coalesce(ws), got, gerr, want, werr)
		}
		before, after = before+len(ws), after+len(faclog.Coalesce(ws))
	}
	if after >= before*9/10 {
		t.Fatalf("%d writes coalesced to %d: a key written again should have dropped more", before, after)
	}
}

// What Coalesce keeps, case by case: a key's last Put, and whatever the state after it
// depends on.
func TestCoalesceKeepsWhatALaterPutDoesNotSet(t *testing.T) {
	a, b := [][]byte{[]byte("a")}, [][]byte{[]byte("b")}
	put := func(p [][]byte, k, v string) faclog.Write {
		return faclog.Write{Op: faclog.OpPut, Path: p, Key: []byte(k), Value: []byte(v)}
	}
	app := func(p [][]byte, k, v string) faclog.Write {
		return faclog.Write{Op: faclog.OpAppend, Path: p, Key: []byte(k), Value: []byte(v)}
	}
	del := func(p [][]byte, k string) faclog.Write {
		return faclog.Write{Op: faclog.OpDelete, Path: p, Key: []byte(k)}
	}
	for _, c := range []struct {
		name     string
		ws, want []faclog.Write
	}{
		{"a key put three times: the last", []faclog.Write{put(a, "k", "1"), put(a, "k", "2"), put(a, "k", "3")}, []faclog.Write{put(a, "k", "3")}},
		{"added to, then put", []faclog.Write{app(a, "k", "1"), put(a, "k", "2")}, []faclog.Write{put(a, "k", "2")}},
		{"deleted, then put", []faclog.Write{del(a, "k"), put(a, "k", "2")}, []faclog.Write{put(a, "k", "2")}},
		{"put, then added to: one put of both", []faclog.Write{put(a, "k", "1"), app(a, "k", "2")}, []faclog.Write{put(a, "k", "12")}},
		{"added to twice: one addition", []faclog.Write{app(a, "k", "1"), app(a, "k", "2")}, []faclog.Write{app(a, "k", "12")}},
		{"added to across other keys' writes: joined where the first stood",
			[]faclog.Write{put(a, "k", "1"), put(a, "j", "x"), app(a, "k", "2"), del(b, "k"), app(a, "k", "3")},
			[]faclog.Write{put(a, "k", "123"), put(a, "j", "x"), del(b, "k")}},
		{"deleted between: not joined", []faclog.Write{put(a, "k", "1"), del(a, "k"), app(a, "k", "2")},
			[]faclog.Write{put(a, "k", "1"), del(a, "k"), app(a, "k", "2")}},
		{"a bucket dropped between: not joined", []faclog.Write{put(a, "k", "1"), {Op: faclog.OpDeleteBucket, Path: a}, app(a, "k", "2")},
			[]faclog.Write{put(a, "k", "1"), {Op: faclog.OpDeleteBucket, Path: a}, app(a, "k", "2")}},
		{"a bucket made between: not joined", []faclog.Write{app(a, "k", "1"), {Op: faclog.OpCreateBucket, Path: b}, app(a, "k", "2")},
			[]faclog.Write{app(a, "k", "1"), {Op: faclog.OpCreateBucket, Path: b}, app(a, "k", "2")}},
		{"added to, then put, then added to: the put and what follows", []faclog.Write{app(a, "k", "1"), put(a, "k", "2"), app(a, "k", "3")},
			[]faclog.Write{put(a, "k", "23")}},
		// The Put made bucket a; the Delete alone would not.
		{"put, then deleted: both", []faclog.Write{put(a, "k", "1"), del(a, "k")}, []faclog.Write{put(a, "k", "1"), del(a, "k")}},
		{"the same key in two buckets", []faclog.Write{put(a, "k", "1"), put(b, "k", "2")}, []faclog.Write{put(a, "k", "1"), put(b, "k", "2")}},
		{"a bucket dropped between: the Put makes it again", []faclog.Write{put(a, "k", "1"), {Op: faclog.OpDeleteBucket, Path: a}, put(a, "k", "2")},
			[]faclog.Write{{Op: faclog.OpDeleteBucket, Path: a}, put(a, "k", "2")}},
		{"names that split differently", []faclog.Write{put([][]byte{[]byte("ab")}, "c", "1"), put([][]byte{[]byte("a")}, "bc", "2")},
			[]faclog.Write{put([][]byte{[]byte("ab")}, "c", "1"), put([][]byte{[]byte("a")}, "bc", "2")}},
	} {
		before := fmt.Sprint(c.ws)
		if got := faclog.Coalesce(c.ws); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: coalesced to %+v, want %+v", c.name, got, c.want)
		}
		if after := fmt.Sprint(c.ws); after != before {
			t.Errorf("%s: Coalesce changed the writes it was given: %s, were %s", c.name, after, before)
		}
	}
}

// Whatever writes an entry's data decodes to, where they apply the coalesced writes apply too
// and leave the state they leave. Writes that fail to apply (a key and a bucket of one name)
// come from no transaction: the held state refuses each such write as it is made, so Coalesce
// promises nothing for them, and may drop the one that would fail (testdata: a Put under a
// key's name, made moot by a later Put after the key was deleted).
func FuzzCoalesce(f *testing.F) {
	f.Add(faclog.EncodeWrites([]faclog.Write{
		{Op: faclog.OpPut, Path: [][]byte{[]byte("a")}, Key: []byte("k"), Value: []byte("1")},
		{Op: faclog.OpAppend, Path: [][]byte{[]byte("a")}, Key: []byte("k"), Value: []byte("2")},
		{Op: faclog.OpPut, Path: [][]byte{[]byte("a")}, Key: []byte("k"), Value: []byte("3")},
		{Op: faclog.OpCreateBucket, Path: [][]byte{[]byte("a"), []byte("n")}},
		{Op: faclog.OpDelete, Path: [][]byte{[]byte("a")}, Key: []byte("k")},
		{Op: faclog.OpPut, Path: [][]byte{[]byte("a")}, Key: []byte("k"), Value: []byte("4")},
	}))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		f.Add(faclog.EncodeWrites(busyWrites(rng)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ws, err := faclog.DecodeWrites(data)
		if err != nil {
			return
		}
		want, werr := applied(t, t.TempDir(), ws)
		if werr != nil {
			return
		}
		got, gerr := applied(t, t.TempDir(), faclog.Coalesce(ws))
		if gerr != nil || got != want {
			t.Fatalf("writes %+v\ncoalesced %+v\nleave\n%s (%v)\nwant\n%s (%v)", ws, faclog.Coalesce(ws), got, gerr, want, werr)
		}
	})
}
