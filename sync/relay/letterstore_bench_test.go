package relay

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// BenchmarkLetterStore is the relay's own CPU for storing one-letter batches, the store path
// alone (no websockets, fsync off): `terminals` terminals, 20 a facility, each storing a
// one-letter batch (to a department, with its state in the ack) at a time, concurrently, so
// the group commit gathers them as under load. It reports the process's CPU (user + system,
// from getrusage) per batch: what the transaction, bbolt's commit and the hand-offs cost,
// without the frame decode and the ack write that relayd adds around them.
//
//	go test -run '^$' -bench LetterStore -benchtime 20000x ./sync/relay/
func BenchmarkLetterStore(b *testing.B) {
	const terminals, perFacility = 200, 20
	e := newEnv(b, func(c *Config) { c.Logf = nil; c.HoldPolicy = HoldNone; c.NoSync = true })
	type benchTerm struct {
		t      TerminalInfo
		tm     *term
		inmate string
	}
	terms := make([]benchTerm, terminals)
	for f := 0; f*perFacility < terminals; f++ {
		fac := fmt.Sprintf("fac%d", f)
		if err := e.r.PutPolicy(fac, kiosk.DefaultPolicy()); err != nil {
			b.Fatal(err)
		}
		var ro Roster
		for i := range perFacility {
			ro.Inmates = append(ro.Inmates, RosterInmate{ID: fmt.Sprintf("%s-i%d", fac, i), Name: "N", Language: "en",
				Badges: []string{fmt.Sprintf("%s-b%d", fac, i)}, PINHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
				Status: kiosk.StatusActive})
		}
		if err := e.r.PutRoster(fac, ro); err != nil {
			b.Fatal(err)
		}
		for i := range perFacility {
			tm := e.enrollAt(fac, wire.ModeKiosk, "")
			ti, _, err := e.r.terminal(tm.id)
			if err != nil {
				b.Fatal(err)
			}
			terms[f*perFacility+i] = benchTerm{t: ti.TerminalInfo, tm: tm, inmate: fmt.Sprintf("%s-i%d", fac, i)}
		}
	}
	store := func(bt *benchTerm) {
		bt.tm.seq++
		id := uuid.Must(uuid.NewV7()).String()
		body := fmt.Sprintf(`{"id":%q,"inmate_id":%q,"box":"outbox","peer":"dept-medical","subject":"s","body":"a letter of a few words","state":"pending","created_at":"2026-03-02T10:00:00Z"}`,
			id, bt.inmate)
		ub := upBatch{Batch: wire.Batch{Epoch: bt.tm.epoch, Items: []wire.Item{{Seq: bt.tm.seq, ID: id, Kind: wire.UpMessage, CreatedAt: t0, Body: []byte(body)}}},
			ackLetters: true}
		acks, err := e.r.storeBatches(bt.t, []upBatch{ub}, nil)
		if err != nil || len(acks) != 1 || acks[0].Seq != bt.tm.seq || len(acks[0].Rejected) != 0 || acks[0].Letters.Len() != 1 {
			b.Errorf("terminal %s seq %d: acks %+v, %v", bt.t.ID, bt.tm.seq, acks, err)
		}
	}
	// A first letter each, so that every terminal's records exist before the timing.
	for i := range terms {
		store(&terms[i])
	}
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
	per := b.N / terminals
	b.ResetTimer()
	st0, txs0 := txStats(), e.r.writeTxs.Load()
	before := cpu()
	var wg sync.WaitGroup
	for i := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				store(&terms[i])
			}
		}()
	}
	wg.Wait()
	used := cpu() - before
	b.StopTimer()
	if n := per * terminals; n > 0 {
		b.ReportMetric(float64(used.Microseconds())/float64(n), "cpu-us/batch")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "batches/s")
		st := txStats()
		b.ReportMetric(float64(st.GetWrite()-st0.GetWrite())/float64(n), "pages-written/batch")
		b.ReportMetric(float64(n)/float64(e.r.writeTxs.Load()-txs0), "batches/tx")
	}
}
