package relay

import (
	"encoding/json"
	"testing"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// A store of schema 24 kept the fan-outs due flat, every facility's in one bucket. Opened by
// this program, its records move under their facility, where the drains read them: the
// facility's kiosk hears the notice a cut-off call left due, and the record goes. A key that
// names no facility stays as it was.
func TestFanoutsDueOfSchema24MoveUnderTheirFacility(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	k := e.enrollAt("north", wire.ModeKiosk, "")
	e.close()

	id := uuid.Must(uuid.NewV7()).String()
	body, err := json.Marshal(wire.Notice{ID: "n-flat", Text: "left due by schema 24", At: t0})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := json.Marshal(dueRecord{At: t0, Items: []dueItem{{Scope: scopeAll, Kind: wire.DownNotice, Body: body}}})
	if err != nil {
		t.Fatal(err)
	}
	e.rewind(func(tx kv.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bFanoutsDue))
		if err != nil {
			return err
		}
		if err := b.Put([]byte("north/"+id), rec); err != nil {
			return err
		}
		if err := b.Put([]byte("no-facility"), []byte("{}")); err != nil {
			return err
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(24))
	})
	e.open()

	kc := k.connect(t, 0)
	kc.waitDown(wire.DownNotice, func(b json.RawMessage) bool { return decodeAs[wire.Notice](t, b).ID == "n-flat" })
	kc.c.Close(websocket.StatusNormalClosure, "")
	if due := storedBytes(t, e, bFanoutsDue, "north/"+id); due != nil {
		t.Fatalf("the record due is still there after the start drained it: %s", due)
	}
	var flat []string
	if err := e.r.db.View(t.Context(), func(tx kv.Tx) error {
		return tx.Bucket([]byte(bFanoutsDue)).ForEach(func(k, _ []byte) error { flat = append(flat, string(k)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(flat) != 1 || flat[0] != "no-facility" {
		t.Fatalf("flat keys left in %s: %q, want the one naming no facility", bFanoutsDue, flat)
	}
	var version uint64
	if err := e.r.db.View(t.Context(), func(tx kv.Tx) error {
		version = readU64(tx.Bucket([]byte(bMeta)).Get([]byte(kSchema)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if version != schemaVersion {
		t.Fatalf("schema %d after open, want %d", version, schemaVersion)
	}
}
