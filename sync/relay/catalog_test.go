package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// testMP3 is n silent MPEG-1 Layer III frames (128 kb/s, 32 kHz, mono, 576 bytes and 36 ms
// each); tag makes two tracks of the same length differ. Mono at 32 kHz is a third of the
// decoding a second of stereo at 44.1 kHz costs, and the relay decodes each track it publishes.
func testMP3(n int, tag byte) []byte {
	frame := make([]byte, testMP3Frame)
	copy(frame, []byte{0xff, 0xfb, 0x98, 0xc0})
	b := bytes.Repeat(frame, n)
	b[len(b)-1] = tag
	return b
}

// testMP3Frame is the size of one of testMP3's frames.
const testMP3Frame = 576

// uploadTrack uploads an MP3 for facility north through the admin API and returns its reference.
func (e *env) uploadTrack(data []byte) vocab.MediaRef {
	e.t.Helper()
	var ref vocab.MediaRef
	e.must(http.StatusCreated, "POST", "/admin/v1/catalog/media?facility_id=north&type=audio/mpeg", data, &ref)
	return ref
}

func (e *env) publish(req CatalogRequest) {
	e.t.Helper()
	e.must(http.StatusCreated, "POST", "/admin/v1/catalog", req, nil)
}

func track(id string, ref vocab.MediaRef, cents kiosk.Cents) vocab.CatalogItem {
	return vocab.CatalogItem{ID: id, Kind: vocab.CatalogTrack, Title: "Song " + id, Artist: "Band", Duration: 1, Audio: &ref, PriceCents: cents}
}

// Staff publish only what they uploaded for the facility and what is what it says it is; the
// terminals hear of each item and each withdrawal; the answer keys stay on the relay.
func TestCatalogPublishedChecked(t *testing.T) {
	e := newEnv(t)
	e.seed()
	k := e.enroll(wire.ModeKiosk, "")
	kc := k.connect(t, 0)

	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 3000)...)
	status, raw := e.call("POST", "/admin/v1/catalog/media?facility_id=north&type=audio/mpeg", png)
	if status != http.StatusBadRequest || !strings.Contains(string(raw), "not an MP3") {
		t.Errorf("a PNG uploaded as a track: %d %s", status, raw)
	}
	if status, raw := e.call("POST", "/admin/v1/catalog/media?facility_id=south&type=audio/mpeg", testMP3(20, 1)); status != http.StatusNotFound {
		t.Errorf("a track for an unknown facility: %d %s", status, raw)
	}
	if status, raw := e.call("POST", "/admin/v1/catalog/media?facility_id=north&type=video/mp4", testMP3(20, 1)); status != http.StatusBadRequest || !strings.Contains(string(raw), `"type"`) {
		t.Errorf("a video: %d %s", status, raw)
	}
	page := "Page one.\nFractions are parts of a whole."
	var text vocab.MediaRef
	e.must(http.StatusCreated, "POST", "/admin/v1/catalog/media?facility_id=north&type="+vocab.MediaText, page, &text)
	var ref struct {
		vocab.MediaRef
		Duration int `json:"duration_s"`
	}
	e.must(http.StatusCreated, "POST", "/admin/v1/catalog/media?facility_id=north&type=audio/mpeg", testMP3(277, 1), &ref)
	if ref.Duration != 10 || ref.Type != vocab.MediaMP3 || ref.Size != 277*testMP3Frame {
		t.Errorf("uploaded track: %+v", ref)
	}

	// An object never uploaded, or uploaded as text, cannot be published as a track.
	ghost := ref.MediaRef
	ghost.SHA256 = strings.Repeat("ab", 32)
	if status, raw := e.call("POST", "/admin/v1/catalog", CatalogRequest{FacilityID: "north", Item: track("t0", ghost, 99)}); status != http.StatusBadRequest || !strings.Contains(string(raw), "was not uploaded") {
		t.Errorf("a track never uploaded: %d %s", status, raw)
	}
	asTrack := text
	asTrack.Type = vocab.MediaMP3
	if status, raw := e.call("POST", "/admin/v1/catalog", CatalogRequest{FacilityID: "north", Item: track("t0", asTrack, 99)}); status != http.StatusBadRequest || !strings.Contains(string(raw), "not audio/mpeg") {
		t.Errorf("a text page published as a track: %d %s", status, raw)
	}
	t1 := track("t1", ref.MediaRef, 129)
	t1.Duration = ref.Duration
	e.publish(CatalogRequest{FacilityID: "north", Item: t1})
	got := kc.waitDown(wire.DownCatalogItem, nil)
	var item vocab.CatalogItem
	if err := json.Unmarshal(got.Body, &item); err != nil || item.ID != "t1" || item.PriceCents != 129 || item.PublishedAt.IsZero() {
		t.Errorf("the kiosk got %s (%v)", got.Body, err)
	}

	lesson := vocab.CatalogItem{ID: "l1", Kind: vocab.CatalogLesson, Title: "Fractions", Pages: []vocab.MediaRef{text}}
	course := vocab.CatalogItem{ID: "c1", Kind: vocab.CatalogCourse, Title: "GED math", Lessons: []string{"l1"},
		Quizzes: []vocab.Quiz{{ID: "q1", PassScore: 1, Questions: []vocab.QuizQuestion{{Text: "1/2 + 1/2?", Choices: []string{"1", "2"}}}}}}
	if status, raw := e.call("POST", "/admin/v1/catalog", CatalogRequest{FacilityID: "north", Item: course, QuizKeys: map[string][]int{"q1": {0}}}); status != http.StatusBadRequest || !strings.Contains(string(raw), "not a published lesson") {
		t.Errorf("a course before its lesson: %d %s", status, raw)
	}
	e.publish(CatalogRequest{FacilityID: "north", Item: lesson})
	if status, raw := e.call("POST", "/admin/v1/catalog", CatalogRequest{FacilityID: "north", Item: course}); status != http.StatusBadRequest || !strings.Contains(string(raw), "no answer key") {
		t.Errorf("a quiz without its key: %d %s", status, raw)
	}
	e.publish(CatalogRequest{FacilityID: "north", Item: course, QuizKeys: map[string][]int{"q1": {0}}})
	cd := kc.waitDown(wire.DownCatalogItem, func(b json.RawMessage) bool { return strings.Contains(string(b), `"c1"`) })
	if strings.Contains(string(cd.Body), "key") || strings.Contains(string(cd.Body), "answer") {
		t.Errorf("the course's downlink body carries its key: %s", cd.Body)
	}
	status, raw = e.call("GET", "/admin/v1/catalog?facility_id=north", nil)
	if status != http.StatusOK || strings.Contains(string(raw), "keys") || !strings.Contains(string(raw), `"l1"`) {
		t.Errorf("list: %d %s", status, raw)
	}

	e.must(http.StatusOK, "DELETE", "/admin/v1/catalog/north/t1", nil, nil)
	kc.waitDown(wire.DownCatalogWithdrawn, func(b json.RawMessage) bool { return strings.Contains(string(b), `"t1"`) })
	if status, _ := e.call("DELETE", "/admin/v1/catalog/north/nothing", nil); status != http.StatusNotFound {
		t.Errorf("withdrawing an unknown item: %d", status)
	}

	// A terminal enrolled later gets the published items in its snapshot, not the withdrawn one.
	k2 := e.enroll(wire.ModeKiosk, "")
	c2 := k2.connect(t, 0)
	c2.waitDown(wire.DownCatalogItem, func(b json.RawMessage) bool { return strings.Contains(string(b), `"c1"`) })
	for _, it := range c2.down {
		if it.Kind == wire.DownCatalogItem && strings.Contains(string(it.Body), `"t1"`) {
			t.Error("a withdrawn item in a new terminal's snapshot")
		}
	}
}

// The relay prices a purchase from its own catalog: an unknown, withdrawn, mispriced, free or
// already owned item is refused with its reason and moves no money; a purchase sent again is
// counted once; only an owner's tablet may fetch a priced track.
func TestPurchaseCheckedByTheRelay(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if _, _, err := e.r.Deposit(DepositRequest{InmateID: "A1", Cents: 1000, Ref: "d1"}); err != nil {
		t.Fatal(err)
	}
	r1, r2 := e.uploadTrack(testMP3(20, 1)), e.uploadTrack(testMP3(20, 2))
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t1", r1, 129)})
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t2", r2, 99)})
	e.publish(CatalogRequest{FacilityID: "north", Item: track("free", r2, 0)})
	e.must(http.StatusOK, "DELETE", "/admin/v1/catalog/north/t2", nil, nil)

	tab := e.enroll(wire.ModeTablet, "A1")
	other := e.enroll(wire.ModeTablet, "A2")
	tc, oc := tab.connect(t, 0), other.connect(t, 0)
	buy := func(id, item string, cents kiosk.Cents) kiosk.Charge {
		return kiosk.Charge{RecordID: vocab.PurchaseRecordID(id), InmateID: "A1", ItemID: item, Cents: cents, At: t0}
	}
	// Before buying, the tablet may not fetch the priced track.
	obj, _ := content.ParseHash(r1.SHA256)
	send(t, tc.c, wire.ContentWant{Object: obj, Manifest: true})
	if f := tc.readContent(); f.ContentMissing == nil || f.ContentMissing.Reason != wire.ContentNotYours {
		t.Fatalf("a priced track before buying it: %+v", f)
	}
	items := []wire.Item{
		tab.item(wire.UpCharge, buy("p0", "t1", 1)),     // mispriced
		tab.item(wire.UpCharge, buy("p2", "nope", 129)), // unknown
		tab.item(wire.UpCharge, buy("p3", "t2", 99)),    // withdrawn
		tab.item(wire.UpCharge, buy("p4", "free", 1)),   // free: owned without a charge
		tab.item(wire.UpCharge, buy("p1", "t1", 129)),   // the purchase
		tab.item(wire.UpCharge, buy("p5", "t1", 129)),   // owned already
		tab.item(wire.UpCredit, kiosk.Credit{RecordID: vocab.PurchaseRecordID("p1"), InmateID: "A1", ItemID: "t1", Cents: 129, Reason: "stall", At: t0}),
	}
	good := items[4]
	ack := tc.batch(items...)
	want := map[uint64]string{1: wire.RefusePurchasePrice, 2: wire.RefusePurchaseUnknown, 3: wire.RefusePurchaseWithdrawn,
		4: wire.RefusePurchasePrice, 6: wire.RefusePurchaseOwned, 7: wire.RefusePurchaseRefund}
	got := map[uint64]string{}
	for _, r := range ack.Rejected {
		got[r.Seq] = r.Reason
	}
	for seq, reason := range want {
		if got[seq] != reason {
			t.Errorf("item %d refused %q, want %q (ack %+v)", seq, got[seq], reason, ack)
		}
	}
	if len(got) != len(want) {
		t.Errorf("refusals %v, want %v", got, want)
	}
	if b := e.balanceOf("A1"); b != 1000-129 {
		t.Errorf("balance %d after one purchase, want %d", b, 1000-129)
	}
	// The same purchase again (a lost ack: a new epoch resends it) is counted once.
	tab.seq = 0
	tab.epoch = strings.Repeat("cd", 16)
	tc.c.CloseNow()
	tc = tab.connect(t, 0)
	if ack := tc.batch(wire.Item{Seq: 1, ID: good.ID, Kind: good.Kind, CreatedAt: good.CreatedAt, Body: good.Body}); len(ack.Rejected) != 0 {
		t.Errorf("the purchase resent: %+v", ack)
	}
	if b := e.balanceOf("A1"); b != 1000-129 {
		t.Errorf("balance %d after the purchase resent, want %d", b, 1000-129)
	}
	// Now the owner's tablet may fetch it; another inmate's may not.
	send(t, tc.c, wire.ContentWant{Object: obj, Manifest: true})
	if f := tc.readContent(); f.ContentManifest == nil {
		t.Errorf("the owner's tablet asking for its track: %+v", f)
	}
	send(t, oc.c, wire.ContentWant{Object: obj, Manifest: true})
	if f := oc.readContent(); f.ContentMissing == nil || f.ContentMissing.Reason != wire.ContentNotYours {
		t.Errorf("another inmate's tablet asking for the track: %+v", f)
	}
}

// A passed quiz earns the policy's credit once, graded against the relay's key; a failed one,
// a second pass and an unknown quiz earn nothing.
func TestQuizGradedByTheRelay(t *testing.T) {
	e := newEnv(t)
	e.seed()
	p, _ := e.r.Policy("north")
	p.QuizCreditCents = 50
	if err := e.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
	var text vocab.MediaRef
	e.must(http.StatusCreated, "POST", "/admin/v1/catalog/media?facility_id=north&type=text/plain", "Lesson one.", &text)
	e.publish(CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "l1", Kind: vocab.CatalogLesson, Title: "L", Pages: []vocab.MediaRef{text}}})
	qs := []vocab.QuizQuestion{{Text: "a?", Choices: []string{"x", "y"}}, {Text: "b?", Choices: []string{"x", "y", "z"}}}
	e.publish(CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "c1", Kind: vocab.CatalogCourse, Title: "C", Lessons: []string{"l1"},
		Quizzes: []vocab.Quiz{{ID: "q1", PassScore: 2, Questions: qs}}}, QuizKeys: map[string][]int{"q1": {1, 2}}})
	k := e.enroll(wire.ModeKiosk, "")
	kc := k.connect(t, 0)
	attempt := func(id, quiz string, answers ...int) wire.Item {
		return k.item(wire.UpQuizAttempt, vocab.QuizAttempt{ID: id, InmateID: "A1", CourseID: "c1", QuizID: quiz, Answers: answers, At: t0})
	}
	ack := kc.batch(attempt("a1", "q1", 1, 0), attempt("a2", "q9", 1, 2), attempt("a3", "q1", 1, 2), attempt("a4", "q1", 1, 2))
	if len(ack.Rejected) != 1 || ack.Rejected[0].Seq != 2 || ack.Rejected[0].Reason != wire.RefuseQuizUnknown {
		t.Errorf("ack %+v", ack)
	}
	if b := e.balanceOf("A1"); b != 50 {
		t.Errorf("balance %d after a fail and two passes, want one credit of 50", b)
	}
	cr := kc.waitDown(wire.DownRemoteCredit, nil)
	var c vocab.Credit
	if err := json.Unmarshal(cr.Body, &c); err != nil || c.RecordID != vocab.QuizRecordID("c1", "q1") || c.Cents != 50 || c.Reason != vocab.CreditQuizPassed {
		t.Errorf("the credit on the downlink: %s", cr.Body)
	}
	// No one finds the key by trying: after MaxQuizAttempts, even the right answers earn nothing.
	var tries []wire.Item
	for i := range vocab.MaxQuizAttempts {
		tries = append(tries, k.item(wire.UpQuizAttempt, vocab.QuizAttempt{ID: fmt.Sprintf("b%d", i), InmateID: "A2", CourseID: "c1", QuizID: "q1", Answers: []int{0, i % 3}, At: t0}))
	}
	tries = append(tries, k.item(wire.UpQuizAttempt, vocab.QuizAttempt{ID: "b-right", InmateID: "A2", CourseID: "c1", QuizID: "q1", Answers: []int{1, 2}, At: t0}))
	if ack := kc.batch(tries...); len(ack.Rejected) != 0 {
		t.Errorf("ack %+v", ack)
	}
	if b := e.balanceOf("A2"); b != 0 {
		t.Errorf("A2 earned %d cents after %d wrong attempts", b, vocab.MaxQuizAttempts)
	}
	if rep, err := e.r.Verify(); err != nil || !rep.OK {
		t.Errorf("verify: %+v %v", rep.Problems, err)
	}
}

// A store of schema 7 (no library) opens as schema 8, and the catalog works after it.
func TestCatalogSchema7Migrates(t *testing.T) {
	bboltOnly(t)
	e := newEnv(t)
	e.seed()
	e.close()
	db, err := boltkv.Open(filepath.Join(e.dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(context.Background(), func(tx kv.Tx) error {
		for _, b := range []string{bCatalog, bOwned} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bMeta)).Put([]byte(kSchema), u64(7))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t1", e.uploadTrack(testMP3(20, 1)), 129)})
	var version uint64
	_ = e.r.db.View(context.Background(), func(tx kv.Tx) error { version = readU64(tx.Bucket([]byte(bMeta)).Get([]byte(kSchema))); return nil })
	if version != schemaVersion {
		t.Fatalf("schema %d after open, want %d", version, schemaVersion)
	}
}

func FuzzDecodeCatalog(f *testing.F) {
	f.Add([]byte(`{"facility_id":"north","item":{"id":"t1","kind":"track","title":"T","artist":"A","duration_s":3,"price_cents":129,` +
		`"audio":{"sha256":"` + strings.Repeat("ab", 32) + `","manifest":"` + strings.Repeat("cd", 32) + `","size":4000,"type":"audio/mpeg"}}}`))
	f.Add([]byte(`{"facility_id":"north","item":{"id":"c1","kind":"course","title":"C","lessons":["l1"],"quizzes":[{"id":"q1","pass_score":1,` +
		`"questions":[{"text":"?","choices":["a","b"]}]}]},"quiz_keys":{"q1":[1]}}`))
	f.Add([]byte(`{"item":{"price_cents":1e99}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cr, err := decodeCatalog(b)
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		if vocab.ValidateCatalogItem(cr.Item) == nil {
			if cr.Item.PriceCents < 0 || cr.Item.PriceCents > vocab.MaxItemPrice {
				t.Fatalf("accepted price %d", cr.Item.PriceCents)
			}
			for id, key := range cr.QuizKeys {
				if q, ok := cr.Item.FindQuiz(id); ok && vocab.ValidateQuizKey(q, key) == nil && vocab.GradeQuiz(key, key) != len(q.Questions) {
					t.Fatalf("a key does not pass its own quiz")
				}
			}
		}
	})
}

// The spool of an upload a crash cut short does not stay in the data directory.
func TestUploadSpoolSweptAtOpen(t *testing.T) {
	e := newEnv(t)
	e.close()
	left := filepath.Join(e.dir, "upload-123")
	if err := os.WriteFile(left, make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	e.open()
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("the spool of an upload cut short is still there: %v", err)
	}
}

// An item published free and then priced is no longer open to every tablet: the facility's
// claim on its media goes, unless another free item shows the same media.
func TestRepricedItemClosesItsFreeMedia(t *testing.T) {
	e := newEnv(t)
	e.seed()
	r1, r2 := e.uploadTrack(testMP3(20, 1)), e.uploadTrack(testMP3(20, 2))
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t1", r1, 0)})
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t2", r2, 0)})
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t2-again", r2, 0)})
	s, err := e.r.contentStore()
	if err != nil {
		t.Fatal(err)
	}
	open := func(ref vocab.MediaRef) bool {
		t.Helper()
		obj, err := content.ParseHash(ref.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		hs, _, err := s.Holders(obj)
		if err != nil {
			t.Fatal(err)
		}
		return containsHolder(hs, facilityHolder("north"))
	}
	if !open(r1) || !open(r2) {
		t.Fatal("free tracks are not open to the facility's tablets")
	}
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t1", r1, 129)})
	e.publish(CatalogRequest{FacilityID: "north", Item: track("t2", r2, 99)})
	if open(r1) {
		t.Error("t1, priced now, is still open to every tablet")
	}
	if !open(r2) {
		t.Error("t2's media closed although t2-again still shows it free")
	}
}

// A free item withdrawn is its owners' only: a tablet that fetched it while it was free keeps
// fetching it (a fetch cut short, a replaced tablet), another inmate's tablet is refused, the
// facility's kiosks still serve its owners, and media another free item still shows stay open.
func TestWithdrawnFreeItemClosesToNonOwners(t *testing.T) {
	e := newEnv(t)
	e.seed()
	r1, r2 := e.uploadTrack(testMP3(20, 1)), e.uploadTrack(testMP3(20, 2))
	e.publish(CatalogRequest{FacilityID: "north", Item: track("f1", r1, 0)})
	e.publish(CatalogRequest{FacilityID: "north", Item: track("f2", r2, 0)})
	e.publish(CatalogRequest{FacilityID: "north", Item: track("f2-again", r2, 0)})
	owner, other, k := e.enroll(wire.ModeTablet, "A1"), e.enroll(wire.ModeTablet, "A2"), e.enroll(wire.ModeKiosk, "")
	oc, xc, kc := owner.connect(t, 0), other.connect(t, 0), k.connect(t, 0)
	obj1, _ := content.ParseHash(r1.SHA256)
	obj2, _ := content.ParseHash(r2.SHA256)
	ask := func(c *tconn, obj content.Hash) string {
		t.Helper()
		send(t, c.c, wire.ContentWant{Object: obj, Manifest: true, Chunks: []uint32{0}})
		f := c.readContent()
		switch {
		case f.ContentMissing != nil:
			return f.ContentMissing.Reason
		case f.ContentManifest != nil:
			// The chunk asked for follows the manifest.
			if ch := c.readContent(); ch.Chunk == nil {
				t.Fatalf("no chunk after the manifest: %+v", ch)
			}
			return "served"
		}
		t.Fatalf("answer %+v", f)
		return ""
	}
	if got := ask(oc, obj1); got != "served" {
		t.Fatalf("A1's tablet asking for a free track: %s", got)
	}
	e.must(http.StatusOK, "DELETE", "/admin/v1/catalog/north/f1", nil, nil)
	e.must(http.StatusOK, "DELETE", "/admin/v1/catalog/north/f2", nil, nil)
	for _, c := range []struct {
		who  string
		c    *tconn
		obj  content.Hash
		want string
	}{
		{"another inmate's tablet, the withdrawn track", xc, obj1, wire.ContentNotYours},
		{"the tablet that fetched it while free", oc, obj1, "served"},
		{"a kiosk of the facility", kc, obj1, "served"},
		{"another inmate's tablet, media a free item still shows", xc, obj2, "served"},
	} {
		if got := ask(c.c, c.obj); got != c.want {
			t.Errorf("%s: %s, want %s", c.who, got, c.want)
		}
	}
	// Withdrawn again, nothing changes; published again free, it is open again.
	e.must(http.StatusOK, "DELETE", "/admin/v1/catalog/north/f1", nil, nil)
	e.publish(CatalogRequest{FacilityID: "north", Item: track("f1", r1, 0)})
	if got := ask(xc, obj1); got != "served" {
		t.Errorf("published free again, another tablet: %s", got)
	}
}

// The relay decodes a track's whole MP3 before it publishes it, as the terminals' player will:
// frames whose headers pass the upload check but whose audio cannot be decoded, and audio far
// from the declared duration, are refused naming what was wrong; a real track publishes.
func TestPublishDecodesTheTrack(t *testing.T) {
	e := newEnv(t)
	e.seed()
	// Sound headers, noise for bodies: the upload (headers only) takes it.
	r := rand.New(rand.NewSource(1))
	var garbled []byte
	for range 40 {
		f := make([]byte, 417)
		r.Read(f)
		copy(f, []byte{0xff, 0xfb, 0x90, 0x00})
		f[4] = 0
		garbled = append(garbled, f...)
	}
	demo, err := os.ReadFile(filepath.Join("..", "..", "assets", "library", "morning-yard.mp3"))
	if err != nil {
		t.Fatal(err)
	}
	type upload struct {
		vocab.MediaRef
		Duration int `json:"duration_s"`
	}
	var bad, ten, real upload
	e.must(http.StatusCreated, "POST", "/admin/v1/catalog/media?facility_id=north&type=audio/mpeg", garbled, &bad)
	e.must(http.StatusCreated, "POST", "/admin/v1/catalog/media?facility_id=north&type=audio/mpeg", testMP3(277, 1), &ten)
	e.must(http.StatusCreated, "POST", "/admin/v1/catalog/media?facility_id=north&type=audio/mpeg", demo, &real)
	item := func(id string, u upload, secs int) vocab.CatalogItem {
		it := track(id, u.MediaRef, 0)
		it.Duration = secs
		return it
	}
	for _, c := range []struct {
		name string
		it   vocab.CatalogItem
		want string
	}{
		{"undecodable audio", item("bad", bad, bad.Duration), "damaged at"},
		{"a 10 s track declared 184 s", item("short", ten, 184), "it plays 9.97s, but duration_s is 184"},
		{"a 10 s track declared 3 s", item("long", ten, 3), "it plays longer than duration_s 3 allows"},
	} {
		status, raw := e.call("POST", "/admin/v1/catalog", CatalogRequest{FacilityID: "north", Item: c.it})
		if status != http.StatusBadRequest || !strings.Contains(string(raw), c.want) || !strings.Contains(string(raw), "the track's audio") {
			t.Errorf("%s: %d %s, want 400 saying %q", c.name, status, raw, c.want)
		}
	}
	e.publish(CatalogRequest{FacilityID: "north", Item: item("ok", ten, ten.Duration)})
	e.publish(CatalogRequest{FacilityID: "north", Item: item("demo", real, real.Duration)})
	list, err := e.r.Catalog("north")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range list {
		ids = append(ids, l.Item.ID)
	}
	if strings.Join(ids, ",") != "demo,ok" {
		t.Errorf("the catalog holds %v, want the two sound tracks only", ids)
	}
}
