// Package jsfaclog is the facilities' logs (faclog) on NATS JetStream: one replicated stream,
// one subject a facility (<prefix>.f.<facility, base64url>).
//
// The writer's fence is the server's check of a subject's last sequence
// (Nats-Expected-Last-Subject-Sequence): a claim names the last entry it read, an append the
// last entry its writer knows, so after a claim the earlier writer's appends are refused
// whatever its clock says. Each entry carries a message id (Nats-Msg-Id), so an append sent
// again after a lost answer is not stored twice; when the answer cannot be had, Settle sends
// the same entry again until it is, so an entry in doubt can never land after the writer
// moved on.
package jsfaclog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/tether-kiosk/tether/sync/relay/faclog"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	jskv "github.com/tether-kiosk/tether/sync/relay/kv/jetstream"
)

// Headers of an entry.
const (
	hdrTerm   = "Tk-Term"   // a data entry: the sequence of the claim it was appended under
	hdrHolder = "Tk-Holder" // a claim entry: the gateway that claimed
	// hdrPrev: the entry it was appended after, which the server checked was the last
	// (its own copy of that header, Nats-Expected-Last-Subject-Sequence, is its business).
	hdrPrev = "Tk-Prev"
)

// Options of a Log.
type Options struct {
	Stream   string                // stream name; default TETHER_FACLOG
	Prefix   string                // subject prefix, one token; default tf
	Replicas int                   // default 3
	Storage  jetstream.StorageType // default file
	// OpTimeout bounds one round trip; default 5 s.
	OpTimeout time.Duration
	// Duplicates is the stream's window for message ids; default 2 min. An append sent
	// again within it is answered as the one stored; past it Settle reads the log instead.
	Duplicates time.Duration
}

func (o Options) withDefaults() Options {
	if o.Stream == "" {
		o.Stream = "TETHER_FACLOG"
	}
	if o.Prefix == "" {
		o.Prefix = "tf"
	}
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.Duplicates == 0 {
		o.Duplicates = 2 * time.Minute
	}
	return o
}

// Log is every facility's log on one stream. It is safe for concurrent use.
type Log struct {
	o  Options
	js jetstream.JetStream
	st jetstream.Stream
}

var _ faclog.Log = (*Log)(nil)

// Open creates (or finds) the log stream on nc. nc is not closed by the Log.
func Open(ctx context.Context, nc *nats.Conn, o Options) (*Log, error) {
	o = o.withDefaults()
	if strings.ContainsAny(o.Prefix, ".*> \t\r\n") {
		return nil, fmt.Errorf("jsfaclog: prefix %q must be one subject token", o.Prefix)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jsfaclog: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:      o.Stream,
		Subjects:  []string{o.Prefix + ".f.*"},
		Storage:   o.Storage,
		Replicas:  o.Replicas,
		Retention: jetstream.LimitsPolicy,
		// Every entry stays until its writer trims it: a facility's entries not yet in the kv
		// state are what a gateway taking it over reads.
		MaxMsgsPerSubject: -1,
		Duplicates:        o.Duplicates,
		// The last entry is read from the leader: a replica that is behind would name an
		// entry that is not the last, and a claim would fail once more.
		AllowDirect: false,
	}
	st, err := js.Stream(ctx, o.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another gateway made it first
			st, err = js.Stream(ctx, o.Stream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jsfaclog: stream %s: %w", o.Stream, jskv.Classify(err))
	}
	have := st.CachedInfo().Config
	if len(have.Subjects) != 1 || have.Subjects[0] != cfg.Subjects[0] || have.MaxMsgsPerSubject > 0 {
		return nil, fmt.Errorf("jsfaclog: stream %s exists with subjects %v and %d entries a facility, want %v and no bound",
			o.Stream, have.Subjects, have.MaxMsgsPerSubject, cfg.Subjects)
	}
	// A stream made by hand may drop entries no holder trimmed (limits), or answer the last
	// entry from a replica that is behind (direct gets): claims and settles would then rest on
	// an entry that is not the last.
	if have.MaxMsgs > 0 || have.MaxBytes > 0 || have.MaxAge > 0 || have.AllowDirect || have.MirrorDirect {
		return nil, fmt.Errorf("jsfaclog: stream %s exists with limits (%d entries, %d bytes, %v) or direct gets (%v): want none, the holders trim it",
			o.Stream, have.MaxMsgs, have.MaxBytes, have.MaxAge, have.AllowDirect || have.MirrorDirect)
	}
	return &Log{o: o, js: js, st: st}, nil
}

// subject is facility's subject. Facility ids may hold anything; base64url keeps them one
// token.
func (l *Log) subject(facility string) string {
	return l.o.Prefix + ".f." + base64.RawURLEncoding.EncodeToString([]byte(facility))
}

// lastSeq is the sequence of the last entry of subj, 0 if it has none.
func (l *Log) lastSeq(ctx context.Context, subj string) (uint64, error) {
	c, cancel := context.WithTimeout(ctx, l.o.OpTimeout)
	defer cancel()
	m, err := l.st.GetLastMsgForSubject(c, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, jskv.Classify(err)
	}
	return m.Sequence, nil
}

// wrongLast reports whether the server refused a publish for its expected last sequence.
func wrongLast(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// errCodeIDInProcess: the server holds an earlier copy of this message id that it has not
// stored yet (an attempt whose answer was lost is still being replicated). Not an answer:
// ask again.
const errCodeIDInProcess = 10158

// publish sends m once, expecting after to be the subject's last sequence. A refusal for the
// last sequence comes back unclassified (wrongLast); anything else in kv's kinds.
func (l *Log) publish(ctx context.Context, m *nats.Msg, id string, after uint64) (*jetstream.PubAck, error) {
	c, cancel := context.WithTimeout(ctx, l.o.OpTimeout)
	defer cancel()
	ack, err := l.js.PublishMsg(c, m, jetstream.WithMsgID(id), jetstream.WithExpectLastSequencePerSubject(after),
		jetstream.WithRetryAttempts(0))
	var api *jetstream.APIError
	if errors.As(err, &api) && api.ErrorCode == errCodeIDInProcess {
		return nil, fmt.Errorf("%w: %w", kv.ErrTimeout, err)
	}
	if err != nil && !wrongLast(err) {
		return nil, jskv.Classify(err)
	}
	return ack, err
}

// pause waits before another attempt, or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Claim implements faclog.Log.
func (l *Log) Claim(ctx context.Context, facility, holder string) (faclog.Writer, error) {
	if facility == "" || holder == "" {
		return nil, fmt.Errorf("jsfaclog: claim of facility %q by %q: both must be named", facility, holder)
	}
	// The holder goes in a header, where a line break would end the header block.
	if strings.ContainsAny(holder, "\r\n") {
		return nil, fmt.Errorf("jsfaclog: claim of facility %q: holder %q holds a line break", facility, holder)
	}
	subj := l.subject(facility)
	// One id for every attempt: a claim that landed without an answer is answered as the one
	// stored when it is sent again.
	id := "c." + nuid.Next()
	wait := 20 * time.Millisecond
	for {
		last, err := l.lastSeq(ctx, subj)
		if err == nil {
			m := nats.NewMsg(subj)
			m.Header.Set(hdrHolder, holder)
			m.Header.Set(hdrPrev, strconv.FormatUint(last, 10))
			var ack *jetstream.PubAck
			ack, err = l.publish(ctx, m, id, last)
			if err == nil {
				return &writer{l: l, facility: facility, subj: subj, term: ack.Sequence, last: ack.Sequence}, nil
			}
		}
		// An entry came between the read and the claim (the holder is still appending), or
		// the cluster did not answer: read the last entry again and claim after it.
		if !wrongLast(err) && !kv.Retryable(err) {
			return nil, fmt.Errorf("jsfaclog: claim facility %q: %w", facility, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("jsfaclog: claim facility %q: %w", facility, classifyEnd(err))
		}
		pause(ctx, wait)
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// classifyEnd is the error a retry loop gives up with: a refusal for the last sequence is a
// conflict (another writer kept appending), anything else is as classified.
func classifyEnd(err error) error {
	if wrongLast(err) {
		return fmt.Errorf("%w: %w", kv.ErrConflict, err)
	}
	return err
}

// Read implements faclog.Log. A few entries are read one at a time from the stream's leader;
// more (a gateway catching up with a facility whose projection stalled) through an ordered
// consumer, which streams them in batches where one request an entry would take minutes.
func (l *Log) Read(ctx context.Context, facility string, after uint64, fn func(faclog.Entry) error) error {
	if facility == "" {
		return errors.New("jsfaclog: read: the facility is missing")
	}
	subj := l.subject(facility)
	last, err := l.lastSeq(ctx, subj)
	if err != nil {
		return fmt.Errorf("jsfaclog: read facility %q: %w", facility, err)
	}
	// A consumer now and then gives nothing for seconds (on the in-process cluster about one
	// read of 2,000 entries in a hundred, with the client reporting a slow consumer just
	// before): a new one is made rather than waited for.
	for try := 0; try < streamTries && last > after && last-after > readOneByOne; try++ {
		if after, err = l.readStreamed(ctx, facility, after, last, fn); err != nil {
			return err
		}
	}
	return l.readEach(ctx, facility, after, last, fn)
}

// readOneByOne is how many entries after the point a read begins are read one at a time: the
// few a holder's projection has not applied, or fewer than a consumer is worth making for.
const readOneByOne = 16

// A streamed read asks for this many entries, or this many bytes, at a time. It waits
// streamWait for each (or OpTimeout if less), and is made again up to streamTries times.
const (
	readBatch   = 128
	readBytes   = 2 << 20
	streamWait  = time.Second
	streamTries = 3
)

// readEach calls fn with each entry of facility's log after after, up to last, each read from
// the leader.
func (l *Log) readEach(ctx context.Context, facility string, after, last uint64, fn func(faclog.Entry) error) error {
	subj := l.subject(facility)
	for after < last {
		m, err := l.next(ctx, subj, after+1)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil // trimmed, up to the end, while this read ran
		}
		if err != nil {
			return fmt.Errorf("jsfaclog: read facility %q after %d: %w", facility, after, err)
		}
		if m.Sequence > last {
			return nil
		}
		e, err := entryOf(m.Sequence, m.Header, m.Data)
		if err != nil {
			return fmt.Errorf("jsfaclog: read facility %q: %w", facility, err)
		}
		if err := fn(e); err != nil {
			return err
		}
		after = e.Seq
	}
	return nil
}

// readStreamed calls fn with the entries of facility's log after after, up to last, through an ordered
// consumer, and returns the last entry it gave fn. It stops early, with no error, where the
// consumer cannot be made or gives nothing for streamWait: the consumer may sit on a replica
// that is behind, the cluster may have lost its quorum, or the rest may have been trimmed;
// the caller makes another, or reads what is left from the leader, which tells those apart.
func (l *Log) readStreamed(ctx context.Context, facility string, after, last uint64, fn func(faclog.Entry) error) (uint64, error) {
	subj := l.subject(facility)
	c, cancel := context.WithTimeout(ctx, l.o.OpTimeout)
	cons, err := l.st.OrderedConsumer(c, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
		// The server drops a consumer a gateway that died left behind.
		InactiveThreshold: 30 * time.Second,
	})
	cancel()
	if err != nil {
		return after, nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(readBatch, readBytes))
	if err != nil {
		return after, nil
	}
	defer func() {
		it.Stop()
		// Stopping leaves the consumer on the server until its threshold: reads at each
		// catch-up would pile them up.
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.o.OpTimeout)
		_ = l.st.DeleteConsumer(c, cons.CachedInfo().Name)
		cancel()
	}()
	for after < last {
		c, cancel := context.WithTimeout(ctx, min(streamWait, l.o.OpTimeout))
		m, err := it.Next(jetstream.NextContext(c))
		cancel()
		if ctx.Err() != nil {
			return after, fmt.Errorf("jsfaclog: read facility %q after %d: %w", facility, after, ctx.Err())
		}
		if err != nil {
			return after, nil
		}
		md, err := m.Metadata()
		if err != nil {
			return after, fmt.Errorf("jsfaclog: read facility %q after %d: %w", facility, after, err)
		}
		seq := md.Sequence.Stream
		if seq > last {
			return last, nil
		}
		if seq <= after {
			continue // the consumer was made again and begins where it was asked to
		}
		e, err := entryOf(seq, m.Headers(), m.Data())
		if err != nil {
			return after, fmt.Errorf("jsfaclog: read facility %q: %w", facility, err)
		}
		if err := fn(e); err != nil {
			return after, err
		}
		after = seq
	}
	return after, nil
}

// next is the first message of subj at or after seq, from the leader; it tries again while
// the cluster does not answer, until ctx ends.
func (l *Log) next(ctx context.Context, subj string, seq uint64) (*jetstream.RawStreamMsg, error) {
	wait := 20 * time.Millisecond
	for {
		c, cancel := context.WithTimeout(ctx, l.o.OpTimeout)
		m, err := l.st.GetMsg(c, seq, jetstream.WithGetMsgSubject(subj))
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
			return m, err
		}
		err = jskv.Classify(err)
		if !kv.Retryable(err) || ctx.Err() != nil {
			return nil, err
		}
		pause(ctx, wait)
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// entryOf is the entry stored at seq with headers h and data.
func entryOf(seq uint64, h nats.Header, data []byte) (faclog.Entry, error) {
	e := faclog.Entry{Seq: seq}
	if len(data) > 0 { // a claim's is nil however the message was read
		e.Data = data
	}
	prev, err := strconv.ParseUint(h.Get(hdrPrev), 10, 64)
	if err != nil || prev >= seq {
		return faclog.Entry{}, fmt.Errorf("entry %d names no entry before it (%s %q)", seq, hdrPrev, h.Get(hdrPrev))
	}
	e.Prev = prev
	if holder := h.Get(hdrHolder); holder != "" {
		e.Term, e.Holder = seq, holder
		return e, nil
	}
	term, err := strconv.ParseUint(h.Get(hdrTerm), 10, 64)
	if err != nil || term == 0 || term > prev {
		return faclog.Entry{}, fmt.Errorf("entry %d names no claim before it (%s %q)", seq, hdrTerm, h.Get(hdrTerm))
	}
	e.Term = term
	return e, nil
}

// writer is one claim of a facility's log.
type writer struct {
	l              *Log
	facility, subj string
	term, last     uint64
	n              uint64 // entries appended under this claim, for their ids
	// trimmed is what this claim's last trim dropped through: a trim through no more is not
	// sent (a purge is a round of the stream's Raft group, and a held facility's projector
	// trims at every step, idle or not).
	trimmed uint64
	deposed bool
	// doubt is the append without an answer, sent again by Settle.
	doubt *pending
}

type pending struct {
	id   string
	data []byte
}

func (w *writer) Facility() string { return w.facility }
func (w *writer) Term() uint64     { return w.term }
func (w *writer) Last() uint64     { return w.last }

// MaxEntry implements faclog.Writer: the connection's largest message, less room for the
// headers.
func (w *writer) MaxEntry() int { return max(0, int(w.l.js.Conn().MaxPayload())-entryHeaderRoom) }

// entryHeaderRoom is what an entry's headers may take of a message: ids, term, last
// sequences, with room to spare.
const entryHeaderRoom = 1024

// Append implements faclog.Writer.
func (w *writer) Append(ctx context.Context, data []byte) (uint64, error) {
	switch {
	case w.deposed:
		return 0, w.deposedErr()
	case w.doubt != nil:
		return 0, fmt.Errorf("jsfaclog: append to facility %q: %w", w.facility, faclog.ErrInDoubt)
	}
	w.n++
	// Ids are unique in the stream: the term is a sequence of it.
	w.doubt = &pending{id: "d." + strconv.FormatUint(w.term, 10) + "." + strconv.FormatUint(w.n, 10), data: data}
	return w.send(ctx)
}

// Settle implements faclog.Writer.
func (w *writer) Settle(ctx context.Context) (uint64, error) {
	switch {
	case w.doubt != nil:
		return w.send(ctx)
	case w.deposed:
		return 0, w.deposedErr()
	}
	return w.last, nil
}

// send publishes the entry in doubt, again after each attempt without an answer, until ctx
// ends. Answered, the doubt is over: the entry is in the log at the sequence returned, or
// another writer claimed the log.
func (w *writer) send(ctx context.Context) (uint64, error) {
	p := w.doubt
	wait := 20 * time.Millisecond
	for {
		m := nats.NewMsg(w.subj)
		m.Header.Set(hdrTerm, strconv.FormatUint(w.term, 10))
		m.Header.Set(hdrPrev, strconv.FormatUint(w.last, 10))
		m.Data = p.data
		ack, err := w.l.publish(ctx, m, p.id, w.last)
		switch {
		case err == nil:
			w.doubt, w.last = nil, ack.Sequence
			return ack.Sequence, nil
		case wrongLast(err):
			// Another entry follows the last this writer knows: a claim, or (past the
			// duplicates window) this very entry, stored by an attempt whose answer was lost.
			return w.afterLast(ctx, p)
		case !kv.Retryable(err):
			w.doubt = nil // refused outright (too large, not permitted): not stored
			return 0, fmt.Errorf("jsfaclog: append to facility %q: %w", w.facility, err)
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("jsfaclog: append to facility %q: %w: %w", w.facility, faclog.ErrInDoubt, err)
		}
		pause(ctx, wait)
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// afterLast reads the entry that follows the writer's last: the entry in doubt, stored, or
// another writer's claim. Either way the writer is deposed unless its entry is the log's last.
func (w *writer) afterLast(ctx context.Context, p *pending) (uint64, error) {
	c, cancel := context.WithTimeout(ctx, w.l.o.OpTimeout)
	defer cancel()
	m, err := w.l.st.GetMsg(c, w.last+1, jetstream.WithGetMsgSubject(w.subj))
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, fmt.Errorf("jsfaclog: append to facility %q: %w: %w", w.facility, faclog.ErrInDoubt, jskv.Classify(err))
	}
	w.doubt, w.deposed = nil, true
	if err == nil && m.Header.Get(jetstream.MsgIDHeader) == p.id {
		last, lerr := w.l.lastSeq(ctx, w.subj)
		if lerr == nil && last == m.Sequence {
			w.deposed, w.last = false, m.Sequence // stored, and still the last
			return m.Sequence, nil
		}
		if lerr != nil {
			// Stored; whether the writer still holds the log, the next append will say.
			w.deposed, w.last = false, m.Sequence
			return m.Sequence, nil
		}
		return m.Sequence, w.deposedErr()
	}
	// The entry after the last is another writer's (or was trimmed by it): the log was
	// claimed, and this writer's entry, if stored, is not known to be.
	return 0, w.deposedErr()
}

func (w *writer) deposedErr() error {
	return fmt.Errorf("jsfaclog: facility %q since entry %d: %w", w.facility, w.last, faclog.ErrDeposed)
}

// Trim implements faclog.Writer.
func (w *writer) Trim(ctx context.Context, through uint64) error {
	if w.deposed {
		return w.deposedErr()
	}
	through = min(through, w.last-1) // the last entry is the next append's fence
	if through <= w.trimmed {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, w.l.o.OpTimeout)
	defer cancel()
	if err := w.l.st.Purge(c, jetstream.WithPurgeSubject(w.subj), jetstream.WithPurgeSequence(through+1)); err != nil {
		return fmt.Errorf("jsfaclog: trim facility %q through %d: %w", w.facility, through, jskv.Classify(err))
	}
	w.trimmed = through
	return nil
}
