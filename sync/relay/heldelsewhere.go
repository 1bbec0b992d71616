package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// A facility held by another gateway (docs/SCALE.md, "A facility held elsewhere"). A gateway
// that holds a facility is its records' only writer; a call made through any other gateway
// must not write them in a kv transaction beside it. The facility log's claim says who holds
// it, but a kv transaction cannot read another stream at its commit, so the holder also says
// so in the kv state: holds/<facility> names it, written once its claim and catch-up stand,
// before it serves anything, and taken away when it lets the facility go. Every kv-path call
// that writes a facility's records reads that key in its own transaction, which is
// serializable: a call that read "no holder" and commits after the holder's record conflicts
// and runs again, and then finds it. What a kv-path call leaves due to a held facility anyway
// (a fan-out, a roster's or an enrollment's facility half: fanoutdue.go) it leaves due to the
// other gateway's too, and tells it (notifyDue), which drains it. A call whose facility part
// runs on the facility's writer (updateFor, updateAt) is refused with HeldElsewhereError:
// the admin API answers 307 to the holder's URL, a terminal's connection closes as moved.
//
// A holder that stopped without letting go (a crash) leaves its record: its log may hold
// entries the kv state lacks, so the facility's writes stay refused until a relay holds it
// again (relayd -hold-facilities, whose claim catches the kv state up and names itself), not
// written beside entries a later projection would write over.

// bHolds holds who holds each held facility: facility -> the JSON of a holdRecord. The
// state's root, made on first use.
const bHolds = "holds"

// holdRecord is a facility's holder, as its claim on the facility log named it (its URL on a
// relay of several gateways), and the claim's term.
type holdRecord struct {
	Holder string `json:"holder"`
	Term   uint64 `json:"term"`
}

// HeldElsewhereError is the error of a call that would write the records of a facility
// another gateway holds: its writes are that gateway's. Holder is its URL where it has one.
type HeldElsewhereError struct {
	Facility, Holder string
	// Self: the record names this relay, from a run that stopped without letting the
	// facility go (a crash). Its own claim, at its next beat, takes the facility up again:
	// the call is to be made again here in a few seconds, not sent anywhere.
	Self bool
}

// Error says where to make the call, as staff read it on the console and the admin API.
func (e *HeldElsewhereError) Error() string {
	if e.Self {
		return fmt.Sprintf("facility %s is being taken up again by this gateway after a restart: try again in a few seconds", e.Facility)
	}
	if u := e.holderURL(); u != nil {
		return fmt.Sprintf("facility %s is served by the gateway at %s://%s: make this change there", e.Facility, u.Scheme, u.Host)
	}
	return fmt.Sprintf("facility %s is served by gateway %q: make this change there", e.Facility, e.Holder)
}

// holderURL is the holder's URL to send a call to, or nil where the holder named no URL.
func (e *HeldElsewhereError) holderURL() *url.URL {
	u, err := url.Parse(e.Holder)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	return u
}

// heldElsewhere is HeldElsewhereError if tx shows facility held and this relay does not hold
// it (a claim of its own under way counts as holding: its calls wait for it), nil otherwise.
// The read is one of tx's, so a hold recorded after it makes tx conflict.
func (r *Relay) heldElsewhere(tx kv.Tx, facility string) error {
	if facility == "" || r.held.of(facility) != nil {
		return nil
	}
	rec, held, err := holdOf(tx, facility)
	if err != nil || !held {
		return err
	}
	return &HeldElsewhereError{Facility: facility, Holder: rec.Holder, Self: rec.Holder == r.holder()}
}

// holdOf is the record naming facility's holder, as tx reads it; held is false for none.
func holdOf(tx kv.Tx, facility string) (rec holdRecord, held bool, err error) {
	raw := getRaw(tx, bHolds, facility)
	if raw == nil {
		return holdRecord{}, false, nil
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return holdRecord{}, false, fmt.Errorf("relay: facility %s: its holder's record: %w", facility, err)
	}
	return rec, true, nil
}

// fenced is fn, run only where facility is not held elsewhere (heldElsewhere), for a call on
// the kv path.
func (r *Relay) fenced(facility string, fn func(tx kv.Tx, f *fanout) error) func(tx kv.Tx, f *fanout) error {
	return func(tx kv.Tx, f *fanout) error {
		if err := r.heldElsewhere(tx, facility); err != nil {
			return err
		}
		return fn(tx, f)
	}
}

// dueTopic is the notifier topic on which a gateway tells the others that it left something
// due to a facility one of them holds: the message is the facility's id, and where the store
// has positions (kv.Positioner) a space and the sender's, from which the holder's drain reads
// (drainDueFrom reads in a CurrentView).
const dueTopic = "due"

// dueNote is the message of a note on dueTopic.
func dueNote(facility string, pos uint64) []byte {
	if pos == 0 {
		return []byte(facility)
	}
	return fmt.Appendf(nil, "%s %d", facility, pos)
}

// parseDueNote is dueNote's facility and position (0: none, or one that does not parse).
func parseDueNote(msg []byte) (facility string, pos uint64) {
	f, p, found := strings.Cut(string(msg), " ")
	if !found {
		return f, 0
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return f, 0
	}
	return f, n
}

// notifyDue tells the gateways that something is due to facility, held by one of them, which
// drains it at once; the sweep of its home's gateway (finishDue) drains it otherwise.
func (r *Relay) notifyDue(facility string) {
	n, ok := r.db.(kv.Notifier)
	if !ok {
		return
	}
	var pos uint64
	if p, ok := r.db.(kv.Positioner); ok {
		pos = p.Position() // at or past the commit that left the record
	}
	if err := n.Notify(dueTopic, dueNote(facility, pos)); err != nil {
		r.logf("relay: tell the holder of facility %s what is due to it: %v (its gateway's sweep drains it)", facility, err)
	}
}

// listenDue drains what other gateways left due to a facility this relay holds, as they tell
// it; the returned function stops it.
func (r *Relay) listenDue() (func(), error) {
	n, ok := r.db.(kv.Notifier)
	if !ok {
		return func() {}, nil
	}
	return n.Subscribe(dueTopic, func(msg []byte) {
		facility, pos := parseDueNote(msg)
		if r.held.of(facility) == nil {
			return // another gateway's, or no one's: its home's sweep drains it
		}
		r.dueNotes.drain(facility, pos, func(pos uint64) {
			if _, err := r.drainDueFrom(facility, pos); err != nil {
				r.logf("relay: queue the fan-outs due to facility %s: %v (queued later)", facility, err)
			}
		})
	})
}

// dueNotes coalesces the drains other gateways ask for: a burst of notes for one facility
// (a thousand enrollments through another gateway) makes one drain under way and at most one
// more after it, which takes every record the burst left, not a drain each.
type dueNotes struct {
	mu      sync.Mutex
	running map[string]bool // a drain under way
	// again: asked for while it ran, one more after it, from the latest position the notes
	// handed over (0: none).
	again map[string]uint64
}

// drain runs fn(pos) on a goroutine of its own unless one runs for facility, in which case
// that one runs fn once more when done, with the latest position asked for meanwhile.
func (d *dueNotes) drain(facility string, pos uint64, fn func(pos uint64)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running[facility] {
		if d.again == nil {
			d.again = map[string]uint64{}
		}
		d.again[facility] = max(d.again[facility], pos)
		return
	}
	if d.running == nil {
		d.running = map[string]bool{}
	}
	d.running[facility] = true
	go func() {
		for {
			fn(pos)
			d.mu.Lock()
			next, more := d.again[facility]
			if !more {
				delete(d.running, facility)
				d.mu.Unlock()
				return
			}
			delete(d.again, facility)
			pos = next
			d.mu.Unlock()
		}
	}()
}

// recordHold names holder, at the claim's term, as facility's holder in the kv state.
func (r *Relay) recordHold(facility string, rec holdRecord) error {
	return r.update("record the hold of facility "+facility, func(tx kv.Tx, _ *fanout) error {
		if _, err := tx.CreateBucketIfNotExists([]byte(bHolds)); err != nil {
			return err
		}
		return putJSON(tx, bHolds, facility, rec)
	})
}

// forgetHold takes facility's holder record away if it is still rec: one a later claim wrote
// (this relay was deposed) stays.
func (r *Relay) forgetHold(facility string, rec holdRecord) error {
	return r.update("let facility "+facility+" go", func(tx kv.Tx, _ *fanout) error {
		var now holdRecord
		found, err := getJSON(tx, bHolds, facility, &now)
		if err != nil || !found || now != rec {
			return err
		}
		b := tx.Bucket([]byte(bHolds))
		if b == nil {
			return errors.New("the holds bucket is gone")
		}
		return b.Delete([]byte(facility))
	})
}
