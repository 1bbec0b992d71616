package jskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// Reads from any replica (issue 16, docs/SCALE.md "Isolation"). A leader read is a JetStream
// API request: JSON both ways, the value in base64, one request a key, and only the leader
// answers. Measured on the 3-node test cluster (BenchmarkReadCosts), it costs the cluster about
// twice a durable publish in CPU, and a group commit made some 16 of them an acknowledged
// batch: most of what the servers spent on the relay. A direct get is answered by any
// replica from its own copy, the message as it is stored; a "multi last" direct get answers
// many subjects in one request, all from one moment of that replica's copy (the server holds
// its writes off while it reads).
//
// A replica may lag the leader, so a direct read can be stale, never torn: a replica applies
// a commit's batch whole, and only once the cluster agreed on it. An Update's reads are all
// validated when it commits (each key's expected sequence, or a read marker), so a stale
// read there makes a conflict and a run again from the leader, never a wrong commit. That is
// the rule for which reads may go to a replica:
//
//   - a CurrentView's too, which validates nothing: it promises each read no older than
//     what the gateway knows was stored (Store.known), so a replica's answer counts only
//     from one that had applied that much (tx.floor);
//   - an Update's, never a View's (a View validates by reading twice, which must both
//     be the leader's to show one moment) nor a validation's; a run again after a conflict
//     reads from replicas the first time, and from the leader after that (store.run), so a
//     replica that has not applied the conflicting commit yet costs at most one more run;
//   - keys, sequences and versions: all validated. A bucket's marker seen present is not
//     validated (bucket.Bucket), so markers go to a replica only when Updates already take
//     them from the gateway's cache (Options.CacheBucketMarkers), which is no fresher;
//   - a cursor's values rest on the bucket's version, read before them, not on validation of
//     their own, so they must be no older than that version: a cursor reads them ahead with
//     the version in the same multi get, and takes them only if the replica's version is the
//     one the transaction read. Same version, same bucket: every commit that writes a key
//     rewrites its bucket's version. So a View's cursor reads its values from a replica too:
//     the version it read from the leader, and reads there again, vouches for them (loadScan).

// replicaBatch bounds the subjects of one multi get: the server refuses a request that would
// answer more than 1,024 messages, and smaller requests spread over the replicas.
const replicaBatch = 256

// maxMultiAnswer is the most messages nats-server answers one multi get with; a request
// that would need more is refused (413) whole.
const maxMultiAnswer = 1024

// replies routes the answers of this store's direct gets: one subscription on a wildcard
// inbox for the store's life, not one per request, which every server of the cluster would
// have to learn of and forget again.
type replies struct {
	nc     *nats.Conn
	once   sync.Once
	err    error
	prefix string
	sub    *nats.Subscription
	next   atomic.Uint64
	mu     sync.Mutex
	wait   map[string]chan *nats.Msg
}

func (r *replies) start() error {
	r.once.Do(func() {
		r.prefix = r.nc.NewRespInbox()
		r.wait = map[string]chan *nats.Msg{}
		r.sub, r.err = r.nc.Subscribe(r.prefix+".*", func(m *nats.Msg) {
			token := m.Subject[len(r.prefix)+1:]
			r.mu.Lock()
			ch := r.wait[token]
			r.mu.Unlock()
			select {
			case ch <- m: // a nil ch (an answer after its request gave up) blocks: default
			default:
			}
		})
	})
	return r.err
}

// open registers a request's inbox, able to hold n answers without blocking the connection.
func (r *replies) open(n int) (inbox string, ch chan *nats.Msg, done func(), err error) {
	if err := r.start(); err != nil {
		return "", nil, nil, err
	}
	token := strconv.FormatUint(r.next.Add(1), 36)
	ch = make(chan *nats.Msg, n)
	r.mu.Lock()
	r.wait[token] = ch
	r.mu.Unlock()
	return r.prefix + "." + token, ch, func() {
		r.mu.Lock()
		delete(r.wait, token)
		r.mu.Unlock()
	}, nil
}

// replicaAnswer is one multi get's: the subjects' states at one moment of one replica.
type replicaAnswer struct {
	got map[string]entry // subjects absent from it have no message there
	// upTo is the last sequence the replica had applied when it answered (0: not said, as
	// when it found none of the subjects).
	upTo uint64
}

// multiGet reads subjs (at most replicaBatch) from whichever replica answers.
func (s *Store) multiGet(ctx context.Context, subjs []string) (replicaAnswer, error) {
	return s.multiGetUpTo(ctx, subjs, len(subjs))
}

// multiGetUpTo is multiGet of subjects that may hold wildcards, answered by at most n
// messages (the server's limit is maxMultiAnswer).
func (s *Store) multiGetUpTo(ctx context.Context, subjs []string, n int) (replicaAnswer, error) {
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{subjs})
	if err != nil {
		return replicaAnswer{}, err
	}
	inbox, ch, done, err := s.replies.open(n + 1)
	if err != nil {
		return replicaAnswer{}, fmt.Errorf("jskv: replica read: %w", err)
	}
	defer done()
	c, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.nc.PublishRequest(s.directSubj(), inbox, req); err != nil {
		return replicaAnswer{}, fmt.Errorf("jskv: replica read: %w", err)
	}
	a := replicaAnswer{got: make(map[string]entry, len(subjs))}
	for {
		select {
		case <-c.Done():
			return replicaAnswer{}, fmt.Errorf("jskv: replica read of %d subjects: %w", len(subjs), c.Err())
		case m := <-ch:
			switch st := m.Header.Get("Status"); st {
			case "":
				subj, e, err := directEntry(m)
				if err != nil {
					return replicaAnswer{}, err
				}
				a.got[subj] = e
			case "204": // end of the answer
				s.replicaReads.Add(int64(max(len(subjs), len(a.got))))
				a.upTo, _ = strconv.ParseUint(m.Header.Get("Nats-UpTo-Sequence"), 10, 64)
				s.saw(a.upTo)
				return a, nil
			case "404":
				if d := m.Header.Get("Description"); d != "No Results" {
					// A message the replica found and could not load.
					return replicaAnswer{}, fmt.Errorf("jskv: replica read: status %s %s", st, d)
				}
				// None of the subjects has a message there: a group's new item ids all at
				// once, say. A cursor's version was asked too, and is then absent (sequence
				// 0) as well.
				s.replicaReads.Add(int64(len(subjs)))
				return a, nil
			case "413":
				return replicaAnswer{}, fmt.Errorf("jskv: replica read: %w", errTooManyResults)
			default:
				return replicaAnswer{}, fmt.Errorf("jskv: replica read: status %s %s", st, m.Header.Get("Description"))
			}
		}
	}
}

// errTooManyResults: a multi get would have answered more than maxMultiAnswer messages.
var errTooManyResults = errors.New("more subjects than one answer holds")

// directEntry is the subject and state a direct get's message carries.
func directEntry(m *nats.Msg) (string, entry, error) {
	subj := m.Header.Get("Nats-Subject")
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if subj == "" || err != nil {
		return "", entry{}, fmt.Errorf("jskv: replica read: answer without its subject or sequence (%q, %v)", subj, err)
	}
	e := entry{seq: seq, present: m.Header.Get(hdrOp) != "DEL"}
	if e.present {
		e.val = m.Data
		if e.val == nil {
			e.val = []byte{}
		}
	}
	return subj, e, nil
}

// directSubj is the stream's direct get subject.
func (s *Store) directSubj() string { return "$JS.API.DIRECT.GET." + s.o.Stream }

// onReplica reports whether this transaction may read subj from a replica (the rule above,
// for a key read by itself or ahead of fn; a cursor's values go through loadScan).
func (t *tx) onReplica(subj string) bool {
	if !(t.writable || t.stale || t.current) || t.s.o.LeaderReadsOnly {
		return false
	}
	switch kind, _ := t.s.parse(subj); kind {
	case 'k', 's', 'v':
		return true
	case 'b':
		// A StaleView promises no state in particular, so a marker a replica shows present
		// is as good as any other read of it.
		return t.s.o.CacheBucketMarkers || t.stale
	}
	return false
}

// readReplicas fetches subjs from replicas, replicaBatch to a request, the requests in
// parallel, and returns what they answered (a subject with no message there as an absent
// entry of sequence 0) and the subjects it could not vouch for, which the caller reads from
// the leader: those of a request that failed, and, when ver is set (a cursor's values, with
// the bucket's version the transaction read, at sequence verSeq), those of a request whose
// replica showed another version, and those of a replica behind t.floor.
func (t *tx) readReplicas(subjs []string, ver string, verSeq uint64) (got map[string]entry, missed []string) {
	n := (len(subjs) + replicaBatch - 1) / replicaBatch
	answers := make([]replicaAnswer, n)
	ok := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		part := subjs[i*replicaBatch : min(len(subjs), (i+1)*replicaBatch)]
		switch {
		case ver != "":
			part = append(part[:len(part):len(part)], ver)
		case t.floor > 0:
			// A replica that finds none of the subjects answers without its position, so
			// it could not vouch for "none there": the read markers' subject, there in any
			// store a transaction has read and committed in, makes it say.
			part = append(part[:len(part):len(part)], t.s.readMarkerSubj())
		}
		wg.Go(func() {
			a, err := t.s.multiGet(t.ctx, part)
			if err != nil {
				t.s.replicaMisses.Add(1)
				return
			}
			if ver != "" && a.got[ver].seq != verSeq {
				t.s.replicaMisses.Add(1) // a replica behind (or ahead of) what the cursor read
				return
			}
			if a.upTo < t.floor {
				t.s.replicaMisses.Add(1) // a replica that has not applied the conflict's commit
				return
			}
			if ver == "" && t.floor > 0 {
				t.s.replicaReads.Add(-1) // the read markers' subject, asked only for the position
			}
			answers[i], ok[i] = a, true
		})
	}
	wg.Wait()
	got = make(map[string]entry, len(subjs))
	for i := range n {
		part := subjs[i*replicaBatch : min(len(subjs), (i+1)*replicaBatch)]
		if !ok[i] {
			missed = append(missed, part...)
			continue
		}
		for _, subj := range part {
			got[subj] = answers[i].got[subj] // absent: the zero entry, no message
		}
	}
	return got, missed
}

// replicaGet reads one subject from whichever replica answers.
func (s *Store) replicaGet(ctx context.Context, subj string) (entry, error) {
	c, cancel := s.opCtx(ctx)
	defer cancel()
	m, err := s.nc.RequestWithContext(c, s.directSubj()+"."+subj, nil)
	if err != nil {
		return entry{}, fmt.Errorf("jskv: replica read %s: %w", subj, err)
	}
	switch st := m.Header.Get("Status"); st {
	case "":
	case "404":
		s.replicaReads.Add(1)
		s.replicaOneByOne.Add(1)
		return entry{}, nil
	default:
		return entry{}, fmt.Errorf("jskv: replica read %s: status %s %s", subj, st, m.Header.Get("Description"))
	}
	got, e, err := directEntry(m)
	if err != nil {
		return entry{}, err
	}
	if got != subj {
		return entry{}, fmt.Errorf("jskv: replica read %s: answer for %s", subj, got)
	}
	s.replicaReads.Add(1)
	s.replicaOneByOne.Add(1)
	return e, nil
}

// listReplica lists the bucket of version subject ver through filter (its keys' subjects)
// together with every value and the version, in one multi get from one moment of a replica:
// the listing and the values a cursor then lands on are consistent with the version, which
// the transaction records as read, so the commit validates all of it at once (the rule
// above). ok is false when the transaction must list from the leader instead: a View, a
// version it already knows or wrote, a bucket with more keys than one answer holds, or a
// replica that did not answer.
func (t *tx) listReplica(ver, gen, filter string) (subjs []string, ok bool) {
	if !t.onReplica(ver) {
		return nil, false
	}
	if _, listed := t.listed[filter]; listed {
		return nil, false
	}
	_, written := t.writes[ver]
	_, seen := t.seen[ver]
	_, pre := t.pre[ver]
	if written || seen || pre {
		return nil, false
	}
	if _, big := t.s.bigBuckets.Load(gen); big {
		return nil, false
	}
	a, err := t.s.multiGetUpTo(t.ctx, []string{ver, filter}, maxMultiAnswer+1)
	if err != nil {
		t.s.replicaMisses.Add(1)
		if errors.Is(err, errTooManyResults) {
			t.s.bigBuckets.Store(gen, struct{}{})
		}
		return nil, false
	}
	if a.upTo < t.floor {
		t.s.replicaMisses.Add(1) // behind the commit the last conflict ran into
		return nil, false
	}
	t.s.lists.Add(1)
	t.seen[ver] = a.got[ver] // absent: never written, sequence 0
	t.reads[ver] = struct{}{}
	t.afterVersion(gen)
	subjs = make([]string, 0, len(a.got))
	vals := make(map[string]entry, len(a.got))
	for subj, e := range a.got {
		if subj == ver {
			continue
		}
		subjs = append(subjs, subj)
		if _, read := t.seen[subj]; !read {
			vals[subj] = e
		}
	}
	if t.listed == nil {
		t.listed = map[string][]string{}
	}
	t.listed[filter] = subjs
	t.keep(vals)
	return subjs, true
}
