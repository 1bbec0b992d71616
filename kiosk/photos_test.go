package kiosk

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
)

// photoRig is a tablet bound to i1 with a real content store beside its terminal store, and
// letters whose photos are retained as sync retains them (pinned, under the letter).
type photoRig struct {
	*mbRig
	media   *content.Store
	contact Contact
}

func newPhotoRig(t *testing.T) *photoRig {
	t.Helper()
	r := &photoRig{mbRig: newMBRig(t)}
	r.addInmate(t, "i1", true)
	r.addInmate(t, "i2", true)
	r.contact = r.approved(t, "i1", "Ana", "ana@example.com")
	if err := r.t.Logout(); err != nil {
		t.Fatal(err)
	}
	in, err := r.t.Inmate("i1")
	if err != nil {
		t.Fatal(err)
	}
	if in.PINHash, err = HashPINWith(mbPIN, TestPINParams()); err != nil {
		t.Fatal(err)
	}
	in.TabletBound = true
	if err := r.t.UpsertInmate(in, "relay"); err != nil {
		t.Fatal(err)
	}
	if err := r.t.BindTablet("i1"); err != nil {
		t.Fatal(err)
	}
	media, err := content.Open(filepath.Join(t.TempDir(), content.File), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { media.Close() })
	r.media = media
	return r
}

// photo stores an object of n bytes of b in the content store and names it as a photo.
func (r *photoRig) photo(t *testing.T, b byte, n int) Photo {
	t.Helper()
	m, err := r.media.Put(bytes.NewReader(bytes.Repeat([]byte{b}, n)))
	if err != nil {
		t.Fatal(err)
	}
	ref := m.Ref()
	return Photo{SHA256: ref.Object.String(), Manifest: ref.Manifest.String(), Size: ref.Size, Type: vocab.PhotoJPEG}
}

// deliver retains a letter's photos as sync does on a tablet, then stores the letter.
func (r *photoRig) deliver(t *testing.T, id string, at time.Time, photos ...Photo) bool {
	t.Helper()
	for _, p := range photos {
		ref, err := content.ParseRef(p.SHA256, p.Manifest, p.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.media.Retain(ref, vocab.PhotoHolder(id), true); err != nil {
			t.Fatal(err)
		}
	}
	ok, err := r.t.DeliverInbound(Message{ID: id, InmateID: "i1", Peer: r.contact.ID, PeerName: "Ana",
		Body: "photos of the kids", Photos: photos, CreatedAt: at})
	if err != nil {
		t.Fatalf("deliver %s: %v", id, err)
	}
	return ok
}

func (r *photoRig) loginBound(t *testing.T) {
	t.Helper()
	p, err := r.t.EnterBoundPIN(mbPIN)
	if err != nil {
		t.Fatalf("tablet PIN: %v", err)
	}
	if _, err := r.t.AcceptNotice(p); err != nil {
		t.Fatal(err)
	}
}

func (r *photoRig) state(t *testing.T, p Photo) content.State {
	t.Helper()
	h, err := content.ParseHash(p.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.media.State(h)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func inboxIDs(t *testing.T, term *Terminal, inmate string) []string {
	t.Helper()
	in, err := term.Inbox(inmate)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range in {
		ids = append(ids, m.ID)
	}
	return ids
}

// On a tablet the person deletes one photo of a letter (the letter stays and says so; the bytes
// go unless another letter holds them), then the whole letter with its photos; the relay
// sending the letter again brings nothing back, and a restart keeps all of it.
func TestTabletDeletesPhotoAndLetter(t *testing.T) {
	r := newPhotoRig(t)
	kids, dog := r.photo(t, 1, 300_000), r.photo(t, 2, 1000)
	r.deliver(t, "L1", mbStart, kids, dog)
	r.deliver(t, "L2", mbStart, dog) // the same photo in another letter: one copy, two holders

	if err := r.t.DeletePhoto("i1", "L1", kids.SHA256); KindOf(err) != KindRefused {
		t.Fatalf("delete without a session = %v; want refused", err)
	}
	r.loginBound(t)
	if err := r.t.DeletePhoto("i1", "L1", dog.SHA256[:10]+"x"); KindOf(err) != KindNotFound {
		t.Fatalf("delete a photo the letter lacks = %v; want not found", err)
	}
	if err := r.t.DeletePhoto("i1", "L1", kids.SHA256); err != nil {
		t.Fatalf("delete photo: %v", err)
	}
	if err := r.t.DeletePhoto("i1", "L1", kids.SHA256); err != nil {
		t.Fatalf("delete the photo again: %v", err)
	}
	gone, err := r.t.PhotosGone("L1")
	if err != nil || len(gone) != 1 || gone[kids.SHA256] != PhotoDeleted {
		t.Fatalf("photos gone of L1 = %v, %v; want the kids' photo deleted", gone, err)
	}
	if n, err := r.t.ReleaseGonePhotos(r.media); err != nil || n != 1 {
		t.Fatalf("release = %d, %v; want 1", n, err)
	}
	if st := r.state(t, kids); st != content.Absent {
		t.Fatalf("the deleted photo is %s in the content store; want absent", st)
	}
	if ids := inboxIDs(t, r.t, "i1"); !slices.Contains(ids, "L1") {
		t.Fatalf("inbox %v lost the letter whose photo was deleted", ids)
	}

	if err := r.t.DeleteLetter("i1", "L1"); err != nil {
		t.Fatalf("delete letter: %v", err)
	}
	if ids := inboxIDs(t, r.t, "i1"); !slices.Equal(ids, []string{"L2"}) {
		t.Fatalf("inbox after deleting L1 = %v; want [L2]", ids)
	}
	gone, _ = r.t.PhotosGone("L1")
	if gone[kids.SHA256] != PhotoDeleted || gone[dog.SHA256] != PhotoDeleted {
		t.Fatalf("photos gone of the deleted letter = %v; want both", gone)
	}
	if _, err := r.t.ReleaseGonePhotos(r.media); err != nil {
		t.Fatal(err)
	}
	if st := r.state(t, dog); st != content.Whole {
		t.Fatalf("the photo L2 still carries is %s; want whole", st)
	}
	if h, _, _ := r.media.Holders(mustHash(t, dog.SHA256)); !slices.Equal(h, []string{vocab.PhotoHolder("L2")}) {
		t.Fatalf("holders of the shared photo = %v; want only L2's", h)
	}

	// The relay sends L1 again (its acknowledgement was lost): it stays deleted.
	if r.deliver(t, "L1", mbStart, kids, dog) {
		t.Fatal("a deleted letter sent again was delivered")
	}
	if ids := inboxIDs(t, r.t, "i1"); !slices.Equal(ids, []string{"L2"}) {
		t.Fatalf("inbox after L1 came again = %v; want [L2]", ids)
	}
	// What sync retained again on the way in goes at the next release.
	if _, err := r.t.ReleaseGonePhotos(r.media); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := r.media.Holders(mustHash(t, kids.SHA256)); len(h) != 0 {
		t.Fatalf("the deleted letter's photo is held again by %v", h)
	}

	if err := r.t.DeleteLetter("i1", "L1"); KindOf(err) != KindNotFound {
		t.Fatalf("delete the deleted letter again = %v; want not found", err)
	}
	r.reopen(t)
	if ids := inboxIDs(t, r.t, "i1"); !slices.Equal(ids, []string{"L2"}) {
		t.Fatalf("inbox after a restart = %v; want [L2]", ids)
	}
	if gone, _ := r.t.PhotosGone("L1"); len(gone) != 2 {
		t.Fatalf("photos gone after a restart = %v", gone)
	}
}

// Only the person's own tablet deletes, and only their letters: a shared kiosk keeps every
// letter (its copies of photos last one session anyway), and another inmate's letter is not
// found.
func TestDeletePhotoOnlyOwnTablet(t *testing.T) {
	r := newPhotoRig(t)
	p := r.photo(t, 3, 500)
	r.deliver(t, "L1", mbStart, p)
	if _, err := r.t.DeliverInbound(Message{ID: "O1", InmateID: "i2", Peer: "x", PeerName: "X", Body: "hi",
		Photos: []Photo{p}}); err != nil {
		t.Fatal(err)
	}
	r.loginBound(t)
	if err := r.t.DeletePhoto("i1", "O1", p.SHA256); KindOf(err) != KindNotFound {
		t.Fatalf("delete another inmate's photo = %v; want not found", err)
	}
	if err := r.t.DeleteLetter("i1", "O1"); KindOf(err) != KindNotFound {
		t.Fatalf("delete another inmate's letter = %v; want not found", err)
	}
	if err := r.t.Logout(); err != nil {
		t.Fatal(err)
	}
	if err := r.t.UnbindTablet(); err != nil {
		t.Fatal(err)
	}
	r.login(t, "i1")
	if err := r.t.DeletePhoto("i1", "L1", p.SHA256); KindOf(err) != KindInvalid {
		t.Fatalf("delete a photo on a shared kiosk = %v; want invalid", err)
	}
	if err := r.t.DeleteLetter("i1", "L1"); KindOf(err) != KindInvalid {
		t.Fatalf("delete a letter on a shared kiosk = %v; want invalid", err)
	}
	if gone, _ := r.t.PhotosGone("L1"); len(gone) != 0 {
		t.Fatalf("a kiosk marked photos gone: %v", gone)
	}
}

// The policy's photo_keep_days expires a tablet's photos older than that, at start and then
// daily on the terminal's clock; newer photos, and all of them under 0 days, stay.
func TestTabletExpiresPhotosByPolicy(t *testing.T) {
	r := newPhotoRig(t)
	old, fresh := r.photo(t, 4, 2000), r.photo(t, 5, 2000)
	r.deliver(t, "OLD", mbStart.Add(-31*24*time.Hour), old)
	r.deliver(t, "NEW", mbStart.Add(-29*24*time.Hour), fresh)

	// 0: until the person deletes them.
	if n, err := r.t.ExpirePhotos(); err != nil || n != 0 {
		t.Fatalf("expire under 0 days = %d, %v; want nothing", n, err)
	}
	p := r.t.Policy()
	p.PhotoKeepDays = 30
	if err := r.t.SetPolicy(p, "test"); err != nil {
		t.Fatal(err)
	}

	armed := r.clock.Timers()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.t.KeepPhotos(ctx, r.media, t.Logf) }()
	t.Cleanup(func() { cancel(); <-done })
	r.clock.WaitTimers(armed + 1) // the check at start ran, and the daily one is armed

	if gone, _ := r.t.PhotosGone("OLD"); gone[old.SHA256] != PhotoExpired {
		t.Fatalf("photo of a 31-day-old letter: gone %v; want expired", gone)
	}
	if st := r.state(t, old); st != content.Absent {
		t.Fatalf("expired photo is %s; want absent", st)
	}
	if gone, _ := r.t.PhotosGone("NEW"); len(gone) != 0 || r.state(t, fresh) != content.Whole {
		t.Fatalf("photo of a 29-day-old letter: gone %v, %s; want kept", gone, r.state(t, fresh))
	}

	// A day and an hour later the daily check finds the other one 30 days and an hour old.
	r.clock.Advance(25 * time.Hour)
	r.clock.WaitTimers(armed + 1)
	if gone, _ := r.t.PhotosGone("NEW"); gone[fresh.SHA256] != PhotoExpired {
		t.Fatalf("after a day: gone %v; want expired", gone)
	}
	if st := r.state(t, fresh); st != content.Absent {
		t.Fatalf("expired photo is %s; want absent", st)
	}
	if ids := inboxIDs(t, r.t, "i1"); len(ids) != 2 {
		t.Fatalf("inbox = %v; expiry takes photos, never letters", ids)
	}
}

func mustHash(t *testing.T, s string) content.Hash {
	t.Helper()
	h, err := content.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A tablet's clock that jumps a year ahead (a dead RTC battery, a bad NTP answer) must not
// expire a family's photos: expiry waits until the relay's clock, carried forward on the
// monotonic clock, has reached the date too; after a restart it waits for the relay's next
// word, and then expires what is truly due.
func TestTabletClockJumpExpiresNoPhotoEarly(t *testing.T) {
	r := newPhotoRig(t)
	recent := r.photo(t, 6, 2000)
	r.deliver(t, "RECENT", mbStart.Add(-2*24*time.Hour), recent)
	p := r.t.Policy()
	p.PhotoKeepDays = 30
	if err := r.t.SetPolicy(p, "test"); err != nil {
		t.Fatal(err)
	}
	if off, err := r.t.NoteRelayTime(mbStart.Add(90 * time.Second)); err != nil || off != 90*time.Second {
		t.Fatalf("relay time noted: offset %v, %v; want 1m30s", off, err)
	}

	r.clock.JumpWall(365 * 24 * time.Hour)
	if n, err := r.t.ExpirePhotos(); err != nil || n != 0 {
		t.Fatalf("after the tablet's clock jumped a year: expired %d, %v; want none", n, err)
	}
	if gone, _ := r.t.PhotosGone("RECENT"); len(gone) != 0 {
		t.Fatalf("photos gone after a clock jump: %v", gone)
	}

	// A restart forgets the monotonic reading: the stored relay time holds expiry back.
	r.reopen(t)
	if n, err := r.t.ExpirePhotos(); err != nil || n != 0 {
		t.Fatalf("after a restart with the clock still a year ahead: expired %d, %v; want none", n, err)
	}

	// The relay says a month has truly passed: now the photo is due, and it goes.
	if _, err := r.t.NoteRelayTime(mbStart.Add(29 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := r.t.ExpirePhotos(); err != nil || n != 1 {
		t.Fatalf("a month on by the relay's clock: expired %d, %v; want 1", n, err)
	}
	if gone, _ := r.t.PhotosGone("RECENT"); gone[recent.SHA256] != PhotoExpired {
		t.Fatalf("gone = %v; want the photo expired", gone)
	}
}
