package jsfaclog

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/idrecs"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// cpu is the process's CPU time so far (user and system): the cluster runs in this process,
// so it counts the servers' work with the client's.
func cpu(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// statusGroup writes what a group commit of one status report from each of a facility's
// terminals writes, as the relay lays it out: each terminal's high-water mark and hello
// record in its owner bucket, each item's id record, and the group's item log record.
//
// ids says how the item id records are written: one a report (the relay's layout), the
// group's as one record, or added to a record that about four groups share (about 60 KB
// when full, as a facility's records of the ids made in one stretch of time would be:
// faclog.OpAppend carries only what a group adds), or through a facility's records and
// their index (idrecs: each id looked up, then appended a record at a time), with ix.
func statusGroup(tx kv.Tx, g, terminals int, ids idLayout, ix *idrecs.Index) error {
	for _, root := range []string{"dedupe", "seen", "item_ids", "items"} {
		if _, err := tx.CreateBucketIfNotExists([]byte(root)); err != nil {
			return err
		}
	}
	logRec := make([]byte, 0, terminals*100)
	var group []byte
	var recs *idrecs.Records
	if ids == idsRecords {
		root, err := tx.CreateBucketIfNotExists([]byte("fac_ids"))
		if err != nil {
			return err
		}
		fb, err := root.CreateBucketIfNotExists([]byte("north"))
		if err != nil {
			return err
		}
		recs = ix.In(fb, "north")
	}
	for t := range terminals {
		term := fmt.Appendf(nil, "term-%03d", t)
		for _, root := range []string{"dedupe", "seen"} {
			ob, err := tx.Bucket([]byte(root)).CreateBucketIfNotExists(term)
			if err != nil {
				return err
			}
			if err := ob.Put([]byte("e1"), binary.BigEndian.AppendUint64(nil, uint64(g+1))); err != nil {
				return err
			}
		}
		id := fmt.Appendf(nil, "0193f0c2-%04x-7000-8000-%012x", g%65536, t)
		ref := fmt.Appendf(nil, `{"h":"%064x","t":"%s","e":"e1","s":%d}`, t, term, g+1)
		switch ids {
		case idsRecords:
			if _, found, err := recs.Find(string(id)); err != nil || found {
				return fmt.Errorf("id %s: found %v: %w", id, found, err)
			}
			if err := recs.Add(idrecs.Ref{ID: string(id), Terminal: string(term), Epoch: "e1", Seq: uint64(g + 1),
				Hash: fmt.Sprintf("%064x", t)}); err != nil {
				return err
			}
		case idsByGroup, idsAppended:
			group = append(append(append(group, id...), ref...), '\n')
		default:
			if err := tx.Bucket([]byte("item_ids")).Put(id, ref); err != nil {
				return err
			}
		}
		logRec = fmt.Appendf(logRec, `{"seq":%d,"id":"%s","kind":"device_status","body":{"queue":0}}`, g+1, id)
	}
	switch ids {
	case idsByGroup:
		if err := tx.Bucket([]byte("item_ids")).Put(fmt.Appendf(nil, "f/%08d", g), group); err != nil {
			return err
		}
	case idsAppended:
		if err := kv.Append(tx.Bucket([]byte("item_ids")), fmt.Appendf(nil, "a/%08d", g/4), group); err != nil {
			return err
		}
	case idsRecords:
		if err := recs.Flush(); err != nil {
			return err
		}
	}
	return tx.Bucket([]byte("items")).Put(binary.BigEndian.AppendUint64(nil, uint64(g)), logRec)
}

// idLayout is how statusGroup writes item id records.
type idLayout int

const (
	idsEach idLayout = iota
	idsByGroup
	idsAppended
	idsRecords
)

// BenchmarkStatusGroupCommit compares, in one run on one in-process 3-node cluster, what a
// group commit of status reports costs written as a kv transaction (as the relay commits it
// today) and as one entry of the facility's log with its share of the projection behind it
// (every projectEvery groups, coalesced, from the entries the holder appended), each against
// a durable R3 publish of the same run.
// It reports the process's CPU a status report for each, and in publishes.
//
//	go test ./sync/relay/faclog/jsfaclog/ -run '^$' -bench StatusGroupCommit -benchtime 40x
func BenchmarkStatusGroupCommit(b *testing.B) {
	const (
		terminals    = 100 // a group commit: what a gateway groups under load, within one atomic batch
		projectEvery = 8
		rounds       = 4
		publishers   = 16
	)
	c := natstest.Start(b)
	nc := c.Connect(0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := natstest.Placed(ctx, func() (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "PUB", Subjects: []string{"pub.>"}, Replicas: 3, Storage: jetstream.FileStorage})
	}); err != nil {
		b.Fatal(err)
	}
	c.WaitStream(nc, "PUB")
	// The kv path: the relay's layout, and the item ids in a facility's records.
	kvPaths := []*kvPath{{name: "kv", ids: idsEach, store: openKV(b, c, 0, "kvpath")},
		{name: "kvrec", ids: idsRecords, store: openKV(b, c, 0, "kvrec"), ix: idrecs.NewIndex(64, 0)}}
	l := open(b, c, 0, Options{})
	// Three held facilities: the relay's layout, the item ids a group at a time, and added to
	// a record several groups share.
	paths := []*logPath{newLogPath(b, c, l, "f", idsEach), newLogPath(b, c, l, "g", idsByGroup), newLogPath(b, c, l, "h", idsAppended),
		newLogPath(b, c, l, "i", idsRecords)}

	per := max(projectEvery, b.N/rounds/projectEvery*projectEvery)
	var pubCPU time.Duration
	pubs, g := 0, 0
	b.ResetTimer()
	for range rounds {
		// The publishes come from 16 goroutines, as tetherload's baseline publishes many at
		// once: one at a time, each pays a replication round of its own.
		start := cpu(b)
		n := per * terminals / 10 / publishers // a tenth as many publishes as status reports
		var wg sync.WaitGroup
		errs := make(chan error, publishers)
		for p := range publishers {
			wg.Go(func() {
				for i := range n {
					if _, err := js.Publish(ctx, fmt.Sprintf("pub.%d.%d", p, i%10), make([]byte, 64)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		pubs += n * publishers
		pubCPU += cpu(b) - start

		for _, kp := range kvPaths {
			start = cpu(b)
			for i := range per {
				if err := kp.store.Update(ctx, func(tx kv.Tx) error { return statusGroup(tx, g+i, terminals, kp.ids, kp.ix) }); err != nil {
					b.Fatal(err)
				}
			}
			kp.cpu += cpu(b) - start
		}
		for _, lp := range paths {
			lp.run(ctx, b, g, per, terminals, projectEvery)
		}
		g += per
	}
	b.StopTimer()
	reports := float64(g * terminals)
	pub := float64(pubCPU.Microseconds()) / float64(pubs)
	b.ReportMetric(pub, "µs/publish")
	kvEach := float64(kvPaths[0].cpu.Microseconds()) / reports
	for _, kp := range kvPaths {
		each := float64(kp.cpu.Microseconds()) / reports
		b.ReportMetric(each, "µs/report-"+kp.name)
		b.ReportMetric(each/pub, "publishes/report-"+kp.name)
		b.ReportMetric(float64(kp.store.(kv.StatsReporter).KVStats().Messages)/reports, "messages/report-"+kp.name)
	}
	for _, lp := range paths {
		name := [...]string{idsEach: "log", idsByGroup: "logids", idsAppended: "logappend", idsRecords: "logrec"}[lp.ids]
		each := float64((lp.appendCPU + lp.projectCPU).Microseconds()) / reports
		b.ReportMetric(float64(lp.appendCPU.Microseconds())/reports, "µs/report-"+name+"-append")
		b.ReportMetric(each, "µs/report-"+name)
		b.ReportMetric(each/pub, "publishes/report-"+name)
		b.ReportMetric(kvEach/each, "kv/"+name)
		b.ReportMetric((float64(lp.projected.(kv.StatsReporter).KVStats().Messages)+float64(g))/reports, "messages/report-"+name)
	}
}

// kvPath is one facility of the benchmark written as kv transactions.
type kvPath struct {
	name  string
	ids   idLayout
	store kv.Store
	ix    *idrecs.Index
	cpu   time.Duration
}

// logPath is one held facility of the benchmark, with the kv store its log is projected into.
type logPath struct {
	facility              string
	ids                   idLayout
	w                     faclog.Writer
	held                  *faclog.Held
	projected             kv.Store
	ix                    *idrecs.Index
	appendCPU, projectCPU time.Duration
}

func newLogPath(b *testing.B, c *natstest.Cluster, l *Log, facility string, ids idLayout) *logPath {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := l.Claim(ctx, facility, "gw")
	if err != nil {
		b.Fatal(err)
	}
	projected := openKV(b, c, 0, "proj"+facility)
	lp := &logPath{facility: facility, ids: ids, w: w, held: faclog.NewHeld(w, projected, nil), projected: projected, ix: idrecs.NewIndex(64, 0)}
	if _, err := faclog.CatchUp(ctx, l, lp.projected, facility, w.Term(), 8); err != nil {
		b.Fatal(err)
	}
	return lp
}

// run appends groups g..g+per-1 and projects them every projectEvery groups.
func (lp *logPath) run(ctx context.Context, b *testing.B, g, per, terminals, projectEvery int) {
	for i := range per {
		start := cpu(b)
		if err := lp.held.Update(ctx, func(tx kv.Tx) error { return statusGroup(tx, g+i, terminals, lp.ids, lp.ix) }); err != nil {
			b.Fatal(err)
		}
		lp.appendCPU += cpu(b) - start
		if (i+1)%projectEvery == 0 {
			start = cpu(b)
			if _, _, err := faclog.ProjectEach(ctx, lp.projected, lp.facility, lp.held.TakeAppended(), projectEvery); err != nil {
				b.Fatal(err)
			}
			lp.projectCPU += cpu(b) - start
		}
	}
}
