package kiosk

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

func TestStoreCreatesSchemaAndEpoch(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	epoch, err := s.Epoch()
	if err != nil || len(epoch) != 32 {
		t.Fatalf("epoch = %q, %v; want 32 hex characters", epoch, err)
	}
	s.Close()
	s = openTestStore(t, dir)
	defer s.Close()
	again, _ := s.Epoch()
	if again != epoch {
		t.Fatalf("epoch changed across reopen: %q then %q", epoch, again)
	}
	other := openTestStore(t, t.TempDir())
	defer other.Close()
	if e, _ := other.Epoch(); e == epoch {
		t.Fatalf("two stores share epoch %q", e)
	}
}

// TestStoreLockedByAnotherProcess runs a child process that holds the store, then opens it here.
func TestStoreLockedByAnotherProcess(t *testing.T) {
	if dir := os.Getenv("TETHER_HOLD_STORE"); dir != "" {
		s, err := OpenStore(dir, StoreOptions{})
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("holding\n")
		time.Sleep(30 * time.Second)
		s.Close()
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreLockedByAnotherProcess$")
	cmd.Env = append(os.Environ(), "TETHER_HOLD_STORE="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	start := time.Now()
	_, err = OpenStore(dir, StoreOptions{LockTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("second process opened a held store")
	}
	want := "store " + filepath.Join(dir, StoreFile) + " is in use by another process"
	if !strings.Contains(err.Error(), want) || KindOf(err) != KindConflict {
		t.Fatalf("error = %v (kind %v), want it to say %q", err, KindOf(err), want)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("open hung for %v instead of timing out", time.Since(start))
	}
}

func TestStoreRefusesNewerSchemaAndLeavesItAlone(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(uint64(SchemaVersion()+1)))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, StoreFile)
	before, _ := os.ReadFile(path)
	_, err := OpenStore(dir, StoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "newer than this program") {
		t.Fatalf("error = %v, want a refusal naming the newer schema", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("refusing a newer store changed its file")
	}
}

func TestStoreRefusesDamagedFiles(t *testing.T) {
	cases := map[string]func(t *testing.T, path string){
		"empty": func(t *testing.T, path string) {
			os.WriteFile(path, nil, 0o600)
		},
		"garbage": func(t *testing.T, path string) {
			os.WriteFile(path, []byte(strings.Repeat("not a database ", 2000)), 0o600)
		},
		"truncated": func(t *testing.T, path string) {
			s := openTestStore(t, filepath.Dir(path))
			for i := 0; i < 200; i++ {
				s.update("fill", func(tx *bolt.Tx) error {
					_, err := enqueue(tx, time.Now(), ItemAudit, strings.Repeat("x", 2000))
					return err
				})
			}
			s.Close()
			fi, _ := os.Stat(path)
			os.Truncate(path, fi.Size()/3)
		},
		"meta pages overwritten": func(t *testing.T, path string) {
			s := openTestStore(t, filepath.Dir(path))
			s.Close()
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			page := make([]byte, 4096*2)
			for i := range page {
				page[i] = 0xAB
			}
			f.WriteAt(page, 0)
			f.Close()
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StoreFile)
			damage(t, path)
			before, _ := os.ReadFile(path)
			_, err := OpenStore(dir, StoreOptions{})
			if err == nil {
				t.Fatal("damaged store opened")
			}
			if KindOf(err) != KindCorrupt || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), path) {
				t.Fatalf("error = %v (kind %v), want a corrupt-store error naming %s", err, KindOf(err), path)
			}
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Fatal("opening a damaged store changed its file")
			}
		})
	}
}

func TestForwardQueueOrderAckAndReject(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		if err := s.update("queue", func(tx *bolt.Tx) error {
			_, err := enqueue(tx, now, ItemAudit, map[string]int{"n": i})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.Pending(0, 4, 1<<20)
	if err != nil || len(items) != 4 || items[0].Seq != 1 || items[3].Seq != 4 {
		t.Fatalf("Pending(0,4) = %+v, %v; want seqs 1..4", items, err)
	}
	if items, _ := s.Pending(0, 100, 1); len(items) != 1 {
		t.Fatalf("a byte limit smaller than one item returned %d items, want 1", len(items))
	}
	if n, err := s.Ack(now, 3); err != nil || n != 3 {
		t.Fatalf("Ack(3) = %d, %v", n, err)
	}
	if n, _ := s.Ack(now, 3); n != 0 {
		t.Fatalf("second Ack(3) acked %d items", n)
	}
	if err := s.Reject(now, 5, "too large"); err != nil {
		t.Fatal(err)
	}
	waiting, oldest, err := s.QueueStats()
	if err != nil || waiting != 6 || !oldest.Equal(now) {
		t.Fatalf("QueueStats = %d, %v, %v; want 6 waiting since %v", waiting, oldest, err, now)
	}
	items, _ = s.Pending(0, 100, 1<<20)
	var seqs []uint64
	for _, it := range items {
		seqs = append(seqs, it.Seq)
	}
	if len(seqs) != 6 || seqs[0] != 4 || seqs[1] != 6 || seqs[5] != 10 {
		t.Fatalf("waiting seqs = %v, want 4 6 7 8 9 10", seqs)
	}
	if _, err := s.Ack(now, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.update("queue", func(tx *bolt.Tx) error {
		it, err := enqueue(tx, now, ItemAudit, "after")
		if it.Seq != 11 {
			t.Errorf("sequence after acking all = %d, want 11 (never reused)", it.Seq)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateErrorRollsBackEverything(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	boom := errors.New("boom")
	err := s.update("half", func(tx *bolt.Tx) error {
		if _, err := enqueue(tx, time.Now(), ItemAudit, "one"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if n, _, _ := s.QueueStats(); n != 0 {
		t.Fatalf("a failed transaction left %d queued items", n)
	}
	s.view(func(tx *bolt.Tx) error {
		if seq := binary.BigEndian.Uint64(tx.Bucket([]byte(bMeta)).Get([]byte(kNextSeq))); seq != 1 {
			t.Errorf("next seq = %d after rollback, want 1", seq)
		}
		return nil
	})
}

// A damaged forwarding counter refuses the write as a corrupt store, without a panic and
// without writing the record it would have forwarded.
func TestDamagedSequenceCounterRefusesWrites(t *testing.T) {
	r := newRig(t, nil)
	r.addInmate("a", 100)
	if err := r.store.update("damage", func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bMeta)).Put([]byte(kNextSeq), []byte{1, 2, 3})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.term.Badge("nobody"); KindOf(err) != KindCorrupt {
		t.Fatalf("audited badge refusal with a damaged counter: %v, want a corrupt-store error", err)
	}
	if err := r.term.Deposit("a", 50, "after-damage"); KindOf(err) != KindCorrupt {
		t.Fatalf("deposit with a damaged counter: %v, want a corrupt-store error", err)
	}
	if got := r.balance("a"); got != 100 {
		t.Fatalf("balance %v after a refused deposit, want $1.00", got)
	}
}
