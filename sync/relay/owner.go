package relay

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/coder/websocket"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// One connection per terminal across gateways (docs/SCALE.md, "One connection per terminal
// across gateways"). Within one relay the hub closes an older connection of a terminal; across
// gateways sharing a store, a per-terminal owner record does: written at hello (claimTx),
// checked by every write made on behalf of the connection (ownerTx, in the same transaction,
// so a takeover that commits meanwhile makes the write conflict and find itself superseded),
// and announced to the previous owner's gateway through the store's kv.Notifier so that an
// idle superseded connection is closed at once rather than at its next write.
//
// The default relay on its own bbolt file needs none of it (bbolt locks the file: there is
// no second gateway), so there r.gateway is nil and nothing is claimed or checked.

// bOwners holds, per terminal id, the owner record of its live connection: the generation
// (8 bytes, one more at each hello) and the id of the gateway that holds it.
const bOwners = "conn_owner"

// gatewayIDLen is the length of a gateway's random id.
const gatewayIDLen = 16

// errSuperseded: a newer connection of the terminal (on this gateway or another) claimed it;
// this connection may write nothing more for it and is closed with wire.ReasonReplaced.
var errSuperseded = errors.New("superseded by a newer connection of the terminal")

// owner is one connection's claim: the owner record it wrote.
type owner struct {
	gen uint64
	rec []byte // gen (8 bytes) + gateway id, as stored
}

// ownerRec is the stored form of a claim.
func ownerRec(gen uint64, gateway []byte) []byte {
	return append(u64(gen), gateway...)
}

// parseOwner splits a stored owner record; ok is false for anything else (nothing stored).
func parseOwner(v []byte) (gen uint64, gateway []byte, ok bool) {
	if len(v) != 8+gatewayIDLen {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(v[:8]), v[8:], true
}

// startOwners gives a relay on a shared store its gateway id, makes the owner bucket, and
// subscribes to the messages that say another gateway took over one of its terminals.
func (r *Relay) startOwners() error {
	id := make([]byte, gatewayIDLen)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("make gateway id: %w", err)
	}
	ctx, cancel := r.txContext()
	defer cancel()
	if err := r.db.Update(ctx, func(tx kv.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(bOwners))
		return err
	}); err != nil {
		return ioErr("open relay", fmt.Errorf("make the %s bucket: %w", bOwners, err))
	}
	r.gateway = id
	if n, ok := r.db.(kv.Notifier); ok {
		unsub, err := n.Subscribe(gatewayTopic(id), r.takenOver)
		if err != nil {
			return ioErr("open relay", err)
		}
		r.unsubOwners = unsub
	}
	return nil
}

// gatewayTopic is the kv.Notifier topic a gateway listens on.
func gatewayTopic(gateway []byte) string { return "own-" + hex.EncodeToString(gateway) }

// claim writes the terminal's owner record for a new connection of this gateway and tells the
// gateway it took the terminal from, if another. nil (and nothing written) on a relay that
// is the only gateway of its store.
func (r *Relay) claim(id string) (*owner, error) {
	if r.gateway == nil {
		return nil, nil
	}
	var own *owner
	var prev []byte
	err := r.update("claim terminal", func(tx kv.Tx, _ *fanout) error {
		b := tx.Bucket([]byte(bOwners))
		if b == nil {
			return fmt.Errorf("the %s bucket is missing", bOwners)
		}
		gen, gw, _ := parseOwner(b.Get([]byte(id)))
		prev = append(prev[:0], gw...)
		own = &owner{gen: gen + 1, rec: ownerRec(gen+1, r.gateway)}
		return b.Put([]byte(id), own.rec)
	})
	if err != nil {
		return nil, err
	}
	if len(prev) > 0 && !bytes.Equal(prev, r.gateway) {
		if n, ok := r.db.(kv.Notifier); ok {
			// Best effort: if lost, the old connection is still fenced at its next write.
			if err := n.Notify(gatewayTopic(prev), append(u64(own.gen), id...)); err != nil {
				r.logf("relay: tell the previous gateway of terminal %s: %v", id, err)
			}
		}
	}
	return own, nil
}

// takenOver is a message from another gateway: it claimed a terminal at a generation. This
// gateway's connection of the terminal is closed if it is older (a message that arrives late,
// after the terminal came back here, closes nothing).
func (r *Relay) takenOver(msg []byte) {
	if len(msg) <= 8 {
		return
	}
	gen, id := binary.BigEndian.Uint64(msg[:8]), string(msg[8:])
	s := r.hub.session(id)
	if s == nil || s.own == nil || s.own.gen >= gen {
		return
	}
	go s.conn.Close(websocket.StatusPolicyViolation, wire.ReasonReplaced)
}

// ownerTx fails with errSuperseded unless own is still the terminal's owner record: the one
// read every write on behalf of a connection makes, in its own transaction. A nil own (the
// only gateway of its store) passes.
func ownerTx(tx kv.Tx, id string, own *owner) error {
	if own == nil {
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

// updateAs is update for a write made on behalf of a terminal's connection: fn runs only while
// the connection still owns the terminal.
func (r *Relay) updateAs(own *owner, id, op string, fn func(tx kv.Tx, f *fanout) error) error {
	if own == nil {
		return r.update(op, fn)
	}
	return r.update(op, func(tx kv.Tx, f *fanout) error {
		if err := ownerTx(tx, id, own); err != nil {
			return err
		}
		return fn(tx, f)
	})
}

// closeSuperseded closes a connection whose write found it superseded, with the reason the
// terminal knows (it reconnects only if it has no newer connection), and reports whether it did.
func closeSuperseded(c *websocket.Conn, err error) bool {
	if !errors.Is(err, errSuperseded) {
		return false
	}
	c.Close(websocket.StatusPolicyViolation, wire.ReasonReplaced)
	return true
}
