package jskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A whole-store read (kv.WholeViewer): the relay's verify and ledger read every key. A View
// reads each from the stream's leader, one JetStream API request a key, and then each again to
// validate: at state scale, hours of the leader's time, and a store that changes meanwhile
// makes it start over. WholeView instead reads the stream from its start through an ordered
// consumer, messages in sequence order and many to a delivery, into memory, and runs fn over
// that copy.
//
// Why the copy is one moment of the store. The stream keeps one message a subject, so a key
// written again while the consumer has not reached its old message loses that message: a
// copy cut at a sequence fixed beforehand would miss the key. So the read goes on until a
// message arrives with nothing pending after it (the consumer's NumPending, at delivery): at
// that moment the stream ended at that message's sequence S. Every message current at S has a
// sequence at most S and existed when the consumer passed its sequence (sequences are
// assigned in order, and the consumer waits at the end for the next), so it was delivered; a
// message superseded by S was superseded by one at most S, which was delivered after it. The
// last message of each subject in the copy is therefore that subject's state at S, for every
// subject, as a replica applies commits: atomic batches whole. Two removals send no message:
// a deleted bucket's purge (its keys' generation is dead to every reader anyway, its marker a
// tombstone) and a tombstone's expiry after Options.TombstoneTTL (the key was absent before
// and after; a read outlasting the TTL would be needed to see one expire unread, and the
// caller's context bounds the read far below it).
//
// The consumer lives on one server of the stream, which may be a replica a little behind the
// leader: the copy is then an earlier committed moment, which is as good for a check.

// wholeCopy is the store's state at one stream sequence.
type wholeCopy struct {
	at      uint64           // the stream sequence it is the state at (0: the stream was empty)
	entries map[string]entry // every subject's last message at that sequence
	subjs   []string         // the subjects, sorted, for listings
}

// WholeView reads the whole store at one moment and runs fn over it once (kv.WholeViewer).
// Its reads cost the cluster one consumer's deliveries, not a request a key, and nothing is
// validated: the copy is one state by the argument above.
func (s *Store) WholeView(ctx context.Context, fn func(kv.Tx) error) error {
	w, err := s.readWhole(ctx)
	if err != nil {
		return err
	}
	t := newTx(ctx, s, false)
	t.whole = w
	err = fn(t)
	if t.err != nil {
		return t.err
	}
	if err == nil {
		s.wholeViews.Add(1)
	}
	return err
}

// readWhole reads every subject's last message through an ordered consumer until the stream
// ends at a message it delivered (endsAt). It asks where the stream ends at the end of a commit
// when the consumer says nothing is pending, when it has reached where the leader said the
// stream ended last time it asked (the consumer's NumPending is an estimate the server can
// leave above zero), and when nothing has come for wholeIdle (the stream's newest messages may
// be gone, and then none of them comes).
func (s *Store) readWhole(ctx context.Context) (*wholeCopy, error) {
	w := &wholeCopy{entries: map[string]entry{}}
	s.reads.Add(1)
	info, err := s.st.Info(ctx)
	if err != nil {
		return nil, s.unanswered(ctx, fmt.Errorf("jskv: whole read: stream info: %w", err))
	}
	if info.State.Msgs == 0 {
		return w, nil // empty at that moment: a state like any other
	}
	target := info.State.LastSeq
	cons, err := s.st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{s.o.Prefix + ".>"}})
	if err != nil {
		return nil, s.unanswered(ctx, fmt.Errorf("jskv: whole read: consumer: %w", err))
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(wholeReadAhead))
	if err != nil {
		return nil, fmt.Errorf("jskv: whole read: %w", err)
	}
	defer func() {
		msgs.Stop()
		// The consumer would outlive the read by its inactivity threshold; it is not needed.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.st.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	// last is the last sequence delivered, and commitEnd whether it ended a commit (a replica
	// stores a batch's messages one at a time, and the consumer may be there in between).
	var last uint64
	commitEnd := true
	for {
		nctx, cancel := context.WithTimeout(ctx, wholeIdle)
		m, err := msgs.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			if !commitEnd {
				continue // the rest of the batch is on its way
			}
			end, newTarget, err := s.endsAt(ctx, last)
			if err != nil {
				return nil, err
			}
			if end {
				break
			}
			target = newTarget
			continue
		}
		if err != nil {
			return nil, s.unanswered(ctx, fmt.Errorf("jskv: whole read after %d subjects: %w", len(w.entries), err))
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("jskv: whole read: %s: %w", m.Subject(), err)
		}
		e := entry{seq: md.Sequence.Stream, present: m.Headers().Get(hdrOp) != "DEL"}
		if e.present {
			e.val = m.Data()
			if e.val == nil {
				e.val = []byte{}
			}
		}
		w.entries[m.Subject()] = e
		s.wholeMessages.Add(1)
		last, commitEnd = e.seq, m.Headers().Get(hdrBatchID) == "" || m.Headers().Get(hdrBatchCommit) != ""
		if !commitEnd || ((md.NumPending != 0 || s.pendingUntrusted) && last < target) {
			continue
		}
		end, newTarget, err := s.endsAt(ctx, last)
		if err != nil {
			return nil, err
		}
		if end {
			break
		}
		target = newTarget
	}
	w.at = last
	w.subjs = make([]string, 0, len(w.entries))
	for subj := range w.entries {
		w.subjs = append(w.subjs, subj)
	}
	slices.Sort(w.subjs)
	return w, nil
}

// wholeIdle is how long a whole read waits for the consumer's next message before it asks
// whether the stream ended at the last one.
const wholeIdle = 250 * time.Millisecond

// endsAt reports whether the stream ends at seq: whether the leader holds no message after
// it and has reached it; if not, where the leader's stream ends now, to read to before asking
// again. The consumer's NumPending is not proof: the server counts new messages into it after
// storing them, so a message already stored, and one it deleted (the key's older message)
// with it, can lie beyond a delivery that said nothing was pending. Asked after the delivery,
// a leader with nothing after seq had stored nothing beyond it then either. The question is
// "a message after seq", not the stream's last sequence, which stays where it was when the
// last message goes (a tombstone expiring): an idle store whose newest message expired would
// never end. A leader not yet at seq (the consumer's replica applied it first) is asked again.
func (s *Store) endsAt(ctx context.Context, seq uint64) (end bool, last uint64, err error) {
	for {
		after, err := s.anyAfter(ctx, seq)
		if err != nil {
			return false, 0, err
		}
		s.reads.Add(1)
		info, err := s.st.Info(ctx)
		if err != nil {
			return false, 0, s.unanswered(ctx, fmt.Errorf("jskv: whole read: stream info: %w", err))
		}
		switch {
		case after:
			return false, info.State.LastSeq, nil
		case info.State.LastSeq >= seq:
			return true, 0, nil
		}
		select {
		case <-ctx.Done():
			return false, 0, fmt.Errorf("jskv: whole read: the leader at %d, behind %d: %w", info.State.LastSeq, seq, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// anyAfter asks the leader whether the stream holds a message of the store after seq.
func (s *Store) anyAfter(ctx context.Context, seq uint64) (bool, error) {
	s.reads.Add(1) // a leader request, counted with its reads
	req, err := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		Next string `json:"next_by_subj"`
	}{seq + 1, s.o.Prefix + ".>"})
	if err != nil {
		return false, err
	}
	c, cancel := s.opCtx(ctx)
	defer cancel()
	r, err := s.nc.RequestWithContext(c, "$JS.API.STREAM.MSG.GET."+s.o.Stream, req)
	if err != nil {
		return false, s.unanswered(c, fmt.Errorf("jskv: whole read: a message after %d: %w", seq, err))
	}
	var a msgGetAnswer
	if err := json.Unmarshal(r.Data, &a); err != nil {
		return false, fmt.Errorf("jskv: whole read: answer %q: %w", r.Data, err)
	}
	switch {
	case a.Error != nil && a.Error.ErrorCode == errCodeNoMessage:
		return false, nil
	case a.Error != nil:
		return false, fmt.Errorf("jskv: whole read: a message after %d: %w", seq, a.Error)
	}
	return true, nil
}

// wholeReadAhead is how many messages the consumer delivers ahead of the reader.
const wholeReadAhead = 1024

// get is subj's state in the copy: absent, sequence 0, if the copy has no message of it.
func (w *wholeCopy) get(subj string) entry { return w.entries[subj] }

// list answers a listing filter as Store.list does: "P.<kind>.<gen>.*" gives the subjects one
// token below the prefix (tombstones included, as a stream's subject list holds them).
func (w *wholeCopy) list(filter string) ([]string, error) {
	prefix, ok := strings.CutSuffix(filter, "*")
	if !ok || strings.ContainsAny(prefix, "*>") {
		return nil, fmt.Errorf("jskv: whole read: listing %q: only a last-token wildcard is served", filter)
	}
	i := sort.SearchStrings(w.subjs, prefix)
	var out []string
	for ; i < len(w.subjs) && strings.HasPrefix(w.subjs[i], prefix); i++ {
		if rest := w.subjs[i][len(prefix):]; rest != "" && !strings.Contains(rest, ".") {
			out = append(out, w.subjs[i])
		}
	}
	return out, nil
}
