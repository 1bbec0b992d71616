package jscontent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// gateway is what one relayd gateway holds: a connection to its own node, the relay's kv
// store and the content store on it.
type gateway struct {
	nc    *nats.Conn
	meta  *jskv.Store
	store *Store
}

// gateways opens n gateways' content stores through nodes 0..n-1 of one cluster, as relayd
// opens them (the relay's kv stream, then the content stream, both R3).
func gateways(t *testing.T, c *natstest.Cluster, n int, o Options) []gateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []gateway
	for i := range n {
		nc := c.Connect(i)
		ko := jskv.Options{Stream: "relay", Prefix: "relay", CacheBucketMarkers: true}
		meta, err := natstest.Placed(ctx, func() (*jskv.Store, error) { return jskv.Open(ctx, nc, ko) })
		if err != nil {
			t.Fatalf("open the kv store through node %d: %v", i, err)
		}
		c.WaitStream(nc, ko.Stream)
		s, err := natstest.Placed(ctx, func() (*Store, error) { return Open(ctx, nc, meta, o) })
		if err != nil {
			t.Fatalf("open the content store through node %d: %v", i, err)
		}
		t.Cleanup(func() { s.Close() })
		c.WaitStream(nc, s.o.Stream)
		out = append(out, gateway{nc: nc, meta: meta, store: s})
	}
	return out
}

// object is n random bytes (seeded: a failure replays).
func object(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// messages counts what the content stream holds.
func messages(t *testing.T, g gateway) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := g.store.st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// readAll reads obj whole through s.
func readAll(t *testing.T, s *Store, obj content.Hash) []byte {
	t.Helper()
	rd, err := s.Open(obj)
	if err != nil {
		t.Fatalf("open %s: %v", obj, err)
	}
	defer rd.Close()
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("read %s: %v", obj, err)
	}
	return b
}

// An object put through gateway A is held, whole and byte for byte, for gateway B: its state,
// manifest, chunks and reader; putting the same bytes through B for another holder writes no
// bytes again and adds the holder.
func TestPutThroughOneGatewayServedByAnother(t *testing.T) {
	c := natstest.Start(t)
	gs := gateways(t, c, 2, Options{SweepEvery: -1})
	a, b := gs[0].store, gs[1].store
	photo := object(1, 3*content.ChunkSize+1234) // four chunks, the last short
	ref, err := a.PutFor(bytes.NewReader(photo), "facility:north")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Object != content.Sum(photo) || ref.Size != int64(len(photo)) {
		t.Fatalf("reference %+v, want the photo's sha256 and size %d", ref, len(photo))
	}
	if st, err := b.State(ref.Object); err != nil || st != content.Whole {
		t.Fatalf("gateway B sees the photo %v (err %v), want whole", st, err)
	}
	man, err := b.Manifest(ref.Object)
	if err != nil || content.Sum(man) != ref.Manifest {
		t.Fatalf("gateway B's manifest has sha256 %s (err %v), the reference says %s", content.Sum(man), err, ref.Manifest)
	}
	var joined []byte
	for i := range 4 {
		if joined, err = b.Chunk(ref.Object, i, joined); err != nil {
			t.Fatalf("chunk %d through gateway B: %v", i, err)
		}
	}
	if !bytes.Equal(joined, photo) {
		t.Fatal("the chunks gateway B serves are not the photo")
	}
	if _, err := b.Chunk(ref.Object, 4, nil); !errors.Is(err, content.ErrNoSuchChunk) {
		t.Fatalf("chunk 4 of 4: %v, want ErrNoSuchChunk", err)
	}
	if !bytes.Equal(readAll(t, b, ref.Object), photo) {
		t.Fatal("gateway B reads another object")
	}
	held := messages(t, gs[0])
	if held != 5 {
		t.Fatalf("the stream holds %d messages, want the 4 chunks and the manifest", held)
	}
	again, err := b.PutFor(bytes.NewReader(photo), "held:letter-1")
	if err != nil || again != ref {
		t.Fatalf("the same photo put again through B: %+v, %v; want %+v", again, err, ref)
	}
	if n := messages(t, gs[0]); n != held {
		t.Fatalf("after the second put the stream holds %d messages, want %d (nothing written twice)", n, held)
	}
	hs, pinned, err := a.Holders(ref.Object)
	if err != nil || !pinned || fmt.Sprint(hs) != "[facility:north held:letter-1]" {
		t.Fatalf("holders seen by A: %v pinned %v (err %v)", hs, pinned, err)
	}
	if st, err := a.Stats(); err != nil || st.Objects != 1 || st.Bytes != int64(len(photo)) {
		t.Fatalf("stats %+v (err %v), want one object of %d bytes", st, err, len(photo))
	}
	if _, err := b.Chunk(content.Sum([]byte("never put")), 0, nil); !errors.Is(err, content.ErrUnknownObject) {
		t.Fatalf("a chunk of an object never put: %v, want ErrUnknownObject", err)
	}
}

// An object released by every holder, one on each gateway, is gone for both: absent, its
// chunks refused, its bytes purged from the stream; released by one holder only, it stays.
func TestReleasedByEveryHolderGoneForBoth(t *testing.T) {
	c := natstest.Start(t)
	gs := gateways(t, c, 2, Options{SweepEvery: -1})
	a, b := gs[0].store, gs[1].store
	photo := object(2, content.ChunkSize+10)
	ref, err := a.PutFor(bytes.NewReader(photo), "facility:north")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Retain(ref, "held:letter-2", true); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ref.Object, "facility:north"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, b, ref.Object), photo) {
		t.Fatal("after one of two holders let go, B no longer reads the photo")
	}
	if err := b.Release(ref.Object, "held:letter-2"); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Store{"A": a, "B": b} {
		if st, err := s.State(ref.Object); err != nil || st != content.Absent {
			t.Fatalf("gateway %s sees the released photo %v (err %v), want absent", name, st, err)
		}
		if _, err := s.Chunk(ref.Object, 0, nil); !errors.Is(err, content.ErrUnknownObject) {
			t.Fatalf("gateway %s serves chunk 0 of the released photo: %v", name, err)
		}
		if _, err := s.Open(ref.Object); !errors.Is(err, content.ErrUnknownObject) {
			t.Fatalf("gateway %s opens the released photo: %v", name, err)
		}
		if st, err := s.Stats(); err != nil || st.Objects != 0 {
			t.Fatalf("gateway %s counts %+v (err %v), want nothing", name, st, err)
		}
	}
	if n := messages(t, gs[1]); n != 0 {
		t.Fatalf("the stream still holds %d messages of the released photo", n)
	}
	if err := a.Release(ref.Object, "facility:north"); err != nil {
		t.Fatalf("releasing again: %v, want no error", err)
	}
}

// A node killed while a gateway serves an object and another puts one loses nothing: the
// reads go on from the new leader and return every byte; the put completes, whole on both.
func TestNodeKilledMidTransfer(t *testing.T) {
	c := natstest.Start(t)
	gs := gateways(t, c, 2, Options{SweepEvery: -1})
	a, b := gs[0].store, gs[1].store
	track := object(3, 12*content.ChunkSize)
	ref, err := a.PutFor(bytes.NewReader(track), "catalog:north")
	if err != nil {
		t.Fatal(err)
	}
	leader := streamLeader(t, gs[1])
	var got []byte
	for i := range 6 {
		if got, err = b.Chunk(ref.Object, i, got); err != nil {
			t.Fatal(err)
		}
	}
	// The leader of the content stream goes down between two chunks of B's transfer, and
	// A's next put is cut the same way: after its third chunk.
	c.Stop(leader)
	t.Logf("stopped node %d, the content stream's leader", leader)
	for i := 6; i < 12; i++ {
		if got, err = b.Chunk(ref.Object, i, got); err != nil {
			t.Fatalf("chunk %d after the leader went down: %v", i, err)
		}
	}
	if !bytes.Equal(got, track) {
		t.Fatal("the chunks served across the node's loss are not the track")
	}
	c.Restart(leader)
	second := object(4, 6*content.ChunkSize)
	read, stopped := 0, false
	killer := readFunc(func(p []byte) (int, error) {
		n, err := bytes.NewReader(second[read:]).Read(p)
		read += n
		if !stopped && read >= 3*content.ChunkSize {
			stopped = true
			c.Stop(streamLeader(t, gs[0]))
		}
		return n, err
	})
	ref2, err := a.PutFor(killer, "facility:north")
	if err != nil {
		t.Fatalf("a put cut by a node's loss: %v", err)
	}
	for i := range natstest.Size {
		if !c.Running(i) {
			c.Restart(i)
		}
	}
	for name, s := range map[string]*Store{"A": a, "B": b} {
		if !bytes.Equal(readAll(t, s, ref2.Object), second) {
			t.Fatalf("gateway %s reads another object than the one put across the node's loss", name)
		}
		if !bytes.Equal(readAll(t, s, ref.Object), track) {
			t.Fatalf("gateway %s reads another track after the node came back", name)
		}
	}
}

type readFunc func(p []byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// streamLeader is the index of the node leading the content stream.
func streamLeader(t *testing.T, g gateway) int {
	t.Helper()
	var idx = -1
	deadline := time.Now().Add(30 * time.Second)
	for idx < 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		info, err := g.store.st.Info(ctx)
		cancel()
		if err == nil && info.Cluster != nil {
			for i := range natstest.Size {
				if info.Cluster.Leader == fmt.Sprintf("n%d", i+1) {
					idx = i
				}
			}
		}
		if idx < 0 && time.Now().After(deadline) {
			t.Fatalf("the content stream has no leader (err %v)", err)
		}
		if idx < 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return idx
}

// A gateway's bytes are checked on every read: a chunk that no longer matches its manifest
// (replaced on the stream) is refused as corrupt, by the chunk read and by the reader.
func TestChunkVerifiedOnRead(t *testing.T) {
	c := natstest.Start(t)
	gs := gateways(t, c, 1, Options{SweepEvery: -1})
	s := gs[0].store
	photo := object(5, 2*content.ChunkSize)
	ref, err := s.PutFor(bytes.NewReader(photo), "facility:north")
	if err != nil {
		t.Fatal(err)
	}
	var upload string
	if err := gs[0].meta.View(context.Background(), func(tx kv.Tx) error {
		rec, err := getObject(tx, ref.Object)
		if rec != nil {
			upload = rec.Upload
		}
		return err
	}); err != nil || upload == "" {
		t.Fatalf("no upload recorded (err %v)", err)
	}
	bad := bytes.Clone(photo[content.ChunkSize:])
	bad[7] ^= 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.js.Publish(ctx, s.chunkSubj(upload, 1), bad); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Chunk(ref.Object, 1, nil); !errors.Is(err, content.ErrCorrupt) {
		t.Fatalf("a damaged chunk: %v, want ErrCorrupt", err)
	}
	rd, err := s.Open(ref.Object)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rd); !errors.Is(err, content.ErrCorrupt) {
		t.Fatalf("reading a damaged object: %v, want ErrCorrupt", err)
	}
	if got, err := s.Chunk(ref.Object, 0, nil); err != nil || !bytes.Equal(got, photo[:content.ChunkSize]) {
		t.Fatalf("the undamaged chunk: err %v", err)
	}
}

// What a put leaves when it fails (a reader that errors) or when its gateway dies half way
// (pending past PendingTTL) is purged: nothing of it is held and the stream is empty again.
func TestFailedAndAbandonedPutsPurged(t *testing.T) {
	c := natstest.Start(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	gs := gateways(t, c, 1, Options{SweepEvery: -1, Now: func() time.Time { return *clock.Load() }})
	s := gs[0].store
	photo := object(6, 3*content.ChunkSize)
	failing := io.MultiReader(bytes.NewReader(photo[:2*content.ChunkSize+5]), readFunc(func([]byte) (int, error) {
		return 0, errors.New("the upload's connection dropped")
	}))
	if _, err := s.PutFor(failing, "facility:north"); err == nil {
		t.Fatal("a put whose reader failed succeeded")
	}
	if n := messages(t, gs[0]); n != 0 {
		t.Fatalf("a failed put left %d messages", n)
	}
	// A gateway that died in a put: its upload recorded pending, two chunks written.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.update(ctx, func(tx kv.Tx) error { return putUpload(tx, "crashed", uploadRec{Since: now}) }); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.publish(ctx, s.chunkSubj("crashed", i), photo[i*content.ChunkSize:(i+1)*content.ChunkSize]); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("a sweep an hour early purged %d (err %v): another gateway may still be writing it", n, err)
	}
	if n := messages(t, gs[0]); n != 2 {
		t.Fatalf("the stream holds %d messages, want the crashed put's 2", n)
	}
	later := now.Add(25 * time.Hour)
	clock.Store(&later)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("the sweep a day later purged %d uploads (err %v), want 1", n, err)
	}
	if n := messages(t, gs[0]); n != 0 {
		t.Fatalf("after the sweep the stream holds %d messages", n)
	}
	var left int
	if err := gs[0].meta.View(ctx, func(tx kv.Tx) error { left = tx.Bucket([]byte(bUploads)).KeyN(); return nil }); err != nil || left != 0 {
		t.Fatalf("%d upload records left (err %v)", left, err)
	}
}

// BenchmarkPutTrack puts a 4 MiB track (16 chunks) through one gateway of an R3 cluster, a new
// object each time, and releases it.
func BenchmarkPutTrack(b *testing.B) {
	c := natstest.Start(b)
	s := gatewaysTB(b, c)
	track := object(7, 16*content.ChunkSize)
	b.SetBytes(int64(len(track)))
	for i := 0; b.Loop(); i++ {
		track[0], track[1] = byte(i), byte(i>>8) // another object each time
		ref, err := s.PutFor(bytes.NewReader(track), "catalog:north")
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Release(ref.Object, "catalog:north"); err != nil {
			b.Fatal(err)
		}
	}
}

// gatewaysTB is one gateway's content store for a benchmark.
func gatewaysTB(b *testing.B, c *natstest.Cluster) *Store {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := c.Connect(0)
	ko := jskv.Options{Stream: "relay", Prefix: "relay", CacheBucketMarkers: true}
	meta, err := natstest.Placed(ctx, func() (*jskv.Store, error) { return jskv.Open(ctx, nc, ko) })
	if err != nil {
		b.Fatal(err)
	}
	s, err := natstest.Placed(ctx, func() (*Store, error) { return Open(ctx, nc, meta, Options{SweepEvery: -1}) })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	c.WaitStream(nc, "TETHER_CONTENT")
	return s
}
