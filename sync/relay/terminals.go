package relay

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// Terminals lists every enrolled terminal of the state, revoked ones included. It reads every
// terminal: for the admin API and exports; a facility's staff read TerminalsOf.
func (r *Relay) Terminals() ([]TerminalInfo, error) { return r.terminals(r.view) }

// terminals is Terminals, read through view or staleView.
func (r *Relay) terminals(read func(op string, fn func(tx kv.Tx) error) error) ([]TerminalInfo, error) {
	out := []TerminalInfo{}
	err := read("list terminals", func(tx kv.Tx) error {
		out = out[:0]
		var recs []terminalRec
		var keys keyList
		if err := forEachJSON(tx, bTerminals, "", func(_ string, t terminalRec) bool {
			recs = append(recs, t)
			keys.add(bTermSeen, t.ID)
			return true
		}); err != nil {
			return err
		}
		kv.Prefetch(tx, keys) // each one's term_seen record, read together
		tails := map[string][]logTail{}
		for _, t := range recs {
			out = append(out, r.terminalInfo(tx, t, tails))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// TerminalsOf lists the terminals of the given facilities, revoked ones included, by id. It
// reads those facilities' lists (fac_terms, fac_revoked) and their terminals only, so a page
// of one facility costs the same in a state of a hundred facilities as in a relay of one.
func (r *Relay) TerminalsOf(facilities ...string) ([]TerminalInfo, error) {
	return r.terminalsOf(r.view, facilities)
}

// FleetOf is TerminalsOf for a page a person looks at (the console's terminals): on a store
// that can (kv.StaleViewer), read from replicas, many to a request, not validated, each
// terminal's state as of a moment a replica had applied. In a View on JetStream a terminal cost
// about 16 leader requests, each about two durable publishes of the cluster's work, and a
// state admin's page of every facility some 900,000; what a person then does to a terminal
// (revoke it) reads it again, fresh.
func (r *Relay) FleetOf(facilities ...string) ([]TerminalInfo, error) {
	return r.terminalsOf(r.staleView, facilities)
}

// terminalsOf is TerminalsOf, read through view or staleView.
func (r *Relay) terminalsOf(read func(op string, fn func(tx kv.Tx) error) error, facilities []string) ([]TerminalInfo, error) {
	const op = "list terminals"
	if err := checkFacilityIDs(op, facilities); err != nil {
		return nil, err
	}
	out := []TerminalInfo{}
	if len(facilities) == 0 {
		return out, nil // none asked for (listedUnder reads every facility for nil)
	}
	// A facility this gateway holds is read from its held state: its list and its
	// terminals' positions there are current, the kv state's behind by the projector.
	var part []TerminalInfo
	err := r.viewsVia(read, facilities, op, func(tx kv.Tx, facilities []string) error {
		part = part[:0]
		ids, err := listedUnder(tx, facilities, bFacTerms, bFacRevoked)
		if err != nil {
			return err
		}
		var keys keyList
		for _, id := range ids {
			keys.add(bTerminals, id)
			keys.add(bTermSeen, id)
		}
		kv.Prefetch(tx, keys)
		tails := map[string][]logTail{}
		for _, id := range ids {
			var t terminalRec
			ok, err := getJSON(tx, bTerminals, id, &t)
			if err != nil {
				return err
			}
			// A list names its facility's terminals; a record naming another is damage (verify).
			if ok && slices.Contains(facilities, t.FacilityID) {
				part = append(part, r.terminalInfo(tx, t, tails))
			}
		}
		return nil
	}, func() { out = append(out, part...) })
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Terminal reads one terminal as Terminals shows it (found false if there is none).
func (r *Relay) Terminal(id string) (info TerminalInfo, found bool, err error) {
	const op = "read terminal"
	if err := checkID(op, "id", id); err != nil {
		return TerminalInfo{}, false, err
	}
	err = r.view(op, func(tx kv.Tx) error {
		var t terminalRec
		ok, err := getJSON(tx, bTerminals, id, &t)
		if err != nil || !ok {
			info, found = TerminalInfo{}, false
			return err
		}
		info, found = r.terminalInfo(tx, t, map[string][]logTail{}), true
		return nil
	})
	return info, found, err
}

// terminalInfo is what staff see of terminal t: its record, its downlink's progress, and
// what its open connection (on this gateway) knows that is not written yet. tails caches
// facility log tails across the terminals of one read.
func (r *Relay) terminalInfo(tx kv.Tx, t terminalRec, tails map[string][]logTail) TerminalInfo {
	info := t.TerminalInfo
	_, info.DownAcked = downState(tx, t.ID, t.FacilityID)
	rd := downReader{id: t.ID, facility: t.FacilityID, mode: t.Mode}
	if t.Revoked {
		rd.facility = "" // it reads nothing more: its facility's log is for the others
	}
	info.DownQueued = lastDownFor(tx, rd, tails)
	// A connected terminal's newest acknowledgement, and its hello, may not be written yet.
	if url, ok := r.connectedElsewhere(tx, t.ID); ok {
		info.Connected, info.Gateway = true, url
	}
	if seen, ok, err := seenOf(tx, t.ID); err == nil && ok {
		seen.applyTo(&info)
	}
	if s := r.hub.session(t.ID); s != nil {
		info.Connected, info.Gateway = true, r.GatewayURL()
		info.DownAcked = max(info.DownAcked, min(s.acked.Load(), info.DownQueued))
		if seen, ok := s.pendingSeen(); ok {
			seen.state().applyTo(&info)
		}
	}
	return info
}

// Revoke stops a terminal for good: it can no longer authenticate, receives no more downlink, and
// its open connection is closed with "terminal revoked". Revoking twice changes nothing.
func (r *Relay) Revoke(id string) error {
	const op = "revoke terminal"
	if err := checkID(op, "id", id); err != nil {
		return err
	}
	now := r.clock.Now().UTC()
	err := r.update(op, func(tx kv.Tx, f *fanout) error {
		if ok, err := getJSON(tx, bTerminals, id, &terminalRec{}); err != nil {
			return err
		} else if !ok {
			return notFound(op, "id", "no terminal %q", id)
		}
		return r.revokeTx(tx, f, id, now)
	})
	if err != nil {
		return err
	}
	r.hub.kick(id, wire.ReasonRevoked)
	r.logf("relay: terminal %s revoked", id)
	return nil
}

// revokeTx marks terminal id revoked, takes it out of the fan-out index and drops its pending
// downlink (keeping the sequence, so numbers are never reused). The caller closes its open
// connection after commit (hub.kick). A terminal already revoked is left as it is.
func (r *Relay) revokeTx(tx kv.Tx, f *fanout, id string, now time.Time) error {
	var t terminalRec
	ok, err := getJSON(tx, bTerminals, id, &t)
	if err != nil || !ok || t.Revoked {
		return err
	}
	t.Revoked, t.RevokedAt = true, now
	if err := putJSON(tx, bTerminals, id, t); err != nil {
		return err
	}
	if t.Mode == wire.ModeTablet {
		if err := r.bindTablet(tx, f, t.FacilityID, t.InmateID, id, false); err != nil {
			return err
		}
	}
	// The rest is the facility's: at once, or by its holder after this commits.
	return f.revokedIn(tx, t.FacilityID, id)
}

// revokeFacilityTx is a revocation's facility half (the state's is revokeTx): terminal id off
// its facility's route list and on its list of revoked terminals, its pending downlink
// dropped (keeping the sequence, so numbers are never reused). Done again, it changes nothing.
func revokeFacilityTx(tx kv.Tx, facility, id string) error {
	if err := deleteKey(tx, bFacTerms, facility+"/"+id); err != nil {
		return err
	}
	if err := listRevoked(tx, facility, id); err != nil {
		return err
	}
	if b := tx.Bucket([]byte(bDown)); b.Bucket([]byte(id)) != nil {
		seq := b.Bucket([]byte(id)).Sequence()
		if err := b.DeleteBucket([]byte(id)); err != nil {
			return err
		}
		nb, err := b.CreateBucket([]byte(id))
		if err != nil {
			return err
		}
		if err := nb.SetSequence(seq); err != nil {
			return err
		}
	}
	return nil
}

// bindTablet records that tablet is bound to inmate (bound) or no longer is, in the inmate's
// record, and keeps its tablet_bound flag true exactly while a live tablet is bound to them,
// telling the facility's terminals when it changes.
func (r *Relay) bindTablet(tx kv.Tx, f *fanout, facility, inmateID, tablet string, bound bool) error {
	var in inmateRec
	ok, err := getJSON(tx, bInmates, inmateID, &in)
	if err != nil || !ok || in.FacilityID != facility {
		return err
	}
	if !in.TabletsKnown {
		in.Tablets, in.TabletsKnown = tabletsOf(tx, facility, inmateID), true
	}
	in.Tablets = slices.DeleteFunc(in.Tablets, func(id string) bool { return id == tablet })
	if bound {
		in.Tablets = append(in.Tablets, tablet)
	}
	was := in.TabletBound
	in.TabletBound = len(in.Tablets) > 0
	if err := putJSON(tx, bInmates, inmateID, in); err != nil {
		return err
	}
	if in.TabletBound == was {
		return nil
	}
	return f.toInmate(facility, inmateID, "", wire.DownInmate, in.Inmate)
}

// state is what a hello reports, as the terminal's term_seen record keeps it (termseen.go).
func (seen seenRec) state() seenState {
	s := seenState{LastSeen: seen.at, Software: seen.software, ItemsWaiting: seen.waiting}
	if seen.waiting > 0 && !seen.oldest.IsZero() {
		s.OldestWaiting = seen.oldest.UTC()
	}
	return s
}

// seenTx writes a hello's record (nothing if seen is nil): a write of the connection carries
// it, the handshake takes no transaction of its own.
func seenTx(tx kv.Tx, id string, seen *seenRec) error {
	if seen == nil {
		return nil
	}
	if tx.Bucket([]byte(bTerminals)).Get([]byte(id)) == nil {
		return nil // gone (a test wiped it?): nothing to record
	}
	s := seen.state()
	if s.Software == "" { // a hello that did not say keeps what the last one said
		prev, _, err := seenOf(tx, id)
		if err != nil {
			return err
		}
		s.Software = prev.Software
	}
	return putJSON(tx, bTermSeen, id, s)
}

// listRevoked puts a revoked terminal on its facility's list of revoked ones (fac_revoked); a
// record with no valid facility or id (an older relay's damage) is left off it.
func listRevoked(tx kv.Tx, facility, id string) error {
	if checkID("", "", facility) != nil || checkID("", "", id) != nil {
		return nil
	}
	return putRaw(tx, bFacRevoked, facility+"/"+id, nil)
}

// migrate13to14 lists every terminal revoked before the upgrade under its facility
// (fac_revoked), which revocations keep from now on. A record that does not decode is passed
// over (verify reports it) rather than failing the upgrade.
func migrate13to14(tx kv.Tx) error {
	if _, err := tx.CreateBucketIfNotExists([]byte(bFacRevoked)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bFacRevoked, err)
	}
	revoked := map[string]string{} // terminal id -> facility
	if err := forEachRaw(tx, bTerminals, "", func(id string, raw []byte) bool {
		var t terminalRec
		if json.Unmarshal(raw, &t) == nil && t.Revoked {
			revoked[id] = t.FacilityID
		}
		return true
	}); err != nil {
		return err
	}
	for id, facility := range revoked {
		if err := listRevoked(tx, facility, id); err != nil {
			return err
		}
	}
	return nil
}
