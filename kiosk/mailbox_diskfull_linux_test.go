package kiosk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSendOnFullDiskKeepsTheDraft puts the store on a tiny tmpfs, fills the file system, and
// sends: the write really fails with ENOSPC inside bbolt's commit. Needs root to mount.
func TestSendOnFullDiskKeepsTheDraft(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; TestSendOnClosedStoreKeepsTheDraft covers the path without it")
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
	r := newMBRig(t)
	r.store.Close()
	r.dir = filepath.Join(mnt, "data")
	r.open(t)
	r.addInmate(t, "i1", true)
	c := r.approved(t, "i1", "Ana", "ana@example.com")
	body := strings.Repeat("Querida mamá, 中文 😀\n", 13000/20) // ~12,000 code points, ~20 KB
	if err := r.t.SaveDraft(Draft{InmateID: "i1", Peer: c.ID, Body: body}); err != nil {
		t.Fatal(err)
	}

	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	_, err := r.t.Send("i1", c.ID, "", body)
	if KindOf(err) != KindTransient || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("send on a full disk = %v (kind %v), want KindTransient wrapping ENOSPC", err, KindOf(err))
	}
	checkNothingSent := func(when string) {
		t.Helper()
		if d, ok, err := r.t.Draft("i1"); err != nil || !ok || d.Body != body || d.Peer != c.ID {
			t.Fatalf("%s: draft ok=%v err=%v len=%d; want the text kept", when, ok, err, len(d.Body))
		}
		if sent, _ := r.t.Sent("i1"); len(sent) != 0 {
			t.Fatalf("%s: %d messages in the outbox after a failed send", when, len(sent))
		}
		if q := r.queued(t, ItemMessage); len(q) != 0 {
			t.Fatalf("%s: %d message items queued after a failed send", when, len(q))
		}
	}
	checkNothingSent("disk full")

	// Space comes back: the failed commit left a store that opens intact (OpenStore checks
	// every page), and the same send then goes through, exactly once.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r.reopen(t)
	checkNothingSent("reopened")
	r.login(t, "i1")
	m, err := r.t.Send("i1", c.ID, "", body)
	if err != nil {
		t.Fatalf("send after freeing space: %v", err)
	}
	r.reopen(t)
	sent, _ := r.t.Sent("i1")
	if len(sent) != 1 || sent[0].ID != m.ID || sent[0].Body != body || len(r.queued(t, ItemMessage)) != 1 {
		t.Fatalf("after retry outbox = %d messages, queue = %d", len(sent), len(r.queued(t, ItemMessage)))
	}
	if _, ok, _ := r.t.Draft("i1"); ok {
		t.Fatal("draft kept after the message was sent")
	}
}

// fillDisk writes to path until the file system says it is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return
		}
	}
}
