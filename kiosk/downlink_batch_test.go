package kiosk

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func dlItem(tb testing.TB, seq uint64, kind string, body any) DownlinkItem {
	tb.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	return DownlinkItem{Seq: seq, Kind: kind, Body: raw}
}

// A whole frame is applied in one transaction: every item, the position moved to the last, the
// policy in force, and one event for the screens.
func TestDownlinkFrameAppliesAsOne(t *testing.T) {
	r := newDLRig(t)
	p := DefaultPolicy()
	p.MaxMessageChars = 777
	frame := []DownlinkItem{
		dlItem(t, 1, DownInmate, Inmate{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PINHash: dlHash(t), Language: "es", Status: StatusActive, Messaging: true}),
		dlItem(t, 2, DownDeposit, Deposit{Ref: "dep-1", InmateID: "A1", Cents: 2500, At: dlStart}),
		dlItem(t, 3, DownInboundMessage, Message{ID: "0192aaaa-0000-7000-8000-000000000001", InmateID: "A1", Peer: "c-1", PeerName: "Mom", Body: "Te quiero", CreatedAt: dlStart}),
		dlItem(t, 4, DownPolicy, p),
	}
	applied, refused, err := r.t.ApplyDownlinkBatch(frame)
	if err != nil || len(refused) != 0 || applied != 4 {
		t.Fatalf("apply frame = %d, %+v, %v; want 4, none refused", applied, refused, err)
	}
	if bal, _ := r.t.Balance("A1"); bal != 2500 {
		t.Fatalf("balance %s, want 25.00", bal)
	}
	if in, _ := r.t.Inbox("A1"); len(in) != 1 || in[0].Body != "Te quiero" {
		t.Fatalf("inbox = %+v", in)
	}
	if got := r.t.Policy().MaxMessageChars; got != 777 {
		t.Fatalf("policy in force has max %d chars, want 777", got)
	}
	if n := r.changed(); n != 1 {
		t.Fatalf("%d change events for one frame, want 1", n)
	}
	// The relay sends the frame again after a reconnect: nothing changes, no event.
	if applied, refused, err := r.t.ApplyDownlinkBatch(frame); err != nil || len(refused) != 0 || applied != 4 {
		t.Fatalf("frame again = %d, %+v, %v", applied, refused, err)
	}
	if bal, _ := r.t.Balance("A1"); bal != 2500 || r.changed() != 1 {
		t.Fatalf("after the frame again: balance %s, %d events", bal, r.changed())
	}
	r.reopen(t)
	if seq, _ := r.t.DownlinkApplied(); seq != 4 {
		t.Fatalf("applied after restart = %d", seq)
	}
}

// An item refused for good is skipped, audited and reported, with nothing of it stored (not even
// what it wrote before it failed), and the other items of its frame are applied.
func TestDownlinkFrameSkipsRefusedItemsAndAppliesTheOthers(t *testing.T) {
	r := newDLRig(t)
	h := dlHash(t)
	frame := []DownlinkItem{
		dlItem(t, 1, DownInmate, Inmate{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PINHash: h, Language: "en", Status: StatusActive}),
		dlItem(t, 2, DownTechnician, Technician{ID: "A2", Name: "Tess", Badges: []string{"TB1"}, PINHash: h, Role: "installer"}),
		// An inmate whose id is a technician's: it takes badge B1 from A1 before it fails.
		dlItem(t, 3, DownInmate, Inmate{ID: "A2", Name: "Bo", Badges: []string{"B1"}, PINHash: h, Language: "en", Status: StatusActive}),
		dlItem(t, 4, DownDeposit, Deposit{Ref: "dep-1", InmateID: "A1", Cents: 1000, At: dlStart}),
		{Seq: 6, Kind: DownDeposit, Body: json.RawMessage(`{"ref": 12}`)}, // after a gap, malformed
		dlItem(t, 7, "teleport", map[string]string{"x": "y"}),
		dlItem(t, 8, DownDeposit, Deposit{Ref: "dep-2", InmateID: "A1", Cents: 500, At: dlStart}),
	}
	applied, refused, err := r.t.ApplyDownlinkBatch(frame)
	if err != nil || applied != 8 {
		t.Fatalf("apply frame = %d, %v; want position 8", applied, err)
	}
	var seqs []uint64
	for _, rf := range refused {
		if rf.Reason == "" {
			t.Fatalf("refusal of %d has no reason", rf.Seq)
		}
		seqs = append(seqs, rf.Seq)
	}
	if fmt.Sprint(seqs) != "[3 6 7]" || !strings.Contains(refused[2].Reason, "unknown kind") {
		t.Fatalf("refused = %+v, want 3, 6 and 7", refused)
	}
	if bal, _ := r.t.Balance("A1"); bal != 1500 {
		t.Fatalf("balance %s, want 15.00: the good items around the refused ones apply", bal)
	}
	if _, err := r.t.Inmate("A2"); KindOf(err) != KindNotFound {
		t.Fatalf("refused inmate was stored: %v", err)
	}
	if err := r.store.view(func(tx *bolt.Tx) error {
		o, found, err := badgeOwnerTx(tx, "B1")
		if err != nil || !found || o.ID != "A1" {
			t.Fatalf("badge B1 after the refused item: %+v %v %v, want A1's", o, found, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	evs, err := r.store.RecentAudit(20, func(ev AuditEvent) bool { return ev.Kind == "downlink_refused" })
	if err != nil || len(evs) != 3 {
		t.Fatalf("downlink_refused audit events = %d (%v), want 3", len(evs), err)
	}
	gaps, _ := r.store.RecentAudit(20, func(ev AuditEvent) bool { return ev.Kind == "downlink_gap" })
	if len(gaps) != 1 || gaps[0].Detail["seq"] != "6" {
		t.Fatalf("gap audits = %+v, want one, for 6 (the retries' rolled back)", gaps)
	}
	if n := r.changed(); n != 1 {
		t.Fatalf("%d change events, want 1", n)
	}
}

// A frame of more refused items than one frame retries for still applies every good item.
func TestDownlinkFrameWithManyRefusals(t *testing.T) {
	r := newDLRig(t)
	r.apply(t, 1, DownInmate, Inmate{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PINHash: dlHash(t), Language: "en", Status: StatusActive})
	var frame []DownlinkItem
	for seq := uint64(2); seq < 62; seq++ {
		if seq%2 == 0 {
			frame = append(frame, DownlinkItem{Seq: seq, Kind: DownDeposit, Body: json.RawMessage(`{"ref": 12}`)})
		} else {
			frame = append(frame, dlItem(t, seq, DownDeposit, Deposit{Ref: fmt.Sprint("d", seq), InmateID: "A1", Cents: 100, At: dlStart}))
		}
	}
	applied, refused, err := r.t.ApplyDownlinkBatch(frame)
	if err != nil || applied != 61 || len(refused) != 30 {
		t.Fatalf("apply = %d, %d refused, %v; want 61, 30", applied, len(refused), err)
	}
	if bal, _ := r.t.Balance("A1"); bal != 3000 {
		t.Fatalf("balance %s, want 30.00", bal)
	}
	if evs, _ := r.store.RecentAudit(100, func(ev AuditEvent) bool { return ev.Kind == "downlink_refused" }); len(evs) != 30 {
		t.Fatalf("%d refusals audited, want 30", len(evs))
	}
}

// TestDownlinkFrameOnFullDiskAppliesNothing fills the store's file system (a tiny tmpfs) and
// applies a frame: the commit fails with ENOSPC, and none of the frame is applied, not its
// first items either; with space back, the same frame applies whole. Needs root to mount.
func TestDownlinkFrameOnFullDiskAppliesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	r := newDLRig(t)
	r.store.Close()
	r.dir = filepath.Join(mnt, "data")
	r.open(t)
	r.apply(t, 1, DownInmate, Inmate{ID: "A1", Name: "Ana", Badges: []string{"B1"}, PINHash: dlHash(t), Language: "en", Status: StatusActive, Messaging: true})
	frame := []DownlinkItem{dlItem(t, 2, DownDeposit, Deposit{Ref: "dep-1", InmateID: "A1", Cents: 1000, At: dlStart})}
	for seq := uint64(3); seq < 103; seq++ {
		frame = append(frame, dlItem(t, seq, DownInboundMessage, Message{ID: fmt.Sprintf("0192aaaa-0000-7000-8000-%012d", seq),
			InmateID: "A1", Peer: "c-1", PeerName: "Mom", Body: benchBody, CreatedAt: dlStart}))
	}
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	events := r.changed()
	_, _, err := r.t.ApplyDownlinkBatch(frame)
	if KindOf(err) != KindTransient || !Retryable(err) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("frame on a full disk = %v (kind %v), want KindTransient wrapping ENOSPC", err, KindOf(err))
	}
	checkNothing := func(when string) {
		t.Helper()
		if seq, _ := r.t.DownlinkApplied(); seq != 1 {
			t.Fatalf("%s: position %d, want 1", when, seq)
		}
		if bal, _ := r.t.Balance("A1"); bal != 0 {
			t.Fatalf("%s: the frame's deposit was applied (balance %s)", when, bal)
		}
		if in, _ := r.t.Inbox("A1"); len(in) != 0 {
			t.Fatalf("%s: %d of the frame's messages delivered", when, len(in))
		}
	}
	checkNothing("disk full")
	if r.changed() != events {
		t.Fatal("the screens were told of a frame that was not applied")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r.reopen(t)
	checkNothing("reopened")
	if applied, refused, err := r.t.ApplyDownlinkBatch(frame); err != nil || applied != 102 || len(refused) != 0 {
		t.Fatalf("frame with space back = %d, %+v, %v", applied, refused, err)
	}
	if in, _ := r.t.Inbox("A1"); len(in) != 100 {
		t.Fatalf("%d messages delivered, want 100", len(in))
	}
}
