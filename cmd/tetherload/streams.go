package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What the load made the cluster store. The CPU a batch says what the cluster spent; this
// says on what: how many messages each stream took during the load, and about how many bytes,
// which a replica writes, hashes and copies and, in an R3 stream, two others write again
// (docs/SCALE.md, "What a batch makes the cluster store"). Bytes are not counted as written:
// a stream says only what it holds. A stream that keeps what is written (the state's kv
// stream: items are never removed) holds messages like those the load wrote; one that is
// trimmed as it goes (a facility log, after its projection) holds its latest. So the bytes a
// batch are the mean held message's size times the messages written, an estimate.

// StreamFigure is one stream's share of the load.
type StreamFigure struct {
	Name string `json:"name"`
	// Written is how far the stream's last sequence moved during the load: every message
	// stored, deletes' tombstones included.
	Written  uint64  `json:"messages_written"`
	PerBatch float64 `json:"messages_a_batch"`
	// HeldMsgs and HeldBytes are what the stream held at the end of the load.
	HeldMsgs  uint64 `json:"held_messages"`
	HeldBytes uint64 `json:"held_bytes"`
	// BytesPerBatch is Written times the mean held message, over the batches: about what a
	// batch made each replica store.
	BytesPerBatch float64 `json:"bytes_a_batch"`
}

// streamState is one stream's position and size at one moment.
type streamState struct {
	last, msgs, bytes uint64
}

// sampleStreams reads every stream's state from the cluster at servers (comma-separated),
// connecting with opts (credentials, TLS) too.
func sampleStreams(ctx context.Context, servers string, opts []nats.Option) (map[string]streamState, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nc, err := nats.Connect(servers, append([]nats.Option{nats.Name("tetherload streams")}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("read the cluster's streams: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("read the cluster's streams: %w", err)
	}
	out := map[string]streamState{}
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		s := info.State
		out[info.Config.Name] = streamState{last: s.LastSeq, msgs: s.Msgs, bytes: s.Bytes}
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("read the cluster's streams: %w", err)
	}
	return out, nil
}

// streamFigures is what each stream took between start and end, for batches acknowledged
// batches; a stream made during the load counts from nothing. Streams that took nothing are
// left out; the rest come by name.
func streamFigures(start, end map[string]streamState, batches int64) []StreamFigure {
	var out []StreamFigure
	for _, name := range slices.Sorted(maps.Keys(end)) {
		e := end[name]
		s := start[name] // zero for a stream made during the load
		if e.last <= s.last {
			continue
		}
		f := StreamFigure{Name: name, Written: e.last - s.last, HeldMsgs: e.msgs, HeldBytes: e.bytes}
		if batches > 0 {
			f.PerBatch = float64(f.Written) / float64(batches)
			if e.msgs > 0 {
				f.BytesPerBatch = f.PerBatch * float64(e.bytes) / float64(e.msgs)
			}
		}
		out = append(out, f)
	}
	return out
}

// streamRow is a stream's line of the table.
func streamRow(f StreamFigure) string {
	var mean string
	if f.HeldMsgs > 0 {
		mean = fmt.Sprintf(", %s a message held", byteSize(float64(f.HeldBytes)/float64(f.HeldMsgs)))
	}
	return fmt.Sprintf("%d messages written (%.3f a batch)%s: about %.0f bytes a batch; %d messages, %s held at the end",
		f.Written, f.PerBatch, mean, f.BytesPerBatch, f.HeldMsgs, byteSize(float64(f.HeldBytes)))
}

// byteSize is n bytes for a reader: B, KiB or MiB.
func byteSize(n float64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}
