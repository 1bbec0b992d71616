package relay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tether-kiosk/tether/kiosk/content"
	"github.com/tether-kiosk/tether/kiosk/mp3decode"
	"github.com/tether-kiosk/tether/kiosk/photo"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay/kv"
	"github.com/tether-kiosk/tether/sync/wire"
)

// The library's catalog on the relay (docs/PROTOCOL.md, "Library"). Staff upload media
// (POST /admin/v1/catalog/media: checked to be what it says, stored once by hash) and publish
// items that name them (POST /admin/v1/catalog); each item goes to every terminal of its
// facility as a catalog_item downlink body, and a withdrawal (DELETE) as catalog_withdrawn.
// The relay keeps every item it published, withdrawn ones too: a purchase is checked against
// them (purchase.go), and a quiz's answer key never leaves the relay.

// catalogRec is one item of a facility's catalog (bCatalog, keyed facility + "/" + item id).
type catalogRec struct {
	FacilityID  string            `json:"facility_id"`
	Item        vocab.CatalogItem `json:"item"`
	Keys        map[string][]int  `json:"keys,omitempty"` // quiz id -> the right choice per question
	Withdrawn   bool              `json:"withdrawn,omitempty"`
	WithdrawnAt time.Time         `json:"withdrawn_at,omitzero"`
}

func catalogKey(facility, id string) string { return facility + "/" + id }

// catalogHolder holds the media of a facility's catalog on the relay: every kiosk of the
// facility may fetch them (a shared kiosk fetches on demand), a tablet only those of a free
// item (also held for the facility) or of an item its inmate bought (also held for the inmate).
func catalogHolder(facility string) string { return "catalog:" + facility }

// CatalogRequest is the body of POST /admin/v1/catalog.
type CatalogRequest struct {
	FacilityID string            `json:"facility_id"`
	Item       vocab.CatalogItem `json:"item"`
	// QuizKeys is the answer key of each of a course's quizzes, by quiz id: the index of the
	// right choice for each question. Kept on the relay; terminals never receive it.
	QuizKeys map[string][]int `json:"quiz_keys,omitempty"`
}

// CatalogEntry is an item as the admin API lists it (never with its answer keys).
type CatalogEntry struct {
	FacilityID  string            `json:"facility_id"`
	Item        vocab.CatalogItem `json:"item"`
	Withdrawn   bool              `json:"withdrawn"`
	WithdrawnAt time.Time         `json:"withdrawn_at,omitzero"`
}

// PutCatalogMedia stores one catalog object of media type typ for facility, read from rd,
// after checking it is what typ says (an MP3 is MPEG Layer III frames, a text page UTF-8, an
// image a sound JPEG or PNG) and within the type's size. The upload is spooled to a file in
// DataDir first, so a 50 MB track is checked and stored without being held in memory. It
// returns the reference to name in an item, and for an MP3 its playing time in seconds.
func (r *Relay) PutCatalogMedia(rd io.Reader, facility, typ string) (vocab.MediaRef, int, error) {
	const op = "put catalog media"
	if err := checkID(op, "facility_id", facility); err != nil {
		return vocab.MediaRef{}, 0, err
	}
	limit := vocab.MediaLimit(typ)
	if limit == 0 {
		return vocab.MediaRef{}, 0, invalid(op, "type", "must be %s, %s, %s or %s", vocab.MediaMP3, vocab.MediaText, vocab.MediaJPEG, vocab.MediaPNG)
	}
	if err := r.view(op, func(tx kv.Tx) error {
		if ok, err := getJSON(tx, bFacilities, facility, &facilityRec{}); err != nil || !ok {
			if err == nil {
				err = notFound(op, "facility_id", "unknown facility %q", facility)
			}
			return err
		}
		return nil
	}); err != nil {
		return vocab.MediaRef{}, 0, err
	}
	f, err := os.CreateTemp(r.cfg.DataDir, uploadPattern)
	if err != nil {
		return vocab.MediaRef{}, 0, ioErr(op, err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	n, err := io.Copy(f, io.LimitReader(rd, limit+1))
	if err != nil {
		return vocab.MediaRef{}, 0, invalid(op, "body", "cannot be read: %v", err)
	}
	if n > limit {
		return vocab.MediaRef{}, 0, invalid(op, "body", "is too large for %s (limit %d bytes)", typ, limit)
	}
	if n == 0 {
		return vocab.MediaRef{}, 0, invalid(op, "body", "is empty")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return vocab.MediaRef{}, 0, ioErr(op, err)
	}
	seconds, err := checkMedia(f, typ)
	if err != nil {
		return vocab.MediaRef{}, 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return vocab.MediaRef{}, 0, ioErr(op, err)
	}
	s, err := r.contentStore()
	if err != nil {
		return vocab.MediaRef{}, 0, ioErr(op, err)
	}
	ref, err := s.PutFor(bufio.NewReaderSize(f, content.ChunkSize), catalogHolder(facility))
	if err != nil {
		return vocab.MediaRef{}, 0, ioErr(op, err)
	}
	return vocab.MediaRef{SHA256: ref.Object.String(), Manifest: ref.Manifest.String(), Size: ref.Size, Type: typ}, seconds, nil
}

// uploadPattern names the spool files of media uploads in DataDir.
const uploadPattern = "upload-*"

// sweepUploads removes the spool files of uploads a crash cut short: only a call in progress
// has one, and none is in progress while the relay opens.
func sweepUploads(dir string, logf func(string, ...any)) {
	names, _ := filepath.Glob(filepath.Join(dir, uploadPattern))
	for _, n := range names {
		if err := os.Remove(n); err != nil && logf != nil {
			logf("relay: remove the spool of an upload cut short %s: %v", n, err)
		}
	}
}

// checkMedia reads an object of media type typ and says whether it is one (seconds: an MP3's).
func checkMedia(rd io.Reader, typ string) (seconds int, err error) {
	const op = "put catalog media"
	switch typ {
	case vocab.MediaMP3:
		s, err := vocab.CheckMP3(rd)
		if err != nil {
			return 0, invalid(op, "body", "is not an MP3 file: %v", err)
		}
		return s, nil
	case vocab.MediaText:
		b, err := io.ReadAll(io.LimitReader(rd, vocab.MaxPageTextBytes+1))
		if err != nil {
			return 0, ioErr(op, err)
		}
		if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
			return 0, invalid(op, "body", "is not UTF-8 text")
		}
		return 0, nil
	default:
		b, err := io.ReadAll(io.LimitReader(rd, vocab.MaxPageImageBytes+1))
		if err != nil {
			return 0, ioErr(op, err)
		}
		if _, err := photo.DefaultPolicy().Check(typ, b); err != nil {
			return 0, &vocab.Error{Kind: vocab.KindInvalid, Op: op, Reason: vocab.Reason(photo.Reason(err)),
				Err: &FieldError{Field: "body", Msg: err.Error()}}
		}
		return 0, nil
	}
}

// trackTolerance is how far a track's decoded playing time may be from its declared
// duration_s: the seconds are rounded, and an encoder's padding adds a frame or two.
func trackTolerance(declared int) time.Duration {
	return max(2*time.Second, time.Duration(declared)*time.Second/50)
}

// decodeTrack decodes the whole of a track's MP3 as the terminals' player will
// (kiosk/mp3decode, the same decoder path), streaming from the content store: the frame
// headers are checked on upload, but a body the decoder cannot read, or audio far longer or
// shorter than the item says, must not reach a terminal as a track. Decoding stops once the
// audio passes the declared duration and its tolerance, which bounds its time.
func decodeTrack(s ContentStore, obj content.Hash, declared int) error {
	rd, err := s.Open(obj)
	if err != nil {
		return err
	}
	defer rd.Close()
	tol := trackTolerance(declared)
	want := time.Duration(declared) * time.Second
	played, err := mp3decode.Check(bufio.NewReaderSize(rd, content.ChunkSize), want+tol)
	switch {
	case errors.Is(err, mp3decode.ErrTooLong):
		return fmt.Errorf("it plays longer than duration_s %d allows (%s with the tolerance of %s)", declared, want+tol, tol)
	case err != nil:
		return err
	case played < want-tol:
		return fmt.Errorf("it plays %s, but duration_s is %d (tolerance %s)", played.Round(10*time.Millisecond), declared, tol)
	}
	return nil
}

// PublishCatalogItem publishes (or publishes again, replacing) an item of a facility's catalog
// and sends it to every terminal of the facility. Every object it names must have been
// uploaded for that facility (PutCatalogMedia) and held whole; a course's lessons must be
// published lessons of the facility, and each quiz needs its key. An item withdrawn before may
// be published again.
func (r *Relay) PublishCatalogItem(req CatalogRequest) (vocab.CatalogItem, error) {
	const op = "publish catalog item"
	if err := checkID(op, "facility_id", req.FacilityID); err != nil {
		return vocab.CatalogItem{}, err
	}
	it := req.Item
	it.PublishedAt = r.clock.Now().UTC()
	if err := vocab.ValidateCatalogItem(it); err != nil {
		return vocab.CatalogItem{}, invalid(op, "item", "%v", errors.Unwrap(err))
	}
	for id, key := range req.QuizKeys {
		q, ok := it.FindQuiz(id)
		if !ok {
			return vocab.CatalogItem{}, invalid(op, "quiz_keys", "names quiz %q, which the item does not have", id)
		}
		if err := vocab.ValidateQuizKey(q, key); err != nil {
			return vocab.CatalogItem{}, invalid(op, "quiz_keys", "%v", err)
		}
	}
	for _, q := range it.Quizzes {
		if _, ok := req.QuizKeys[q.ID]; !ok {
			return vocab.CatalogItem{}, invalid(op, "quiz_keys", "quiz %q has no answer key", q.ID)
		}
	}
	s, err := r.contentStore()
	if err != nil {
		return vocab.CatalogItem{}, ioErr(op, err)
	}
	media := it.Media()
	for i, m := range media {
		ref, err := content.ParseRef(m.SHA256, m.Manifest, m.Size)
		if err != nil {
			return vocab.CatalogItem{}, invalid(op, "item", "media %d: %v", i, err)
		}
		holders, _, err := s.Holders(ref.Object)
		if err != nil {
			return vocab.CatalogItem{}, ioErr(op, err)
		}
		st, err := s.State(ref.Object)
		if err != nil {
			return vocab.CatalogItem{}, ioErr(op, err)
		}
		mr, err := s.Manifest(ref.Object)
		if err != nil || !containsHolder(holders, catalogHolder(req.FacilityID)) || st != content.Whole || content.Sum(mr) != ref.Manifest {
			return vocab.CatalogItem{}, invalid(op, "item", "media %d (%s) was not uploaded for facility %q: POST it to /admin/v1/catalog/media first", i, m.SHA256, req.FacilityID)
		}
		// The bytes are checked again for the type the item gives them: an image uploaded as
		// a page must not be published as a track.
		rd, err := s.Open(ref.Object)
		if err != nil {
			return vocab.CatalogItem{}, ioErr(op, err)
		}
		_, err = checkMedia(rd, m.Type)
		rd.Close()
		if err != nil {
			return vocab.CatalogItem{}, invalid(op, "item", "media %d is not %s: %v", i, m.Type, errors.Unwrap(err))
		}
		if m.Type == vocab.MediaMP3 {
			if err := decodeTrack(s, ref.Object, it.Duration); err != nil {
				return vocab.CatalogItem{}, invalid(op, "item", "the track's audio (%s): %v", m.SHA256, err)
			}
		}
	}
	err = r.updateFor(req.FacilityID, op, func(tx kv.Tx, f *fanout) error {
		if ok, err := getJSON(tx, bFacilities, req.FacilityID, &facilityRec{}); err != nil || !ok {
			if err == nil {
				err = notFound(op, "facility_id", "unknown facility %q", req.FacilityID)
			}
			return err
		}
		for _, l := range it.Lessons {
			var lr catalogRec
			ok, err := getJSON(tx, bCatalog, catalogKey(req.FacilityID, l), &lr)
			if err != nil {
				return err
			}
			if !ok || lr.Withdrawn || lr.Item.Kind != vocab.CatalogLesson {
				return invalid(op, "item", "lesson %q is not a published lesson of facility %q", l, req.FacilityID)
			}
		}
		rec := catalogRec{FacilityID: req.FacilityID, Item: it, Keys: req.QuizKeys}
		if err := putJSON(tx, bCatalog, catalogKey(req.FacilityID, it.ID), rec); err != nil {
			return err
		}
		f.logf("relay: catalog item %s (%s) published in facility %s at %d cents", it.ID, it.Kind, req.FacilityID, it.PriceCents)
		return f.toFacility(req.FacilityID, "", wire.DownCatalogItem, it)
	})
	if err != nil {
		return it, err
	}
	if it.PriceCents > 0 {
		// Priced: a free publication of it before left its media open to every tablet of the
		// facility; that claim goes, unless another free item of the facility shows the same
		// media. Owners keep theirs (the inmate's own holder).
		if err := r.closeFreeMedia(s, req.FacilityID, it.ID, media); err != nil {
			return it, ioErr(op, err)
		}
		return it, nil
	}
	// Free, and published: any terminal of the facility, tablets too, may fetch its media.
	for _, m := range media {
		ref, _ := content.ParseRef(m.SHA256, m.Manifest, m.Size) // checked above
		if err := s.Retain(ref, facilityHolder(req.FacilityID), true); err != nil {
			return it, ioErr(op, err)
		}
	}
	return it, nil
}

// closeFreeMedia drops the facility's open claim (facilityHolder) on media of item id, now
// priced, for each object no other free published item of the facility names.
func (r *Relay) closeFreeMedia(s ContentStore, facility, id string, media []vocab.MediaRef) error {
	entries, err := r.Catalog(facility)
	if err != nil {
		return err
	}
	free := map[string]bool{}
	for _, e := range entries {
		if e.Withdrawn || e.Item.ID == id || e.Item.PriceCents > 0 {
			continue
		}
		for _, m := range e.Item.Media() {
			free[m.SHA256] = true
		}
	}
	for _, m := range media {
		if free[m.SHA256] {
			continue
		}
		obj, err := content.ParseHash(m.SHA256)
		if err != nil {
			return err
		}
		if err := s.Release(obj, facilityHolder(facility)); err != nil {
			return fmt.Errorf("close media %s of %s: %w", m.SHA256, id, err)
		}
	}
	return nil
}

func containsHolder(hs []string, h string) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// WithdrawCatalogItem takes an item out of a facility's catalog: terminals stop offering it
// and the relay refuses new purchases of it (purchase_withdrawn). Those who own it keep it.
// Withdrawing an item already withdrawn changes nothing.
func (r *Relay) WithdrawCatalogItem(facility, id string) (CatalogEntry, error) {
	const op = "withdraw catalog item"
	if err := checkID(op, "facility_id", facility); err != nil {
		return CatalogEntry{}, err
	}
	if err := checkID(op, "id", id); err != nil {
		return CatalogEntry{}, err
	}
	var rec catalogRec
	err := r.updateFor(facility, op, func(tx kv.Tx, f *fanout) error {
		ok, err := getJSON(tx, bCatalog, catalogKey(facility, id), &rec)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(op, "id", "no catalog item %q in facility %q", id, facility)
		}
		if rec.Withdrawn {
			return nil
		}
		rec.Withdrawn, rec.WithdrawnAt = true, r.clock.Now().UTC()
		if err := putJSON(tx, bCatalog, catalogKey(facility, id), rec); err != nil {
			return err
		}
		f.logf("relay: catalog item %s withdrawn in facility %s", id, facility)
		return f.toFacility(facility, "", wire.DownCatalogWithdrawn, vocab.CatalogWithdrawn{ID: id, At: rec.WithdrawnAt})
	})
	e := CatalogEntry{FacilityID: facility, Item: rec.Item, Withdrawn: rec.Withdrawn, WithdrawnAt: rec.WithdrawnAt}
	if err != nil || rec.Item.PriceCents > 0 {
		return e, err
	}
	// A free item's media were open to every tablet of the facility; withdrawn, they are
	// its owners' only (those who fetched them while free: recordFreeFetch), unless another
	// free item still shows them. Done on every call, so withdrawing again repairs a
	// withdrawal whose release failed.
	s, err := r.contentStore()
	if err == nil {
		err = r.closeFreeMedia(s, facility, id, rec.Item.Media())
	}
	if err != nil {
		return e, ioErr(op, err)
	}
	return e, nil
}

// Catalog lists a facility's items, withdrawn ones too, by id.
func (r *Relay) Catalog(facility string) ([]CatalogEntry, error) {
	const op = "list catalog"
	if err := checkID(op, "facility_id", facility); err != nil {
		return nil, err
	}
	out := []CatalogEntry{}
	err := r.view(op, func(tx kv.Tx) error {
		out = out[:0] // a View may run again
		return forEachJSON(tx, bCatalog, facility+"/", func(_ string, c catalogRec) bool {
			out = append(out, CatalogEntry{FacilityID: c.FacilityID, Item: c.Item, Withdrawn: c.Withdrawn, WithdrawnAt: c.WithdrawnAt})
			return true
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Item.ID < out[j].Item.ID })
	return out, err
}

// snapshotCatalog queues every item of the facility's catalog still published for terminal t.
func snapshotCatalog(tx kv.Tx, f *fanout, t TerminalInfo) error {
	var items []vocab.CatalogItem
	var gone []vocab.CatalogWithdrawn
	if err := forEachJSON(tx, bCatalog, t.FacilityID+"/", func(_ string, c catalogRec) bool {
		if !c.Withdrawn {
			items = append(items, c.Item)
		} else {
			// A terminal that lapsed (or a restored store) may still list it: the withdrawal
			// that the pruned log held comes again (a terminal deletes what it may not hold).
			gone = append(gone, vocab.CatalogWithdrawn{ID: c.Item.ID, At: c.WithdrawnAt})
		}
		return true
	}); err != nil {
		return err
	}
	for _, w := range gone {
		if err := f.toTerminal(t.ID, wire.DownCatalogWithdrawn, w); err != nil {
			return err
		}
	}
	for _, it := range items {
		if err := f.toTerminal(t.ID, wire.DownCatalogItem, it); err != nil {
			return err
		}
	}
	return nil
}

func (r *Relay) hCatalogMedia(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	ref, seconds, err := r.PutCatalogMedia(req.Body, q.Get("facility_id"), strings.TrimSpace(q.Get("type")))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	out := struct {
		vocab.MediaRef
		Duration int `json:"duration_s,omitempty"`
	}{ref, seconds}
	writeJSON(w, http.StatusCreated, out)
}

// decodeCatalog reads the body of POST /admin/v1/catalog (a pure function, fuzzed).
func decodeCatalog(b []byte) (CatalogRequest, error) {
	var v CatalogRequest
	return v, decodeStrict("publish catalog item", b, &v)
}

func (r *Relay) hPublishCatalog(w http.ResponseWriter, req *http.Request) {
	b, err := body("publish catalog item", req, maxAdminBody)
	if err == nil {
		var cr CatalogRequest
		if cr, err = decodeCatalog(b); err == nil {
			var it vocab.CatalogItem
			if it, err = r.PublishCatalogItem(cr); err == nil {
				writeJSON(w, http.StatusCreated, it)
				return
			}
		}
	}
	r.writeErr(w, err)
}

func (r *Relay) hListCatalog(w http.ResponseWriter, req *http.Request) {
	list, err := r.Catalog(req.URL.Query().Get("facility_id"))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

func (r *Relay) hWithdrawCatalog(w http.ResponseWriter, req *http.Request) {
	e, err := r.WithdrawCatalogItem(req.PathValue("facility"), req.PathValue("id"))
	if err != nil {
		r.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// DiscardCatalogMedia undoes uploads a publication then refused (the console uploads an item's
// media and publishes it in one form): each object no item of the facility names, published
// or withdrawn, loses the facility's upload claim, and an object no one else holds is deleted.
// An object some item names is left as it is, so a discard never takes an owner's media.
func (r *Relay) DiscardCatalogMedia(facility string, refs []vocab.MediaRef) error {
	const op = "discard catalog media"
	if err := checkID(op, "facility_id", facility); err != nil {
		return err
	}
	entries, err := r.Catalog(facility)
	if err != nil {
		return err
	}
	named := map[string]bool{}
	for _, e := range entries {
		for _, m := range e.Item.Media() {
			named[m.SHA256] = true
		}
	}
	s, err := r.contentStore()
	if err != nil {
		return ioErr(op, err)
	}
	for _, m := range refs {
		if named[m.SHA256] {
			continue
		}
		obj, err := content.ParseHash(m.SHA256)
		if err != nil {
			return invalid(op, "sha256", "%v", err)
		}
		if err := s.Release(obj, catalogHolder(facility)); err != nil {
			return ioErr(op, fmt.Errorf("release %s: %w", m.SHA256, err))
		}
	}
	return nil
}
