package jskv

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A whole-store read (kv.WholeViewer): the relay's verify and ledger read every key. A View
// reads each from the stream's leader, one JetStream API request a key, and then each again to
// validate: at state scale, hours of the leader's time, and a store that changes meanwhile
// makes it start over. WholeView instead reads the store's messages in sequence order, a page
// of them to a request from any replica (readWhole), into memory, and runs fn over that copy.
//
// Why the copy is one moment of the store. The stream keeps one message a subject, so a key
// written again before the read reached its old message loses that message: a copy cut at a
// sequence fixed beforehand would miss the key. So the read goes on until the stream ends at
// the last message read, S: the leader holds nothing after S (endsAt). Every message current at
// S has a sequence at most S and was there when the read passed its sequence (sequences are
// assigned in order), so it was read; a message superseded by S was superseded by one at most
// S, which was read after it. The last message of each subject in the copy is therefore that
// subject's state at S, for every subject; a page never shows part of a commit, as a replica
// applies an atomic batch isolated from such reads. Two removals send no message: a deleted
// bucket's purge (its keys' generation is dead to every reader anyway, its marker a tombstone)
// and a tombstone's expiry after Options.TombstoneTTL (the key was absent before and after; a
// read outlasting the TTL would be needed to see one expire unread, and the caller's context
// bounds the read far below it).

var _ kv.WholeSizer = (*Store)(nil)

// wholeCopy is the store's state at one stream sequence.
type wholeCopy struct {
	at      uint64           // the stream sequence it is the state at (0: the stream was empty)
	entries map[string]entry // every subject's last message at that sequence
	subjs   []string         // the subjects, sorted, for listings
}

// WholeSize is what a whole view would hold, about: the bytes of the stream's messages, which
// keeps one a subject (kv.WholeSizer).
func (s *Store) WholeSize(ctx context.Context) (uint64, error) {
	c, cancel := s.opCtx(ctx)
	defer cancel()
	info, err := s.st.Info(c)
	if err != nil {
		return 0, s.unanswered(c, fmt.Errorf("jskv: stream info: %w", err))
	}
	return info.State.Bytes, nil
}

// WholeView reads the whole store at one moment and runs fn over it once (kv.WholeViewer).
// Its reads cost the cluster a direct get a page and a leader request or two, not a request a
// key, and nothing is validated: the copy is one state by the argument above.
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

// readWhole reads every subject's message in sequence order, a page at a time, from any
// replica (direct gets by sequence: "the next messages of the store from seq on"), until the
// stream ends at the last message read (endsAt). A page is read by a replica in one isolated
// moment, and its end says how many of the store's messages that replica holds after it
// (Nats-Num-Pending, counted from its store, not estimated); the leader is asked only when that
// is none. A replica applies an atomic batch isolated from such reads, so a page never shows
// part of a commit. No consumer is made: an ordered consumer, tried first, stopped delivering for good
// in a CI run under load and the read waited until its bound, with nothing to retry but the
// whole.
func (s *Store) readWhole(ctx context.Context) (*wholeCopy, error) {
	w := &wholeCopy{entries: map[string]entry{}}
	var last uint64 // the last sequence read
	for {
		page, pending, err := s.seqPage(ctx, last+1)
		if err != nil {
			return nil, err
		}
		for _, m := range page {
			w.entries[m.subj] = m.e
			last = m.e.seq
		}
		s.wholeMessages.Add(int64(len(page)))
		if pending > 0 {
			continue
		}
		end, err := s.endsAt(ctx, last)
		if err != nil {
			return nil, err
		}
		if end {
			break
		}
		// The replica answering was behind the leader: the next page, from whichever
		// replica answers, goes on from here.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("jskv: whole read after %d subjects: %w: %w", len(w.entries), kv.ErrTimeout, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	w.at = last
	w.subjs = make([]string, 0, len(w.entries))
	for subj := range w.entries {
		w.subjs = append(w.subjs, subj)
	}
	slices.Sort(w.subjs)
	return w, nil
}

// wholePage bounds the messages of one page of a whole read, and wholePageBytes its size (a
// log record of items may be 256 KiB); the server stops a page at whichever comes first.
const (
	wholePage      = 4096
	wholePageBytes = 8 << 20
)

// pageMsg is one message of a page: its subject and its state.
type pageMsg struct {
	subj string
	e    entry
}

// seqPage reads the store's messages from sequence from on, a page of them, from whichever
// replica answers, and how many more that replica holds after them. A request that fails
// (no replica answered in time) is made again until ctx ends.
func (s *Store) seqPage(ctx context.Context, from uint64) ([]pageMsg, uint64, error) {
	for {
		page, pending, err := s.seqPageOnce(ctx, from)
		if err == nil || ctx.Err() != nil {
			return page, pending, err
		}
		select {
		case <-ctx.Done():
			return nil, 0, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Store) seqPageOnce(ctx context.Context, from uint64) ([]pageMsg, uint64, error) {
	n := wholePage
	if s.wholePage > 0 {
		n = s.wholePage // a test's smaller pages
	}
	req, err := json.Marshal(struct {
		Seq      uint64 `json:"seq"`
		Batch    int    `json:"batch"`
		MaxBytes int    `json:"max_bytes"`
		Next     string `json:"next_by_subj"`
	}{from, n, wholePageBytes, s.o.Prefix + ".>"})
	if err != nil {
		return nil, 0, err
	}
	inbox, ch, done, err := s.replies.open(n + 1)
	if err != nil {
		return nil, 0, fmt.Errorf("jskv: whole read: %w", err)
	}
	defer done()
	c, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.nc.PublishRequest(s.directSubj(), inbox, req); err != nil {
		return nil, 0, fmt.Errorf("jskv: whole read: %w", err)
	}
	var page []pageMsg
	for {
		select {
		case <-c.Done():
			return nil, 0, fmt.Errorf("jskv: whole read from %d: %w", from, c.Err())
		case m := <-ch:
			switch st := m.Header.Get("Status"); st {
			case "":
				subj, e, err := directEntry(m)
				if err != nil {
					return nil, 0, err
				}
				page = append(page, pageMsg{subj: subj, e: e})
			case "204": // the end of the page
				pending, err := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
				if err != nil {
					return nil, 0, fmt.Errorf("jskv: whole read from %d: the page's end without its count: %w", from, err)
				}
				return page, pending, nil
			case "404": // nothing from there on, on this replica
				return nil, 0, nil
			default:
				return nil, 0, fmt.Errorf("jskv: whole read from %d: status %s %s", from, st, m.Header.Get("Description"))
			}
		}
	}
}

// endsAt reports whether the stream ends at seq: whether the leader holds no message after
// it and has reached it. A replica's count of what it holds after a page is not proof, as the
// replica may be behind the leader. The question is "a message after seq", not the stream's
// last sequence, which stays where it was when the last message goes (a tombstone expiring):
// an idle store whose newest message expired would never end. A leader not yet at seq (the
// replica that answered applied it first) is asked again.
func (s *Store) endsAt(ctx context.Context, seq uint64) (bool, error) {
	for {
		after, err := s.anyAfter(ctx, seq)
		if err != nil || after {
			return false, err
		}
		s.reads.Add(1)
		info, err := s.st.Info(ctx)
		if err != nil {
			return false, s.unanswered(ctx, fmt.Errorf("jskv: whole read: stream info: %w", err))
		}
		if info.State.LastSeq >= seq {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("jskv: whole read: the leader at %d, behind %d: %w", info.State.LastSeq, seq, ctx.Err())
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
