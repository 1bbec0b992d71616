package relay

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
)

// PathBackup is the admin call that streams a consistent copy of relay.db.
const PathBackup = "/admin/v1/backup"

// backupGate lets one backup run at a time: each holds a read transaction for as long as the
// copy takes, and a second one would only slow the first.
type backupGate struct{ mu sync.Mutex }

// Backup writes a consistent copy of the relay's store to w while the relay runs: one read
// transaction (bbolt Tx.WriteTo), so writes go on meanwhile and the copy is the store as of
// its start. It returns the bytes written. Restoring is copying the file back in place of
// relay.db with relayd stopped (docs/OPERATIONS.md). Only a bbolt store is backed up this
// way (ErrNoFileBackup otherwise): a JetStream cluster keeps its own replicas and snapshots.
func (r *Relay) Backup(w io.Writer) (int64, error) {
	if _, ok := r.db.(*boltkv.Store); !ok {
		return 0, fmt.Errorf("backup relay store: %w", ErrNoFileBackup)
	}
	var n int64
	err := r.db.View(r.ctx, func(tx kv.Tx) error {
		var err error
		n, err = boltkv.BoltTx(tx).WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup relay store: %w", err)
	}
	return n, nil
}

// ErrNoFileBackup is Backup on a relay whose store is not a bbolt file. The copy is a bbolt
// file (what relayd backup checks and a restore puts back); a JetStream stream has no such
// file, and is backed up with the cluster's own tools (docs/OPERATIONS.md).
var ErrNoFileBackup = errors.New("the relay's store is not a bbolt file: back up the JetStream stream with the cluster's tools (nats stream backup)")

// hBackup answers GET /admin/v1/backup with the store, streamed. The length is known before
// the first byte (the transaction's size), so a client can tell a cut copy from a whole one.
func (r *Relay) hBackup(w http.ResponseWriter, _ *http.Request) {
	if !r.backups.mu.TryLock() {
		writeJSON(w, http.StatusConflict, ErrorBody{Error: "a backup is already running; try again when it is done"})
		return
	}
	defer r.backups.mu.Unlock()
	if _, ok := r.db.(*boltkv.Store); !ok {
		writeJSON(w, http.StatusNotImplemented, ErrorBody{Error: ErrNoFileBackup.Error()})
		return
	}
	// The relay's context, without txTimeout: a copy takes as long as the network lets it
	// (bbolt looks at the context only before the transaction starts).
	err := r.db.View(r.ctx, func(tx kv.Tx) error {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(boltkv.BoltTx(tx).Size(), 10))
		h.Set("Content-Disposition", `attachment; filename="relay-`+r.clock.Now().UTC().Format("20060102T150405Z")+`.db"`)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, err := boltkv.BoltTx(tx).WriteTo(w)
		return err
	})
	if err != nil {
		// The status is sent: the client sees a body shorter than Content-Length.
		r.logf("relay: backup cut short: %v", err)
		return
	}
	r.logf("relay: backup sent")
}
