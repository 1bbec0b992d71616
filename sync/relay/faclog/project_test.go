package faclog_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/relay/kv/kvtest"
)

func openBolt(t *testing.T, name string) kv.Store {
	t.Helper()
	s, err := boltkv.Open(filepath.Join(t.TempDir(), name), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dump(t *testing.T, s kv.Store) string {
	t.Helper()
	return kvtest.DumpStore(t, s, "faclog_projected") // the mark is compared on its own
}

// randomWrites is a group commit's writes over a few buckets and keys, so later ones
// overwrite, delete and drop what earlier ones made.
func randomWrites(rng *rand.Rand) []faclog.Write {
	paths := [][][]byte{{[]byte("acct")}, {[]byte("acct"), []byte("t1")}, {[]byte("acct"), []byte("t2")}, {[]byte("down")}}
	ws := make([]faclog.Write, 1+rng.IntN(8))
	for i := range ws {
		p := paths[rng.IntN(len(paths))]
		k := fmt.Appendf(nil, "k%d", rng.IntN(6))
		switch r := rng.IntN(24); {
		case r < 12:
			ws[i] = faclog.Write{Op: faclog.OpPut, Path: p, Key: k, Value: fmt.Appendf(nil, "v%d", rng.IntN(1000))}
		case r >= 20:
			ws[i] = faclog.Write{Op: faclog.OpAppend, Path: p, Key: k, Value: fmt.Appendf(nil, "+%d", rng.IntN(1000))}
		case r < 16:
			ws[i] = faclog.Write{Op: faclog.OpDelete, Path: p, Key: k}
		case r < 18:
			ws[i] = faclog.Write{Op: faclog.OpSequence, Path: p, Seq: rng.Uint64N(1 << 20)}
		default:
			ws[i] = faclog.Write{Op: faclog.OpDeleteBucket, Path: p}
		}
	}
	return ws
}

// entries is a log of n entries after a claim at 1, sequences spread as a shared stream's
// are, each naming the one before it.
func entries(rng *rand.Rand, n int) (log []faclog.Entry, writes [][]faclog.Write) {
	log = append(log, faclog.Entry{Seq: 1, Term: 1, Holder: "gw"})
	for range n {
		ws := randomWrites(rng)
		prev := log[len(log)-1].Seq
		log = append(log, faclog.Entry{Seq: prev + 1 + rng.Uint64N(5), Prev: prev, Term: 1, Data: faclog.EncodeWrites(ws)})
		writes = append(writes, ws)
	}
	return log, writes
}

// Projecting a log in transactions of any size, each twice, leaves the kv state that
// applying each group commit in its own transaction leaves.
func TestProjectMatchesEachCommitApplied(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 7))
		log, writes := entries(rng, 60)
		ref, sut := openBolt(t, fmt.Sprintf("ref%d", seed)), openBolt(t, fmt.Sprintf("sut%d", seed))
		for _, ws := range writes {
			if err := ref.Update(ctx, func(tx kv.Tx) error { return faclog.Apply(tx, ws) }); err != nil {
				t.Fatal(err)
			}
		}
		for rest := log; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(9))
			for range 2 { // the second time, as after a lost answer, changes nothing
				at, err := faclog.Project(ctx, sut, "f", rest[:n])
				if err != nil || at != rest[n-1].Seq {
					t.Fatalf("seed %d: project up to %d: mark %d, %v", seed, rest[n-1].Seq, at, err)
				}
			}
			rest = rest[n:]
		}
		if got, want := dump(t, sut), dump(t, ref); got != want {
			t.Fatalf("seed %d: projected state\n%s\nwant\n%s", seed, got, want)
		}
		if at, err := faclog.Projected(ctx, sut, "f"); err != nil || at != log[len(log)-1].Seq {
			t.Fatalf("seed %d: mark %d, %v; want %d", seed, at, err, log[len(log)-1].Seq)
		}
		if at, err := faclog.Projected(ctx, sut, "other"); err != nil || at != 0 {
			t.Fatalf("another facility's mark: %d, %v", at, err)
		}
	}
}

// An entry missing between the kv state's mark and the entries to project (a kv state
// restored from before the log was trimmed) is refused, naming both, and nothing is applied.
func TestProjectRefusesAGap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log, _ := entries(rand.New(rand.NewPCG(1, 2)), 10)
	s := openBolt(t, "s")
	if _, err := faclog.Project(ctx, s, "f", log[:4]); err != nil {
		t.Fatal(err)
	}
	before := dump(t, s)
	_, err := faclog.Project(ctx, s, "f", log[5:])
	if !errors.Is(err, faclog.ErrGap) {
		t.Fatalf("projecting from entry %d with the state at %d: %v, want ErrGap", log[5].Seq, log[3].Seq, err)
	}
	want := fmt.Sprintf("entry %d follows %d, the kv state is at %d", log[5].Seq, log[4].Seq, log[3].Seq)
	if !errors.Is(err, faclog.ErrGap) || !containsAll(err.Error(), want, `"f"`) {
		t.Fatalf("the error %q does not say %q", err, want)
	}
	if after := dump(t, s); after != before {
		t.Fatalf("a refused projection changed the state:\n%s\nwas\n%s", after, before)
	}
	if at, _ := faclog.Projected(ctx, s, "f"); at != log[3].Seq {
		t.Fatalf("mark %d after a refused projection, want %d", at, log[3].Seq)
	}
	// A bad entry is refused before the transaction, naming it.
	bad := faclog.Entry{Seq: log[4].Seq, Prev: log[3].Seq, Term: 1, Data: []byte{1, 1, 7}}
	if _, err := faclog.Project(ctx, s, "f", []faclog.Entry{bad}); err == nil || !containsAll(err.Error(), fmt.Sprintf("entry %d", bad.Seq)) {
		t.Fatalf("an entry that does not decode: %v", err)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
