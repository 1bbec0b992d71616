package kiosk

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// mbLastTxID is the id of the store's last committed write: unchanged means nothing was written.
func mbLastTxID(tb testing.TB, s *Store) int {
	tb.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		tb.Fatal(err)
	}
	return id
}

func TestDraftSurvivesRestartAndIsCheapToResave(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	if _, ok, err := r.t.Draft("i1"); ok || err != nil {
		t.Fatalf("draft before any = %v, %v", ok, err)
	}
	// A draft holds whatever was typed: over the limit, control characters, no recipient yet.
	typed := strings.Repeat("ß", 13500) + "\a\r\x1b"
	d := Draft{InmateID: "i1", Subject: "tab\there", Body: typed}
	if err := r.t.SaveDraft(d); err != nil {
		t.Fatalf("save: %v", err)
	}
	before := mbLastTxID(t, r.store)
	r.clock.Advance(3 * time.Second)
	for i := 0; i < 5; i++ {
		if err := r.t.SaveDraft(d); err != nil {
			t.Fatal(err)
		}
	}
	if after := mbLastTxID(t, r.store); after != before {
		t.Fatalf("saving an unchanged draft wrote %d transactions", after-before)
	}
	// The session times out; the terminal restarts; the draft is there at the next login.
	r.reopen(t)
	got, ok, err := r.t.Draft("i1")
	if err != nil || !ok || got.Body != typed || got.Subject != "tab\there" || !got.UpdatedAt.Equal(mbStart) {
		t.Fatalf("after reopen draft ok=%v err=%v subject=%q body len %d updated %v", ok, err, got.Subject, len(got.Body), got.UpdatedAt)
	}
	// A change is written, with its time.
	r.clock.Advance(time.Minute)
	d.Body += "!"
	if err := r.t.SaveDraft(d); err != nil {
		t.Fatal(err)
	}
	got, _, _ = r.t.Draft("i1")
	if got.Body != d.Body || !got.UpdatedAt.Equal(mbStart.Add(time.Minute+3*time.Second)) {
		t.Fatalf("changed draft = %d bytes at %v", len(got.Body), got.UpdatedAt)
	}
	// Discarding removes it; another inmate's draft is separate.
	r.addInmate(t, "i2", true)
	r.t.SaveDraft(Draft{InmateID: "i2", Body: "mine"})
	if err := r.t.DiscardDraft("i1", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.t.Draft("i1"); ok {
		t.Fatal("draft still there after discard")
	}
	if g, ok, _ := r.t.Draft("i2"); !ok || g.Body != "mine" {
		t.Fatalf("other inmate's draft = %+v", g)
	}
	wantKind(t, r.t.SaveDraft(Draft{InmateID: "ghost", Body: "x"}), KindNotFound)
	wantKind(t, r.t.SaveDraft(Draft{Body: "x"}), KindInvalid)
}

func TestDraftIsCappedWithoutSplittingCharacters(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	// A stuck key: a megabyte of three-byte characters, plus bytes that are not text.
	stuck := "\xff" + strings.Repeat("中", 1<<20/3)
	if err := r.t.SaveDraft(Draft{InmateID: "i1", Body: stuck}); err != nil {
		t.Fatal(err)
	}
	got, _, _ := r.t.Draft("i1")
	if len(got.Body) > maxDraftBodyBytes || len(got.Body) < maxDraftBodyBytes-3 || !utf8.ValidString(got.Body) {
		t.Fatalf("capped draft is %d bytes (cap %d), valid=%v", len(got.Body), maxDraftBodyBytes, utf8.ValidString(got.Body))
	}
	if !strings.HasPrefix(got.Body, "\uFFFD中中") {
		t.Fatalf("capped draft starts %q", got.Body[:12])
	}
	// The same stuck text again is recognised as unchanged.
	before := mbLastTxID(t, r.store)
	if err := r.t.SaveDraft(Draft{InmateID: "i1", Body: stuck}); err != nil {
		t.Fatal(err)
	}
	if mbLastTxID(t, r.store) != before {
		t.Fatal("resaving the capped draft wrote again")
	}
}

// TestDraftsOnePerRecipient: a letter begun to one recipient is never written over by a letter
// to another; each comes back by its recipient and in the list, newest first; sending one
// clears only it; a draft stored the old way (one per inmate) is still found and replaced.
func TestDraftsOnePerRecipient(t *testing.T) {
	r := newMBRig(t)
	r.addInmate(t, "i1", true)
	ana := r.approved(t, "i1", "Ana", "ana@example.com")
	save := func(peer, body string) {
		t.Helper()
		if err := r.t.SaveDraft(Draft{InmateID: "i1", Peer: peer, Body: body}); err != nil {
			t.Fatal(err)
		}
		r.clock.Advance(time.Second)
	}
	save(ana.ID, "Dear Ana")
	save("dept-medical", "My knee")
	ds, err := r.t.Drafts("i1")
	if err != nil || len(ds) != 2 || ds[0].Body != "My knee" || ds[1].Body != "Dear Ana" {
		t.Fatalf("drafts = %+v, %v", ds, err)
	}
	if d, ok, _ := r.t.DraftTo("i1", ana.ID); !ok || d.Body != "Dear Ana" {
		t.Fatalf("draft to Ana = %+v, %v", d, ok)
	}
	r.login(t, "i1")
	if _, err := r.t.Send("i1", "dept-medical", "", "My knee hurts"); err != nil {
		t.Fatal(err)
	}
	if ds, _ := r.t.Drafts("i1"); len(ds) != 1 || ds[0].Peer != ana.ID {
		t.Fatalf("after sending to Medical the drafts are %+v", ds)
	}
	if err := r.t.DiscardDraft("i1", ana.ID); err != nil {
		t.Fatal(err)
	}
	if ds, _ := r.t.Drafts("i1"); len(ds) != 0 {
		t.Fatalf("after discarding: %+v", ds)
	}

	// A draft stored by an older version, under the inmate id alone.
	old := Draft{InmateID: "i1", Peer: ana.ID, Body: "old letter", UpdatedAt: mbStart}
	if err := r.store.update("test", func(tx *bolt.Tx) error { return putJSON(tx, bDrafts, "i1", old) }); err != nil {
		t.Fatal(err)
	}
	if d, ok, _ := r.t.DraftTo("i1", ana.ID); !ok || d.Body != "old letter" {
		t.Fatalf("old draft not found by its recipient: %+v", d)
	}
	save(ana.ID, "old letter, continued")
	if ds, _ := r.t.Drafts("i1"); len(ds) != 1 || ds[0].Body != "old letter, continued" {
		t.Fatalf("after saving over an old draft: %+v", ds)
	}
}
