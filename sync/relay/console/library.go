package console

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay"
)

// The Library screen (role library): a facility's catalog, and forms that publish a track, a
// book or lesson, and a course with a quiz, and withdraw an item. It calls the relay's catalog
// methods (sync/relay/catalog.go), which run the shared rules of kiosk/vocab, so what the
// console accepts is what the admin API and the terminals accept.

// maxUpload bounds a library upload form: the largest track, and room for its fields.
const maxUpload = vocab.MaxTrackBytes + 1<<20

// maxField bounds one text field of an upload form (a book's pages are one field).
const maxField = 2 << 20

// uploadKey carries an upload form's multipart reader, its token already checked, to the
// handler.
type uploadKey struct{}

func isMultipart(req *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	return ct == "multipart/form-data"
}

// uploadToken reads an upload form's first part, which must be its CSRF token, and refuses
// the form (as need does) unless it is the session's.
func (c *Console) uploadToken(w http.ResponseWriter, req *http.Request, u who) (*multipart.Reader, bool) {
	req.Body = http.MaxBytesReader(w, req.Body, maxUpload)
	mr, err := req.MultipartReader()
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return nil, false
	}
	tok := ""
	if p, err := mr.NextPart(); err == nil && p.FormName() == "csrf" {
		b, _ := io.ReadAll(io.LimitReader(p, 256))
		tok = string(b)
	}
	if !sameToken(tok, u.sess.CSRF) {
		c.render(w, req, http.StatusForbidden, "error", u, pageData{Title: "Refused",
			Error: "This form is missing its security token or it is out of date. Reload the page and try again."})
		return nil, false
	}
	return mr, true
}

// libraryRow is one item as the Library screen lists it.
type libraryRow struct {
	relay.CatalogEntry
	Detail string
	Owners int // purchases the relay recorded (free items: none are sent)
}

func (c *Console) libraryPage(w http.ResponseWriter, req *http.Request, u who) {
	facs, err := c.facilities(u)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	fac := req.URL.Query().Get("facility")
	if fac == "" && len(facs) > 0 {
		fac = facs[0]
	}
	d := pageData{Title: "Library", Current: "library"}
	data := map[string]any{"Facilities": facs, "Facility": fac}
	d.Data = data
	if fac == "" {
		c.render(w, req, http.StatusOK, "library", u, d)
		return
	}
	if !slices.Contains(facs, fac) {
		d.Error = errScope.Error()
		c.render(w, req, http.StatusForbidden, "library", u, d)
		return
	}
	list, err := c.r.Catalog(fac)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	owners, err := c.r.CatalogOwners(fac)
	if err != nil {
		c.fail(w, req, u, err)
		return
	}
	var rows []libraryRow
	var lessons []relay.CatalogEntry
	for _, e := range list {
		rows = append(rows, libraryRow{e, itemDetail(e.Item), owners[e.Item.ID]})
		if e.Item.Kind == vocab.CatalogLesson && !e.Withdrawn {
			lessons = append(lessons, e)
		}
	}
	data["Items"], data["Lessons"] = rows, lessons
	c.render(w, req, http.StatusOK, "library", u, d)
}

// itemDetail is the list's one-line summary of what an item holds.
func itemDetail(it vocab.CatalogItem) string {
	switch it.Kind {
	case vocab.CatalogTrack:
		return fmt.Sprintf("%s · %d:%02d", it.Artist, it.Duration/60, it.Duration%60)
	case vocab.CatalogBook, vocab.CatalogLesson:
		return plural(len(it.Pages), "page")
	case vocab.CatalogCourse:
		return plural(len(it.Lessons), "lesson") + ", " + plural(len(it.Quizzes), "quiz")
	}
	return ""
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	if strings.HasSuffix(s, "z") {
		return fmt.Sprintf("%d %szes", n, s)
	}
	return fmt.Sprintf("%d %ss", n, s)
}

// newItemID names a new item: the kind's prefix and a random part. The console never reuses
// an id, so a form can never replace another item by accident.
func newItemID(kind string) string {
	prefix := map[string]string{vocab.CatalogTrack: "trk", vocab.CatalogBook: "book", vocab.CatalogLesson: "les", vocab.CatalogCourse: "crs"}[kind]
	return prefix + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
}

// parsePrice reads an item's price: empty is free, else dollars and cents.
func parsePrice(s string) (vocab.Cents, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	v, err := parseCents(s)
	if err != nil {
		return 0, fmt.Errorf("price: %w", err)
	}
	if v > vocab.MaxItemPrice {
		return 0, fmt.Errorf("price %s is more than the most an item may cost (%s)", v, vocab.MaxItemPrice)
	}
	return v, nil
}

// placeholderRef stands for media not uploaded yet, so the shared rules can check a form's
// fields before its file is stored.
func placeholderRef(typ string) vocab.MediaRef {
	zero := strings.Repeat("0", 64)
	return vocab.MediaRef{SHA256: zero, Manifest: zero, Size: 1, Type: typ}
}

// uploadForm walks an upload form's parts in order: text fields into f, each file to onFile
// (which must consume it). A browser sends the parts in the form's order, so the library's
// forms put every text field before their files: the fields are checked before a file is
// stored.
func uploadForm(req *http.Request, f url.Values, onFile func(name string, p *multipart.Part) error) error {
	mr, _ := req.Context().Value(uploadKey{}).(*multipart.Reader)
	if mr == nil {
		return errors.New("send this form from the Library page")
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the form could not be read (is the file larger than %d MB?): %w", maxUpload>>20, err)
		}
		if p.FileName() == "" {
			b, err := io.ReadAll(io.LimitReader(p, maxField+1))
			if err != nil {
				return fmt.Errorf("the form could not be read: %w", err)
			}
			if len(b) > maxField {
				return fmt.Errorf("field %s is too long", p.FormName())
			}
			f.Add(p.FormName(), string(b))
			continue
		}
		if err := onFile(p.FormName(), p); err != nil {
			return err
		}
	}
}

// published ends a publication: the audit line and the way back to the list. On an error the
// media the form uploaded are discarded, so a refused form leaves nothing behind.
func (c *Console) published(w http.ResponseWriter, req *http.Request, u who, fac string, it vocab.CatalogItem, uploaded []vocab.MediaRef, err error) {
	q := url.Values{"facility": {fac}}
	if err != nil {
		if len(uploaded) > 0 && fac != "" {
			if derr := c.r.DiscardCatalogMedia(fac, uploaded); derr != nil {
				c.logf("console: discard the uploads of a refused item: %v", derr)
			}
		}
		back(w, req, "library", q, "", fmt.Errorf("nothing was published: %w", err))
		return
	}
	price := "free"
	if it.PriceCents > 0 {
		price = it.PriceCents.String()
	}
	c.audit(u, "catalog.publish", it.ID, fac, fmt.Sprintf("%s %q, %s", it.Kind, it.Title, price))
	back(w, req, "library", q, fmt.Sprintf("Published the %s %q (%s); the facility's terminals get it at their next sync.", it.Kind, it.Title, price), nil)
}

// publishTrack uploads an MP3 and publishes it as a track: its playing time is the relay's
// reading of the file, never typed in.
func (c *Console) publishTrack(w http.ResponseWriter, req *http.Request, u who) {
	f := url.Values{}
	var it vocab.CatalogItem
	var uploaded []vocab.MediaRef
	fac := ""
	err := uploadForm(req, f, func(name string, p *multipart.Part) error {
		if name != "audio" || it.Audio != nil {
			return fmt.Errorf("unexpected file %q: the form takes one MP3", p.FileName())
		}
		fac = f.Get("facility")
		if !u.Serves(fac) {
			return errScope
		}
		price, err := parsePrice(f.Get("price"))
		if err != nil {
			return err
		}
		it = vocab.CatalogItem{ID: newItemID(vocab.CatalogTrack), Kind: vocab.CatalogTrack, Title: strings.TrimSpace(f.Get("title")),
			Artist: strings.TrimSpace(f.Get("artist")), Description: strings.TrimSpace(f.Get("description")), PriceCents: price}
		probe := it
		probe.Duration, probe.Audio = 1, new(vocab.MediaRef)
		*probe.Audio = placeholderRef(vocab.MediaMP3)
		if err := vocab.ValidateCatalogItem(probe); err != nil {
			return err
		}
		ref, seconds, err := c.r.PutCatalogMedia(p, fac, vocab.MediaMP3)
		if err != nil {
			return fmt.Errorf("the file %q: %w", p.FileName(), err)
		}
		uploaded = append(uploaded, ref)
		it.Audio, it.Duration = &ref, seconds
		return nil
	})
	if err == nil && it.Audio == nil {
		err = errors.New("choose the track's MP3 file")
	}
	if err == nil {
		it, err = c.r.PublishCatalogItem(relay.CatalogRequest{FacilityID: fac, Item: it})
	}
	c.published(w, req, u, orForm(fac, f), it, uploaded, err)
}

func orForm(fac string, f url.Values) string {
	if fac != "" {
		return fac
	}
	return f.Get("facility")
}

// pageBreak separates the text pages of a book or lesson in its form.
const pageBreak = "---"

// splitPages cuts a book's text at lines holding only pageBreak, dropping empty pages.
func splitPages(s string) []string {
	var pages []string
	var cur []string
	flush := func() {
		if p := strings.TrimSpace(strings.Join(cur, "\n")); p != "" {
			pages = append(pages, p+"\n")
		}
		cur = nil
	}
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == pageBreak {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return pages
}

// publishPages publishes a book or a lesson: text pages, then the images chosen, in order.
func (c *Console) publishPages(w http.ResponseWriter, req *http.Request, u who) {
	f := url.Values{}
	var it vocab.CatalogItem
	var uploaded []vocab.MediaRef
	started := false
	fac := ""
	// start checks the fields and stores the text pages, once, before the first image.
	start := func() error {
		if started {
			return nil
		}
		started = true
		fac = f.Get("facility")
		if !u.Serves(fac) {
			return errScope
		}
		kind := f.Get("kind")
		if kind != vocab.CatalogBook && kind != vocab.CatalogLesson {
			return fmt.Errorf("kind %q: choose book or lesson", kind)
		}
		price, err := parsePrice(f.Get("price"))
		if err != nil {
			return err
		}
		it = vocab.CatalogItem{ID: newItemID(kind), Kind: kind, Title: strings.TrimSpace(f.Get("title")),
			Description: strings.TrimSpace(f.Get("description")), PriceCents: price}
		probe := it
		probe.Pages = []vocab.MediaRef{placeholderRef(vocab.MediaText)}
		if err := vocab.ValidateCatalogItem(probe); err != nil {
			return err
		}
		for i, text := range splitPages(f.Get("pages")) {
			ref, _, err := c.r.PutCatalogMedia(strings.NewReader(text), fac, vocab.MediaText)
			if err != nil {
				return fmt.Errorf("page %d: %w", i+1, err)
			}
			uploaded = append(uploaded, ref)
			it.Pages = append(it.Pages, ref)
		}
		return nil
	}
	err := uploadForm(req, f, func(name string, p *multipart.Part) error {
		if err := start(); err != nil {
			return err
		}
		if name != "images" {
			return fmt.Errorf("unexpected file %q", p.FileName())
		}
		br := bufio.NewReader(p)
		head, _ := br.Peek(512)
		typ := http.DetectContentType(head)
		if typ != vocab.MediaJPEG && typ != vocab.MediaPNG {
			return fmt.Errorf("image %q is not a JPEG or PNG picture", p.FileName())
		}
		ref, _, err := c.r.PutCatalogMedia(br, fac, typ)
		if err != nil {
			return fmt.Errorf("image %q: %w", p.FileName(), err)
		}
		uploaded = append(uploaded, ref)
		it.Pages = append(it.Pages, ref)
		return nil
	})
	if err == nil {
		err = start()
	}
	if err == nil && len(it.Pages) == 0 {
		err = errors.New("write at least one page of text or choose an image")
	}
	if err == nil {
		it, err = c.r.PublishCatalogItem(relay.CatalogRequest{FacilityID: fac, Item: it})
	}
	c.published(w, req, u, orForm(fac, f), it, uploaded, err)
}

// parseQuiz reads a quiz as staff write it: one block a question, blocks apart by a blank
// line; a block's first line is the question, each further line a choice starting with "-",
// or with "*" for the right one (exactly one). It returns the questions and the key.
func parseQuiz(s string) ([]vocab.QuizQuestion, []int, error) {
	var qs []vocab.QuizQuestion
	var key []int
	var cur *vocab.QuizQuestion
	right := -1
	end := func() error {
		if cur == nil {
			return nil
		}
		n := len(qs) + 1
		switch {
		case len(cur.Choices) < 2:
			return fmt.Errorf("question %d %q: give at least two choices, one a line starting with - (or * for the right one)", n, cur.Text)
		case right < 0:
			return fmt.Errorf("question %d %q: mark the right choice with *", n, cur.Text)
		}
		qs, key = append(qs, *cur), append(key, right)
		cur, right = nil, -1
		return nil
	}
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			if err := end(); err != nil {
				return nil, nil, err
			}
		case cur == nil:
			if strings.HasPrefix(line, "-") || strings.HasPrefix(line, "*") {
				return nil, nil, fmt.Errorf("question %d: write the question on the line before its choices", len(qs)+1)
			}
			cur = &vocab.QuizQuestion{Text: line}
		case strings.HasPrefix(line, "*"):
			if right >= 0 {
				return nil, nil, fmt.Errorf("question %d %q: only one choice may be marked right with *", len(qs)+1, cur.Text)
			}
			right = len(cur.Choices)
			cur.Choices = append(cur.Choices, strings.TrimSpace(line[1:]))
		case strings.HasPrefix(line, "-"):
			cur.Choices = append(cur.Choices, strings.TrimSpace(line[1:]))
		default:
			return nil, nil, fmt.Errorf("question %d %q: start each choice with - (or * for the right one), or leave a blank line before the next question", len(qs)+1, cur.Text)
		}
	}
	if err := end(); err != nil {
		return nil, nil, err
	}
	return qs, key, nil
}

// publishCourse publishes a course of published lessons and, when questions are written, one
// quiz whose key stays on the relay.
func (c *Console) publishCourse(w http.ResponseWriter, req *http.Request, u who) {
	f := req.PostForm
	fac := f.Get("facility")
	it, err := func() (vocab.CatalogItem, error) {
		if !u.Serves(fac) {
			return vocab.CatalogItem{}, errScope
		}
		price, err := parsePrice(f.Get("price"))
		if err != nil {
			return vocab.CatalogItem{}, err
		}
		it := vocab.CatalogItem{ID: newItemID(vocab.CatalogCourse), Kind: vocab.CatalogCourse, Title: strings.TrimSpace(f.Get("title")),
			Description: strings.TrimSpace(f.Get("description")), PriceCents: price, Lessons: f["lessons"]}
		if len(it.Lessons) == 0 {
			return it, errors.New("choose at least one published lesson for the course")
		}
		req := relay.CatalogRequest{FacilityID: fac, Item: it}
		if strings.TrimSpace(f.Get("questions")) != "" {
			qs, key, err := parseQuiz(f.Get("questions"))
			if err != nil {
				return it, err
			}
			pass, err := strconv.Atoi(strings.TrimSpace(f.Get("pass_score")))
			if err != nil {
				return it, fmt.Errorf("pass score %q: write how many questions must be right, like %d", f.Get("pass_score"), len(qs))
			}
			q := vocab.Quiz{ID: "quiz-1", Title: strings.TrimSpace(f.Get("quiz_title")), PassScore: pass, Questions: qs}
			req.Item.Quizzes = []vocab.Quiz{q}
			req.QuizKeys = map[string][]int{q.ID: key}
		}
		return c.r.PublishCatalogItem(req)
	}()
	c.published(w, req, u, fac, it, nil, err)
}

func (c *Console) withdrawItem(w http.ResponseWriter, req *http.Request, u who) {
	fac, id := req.PathValue("facility"), req.PathValue("id")
	q := url.Values{"facility": {fac}}
	if !u.Serves(fac) {
		back(w, req, "library", q, "", errScope)
		return
	}
	e, err := c.r.WithdrawCatalogItem(fac, id)
	if err != nil {
		back(w, req, "library", q, "", err)
		return
	}
	c.audit(u, "catalog.withdraw", id, fac, fmt.Sprintf("%s %q", e.Item.Kind, e.Item.Title))
	back(w, req, "library", q, fmt.Sprintf("Withdrew %q: terminals stop offering it; those who own it keep it.", e.Item.Title), nil)
}
