package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// One connection per terminal across gateways (docs/SCALE.md, "One connection per terminal
// across gateways"). Within one relay the hub closes an older connection of a terminal; across
// gateways sharing a store, a per-terminal owner record does: written at hello (claim),
// checked by every write made on behalf of the connection (ownerTx, in the same transaction,
// so a takeover that commits meanwhile makes the write conflict and find itself superseded),
// and announced to the other gateways through the store's kv.Notifier so that an idle
// superseded connection is closed at once rather than at its next write.
//
// The default relay on its own bbolt file needs none of it (bbolt locks the file: there is
// no second gateway), so there r.gateway is nil and nothing is claimed or checked.

// bOwners holds, per terminal id, the owner record of its live connection: the id of the
// gateway that holds it and a random nonce of the connection.
const bOwners = "conn_owner"

// gatewayIDLen and nonceLen are the lengths of a gateway's random id and a connection's nonce.
const (
	gatewayIDLen = 16
	ownerNonce   = 8
)

// ownersTopic is the kv.Notifier topic every gateway of a store listens on: "this gateway just
// claimed this terminal".
const ownersTopic = "conn-owners"

// errSuperseded: a newer connection of the terminal (on this gateway or another) claimed it;
// this connection may write nothing more for it and is closed with wire.ReasonReplaced.
var errSuperseded = errors.New("superseded by a newer connection of the terminal")

// owner is one connection's claim: the owner record it wrote.
type owner struct {
	rec []byte // gateway id + nonce, as stored
	// queue is one more than the queue length this connection's last committed status
	// report left in the terminal's term_seen record (0: not known). A status report saying
	// the same again reads and writes nothing: on a shared store a key read and not written
	// costs the commit a message (termseen.go). Batches of a connection are stored one after
	// another; a hello's record written by an acknowledgement makes it unknown again.
	queue atomic.Int64
	// superseded is set once this gateway heard another's claim of the terminal and read that
	// it is newer (claimedElsewhere). A held facility's writes check it instead of reading
	// the owner record (ownerTx).
	superseded atomic.Bool
}

// startOwners gives a relay on a shared store its gateway id, makes the owner bucket, and
// subscribes to the other gateways' claims.
func (r *Relay) startOwners() error {
	id := make([]byte, gatewayIDLen)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("make gateway id: %w", err)
	}
	ctx, cancel := r.txContext()
	defer cancel()
	if err := r.db.Update(ctx, func(tx kv.Tx) error {
		if _, err := tx.CreateBucketIfNotExists([]byte(bDownCut)); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists([]byte(bOwners))
		return err
	}); err != nil {
		return ioErr("open relay", fmt.Errorf("make the %s bucket: %w", bOwners, err))
	}
	r.gateway = id
	if n, ok := r.db.(kv.Notifier); ok {
		unsub, err := n.Subscribe(ownersTopic, r.claimedElsewhere)
		if err != nil {
			return ioErr("open relay", err)
		}
		r.unsubOwners = unsub
	}
	return nil
}

// claim writes the terminal's owner record for a new connection of this gateway and tells the
// other gateways. nil (and nothing written) on a relay that is the only gateway of its store.
//
// The write is blind (it reads nothing), so a reconnect storm's claims cost the group
// committer no read each: the newer connection is the one whose claim committed last, which
// is what the owner checks compare with. Telling the previous owner alone would need that read
// (measured: a storm of 1,000 hellos took 1.8 times as long); instead every gateway hears of
// every claim and looks closer only at terminals it holds a connection of.
func (r *Relay) claim(id string) (*owner, error) {
	if r.gateway == nil {
		return nil, nil
	}
	rec := make([]byte, gatewayIDLen+ownerNonce)
	copy(rec, r.gateway)
	if _, err := rand.Read(rec[gatewayIDLen:]); err != nil {
		return nil, fmt.Errorf("make connection nonce: %w", err)
	}
	err := r.update("claim terminal", func(tx kv.Tx, _ *fanout) error {
		b := tx.Bucket([]byte(bOwners))
		if b == nil {
			return fmt.Errorf("the %s bucket is missing", bOwners)
		}
		return b.Put([]byte(id), rec)
	})
	if err != nil {
		return nil, err
	}
	if n, ok := r.db.(kv.Notifier); ok {
		// Best effort: if lost, the old connection is still fenced at its next write.
		if err := n.Notify(ownersTopic, append(append([]byte(nil), r.gateway...), id...)); err != nil {
			r.logf("relay: tell the other gateways of terminal %s: %v", id, err)
		}
	}
	return &owner{rec: rec}, nil
}

// startClaim claims the terminal for a new connection on a goroutine of its own: a reconnect
// storm's hellos do not wait for the claims' group commits (measured: a storm of 3,000 hellos on
// a 3-node cluster took four times as long, and a third of the terminals were refused when
// commits under that load outlasted the store's timeout). The connection's writes wait for it
// (s.owner); until it commits the older connection may still write, as it may until any
// takeover. A claim that fails closes the connection as any storage error does.
func (r *Relay) startClaim(s *session) {
	if r.gateway == nil {
		return // nothing to claim: s.claimed stays nil (no channel held by every connection)
	}
	s.claimed = make(chan struct{})
	go func() {
		s.own, s.claimErr = r.claim(s.id)
		close(s.claimed)
		if s.claimErr != nil && !r.stopped() {
			r.fail(s.conn, "claim terminal "+s.id, s.claimErr)
		}
	}()
}

// owner waits for the connection's claim and returns it (nil on a relay that is the only
// gateway of its store, or for a session made without one).
func (s *session) owner() (*owner, error) {
	if s.claimed == nil {
		return nil, nil
	}
	<-s.claimed
	return s.own, s.claimErr
}

// claimedElsewhere is another gateway's claim of a terminal. If this gateway holds a
// connection of the terminal, the store says which one is newer: a claim heard late (after the
// terminal came back here) closes nothing. It runs on the store's goroutine: the read goes to
// a goroutine of its own.
func (r *Relay) claimedElsewhere(msg []byte) {
	if len(msg) <= gatewayIDLen || bytes.Equal(msg[:gatewayIDLen], r.gateway) {
		return // malformed, or this gateway's own (the hub replaced the older connection)
	}
	s := r.hub.session(string(msg[gatewayIDLen:]))
	if s == nil || s.claimed == nil {
		return
	}
	select {
	case <-s.claimed:
	default:
		return // its own claim is still under way: it is the newer, or its writes are fenced
	}
	if s.own == nil {
		return
	}
	go func() {
		var cur []byte
		err := r.view("read terminal owner", func(tx kv.Tx) error {
			cur = nil
			if b := tx.Bucket([]byte(bOwners)); b != nil {
				cur = bytes.Clone(b.Get([]byte(s.id)))
			}
			return nil
		})
		if err != nil {
			if !r.stopped() {
				r.logf("relay: read the owner of terminal %s: %v", s.id, err)
			}
			// On the kv path its next write reads the record and is fenced. On a held
			// facility it is not marked, and writes on until its socket ends: only its own
			// terminal's batches, deduplicated as any resend (ownerTx).
			return
		}
		if !bytes.Equal(cur, s.own.rec) {
			s.own.superseded.Store(true)
			s.conn.Close(websocket.StatusPolicyViolation, wire.ReasonReplaced)
		}
	}()
}

// ownerTx fails with errSuperseded unless own is still the terminal's owner record: the one
// read every write on behalf of a connection makes, in its own transaction. A nil own (the
// only gateway of its store) passes.
//
// A write on a held facility's state (held) reads nothing: it fails only once this gateway
// heard of a newer claim (owner.superseded). The record is outside what the state holds, so
// its read was one of the kv state's replicas a batch, most of those a held status report
// made, and never validated at the commit: no stronger than what was heard. Nothing is lost
// by it. A newer connection on this gateway retires the old one before it writes
// (session.retire); one on another gateway cannot write the facility's records, which only
// its holder writes (a kv transaction for a facility held elsewhere is refused, fenced), so
// the old connection's batches are the only ones its terminal's records take, deduplicated
// by seq and id as any resend, until the claim is heard and the connection closed.
func ownerTx(tx kv.Tx, id string, own *owner, held bool) error {
	if own == nil {
		return nil
	}
	if held {
		if own.superseded.Load() {
			return errSuperseded
		}
		return nil
	}
	b := tx.Bucket([]byte(bOwners))
	if b == nil {
		return fmt.Errorf("the %s bucket is missing", bOwners)
	}
	if !bytes.Equal(b.Get([]byte(id)), own.rec) {
		return errSuperseded
	}
	return nil
}

// closeSuperseded closes a connection whose write found it superseded, with the reason the
// terminal knows, and reports whether it did.
func closeSuperseded(c *websocket.Conn, err error) bool {
	if !errors.Is(err, errSuperseded) {
		return false
	}
	c.Close(websocket.StatusPolicyViolation, wire.ReasonReplaced)
	return true
}
