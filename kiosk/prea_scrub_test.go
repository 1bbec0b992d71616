package kiosk

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// fileHolds reports whether any file in dir (the store, and any temp file beside it) holds
// needle anywhere in its raw bytes, free pages included.
func fileHolds(t *testing.T, dir, needle string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(needle)) {
			return true
		}
	}
	return false
}

func scrubPending(t *testing.T, s *Store) bool {
	t.Helper()
	var pending bool
	s.view(func(tx *bolt.Tx) error {
		pending = tx.Bucket([]byte(bMeta)).Get([]byte(kScrubPending)) != nil
		return nil
	})
	return pending
}

// TestPREATextLeavesTheFileOnAck: the running terminal scrubs the file when the relay
// acknowledges a report, while billing and screens go on using the store.
func TestPREATextLeavesTheFileOnAck(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	const marker = "MARKER-7f3a9c-officer-in-block-D"
	// A draft of the report first: it is deleted at send, so its text is in freed pages too.
	if err := r.t.SaveDraft(Draft{InmateID: "i1", Peer: PREAChannel, Body: "draft " + marker}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.SendPREA("i1", marker); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.SendPREA("", "anonymous "+marker); err != nil {
		t.Fatal(err)
	}
	if !fileHolds(t, r.dir, marker) {
		t.Fatal("the marker is not in the file before the ack: this test would prove nothing")
	}
	items := r.queued(t, ItemPREA)
	// Other work goes on during the scrub.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.t.SaveDraft(Draft{InmateID: "i1", Peer: "dept-medical", Body: fmt.Sprint("note ", i)}); err != nil {
				t.Errorf("save draft during scrub: %v", err)
				return
			}
			if _, err := r.t.Balance("i1"); err != nil {
				t.Errorf("balance during scrub: %v", err)
				return
			}
		}
	}()
	n, err := r.t.MarkForwarded(items[len(items)-1].Seq)
	close(stop)
	wg.Wait()
	if err != nil || n < 2 {
		t.Fatalf("ack = %d, %v", n, err)
	}
	if fileHolds(t, r.dir, marker) {
		t.Fatal("the acknowledged report's text is still in the bytes of the store file")
	}
	if scrubPending(t, r.store) {
		t.Fatal("scrub still pending after it ran")
	}
	sent, _ := r.t.Sent("i1")
	if len(sent) != 1 || sent[0].State != MsgSent || sent[0].Body != "" {
		t.Fatalf("after ack Sent = %+v", sent)
	}
	// The store goes on: the file swapped under the terminal holds everything and verifies.
	if _, err := r.t.SendPREA("i1", "second report"); err != nil {
		t.Fatal(err)
	}
	r.reopen(t)
	if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify after scrub: %+v %v", rep, err)
	}
	if bal, _ := r.t.Balance("i1"); bal != 10000 {
		t.Fatalf("balance after scrub = %s", bal)
	}
	if d, ok, _ := r.t.Draft("i1"); !ok || d.Peer != "dept-medical" {
		t.Fatalf("draft saved during the scrub = %+v %v", d, ok)
	}
}

// TestAnonymousPREARefusedLeavesTheFile: a refused anonymous report has nobody to show its text
// to; it is erased and scrubbed. A named one is kept for its author to see.
func TestAnonymousPREARefusedLeavesTheFile(t *testing.T) {
	r := newMBRig(t)
	const marker = "MARKER-anon-51d2"
	if _, err := r.t.SendPREA("", marker); err != nil {
		t.Fatal(err)
	}
	it := r.queued(t, ItemPREA)[0]
	if err := r.t.MarkRefused(it.Seq, "malformed report"); err != nil {
		t.Fatal(err)
	}
	if fileHolds(t, r.dir, marker) {
		t.Fatal("the refused anonymous report's text is still in the bytes of the store file")
	}
}

// TestScrubCutShortRunsAtNextOpen: an ack whose scrub never ran (the process died, or the ack
// came through Store.Ack) leaves the request in the store; the next open does the scrub,
// undisturbed by the temp file of a rewrite cut short.
func TestScrubCutShortRunsAtNextOpen(t *testing.T) {
	r := newMBRig(t)
	const marker = "MARKER-crash-0b77"
	if _, err := r.t.SendPREA("", marker); err != nil {
		t.Fatal(err)
	}
	it := r.queued(t, ItemPREA)[0]
	if _, err := r.store.Ack(r.clock.Now(), it.Seq); err != nil {
		t.Fatal(err)
	}
	if !scrubPending(t, r.store) || !fileHolds(t, r.dir, marker) {
		t.Fatal("after an ack without scrub, expected the request set and the text in free pages")
	}
	r.store.Close()
	junk := filepath.Join(r.dir, StoreFile+".compact")
	if err := os.WriteFile(junk, []byte("half a rewrite "+marker), 0o600); err != nil {
		t.Fatal(err)
	}
	r.open(t)
	if fileHolds(t, r.dir, marker) {
		t.Fatal("the text survived the open that should have scrubbed it")
	}
	if scrubPending(t, r.store) {
		t.Fatal("scrub still pending after the open")
	}
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Fatalf("temp file of the rewrite left behind: %v", err)
	}
}

// TestPREAFloodIsBounded: reports waiting for the relay are bounded per inmate and, for
// anonymous ones, in total; the bound frees up as the relay takes them.
func TestPREAFloodIsBounded(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", false)
	r.addInmate(t, "i2", false)
	for i := 0; i < MaxPREAWaiting; i++ {
		if _, err := r.t.SendPREA("i1", fmt.Sprint("report ", i)); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	_, err := r.t.SendPREA("i1", "one too many")
	if KindOf(err) != KindRefused || ReasonOf(err) != ReasonPREABacklog {
		t.Fatalf("report %d: %v, want refused with %s", MaxPREAWaiting+1, err, ReasonPREABacklog)
	}
	// Another inmate is not held back by i1's reports.
	if _, err := r.t.SendPREA("i2", "mine"); err != nil {
		t.Fatalf("i2's report: %v", err)
	}
	for i := 0; i < MaxAnonPREAWaiting; i++ {
		if _, err := r.t.SendPREA("", fmt.Sprint("anonymous ", i)); err != nil {
			t.Fatalf("anonymous report %d: %v", i, err)
		}
	}
	if _, err := r.t.SendPREA("", "anonymous, one too many"); ReasonOf(err) != ReasonPREABacklog {
		t.Fatalf("anonymous report %d: %v, want %s", MaxAnonPREAWaiting+1, err, ReasonPREABacklog)
	}
	// The count survives a restart.
	r.reopen(t)
	if _, err := r.t.SendPREA("i1", "still too many"); ReasonOf(err) != ReasonPREABacklog {
		t.Fatalf("after reopen: %v, want %s", err, ReasonPREABacklog)
	}
	// One refused and one acknowledged: room for two more, not three.
	items := r.queued(t, ItemPREA)
	if err := r.t.MarkRefused(items[0].Seq, "malformed"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.MarkForwarded(items[1].Seq); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := r.t.SendPREA("i1", fmt.Sprint("after ack ", i)); err != nil {
			t.Fatalf("report after the relay took two: %v", err)
		}
	}
	if _, err := r.t.SendPREA("i1", "too many again"); ReasonOf(err) != ReasonPREABacklog {
		t.Fatalf("third report after two freed: %v", err)
	}
	// Everything taken: the counters are gone, and the anonymous bound is free again.
	all := r.queued(t, ItemPREA)
	if _, err := r.t.MarkForwarded(all[len(all)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.SendPREA("", "anonymous after ack"); err != nil {
		t.Fatal(err)
	}
	r.store.view(func(tx *bolt.Tx) error {
		if n := readCount(tx, preaWaitingKey("i1")); n != 0 {
			t.Errorf("i1 has %d reports counted as waiting after all were acknowledged", n)
		}
		if n := readCount(tx, preaWaitingKey("")); n != 1 {
			t.Errorf("anonymous reports counted as waiting = %d, want 1", n)
		}
		return nil
	})
}

// TestReissueLeavesNoTraceInTheFile: after a reissue the raw bytes of the store (and anything
// beside it) hold none of the last inmate's letters, draft or contacts, not even in free pages.
func TestReissueLeavesNoTraceInTheFile(t *testing.T) {
	r := newMBRig(t)
	const id = "A-5120"
	busyInmate(t, r, id)
	secrets := []string{"see you Sunday", "love, Rosa", "half a thought", "rosa@example.org"}
	for _, s := range secrets {
		if !fileHolds(t, r.dir, s) {
			t.Fatalf("%q is not in the file before the reissue: this test would prove nothing", s)
		}
	}
	if _, err := r.store.Ack(r.clock.Now(), 1<<62); err != nil {
		t.Fatal(err)
	}
	if _, err := r.t.Reissue("kioskctl:test"); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if fileHolds(t, r.dir, s) {
			t.Errorf("%q is still in the bytes of the store after the reissue", s)
		}
	}
	if scrubPending(t, r.store) {
		t.Fatal("scrub still pending after the reissue")
	}
	// The store goes on after the file was swapped under it.
	r.reopen(t)
	if rep, err := r.t.Verify("test"); err != nil || !rep.OK {
		t.Fatalf("verify after reissue: %+v %v", rep, err)
	}
}
