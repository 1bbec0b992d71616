package relay

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// BenchmarkDrainStore is the relay's committer in a drain (sync/e2e BenchmarkDrainBacklog100k)
// without the websocket, the terminal and the frame decode: one kiosk's backlog of 1 KiB letters
// to a department, 256 a batch as the terminal sends them, four batches a transaction (what the
// connection's store goroutine takes from its queue of eight while the commit before runs),
// fsync on. Frames are decoded and prepared before the timing, as the connection's reader does
// while the commit before runs. It reports the process's CPU (user + system) and the pages
// bbolt wrote per letter: what a drain's serial stage costs.
//
//	go test -run '^$' -bench DrainStore -benchtime 40960x ./sync/relay/
//
// With TETHER_DRAIN_BUCKETS set it logs the pages of each bucket it wrote to.
func BenchmarkDrainStore(b *testing.B) {
	const perBatch, perTx = 256, 4
	e := newEnv(b, func(c *Config) { c.Logf = nil; c.HoldPolicy = HoldNone })
	if err := e.r.PutPolicy("north", kiosk.DefaultPolicy()); err != nil {
		b.Fatal(err)
	}
	ro := Roster{Inmates: []RosterInmate{{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PIN: "1234", Language: "en",
		Status: kiosk.StatusActive}}}
	if err := e.r.PutRoster("north", ro); err != nil {
		b.Fatal(err)
	}
	tm := e.enroll(wire.ModeKiosk, "")
	ti, _, err := e.r.terminal(tm.id)
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit ", 19)[:1024]
	at := t0
	// groups are the transactions' batches, decoded and prepared as the connection's reader does.
	batch := func() upBatch {
		wb := wire.Batch{Epoch: tm.epoch}
		for range perBatch {
			tm.seq++
			body, err := json.Marshal(vocab.Message{ID: uuid.Must(uuid.NewV7()).String(), InmateID: "A1",
				Box: vocab.BoxOutbox, Peer: "dept-medical", Subject: fmt.Sprintf("A1 #%06d", tm.seq), Body: text,
				State: vocab.MsgQueued, CreatedAt: at, UpdatedAt: at})
			if err != nil {
				b.Fatal(err)
			}
			wb.Items = append(wb.Items, wire.Item{Seq: tm.seq, ID: uuid.Must(uuid.NewV7()).String(), Kind: wire.UpMessage,
				CreatedAt: at, Body: body})
		}
		frame, err := wire.Encode(wb)
		if err != nil {
			b.Fatal(err)
		}
		f, bodies, err := wire.DecodeUplinkFrame(frame)
		if err != nil {
			b.Fatal(err)
		}
		ub := upBatch{Batch: *f.Batch, bodies: bodies, ackLetters: true}
		ub.preps = prepareAll(ub.Items, ub.bodies)
		return ub
	}
	store := func(group []upBatch) {
		acks, err := e.r.storeBatches(ti.TerminalInfo, group, nil)
		if err != nil || len(acks) != len(group) {
			b.Fatalf("store: %d acks, %v", len(acks), err)
		}
		for i, a := range acks {
			if last := group[i].Items[len(group[i].Items)-1].Seq; a.Seq != last || len(a.Rejected) != 0 || a.Letters.Len() != perBatch {
				b.Fatalf("ack %d: seq %d (want %d), %d refused, %d letters", i, a.Seq, last, len(a.Rejected), a.Letters.Len())
			}
		}
	}
	// A first transaction, so that the buckets and the inmate's index exist before the timing.
	store([]upBatch{batch()})
	txs := max(1, b.N/(perBatch*perTx))
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	bdb, _ := e.r.db.(*boltkv.Store)
	txStats := func() bolt.TxStats {
		if bdb == nil {
			return bolt.TxStats{}
		}
		return bdb.DB().Stats().TxStats
	}
	b.ResetTimer()
	st0, w0 := txStats(), writtenBytes(b)
	var used, wall time.Duration
	for range txs {
		// Each group made with the timer stopped: a whole drain's frames held at once would
		// make the collector's work the benchmark's.
		b.StopTimer()
		var group []upBatch
		for range perTx {
			group = append(group, batch())
		}
		b.StartTimer()
		c0, w0 := cpu(), time.Now()
		store(group)
		wall += time.Since(w0)
		used += cpu() - c0
	}
	b.StopTimer()
	n := float64(txs * perTx * perBatch)
	st := txStats()
	b.ReportMetric(float64(used.Nanoseconds())/1e3/n, "cpu-us/letter")
	b.ReportMetric(float64(wall.Nanoseconds())/1e3/n, "wall-us/letter")
	b.ReportMetric(float64(st.GetWrite()-st0.GetWrite())/n, "writes/letter")
	b.ReportMetric(float64(writtenBytes(b)-w0)/n, "bytes-written/letter")
	b.ReportMetric(float64(st.GetSpillTime()-st0.GetSpillTime())/1e3/n, "spill-us/letter")
	b.ReportMetric(float64(st.GetWriteTime()-st0.GetWriteTime())/1e3/n, "write-us/letter")
	if bdb != nil && os.Getenv(drainBucketsEnv) != "" {
		ds := bdb.DB().Stats()
		b.Logf("freelist: %d free pages, %d pending, %d bytes allocated, %d in use; %d txs", ds.FreePageN, ds.PendingPageN, ds.FreeAlloc, ds.FreelistInuse, st.GetPageCount())
		bdb.DB().View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
				s := bk.Stats()
				if s.KeyN > 100 {
					b.Logf("%-12s keys %7d leaf %6d (+ovf %6d) inuse %9d  branch %4d depth %d  bytes/letter %.0f", name, s.KeyN, s.LeafPageN, s.LeafOverflowN, s.LeafInuse, s.BranchPageN, s.Depth, float64((s.LeafPageN+s.LeafOverflowN+s.BranchPageN)*4096)/n)
				}
				return nil
			})
		})
	}
}

// drainBucketsEnv, if set, has BenchmarkDrainStore log its buckets' pages.
const drainBucketsEnv = "TETHER_DRAIN_BUCKETS"

// writtenBytes is what this process has passed to write calls so far (/proc/self/io wchar):
// bbolt's page writes, which its fdatasync then waits for; 0 where there is no such file.
func writtenBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("/proc/self/io: %v", err)
			}
			return n
		}
	}
	return 0
}
