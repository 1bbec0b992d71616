package jsfaclog

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/natstest"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/sync/relay/faclog"
)

// readAll is what l.Read gives fn for facility after after, and what the same read entry by
// entry from the leader gives: a streamed read must give the same.
func readAll(t *testing.T, l *Log, facility string, after uint64) (streamed, each []faclog.Entry) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	if err := l.Read(ctx, facility, after, func(e faclog.Entry) error { streamed = append(streamed, e); return nil }); err != nil {
		t.Fatalf("read %q after %d: %v", facility, after, err)
	}
	last, err := l.lastSeq(ctx, l.subject(facility))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.readEach(ctx, facility, after, last, func(e faclog.Entry) error { each = append(each, e); return nil }); err != nil {
		t.Fatalf("read %q after %d entry by entry: %v", facility, after, err)
	}
	return streamed, each
}

// A long tail of a facility's log, claims among its entries, is read in order as the leader
// has it, from any point, after a trim, only up to the entry that was last when the read
// began, and not past an error of fn; another facility's entries are not in it.
func TestReadStreamsALongTail(t *testing.T) {
	c := natstest.Start(t)
	l := open(t, c, 0, Options{})
	w := claim(t, l, "north", "gw-a")
	other := claim(t, l, "south", "gw-a")
	for i := range 500 {
		if i == 250 {
			w = claim(t, l, "north", "gw-b")
		}
		appendOK(t, w, fmt.Sprintf("group %d %s", i, strings.Repeat("x", i%300)))
		if i%50 == 0 {
			appendOK(t, other, fmt.Sprintf("south %d", i))
		}
	}
	streamed, each := readAll(t, l, "north", 0)
	if len(streamed) != 502 || !reflect.DeepEqual(streamed, each) {
		for i := range min(len(streamed), len(each)) {
			if !reflect.DeepEqual(streamed[i], each[i]) {
				t.Logf("entry %d: %+v, entry by entry %+v", i, streamed[i], each[i])
				break
			}
		}
		t.Fatalf("read %d entries, %d entry by entry, want 502 the same", len(streamed), len(each))
	}
	for i, e := range streamed {
		switch {
		case i == 0 || i == 251:
			if !e.Claim() {
				t.Fatalf("entry %d (%d) is not a claim: %q", i, e.Seq, e.Data)
			}
		case !strings.HasPrefix(string(e.Data), "group "):
			t.Fatalf("entry %d (%d) is %q", i, e.Seq, e.Data)
		}
		if i > 0 && e.Prev != streamed[i-1].Seq {
			t.Fatalf("entry %d (%d) follows %d, read after %d", i, e.Seq, e.Prev, streamed[i-1].Seq)
		}
	}

	from := streamed[300].Seq
	if streamed, each := readAll(t, l, "north", from); len(streamed) != 201 || !reflect.DeepEqual(streamed, each) || streamed[0].Seq <= from {
		t.Fatalf("after %d: read %d entries, %d entry by entry, want 201 the same", from, len(streamed), len(each))
	}

	if err := w.Trim(ctxFor(t, time.Minute), streamed[99].Seq); err != nil {
		t.Fatal(err)
	}
	if after, each := readAll(t, l, "north", 0); !reflect.DeepEqual(after, streamed[100:]) || !reflect.DeepEqual(after, each) {
		t.Fatalf("after the trim: read %d entries, %d entry by entry, want the last 402", len(after), len(each))
	}

	// Entries appended while the read runs are not in it; a consumer serves the read while
	// it runs, and is gone after it.
	var got int
	consumersNow := func() int {
		t.Helper()
		info, err := l.st.Info(ctxFor(t, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers
	}
	err := l.Read(ctxFor(t, time.Minute), "north", 0, func(e faclog.Entry) error {
		if got++; got == 1 {
			appendOK(t, w, "appended during the read")
			// The stream's count of its consumers may lag the consumer's creation for a
			// moment (it failed once as 0 under load); the read waits here meanwhile. A
			// consumer the client library made again (after a slow-consumer gap) is deleted
			// by it in a goroutine of its own, so there may be two for a moment.
			testwait.Until(t, "a consumer serves the long read", func() bool { return consumersNow() >= 1 })
		}
		return nil
	})
	if err != nil || got != 402 {
		t.Fatalf("read %d entries while one was appended (%v), want 402", got, err)
	}
	testwait.Until(t, "the read's consumers are deleted", func() bool { return consumersNow() == 0 })

	// fn's error ends the read.
	stop := fmt.Errorf("enough")
	got = 0
	err = l.Read(ctxFor(t, time.Minute), "north", 0, func(e faclog.Entry) error {
		if got++; got == 40 {
			return stop
		}
		return nil
	})
	if err != stop || got != 40 {
		t.Fatalf("read %d entries and %v, want 40 and %v", got, err, stop)
	}
}

// Reading a facility's log after a long stall of its projection: streamed, and entry by
// entry from the leader as every read was before.
func BenchmarkReadAStalledTail(b *testing.B) {
	const entries = 2000
	c := natstest.Start(b)
	l := open(b, c, 0, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w, err := l.Claim(ctx, "north", "gw-a")
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(strings.Repeat("a group commit's writes ", 80)) // some 2 KB
	for range entries {
		if _, err := w.Append(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
	count := func(n *int) func(faclog.Entry) error {
		return func(faclog.Entry) error { *n++; return nil }
	}
	b.Run("streamed", func(b *testing.B) {
		for b.Loop() {
			var n int
			if err := l.Read(ctx, "north", 0, count(&n)); err != nil || n != entries+1 {
				b.Fatal(n, err)
			}
		}
		b.ReportMetric(float64(entries*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("entry-by-entry", func(b *testing.B) {
		for b.Loop() {
			var n int
			if err := l.readEach(ctx, "north", 0, w.Last(), count(&n)); err != nil || n != entries+1 {
				b.Fatal(n, err)
			}
		}
		b.ReportMetric(float64(entries*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}
