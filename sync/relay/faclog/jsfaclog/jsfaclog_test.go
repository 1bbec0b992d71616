package jsfaclog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// open opens the log through node i, as a gateway would.
func open(t testing.TB, c *natstest.Cluster, i int, o Options) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := c.Connect(i)
	l, err := natstest.Placed(ctx, func() (*Log, error) { return Open(ctx, nc, o) })
	if err != nil {
		t.Fatalf("open the log through node %d: %v", i, err)
	}
	c.WaitStream(nc, l.o.Stream)
	return l
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func claim(t *testing.T, l *Log, facility, holder string) faclog.Writer {
	t.Helper()
	w, err := l.Claim(ctxFor(t, 30*time.Second), facility, holder)
	if err != nil {
		t.Fatalf("%s claims %q: %v", holder, facility, err)
	}
	return w
}

func appendOK(t *testing.T, w faclog.Writer, data string) uint64 {
	t.Helper()
	seq, err := w.Append(ctxFor(t, 30*time.Second), []byte(data))
	if err != nil {
		t.Fatalf("append %q to %q: %v", data, w.Facility(), err)
	}
	return seq
}

// entries is facility's log after after, each as "claim:<holder>@<seq>" or
// "<data>@<seq>/<term>".
func entries(t *testing.T, l *Log, facility string, after uint64) []string {
	t.Helper()
	var out []string
	err := l.Read(ctxFor(t, 30*time.Second), facility, after, func(e faclog.Entry) error {
		if e.Claim() {
			out = append(out, fmt.Sprintf("claim:%s@%d", e.Holder, e.Seq))
		} else {
			out = append(out, fmt.Sprintf("%s@%d/%d", e.Data, e.Seq, e.Term))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %q after %d: %v", facility, after, err)
	}
	return out
}

// A gateway that claims a facility fences off the one that held it: the earlier holder's
// appends are refused from then on, whatever it believes, and its entries before the claim
// stay. Facilities do not fence each other.
func TestClaimFencesTheHolderBefore(t *testing.T) {
	c := natstest.Start(t)
	a, b := open(t, c, 0, Options{}), open(t, c, 1, Options{})
	const east = "east unit/2" // not a subject token as it stands
	wa := claim(t, a, east, "gw-a")
	if wa.Term() == 0 || wa.Last() != wa.Term() {
		t.Fatalf("a claim's term %d and last %d: want the claim's sequence for both", wa.Term(), wa.Last())
	}
	var seqs []uint64
	for _, d := range []string{"a1", "a2", "a3"} {
		seqs = append(seqs, appendOK(t, wa, d))
	}
	westA := claim(t, a, "west", "gw-a")

	wb := claim(t, b, east, "gw-b") // gw-a is still running: a takeover, not a failover
	if wb.Term() <= seqs[2] {
		t.Fatalf("gw-b's claim at %d, not after gw-a's last entry %d", wb.Term(), seqs[2])
	}
	_, err := wa.Append(ctxFor(t, 30*time.Second), []byte("a4"))
	if !errors.Is(err, faclog.ErrDeposed) {
		t.Fatalf("gw-a appends after gw-b's claim: %v, want ErrDeposed", err)
	}
	if _, err := wa.Append(ctxFor(t, 30*time.Second), []byte("a5")); !errors.Is(err, faclog.ErrDeposed) {
		t.Fatalf("gw-a appends again: %v, want ErrDeposed", err)
	}
	if err := wa.Trim(ctxFor(t, 30*time.Second), seqs[2]); !errors.Is(err, faclog.ErrDeposed) {
		t.Fatalf("gw-a trims after gw-b's claim: %v, want ErrDeposed", err)
	}
	b1 := appendOK(t, wb, "b1")

	want := []string{
		fmt.Sprintf("claim:gw-a@%d", wa.Term()),
		fmt.Sprintf("a1@%d/%d", seqs[0], wa.Term()), fmt.Sprintf("a2@%d/%d", seqs[1], wa.Term()), fmt.Sprintf("a3@%d/%d", seqs[2], wa.Term()),
		fmt.Sprintf("claim:gw-b@%d", wb.Term()),
		fmt.Sprintf("b1@%d/%d", b1, wb.Term()),
	}
	if got := entries(t, a, east, 0); !slices.Equal(got, want) {
		t.Fatalf("east's log:\n got %v\nwant %v", got, want)
	}
	if got := entries(t, b, east, wb.Term()); !slices.Equal(got, want[5:]) {
		t.Fatalf("east's log after gw-b's claim: %v, want %v", got, want[5:])
	}
	// The other facility's writer is untouched by east's claim.
	w1 := appendOK(t, westA, "w1")
	if got, want := entries(t, b, "west", 0), []string{fmt.Sprintf("claim:gw-a@%d", westA.Term()), fmt.Sprintf("w1@%d/%d", w1, westA.Term())}; !slices.Equal(got, want) {
		t.Fatalf("west's log: %v, want %v", got, want)
	}
	if got := entries(t, b, "north", 0); len(got) != 0 {
		t.Fatalf("a facility never claimed reads %v", got)
	}
	if _, err := b.Claim(ctxFor(t, 30*time.Second), "north", "gw\r\nTk-Term: 1"); err == nil || !strings.Contains(err.Error(), "line break") {
		t.Fatalf("a holder that would end the headers: %v", err)
	}
	if got := entries(t, b, "north", 0); len(got) != 0 {
		t.Fatalf("a refused claim left %v", got)
	}
}

// A claim made while the holder keeps appending lands after one of its entries; every entry
// the holder was told was appended is in the log before the claim, and none after it.
func TestClaimWhileTheHolderAppends(t *testing.T) {
	c := natstest.Start(t)
	a, b := open(t, c, 0, Options{}), open(t, c, 2, Options{})
	wa := claim(t, a, "f", "gw-a")
	var (
		mu       sync.Mutex
		appended []uint64
		stopped  error
	)
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			seq, err := wa.Append(context.Background(), fmt.Appendf(nil, "a%d", i))
			if err != nil {
				mu.Lock()
				stopped = err
				mu.Unlock()
				return
			}
			mu.Lock()
			appended = append(appended, seq)
			n := len(appended)
			mu.Unlock()
			if n == 20 {
				close(started)
			}
		}
	}()
	<-started
	wb := claim(t, b, "f", "gw-b")
	<-done
	if !errors.Is(stopped, faclog.ErrDeposed) {
		t.Fatalf("the holder's appends ended with %v, want ErrDeposed", stopped)
	}
	stored := map[uint64]faclog.Entry{}
	if err := b.Read(ctxFor(t, 30*time.Second), "f", 0, func(e faclog.Entry) error { stored[e.Seq] = e; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, seq := range appended {
		e, ok := stored[seq]
		if !ok || e.Term != wa.Term() || seq >= wb.Term() {
			t.Fatalf("entry %d the holder was told it appended: stored %v (term %d), claim at %d", seq, ok, e.Term, wb.Term())
		}
	}
	for seq, e := range stored {
		if seq > wb.Term() || (seq < wb.Term() && e.Term != wa.Term() && !e.Claim()) {
			t.Fatalf("entry %d of term %d: nothing but gw-a's entries come before gw-b's claim at %d, nothing after", seq, e.Term, wb.Term())
		}
	}
	if len(stored) != len(appended)+2 {
		t.Fatalf("%d entries stored, want the %d appended and two claims", len(stored), len(appended))
	}
}

// An append whose answer was lost is sent again by Settle and stored once, whether the server
// still remembers its id (within the duplicates window) or not (past it: Settle reads the
// entry after the writer's last and finds its own).
func TestAppendInDoubtIsStoredOnce(t *testing.T) {
	c := natstest.Start(t)
	for _, tc := range []struct {
		name   string
		window time.Duration
	}{{"within the window", 0}, {"past the window", 200 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			l := open(t, c, 0, Options{Stream: "FL" + fmt.Sprint(tc.window.Milliseconds()), Prefix: "fl" + fmt.Sprint(tc.window.Milliseconds()), Duplicates: tc.window})
			w := claim(t, l, "f", "gw").(*writer)
			appendOK(t, w, "first")
			// The entry goes out and is stored, but its answer never reaches the writer.
			w.n++
			w.doubt = &pending{id: fmt.Sprintf("d.%d.%d", w.term, w.n), data: []byte("lost answer")}
			m := nats.NewMsg(w.subj)
			m.Header.Set(hdrTerm, fmt.Sprint(w.term))
			m.Header.Set(hdrPrev, fmt.Sprint(w.last))
			m.Data = w.doubt.data
			ack, err := l.js.PublishMsg(ctxFor(t, 10*time.Second), m, jetstream.WithMsgID(w.doubt.id), jetstream.WithExpectLastSequencePerSubject(w.last))
			if err != nil {
				t.Fatal(err)
			}
			if tc.window > 0 {
				// Wait until the server forgets ids: a probe sent again is stored again.
				probe := func() bool {
					a, err := l.js.Publish(ctxFor(t, 10*time.Second), l.o.Prefix+".f.probe", nil, jetstream.WithMsgID("probe"))
					if err != nil {
						t.Fatal(err)
					}
					return !a.Duplicate
				}
				probe()
				testwait.Until(t, "the duplicates window passes", probe)
			}
			if _, err := w.Append(ctxFor(t, 10*time.Second), []byte("next")); !errors.Is(err, faclog.ErrInDoubt) {
				t.Fatalf("append with one in doubt: %v, want ErrInDoubt", err)
			}
			seq, err := w.Settle(ctxFor(t, 30*time.Second))
			if err != nil || seq != ack.Sequence {
				t.Fatalf("settle: %d, %v; want %d (where it was stored)", seq, err, ack.Sequence)
			}
			next := appendOK(t, w, "next")
			var data []string
			if err := l.Read(ctxFor(t, 30*time.Second), "f", 0, func(e faclog.Entry) error {
				if !e.Claim() {
					data = append(data, string(e.Data))
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if want := []string{"first", "lost answer", "next"}; !slices.Equal(data, want) || next <= seq {
				t.Fatalf("the log holds %v (next at %d), want %v once each, next after %d", data, next, want, seq)
			}
		})
	}
}

// Without a quorum an append is in doubt and nothing more is appended; once the cluster is
// back, Settle stores it once and the writer goes on.
func TestAppendWithoutQuorumIsSettledAfter(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{OpTimeout: time.Second})
	w := claim(t, l, "f", "gw")
	appendOK(t, w, "before")
	c.StopQuorum(0)
	_, err := w.Append(ctxFor(t, 3*time.Second), []byte("cut"))
	if !errors.Is(err, faclog.ErrInDoubt) || !kv.Retryable(err) {
		t.Fatalf("append without quorum: %v, want ErrInDoubt and a kind to try again", err)
	}
	if _, err := w.Append(ctxFor(t, 3*time.Second), []byte("after the cut")); !errors.Is(err, faclog.ErrInDoubt) {
		t.Fatalf("second append without quorum: %v, want ErrInDoubt before anything else", err)
	}
	c.Restart(1)
	c.Restart(2)
	seq, err := w.Settle(ctxFor(t, 60*time.Second))
	if err != nil {
		t.Fatalf("settle once the quorum is back: %v", err)
	}
	after := appendOK(t, w, "after")
	got := entries(t, l, "f", 0)
	want := []string{fmt.Sprintf("claim:gw@%d", w.Term()), fmt.Sprintf("before@%d/%d", seq-1, w.Term()),
		fmt.Sprintf("cut@%d/%d", seq, w.Term()), fmt.Sprintf("after@%d/%d", after, w.Term())}
	if !slices.Equal(got, want) {
		t.Fatalf("the log:\n got %v\nwant %v", got, want)
	}
}

// With the stream's leader killed mid-way through 150 appends, every entry the writer was
// told was appended, and every one Settle finished, is in the log once and in order.
func TestLeaderKilledWhileAppending(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{OpTimeout: 2 * time.Second})
	w := claim(t, l, "f", "gw")
	nc := c.Connect(1)
	var want []string
	killed := -1
	for i := range 150 {
		if i == 50 {
			killed = c.StreamLeader(nc, l.o.Stream)
			c.Stop(killed)
		}
		if i == 100 {
			c.Restart(killed)
		}
		d := fmt.Sprintf("e%d", i)
		_, err := w.Append(ctxFor(t, 5*time.Second), []byte(d))
		for errors.Is(err, faclog.ErrInDoubt) {
			_, err = w.Settle(ctxFor(t, 5*time.Second))
		}
		if err != nil {
			t.Fatalf("append %s: %v", d, err)
		}
		want = append(want, fmt.Sprintf("%s/%d", d, w.Term()))
	}
	var got []string
	var last uint64
	if err := l.Read(ctxFor(t, 60*time.Second), "f", w.Term(), func(e faclog.Entry) error {
		if e.Seq <= last {
			return fmt.Errorf("entry %d after %d", e.Seq, last)
		}
		last = e.Seq
		got = append(got, fmt.Sprintf("%s/%d", e.Data, e.Term))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after killing node %d: %d entries read, want the %d appended once each in order:\n got %v", killed, len(got), len(want), got)
	}
	if last != w.Last() {
		t.Fatalf("the log ends at %d, the writer's last is %d", last, w.Last())
	}
}

// Trim drops what the kv state holds, never the last entry, which the next append names.
func TestTrimKeepsTheLastEntry(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	w := claim(t, l, "f", "gw")
	var seqs []uint64
	for i := range 5 {
		seqs = append(seqs, appendOK(t, w, fmt.Sprintf("e%d", i)))
	}
	if err := w.Trim(ctxFor(t, 30*time.Second), seqs[1]); err != nil {
		t.Fatal(err)
	}
	if got, want := entries(t, l, "f", 0), []string{fmt.Sprintf("e2@%d/%d", seqs[2], w.Term()), fmt.Sprintf("e3@%d/%d", seqs[3], w.Term()), fmt.Sprintf("e4@%d/%d", seqs[4], w.Term())}; !slices.Equal(got, want) {
		t.Fatalf("after trimming through %d: %v, want %v", seqs[1], got, want)
	}
	if err := w.Trim(ctxFor(t, 30*time.Second), seqs[4]+100); err != nil {
		t.Fatal(err)
	}
	if got, want := entries(t, l, "f", 0), []string{fmt.Sprintf("e4@%d/%d", seqs[4], w.Term())}; !slices.Equal(got, want) {
		t.Fatalf("after trimming everything: %v, want the last entry alone, %v", got, want)
	}
	e5 := appendOK(t, w, "e5")
	w2 := claim(t, open(t, c, 1, Options{}), "f", "gw2")
	if got, want := entries(t, l, "f", seqs[4]), []string{fmt.Sprintf("e5@%d/%d", e5, w.Term()), fmt.Sprintf("claim:gw2@%d", w2.Term())}; !slices.Equal(got, want) {
		t.Fatalf("after the trim, an append and a claim: %v, want %v", got, want)
	}
}

// A trim through no more than the writer's last trim sends nothing: a held facility's
// projector trims at every step, and each purge is a round of the stream's Raft group, so an
// idle facility sent one every two seconds for good (25 a second from 50 idle facilities,
// stop 46). The purges are counted as the server's API receives them.
func TestTrimSendsNothingWhenNothingIsNew(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	w := claim(t, l, "f", "gw")
	sent := purgesSent(t, c, 0, l)
	trim := func(w faclog.Writer, through uint64) {
		t.Helper()
		if err := w.Trim(ctxFor(t, 30*time.Second), through); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []uint64
	for i := range 3 {
		seqs = append(seqs, appendOK(t, w, fmt.Sprintf("e%d", i)))
	}
	trim(w, seqs[1])
	if n := sent(); n != 1 {
		t.Fatalf("a trim through %d: %d purges sent, want 1", seqs[1], n)
	}
	trim(w, seqs[1])
	trim(w, seqs[0])
	trim(w, seqs[2]) // the last entry stays: the same trim as through seqs[1]
	if n := sent(); n != 1 {
		t.Fatalf("trims through nothing new: %d purges sent in all, want still 1", n)
	}
	e3 := appendOK(t, w, "e3")
	trim(w, e3)
	if n := sent(); n != 2 {
		t.Fatalf("a trim once an entry was appended: %d purges sent in all, want 2", n)
	}
	if got, want := entries(t, l, "f", 0), []string{fmt.Sprintf("e3@%d/%d", e3, w.Term())}; !slices.Equal(got, want) {
		t.Fatalf("after the trims: %v, want the last entry alone, %v", got, want)
	}
	// A new claim, on another gateway, trims what it was handed once.
	l2 := open(t, c, 2, Options{})
	w2 := claim(t, l2, "f", "gw2")
	sent2 := purgesSent(t, c, 2, l2)
	e4 := appendOK(t, w2, "e4")
	for range 3 {
		trim(w2, e4)
	}
	if n := sent2(); n != 1 {
		t.Fatalf("the new holder's three trims through %d: %d purges sent, want 1", e4, n)
	}
}

// purgesSent counts the purges of l's stream that l's connection, to node i, sends from now on,
// as node i routes them: a subscriber of its own there, on the API's subject.
func purgesSent(t *testing.T, c *natstest.Cluster, i int, l *Log) func() int {
	t.Helper()
	watch := c.Connect(i)
	sub, err := watch.SubscribeSync("$JS.API.STREAM.PURGE." + l.o.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() int {
		t.Helper()
		// A request l's connection sent before its flush's answer is in the subscriber's
		// queue before the answer to the subscriber's own flush: one server, one order.
		if err := l.js.Conn().Flush(); err != nil {
			t.Fatal(err)
		}
		if err := watch.Flush(); err != nil {
			t.Fatal(err)
		}
		n, _, err := sub.Pending()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// A stream of the same name made for something else is refused, saying why.
func TestOpenRefusesAnotherStream(t *testing.T) {
	c := natstest.Start(t)
	nc := c.Connect(0)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		what   string
		change func(*jetstream.StreamConfig)
		says   string
	}{
		{"keeping one message a subject", func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 1 }, "1 entries a facility"},
		{"keeping messages an hour", func(c *jetstream.StreamConfig) { c.MaxAge = time.Hour }, "limits"},
		{"keeping a thousand messages", func(c *jetstream.StreamConfig) { c.MaxMsgs = 1000 }, "limits"},
		{"answering from replicas", func(c *jetstream.StreamConfig) { c.AllowDirect = true }, "direct gets (true)"},
	} {
		ctx := ctxFor(t, 30*time.Second)
		name, prefix := fmt.Sprintf("FACLOG_%d", i), fmt.Sprintf("tf%d", i)
		cfg := jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".f.*"}, Replicas: 3}
		tc.change(&cfg)
		if _, err := natstest.Placed(ctx, func() (jetstream.Stream, error) { return js.CreateStream(ctx, cfg) }); err != nil {
			t.Fatal(err)
		}
		_, err = Open(ctx, nc, Options{Stream: name, Prefix: prefix})
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("open over a stream %s: %v, want a refusal naming it (%q)", tc.what, err, tc.says)
		}
	}
}

// Whatever a message's headers say, an entry is a claim of its own sequence or data under a
// claim before it, or an error naming the entry.
func FuzzEntryOf(f *testing.F) {
	f.Add(uint64(5), "", "3", "4")
	f.Add(uint64(5), "gw", "", "0")
	f.Add(uint64(5), "", "5", "4")
	f.Add(uint64(1), "", "0", "0")
	f.Add(uint64(9), "", "-1", "8")
	f.Add(uint64(9), "", "3", "9")
	f.Fuzz(func(t *testing.T, seq uint64, holder, term, prev string) {
		h := nats.Header{}
		if holder != "" {
			h.Set(hdrHolder, holder)
		}
		if term != "" {
			h.Set(hdrTerm, term)
		}
		if prev != "" {
			h.Set(hdrPrev, prev)
		}
		e, err := entryOf(seq, h, nil)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("entry %d", seq)) {
				t.Fatalf("error %q does not name entry %d", err, seq)
			}
			return
		}
		switch {
		case e.Seq != seq:
			t.Fatalf("entry %d read as %d", seq, e.Seq)
		case e.Claim() && e.Term != seq:
			t.Fatalf("a claim at %d of term %d", seq, e.Term)
		case !e.Claim() && (e.Term == 0 || e.Term > e.Prev):
			t.Fatalf("data at %d after %d under a claim at %d", seq, e.Prev, e.Term)
		case e.Prev >= seq:
			t.Fatalf("entry %d after %d", seq, e.Prev)
		}
	})
}

// Any facility id is one subject token of the log's.
func FuzzSubject(f *testing.F) {
	for _, s := range []string{"", "east", "a.b", "*", ">", "a b", "\x00", "ünï"} {
		f.Add(s)
	}
	l := &Log{o: Options{}.withDefaults()}
	f.Fuzz(func(t *testing.T, facility string) {
		if facility == "" {
			if _, err := l.Claim(context.Background(), facility, "gw"); err == nil {
				t.Fatal("a claim of no facility was taken")
			}
			return
		}
		s := l.subject(facility)
		tok, ok := strings.CutPrefix(s, "tf.f.")
		if !ok || tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("facility %q: subject %q", facility, s)
		}
		if l.subject(facility+"x") == s {
			t.Fatalf("facilities %q and %q share %q", facility, facility+"x", s)
		}
	})
}
