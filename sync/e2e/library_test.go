package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/hardware/audio"
	"github.com/tether-kiosk/tether/internal/testwait"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/client"
	"github.com/tether-kiosk/tether/sync/relay"
	"github.com/tether-kiosk/tether/sync/wire"
)

// mp3 is frames MPEG-1 Layer III frames (128 kb/s, 44.1 kHz, 417 bytes each) whose bodies are
// noise seeded by tag, so a link's compression cannot shrink them and tracks differ.
// mp3 is a playable MP3 of the given number of silent frames, its bytes told apart by tag: a
// track as large as a test needs.
func mp3(frames int, tag byte) []byte {
	rng := rand.New(rand.NewPCG(uint64(tag), 9))
	b := make([]byte, 0, frames*mp3FrameBytes)
	for range frames {
		frame := make([]byte, mp3FrameBytes)
		for i := 4; i < len(frame); i++ {
			frame[i] = byte(rng.UintN(256))
		}
		copy(frame, []byte{0xff, 0xfb, 0xe8, 0xc0})
		// Side information all zero: no granule holds audio bits, so the random main data
		// decodes as silence (the relay decodes every track it publishes) and still makes
		// each object its own.
		clear(frame[4:21])
		b = append(b, frame...)
	}
	return b
}

// mp3FrameBytes is one frame of mp3's: MPEG-1 layer III, 320 kbit/s, 32 kHz, mono. The most
// bytes for the least decoding (each frame is 36 ms of one channel): a test that needs a
// track of some size pays for its bytes, and the relay decodes all of them under -race.
const mp3FrameBytes = 144 * 320000 / 32000

// unbilledSessions prices letters per message, so sessions bill no minutes: only what the
// library moves changes a balance.
func unbilledSessions(t *testing.T, rl *relayEnv, change func(*kiosk.Policy)) {
	t.Helper()
	p, err := rl.r.Policy("north")
	if err != nil {
		t.Fatal(err)
	}
	p.Pricing, p.StampPrice = kiosk.PricingPerMessage, 25
	if change != nil {
		change(&p)
	}
	if err := rl.r.PutPolicy("north", p); err != nil {
		t.Fatal(err)
	}
}

// publishTrack uploads an MP3 and publishes it as a track of facility north.
func publishTrack(t *testing.T, rl *relayEnv, id string, data []byte, cents kiosk.Cents) vocab.CatalogItem {
	t.Helper()
	ref, secs, err := rl.r.PutCatalogMedia(bytes.NewReader(data), "north", vocab.MediaMP3)
	if err != nil {
		t.Fatal(err)
	}
	it, err := rl.r.PublishCatalogItem(relay.CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: id,
		Kind: vocab.CatalogTrack, Title: "Track " + id, Artist: "Tether House Band", Duration: secs, Audio: &ref, PriceCents: cents}})
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func openMedia(t *testing.T, dir string, capBytes int64) *content.Store {
	t.Helper()
	s, err := content.Open(filepath.Join(dir, content.File), content.Options{Cap: capBytes})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitCatalog(t *testing.T, tm *terminal, id string) {
	t.Helper()
	testwait.UntilSaw(t, "catalog item "+id+" on the terminal", func() (bool, string) {
		items, err := tm.term.Catalog()
		for _, it := range items {
			if it.ID == id {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d items, %v", len(items), err)
	})
}

func readAll(t *testing.T, s *content.Store, sha string) []byte {
	t.Helper()
	obj, err := content.ParseHash(sha)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(obj)
	if err != nil {
		t.Fatalf("open %s: %v", sha, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A track bought offline, synced once, and held whole on the tablet after a restart with the
// link down: bought with the relay out of reach (charged at once, within the offline cap),
// sent through a link cut every few kilobytes, so the purchase is resent again and again; the
// relay charges it once; the track arrives across the cuts and is kept pinned as the person's
// own; after a restart with the link down it is still there, whole and an MP3.
func TestTrackBoughtOfflineSyncedOnceHeldOnTabletAfterRestart(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	unbilledSessions(t, rl, nil)
	// 432 KB: two chunks, more than a long connection below carries. Its frames are silent
	// (mp3): the tablet's player decodes every one, as it would music (hardware/audio plays the
	// real demo tracks), at an eighth of the cost of a real track's frames.
	track := mp3(300, 7)
	it := publishTrack(t, rl, "trk-1", track, 129)
	px := startProxy(t, rl.addr())
	tab := openTerminal(t, "", kiosk.StoreOptions{})
	tab.enroll(px.url(), rl.code(wire.ModeTablet, "A1"))
	media := openMedia(t, tab.dir, 0)
	tab.cfg = func(c *client.Config) { c.Content = media; c.BatchItems = 1 }
	tab.start()
	waitCatalog(t, tab, "trk-1")
	testwait.UntilSaw(t, "A1's money on the tablet", func() (bool, string) {
		b, err := tab.term.Balance("A1")
		return b == 50000, fmt.Sprint(b, err)
	})

	// The link goes down; the person buys the track anyway.
	px.setBackend("127.0.0.1:1")
	px.cutAll()
	tab.login("B1", "1234")
	o, err := tab.term.Buy("A1", "trk-1")
	if err != nil {
		t.Fatalf("buying offline: %v", err)
	}
	if b, _ := tab.term.Balance("A1"); b != 50000-129 {
		t.Fatalf("balance on the tablet after buying offline: %d", b)
	}
	// The tablet goes down before the link comes back (the store is committed as after a kill).
	tab.close()
	media.Close()
	tab.reopen(kiosk.StoreOptions{})
	media = openMedia(t, tab.dir, 0)
	tab.start()

	// The link comes back, cut short again and again: no connection carries the track whole.
	const short, long = 3 << 10, 400 << 10
	px.budgets(short, short, short, long) // a long one fits a 256 KiB chunk: none fits the track
	px.setBackend(rl.addr())
	px.cutAll()
	obj, _ := content.ParseHash(it.Audio.SHA256)
	testwait.UntilSaw(t, "the track whole on the tablet and the purchase acknowledged", func() (bool, string) {
		st, _ := media.State(obj)
		n, _, _ := tab.store.QueueStats()
		return st == content.Whole && n == 0, fmt.Sprintf("track %v, %d waiting, %d cuts", st, n, px.cuts.Load())
	})
	if px.cuts.Load() < 5 {
		t.Errorf("only %d link cuts", px.cuts.Load())
	}
	t.Logf("the purchase and a %d-byte track went through %d link cuts", len(track), px.cuts.Load())
	bal, err := rl.r.Balance("A1")
	if err != nil || bal.BalanceCents != 50000-129 {
		t.Fatalf("relay balance %+v (%v), want the track charged once", bal, err)
	}
	u, err := rl.r.Usage("A1")
	if err != nil {
		t.Fatal(err)
	}
	buys := 0
	for _, rec := range u.Records {
		if vocab.IsPurchaseRecord(rec.RecordID) {
			buys++
			if rec.ItemID != "trk-1" || rec.Cents != 129 || rec.RecordID != vocab.PurchaseRecordID(o.PurchaseID) {
				t.Errorf("the purchase on the relay: %+v", rec)
			}
		}
	}
	if buys != 1 {
		t.Fatalf("%d purchases on the relay, want 1", buys)
	}

	// Restart with the link down: everything is on the tablet.
	px.setBackend("127.0.0.1:1")
	px.cutAll()
	tab.close()
	media.Close()
	tab.reopen(kiosk.StoreOptions{})
	media = openMedia(t, tab.dir, 0)
	defer media.Close()
	owned, err := tab.term.Owned("A1")
	if err != nil || len(owned) != 1 || owned[0].Item.ID != "trk-1" {
		t.Fatalf("owned after the restart: %+v %v", owned, err)
	}
	if st, _ := media.State(obj); st != content.Whole {
		t.Fatalf("the track after the restart: %v", st)
	}
	holders, pinned, err := media.Holders(obj)
	if err != nil || len(holders) != 1 || holders[0] != vocab.OwnedHolder(o.PurchaseID) || !pinned {
		t.Fatalf("holders %v pinned %v (%v); want the purchase, pinned", holders, pinned, err)
	}
	got := readAll(t, media, it.Audio.SHA256)
	if !bytes.Equal(got, track) {
		t.Fatal("the track on the tablet differs from the one published")
	}
	if secs, err := vocab.CheckMP3(bytes.NewReader(got)); err != nil || secs != it.Duration {
		t.Fatalf("the track on the tablet: %d s, %v", secs, err)
	}
	// And it plays, with the link still down: the tablet's player (on the silent output, as
	// this machine has no sound card) decodes it, plays two seconds of it and plays to the end.
	clk := clock.NewFake(time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC))
	player := audio.NewPlayer(audio.NewNull(clk, audio.OutputRate), clk)
	defer player.Close()
	if err := player.Load(bytes.NewReader(got)); err != nil {
		t.Fatalf("the tablet cannot play the track it owns: %v", err)
	}
	if err := player.Play(); err != nil {
		t.Fatalf("play: %v", err)
	}
	clk.Advance(2 * time.Second)
	if pos := player.Position(); player.State() != audio.Playing || pos < 1900*time.Millisecond || pos > 2100*time.Millisecond {
		t.Fatalf("after two seconds of play: %v at %v", player.State(), pos)
	}
	clk.Advance(player.Duration())
	testwait.UntilSaw(t, "the track played to its end", func() (bool, string) {
		return player.State() == audio.Ended, player.State().String()
	})
}

// A kiosk's library cache keeps its cap: tracks opened one after another are fetched on
// demand, the least recently used is evicted to make room, and one opened again comes back.
func TestKioskLibraryCacheCapHonoured(t *testing.T) {
	rl := startRelay(t, "")
	rl.seed()
	const capBytes = 700 << 10
	var items []vocab.CatalogItem
	for i := range 3 {
		items = append(items, publishTrack(t, rl, fmt.Sprintf("trk-%d", i), mp3(210, byte(i+1)), 99)) // 302 KB (two chunks) each
	}
	k := openTerminal(t, "", kiosk.StoreOptions{})
	k.enroll("http://"+rl.addr(), rl.code(wire.ModeKiosk, ""))
	media := openMedia(t, k.dir, capBytes)
	defer media.Close()
	k.cfg = func(c *client.Config) { c.Content = media }
	k.start()
	waitCatalog(t, k, "trk-2")
	if st, _ := media.Stats(); st.Objects != 0 {
		t.Fatalf("the kiosk fetched %d objects before anyone opened one", st.Objects)
	}
	state := func(it vocab.CatalogItem) content.State {
		obj, _ := content.ParseHash(it.Audio.SHA256)
		st, _ := media.State(obj)
		return st
	}
	play := func(it vocab.CatalogItem) {
		t.Helper()
		if err := k.eng.ViewLibraryItem(it); err != nil {
			t.Fatal(err)
		}
		testwait.UntilSaw(t, it.ID+" whole on the kiosk", func() (bool, string) {
			return state(it) == content.Whole, state(it).String()
		})
		if st, err := media.Stats(); err != nil || st.Bytes > capBytes {
			t.Fatalf("cache holds %d bytes, cap %d (%v)", st.Bytes, capBytes, err)
		}
		if err := k.eng.CloseLibraryItem(it); err != nil {
			t.Fatal(err)
		}
	}
	play(items[0])
	play(items[1])
	play(items[2]) // no room for three: the least recently used goes
	if state(items[0]) != content.Absent || state(items[1]) != content.Whole {
		t.Fatalf("after the third track: first %v, second %v; want the first evicted", state(items[0]), state(items[1]))
	}
	play(items[0]) // opened again: fetched again, the second makes room
	if state(items[1]) != content.Absent || state(items[2]) != content.Whole {
		t.Fatalf("after the first again: second %v, third %v", state(items[1]), state(items[2]))
	}
	if st, _ := media.Stats(); st.Objects != 2 {
		t.Fatalf("the cache holds %d objects, want 2", st.Objects)
	}
	if got := readAll(t, media, items[0].Audio.SHA256); !bytes.Equal(got, mp3(210, 1)) {
		t.Fatal("the track fetched again differs")
	}
}

// A lesson with a quiz earning its credit: a kiosk fetches the lesson's text and image pages
// on demand; a failed attempt earns nothing; a pass earns the policy's credit once, graded on
// the relay against a key the kiosk never held, and comes back to the kiosk's balance.
func TestLessonWithQuizEarningItsCredit(t *testing.T) {
	rl, _, k, _ := syncedKiosk(t, nil)
	unbilledSessions(t, rl, func(p *kiosk.Policy) { p.QuizCreditCents = 75 })
	k.stopSync()
	media := openMedia(t, k.dir, 8<<20)
	defer media.Close()
	k.cfg = func(c *client.Config) { c.Content = media }
	k.start()

	text, _, err := rl.r.PutCatalogMedia(strings.NewReader("Lesson 1: fractions.\nA half and a half make a whole."), "north", vocab.MediaText)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 64, 32))); err != nil {
		t.Fatal(err)
	}
	pic, _, err := rl.r.PutCatalogMedia(&b, "north", vocab.MediaPNG)
	if err != nil {
		t.Fatal(err)
	}
	lesson, err := rl.r.PublishCatalogItem(relay.CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "les-1",
		Kind: vocab.CatalogLesson, Title: "Fractions", Pages: []vocab.MediaRef{text, pic}}})
	if err != nil {
		t.Fatal(err)
	}
	qs := []vocab.QuizQuestion{{Text: "1/2 + 1/2 = ?", Choices: []string{"1/4", "1", "2"}}, {Text: "Half of 8?", Choices: []string{"4", "2"}}}
	if _, err := rl.r.PublishCatalogItem(relay.CatalogRequest{FacilityID: "north", Item: vocab.CatalogItem{ID: "crs-1",
		Kind: vocab.CatalogCourse, Title: "GED math", Lessons: []string{"les-1"},
		Quizzes: []vocab.Quiz{{ID: "q-1", Title: "Fractions", PassScore: 2, Questions: qs}}},
		QuizKeys: map[string][]int{"q-1": {1, 0}}}); err != nil {
		t.Fatal(err)
	}
	waitCatalog(t, k, "crs-1")
	k.login("B1", "1234")
	if err := k.eng.ViewLibraryItem(lesson); err != nil {
		t.Fatal(err)
	}
	testwait.UntilSaw(t, "the lesson's pages on the kiosk", func() (bool, string) {
		whole := 0
		for _, pg := range lesson.Pages {
			obj, _ := content.ParseHash(pg.SHA256)
			if st, _ := media.State(obj); st == content.Whole {
				whole++
			}
		}
		return whole == 2, fmt.Sprint(whole)
	})
	if got := readAll(t, media, text.SHA256); !strings.Contains(string(got), "A half and a half") {
		t.Fatalf("page 1: %q", got)
	}
	start, _ := k.term.Balance("A1")
	relayStart, _ := rl.r.Balance("A1")

	if _, err := k.term.SubmitQuiz("A1", "crs-1", "q-1", []int{2, 0}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // passed twice: credited once
		if _, err := k.term.SubmitQuiz("A1", "crs-1", "q-1", []int{1, 0}); err != nil {
			t.Fatal(err)
		}
	}
	k.waitSynced()
	testwait.UntilSaw(t, "the quiz credit on the kiosk", func() (bool, string) {
		b, err := k.term.Balance("A1")
		return b == start+75, fmt.Sprint(b-start, err)
	})
	if b, _ := rl.r.Balance("A1"); b.BalanceCents != relayStart.BalanceCents+75 {
		t.Fatalf("relay balance moved %d, want one credit of 75", b.BalanceCents-relayStart.BalanceCents)
	}
	u, _ := rl.r.Usage("A1")
	credits := 0
	for _, rec := range u.Records {
		if rec.Kind == "credit" && rec.RecordID == vocab.QuizRecordID("crs-1", "q-1") {
			credits++
		}
	}
	if credits != 1 {
		t.Fatalf("%d quiz credits on the relay, want 1", credits)
	}
}

// Purchases made offline on a kiosk reach the relay exactly once although the terminal process
// is SIGKILLed again and again while it syncs them: every purchase charged once, at its price.
func TestPurchasesExactlyOnceAcrossKills(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const tracks = 20
	rl, px, tm, _ := syncedKiosk(t, nil)
	unbilledSessions(t, rl, nil)
	for i := range tracks {
		publishTrack(t, rl, fmt.Sprintf("trk-%02d", i), mp3(8, byte(i+1)), kiosk.Cents(50+i))
	}
	waitCatalog(t, tm, fmt.Sprintf("trk-%02d", tracks-1))
	testwait.UntilSaw(t, "per-message pricing on the kiosk", func() (bool, string) {
		return !tm.term.Policy().ChargesMinutes(), tm.term.Policy().Pricing
	})
	px.setBackend("127.0.0.1:1") // offline while they buy
	px.cutAll()
	want := map[string]kiosk.Cents{}
	for _, inmate := range []struct{ id, badge, pin string }{{"A1", "B1", "1234"}, {"A2", "B2", "2345"}} {
		tm.login(inmate.badge, inmate.pin)
		for i := range tracks {
			o, err := tm.term.Buy(inmate.id, fmt.Sprintf("trk-%02d", i))
			if err != nil {
				t.Fatalf("%s buys track %d: %v", inmate.id, i, err)
			}
			want[inmate.id+"/"+vocab.PurchaseRecordID(o.PurchaseID)] = o.Cents
		}
		if err := tm.term.Logout(); err != nil {
			t.Fatal(err)
		}
	}
	tm.close() // a child process owns the store from here
	px.setBackend(rl.addr())
	held := func() int {
		n := 0
		for _, id := range []string{"A1", "A2"} {
			u, _ := rl.r.Usage(id)
			for _, rec := range u.Records {
				if vocab.IsPurchaseRecord(rec.RecordID) {
					n++
				}
			}
		}
		return n
	}
	for kill := range 3 {
		child := startChild(t, tm.dir)
		if kill == 0 {
			// The first kill once the relay holds some: the acknowledgement of what it holds
			// is lost, or not yet applied, and all of it is sent again.
			testwait.UntilSaw(t, "the child to forward some purchases", func() (bool, string) {
				return held() > 0, fmt.Sprint(held())
			})
		} else {
			time.Sleep(time.Duration(kill*15) * time.Millisecond)
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		t.Logf("kill %d: the relay holds %d of %d purchases", kill+1, held(), len(want))
	}
	tm.reopen(kiosk.StoreOptions{})
	if n, _, err := tm.store.QueueStats(); err == nil {
		t.Logf("after the kills %d items are still queued on the kiosk: sent again now", n)
	}
	tm.start()
	tm.waitSynced()
	got := map[string]kiosk.Cents{}
	for _, id := range []string{"A1", "A2"} {
		u, err := rl.r.Usage(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range u.Records {
			if vocab.IsPurchaseRecord(rec.RecordID) {
				key := id + "/" + rec.RecordID
				if _, dup := got[key]; dup {
					t.Errorf("purchase %s recorded twice", key)
				}
				got[key] = rec.Cents
			}
		}
		if b, _ := rl.r.Balance(id); b.BalanceCents != 50000-tracks*50-tracks*(tracks-1)/2 {
			t.Errorf("%s's relay balance %d, want every track charged once", id, b.BalanceCents)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d purchases on the relay, want %d", len(got), len(want))
	}
	for k, c := range want {
		if got[k] != c {
			t.Errorf("purchase %s: %d cents on the relay, want %d", k, got[k], c)
		}
	}
}
