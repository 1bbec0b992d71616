package ui

import (
	"bytes"
	"image"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	fynetheme "fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/photo"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/ui/theme"
)

// Books, lessons and courses: a book or lesson is read a page at a time (text pages as text,
// image pages checked as photos are before decoding); a course lists its lessons and its
// quizzes, each answered a question at a time and sent to the relay, which grades it.

// showPages shows page i of a book or lesson; back returns where it was opened from.
func (k *Kiosk) showPages(it kiosk.CatalogItem, i int, back func()) {
	lib := k.lib
	if lib == nil || len(it.Pages) == 0 {
		return
	}
	i = min(max(i, 0), len(it.Pages)-1)
	v, w, status := k.libraryView("library_page")
	k.viewItem(it)
	pg := it.Pages[i]
	again := func() { k.showPages(it, i, back) }
	ref, whole := k.mediaWhole(pg)
	if !whole {
		k.arriving(v, w, it.Title, back, status, pg, again)
		return
	}
	k.setScreen(v, k.frame(w, it.Title, back, status, text(w.T("common.loading"), theme.Grey)))
	k.run(func() func() {
		var body string
		var img image.Image
		b, err := k.readMedia(ref, vocab.MediaLimit(pg.Type))
		if err == nil {
			if pg.Type == vocab.MediaText {
				body = strings.ToValidUTF8(string(b), "\uFFFD")
			} else {
				img, _, err = photo.DefaultPolicy().Read(pg.Type, bytes.NewReader(b))
			}
		}
		return func() {
			if k.lib != lib || k.v != v {
				return
			}
			var page fyne.CanvasObject
			switch {
			case err != nil:
				k.logf("ui: page %d of %s: %v", i+1, it.ID, err)
				page = label(w.T("library.page_unreadable"))
			case img != nil:
				c := canvas.NewImageFromImage(img)
				c.FillMode = canvas.ImageFillContain
				c.SetMinSize(fyne.NewSize(600, 450))
				page = c
			default:
				page = card(theme.Panel, label(body))
			}
			prev := k.button(w.T("library.previous"), fynetheme.NavigateBackIcon(), func() { k.showPages(it, i-1, back) })
			next := k.button(w.T("library.next"), fynetheme.NavigateNextIcon(), func() { k.showPages(it, i+1, back) })
			if i == 0 {
				prev.Disable()
			}
			if i == len(it.Pages)-1 {
				next.Disable()
			}
			nav := container.NewHBox(big(prev, 220, 64), big(next, 220, 64))
			if body != "" {
				doc := PrintDoc{Title: w.T("library.print_title", "title", it.Title, "i", strconv.Itoa(i+1)), Body: body}
				if pb := k.printButton(w, doc, again); pb != nil {
					nav.Add(pb)
				}
			}
			n := theme.Text(w.T("library.page", "i", strconv.Itoa(i+1), "n", strconv.Itoa(len(it.Pages))), theme.TextSize, theme.Grey, true)
			k.setScreen(v, k.frame(w, it.Title, back, status, container.NewBorder(n, container.NewCenter(nav), nil, nil, k.vscroll(page))))
		}
	})
}

// showCourse lists a course's lessons and quizzes.
func (k *Kiosk) showCourse(course kiosk.CatalogItem) {
	lib := k.lib
	if lib == nil {
		return
	}
	v, w, status := k.libraryView("library_course")
	again := func() { k.showCourse(course) }
	byID := map[string]kiosk.CatalogItem{}
	for _, it := range lib.catalog {
		byID[it.ID] = it
	}
	for _, o := range lib.owned {
		if _, ok := byID[o.Item.ID]; !ok {
			byID[o.Item.ID] = o.Item
		}
	}
	rows := []fyne.CanvasObject{}
	if course.Description != "" {
		rows = append(rows, label(course.Description))
	}
	rows = append(rows, theme.Text(w.T("library.lessons"), theme.SubHeadingSize, theme.White, true))
	for n, id := range course.Lessons {
		les, ok := byID[id]
		if !ok || les.Kind != vocab.CatalogLesson {
			rows = append(rows, card(theme.Panel, text(w.T("library.lesson_missing", "n", strconv.Itoa(n+1)), theme.Grey)))
			continue
		}
		read := k.primary(w.T("library.read"), nil, func() { k.showPages(les, 0, again) })
		rows = append(rows, card(theme.Panel, container.NewBorder(nil, nil, nil, big(read, 200, 64),
			theme.Text(strconv.Itoa(n+1)+". "+les.Title, theme.TextSize, theme.White, true))))
	}
	if len(course.Quizzes) > 0 {
		rows = append(rows, theme.Text(w.T("library.quizzes"), theme.SubHeadingSize, theme.White, true))
		for _, q := range course.Quizzes {
			title := q.Title
			if title == "" {
				title = w.T("library.quiz")
			}
			take := k.primary(w.T("library.take_quiz"), nil, func() { k.showQuestion(course, q, nil) })
			rows = append(rows, card(theme.Panel, container.NewBorder(nil, nil, nil, big(take, 240, 64),
				theme.Text(title, theme.TextSize, theme.White, true))))
		}
	}
	k.setScreen(v, k.frame(w, course.Title, k.showLibrary, status, k.vscroll(container.NewVBox(rows...))))
}

// showQuestion asks the next question of quiz q (answers holds those answered); each choice
// is a button, and the last answer leads to Send.
func (k *Kiosk) showQuestion(course kiosk.CatalogItem, q vocab.Quiz, answers []int) {
	v, w, status := k.libraryView("library_quiz")
	back := func() { k.showCourse(course) }
	i := len(answers)
	if i >= len(q.Questions) {
		k.showQuizReady(course, q, answers, "")
		return
	}
	qq := q.Questions[i]
	rows := []fyne.CanvasObject{
		theme.Text(w.T("library.question", "i", strconv.Itoa(i+1), "n", strconv.Itoa(len(q.Questions))), theme.TextSize, theme.Grey, true),
		label(qq.Text),
	}
	for c, choice := range qq.Choices {
		b := k.button(choice, nil, func() {
			k.showQuestion(course, q, append(append([]int(nil), answers...), c))
		})
		b.Alignment = widget.ButtonAlignLeading
		rows = append(rows, big(b, 600, 64))
	}
	k.setScreen(v, k.frame(w, q.Title, back, status, k.vscroll(container.NewVBox(rows...))))
}

// showQuizReady offers to send the answers; refusal is why the last Send was refused.
func (k *Kiosk) showQuizReady(course kiosk.CatalogItem, q vocab.Quiz, answers []int, refusal string) {
	s := k.sess
	v, w, status := k.libraryView("library_quiz")
	back := func() { k.showCourse(course) }
	rows := []fyne.CanvasObject{label(w.T("library.quiz_done", "n", strconv.Itoa(len(answers))))}
	if refusal != "" {
		rows = append(rows, theme.Text(refusal, theme.TextSize, theme.Orange, true))
	}
	var send *widget.Button
	send = k.primary(w.T("library.quiz_send"), fynetheme.MailSendIcon(), func() {
		send.Disable()
		id := s.inmateID
		k.run(func() func() {
			a, err := k.d.SubmitQuiz(id, course.ID, q.ID, answers)
			return func() {
				if k.sess != s || k.lib == nil {
					return
				}
				if err != nil {
					k.showQuizReady(course, q, answers, w.libraryRefusal(err, 0, 0))
					return
				}
				k.showQuizSent(course, q, a.ID)
			}
		})
	})
	again := k.button(w.T("library.quiz_again"), nil, func() { k.showQuestion(course, q, nil) })
	rows = append(rows, container.NewHBox(big(send, 320, 72), big(again, 260, 72)))
	k.setScreen(v, k.frame(w, q.Title, back, status, container.NewVBox(rows...)))
}

// showQuizSent says the answers went for grading, offline or not, and, once the relay's
// result of this attempt arrives (read again at every change), exactly what the relay said:
// the score, the pass mark, the credit or why there is none, the attempts left. The terminal
// never grades: until the result comes, the screen says only "Sent for grading".
func (k *Kiosk) showQuizSent(course kiosk.CatalogItem, q vocab.Quiz, attemptID string) {
	s := k.sess
	v, w, status := k.libraryView("library_quiz_sent")
	back := func() { k.showCourse(course) }
	box := container.NewVBox()
	waiting := func() []fyne.CanvasObject {
		rows := []fyne.CanvasObject{theme.Text(w.T("library.quiz_sent"), theme.SubHeadingSize, theme.Green, true)}
		if !k.online {
			rows = append(rows, label(w.T("library.quiz_offline")))
		}
		if credit := k.d.Policy().QuizCredit(); credit > 0 {
			rows = append(rows, label(w.T("library.quiz_credit", "amount", credit.String())))
		}
		return rows
	}
	backBtn := big(k.button(w.T("library.back_to_course"), fynetheme.NavigateBackIcon(), back), 320, 64)
	box.Objects = append(waiting(), backBtn)
	k.setScreen(v, k.frame(w, q.Title, back, status, box))
	id := s.inmateID
	load := func() {
		k.run(func() func() {
			st, ok, err := k.d.LastQuizAttempt(id, course.ID, q.ID)
			return func() {
				if k.sess != s || k.v != v {
					return
				}
				if err != nil {
					k.logf("ui: read quiz result: %v", err)
					return
				}
				if !ok || st.AttemptID != attemptID || st.Result == nil {
					return // still waiting for the relay
				}
				box.Objects = append(w.quizResult(*st.Result), backBtn)
				box.Refresh()
			}
		})
	}
	v.onChanged = load
	load()
}

// quizResult says the relay's result of an attempt.
func (w words) quizResult(r vocab.QuizResult) []fyne.CanvasObject {
	score := map[string]string{"right": strconv.Itoa(r.Right), "n": strconv.Itoa(r.Questions), "pass": strconv.Itoa(r.PassScore)}
	args := func(m map[string]string) []string {
		var out []string
		for k, v := range m {
			out = append(out, k, v)
		}
		return out
	}
	attempts := w.T("library.quiz_attempts_none")
	if r.AttemptsLeft > 0 {
		attempts = w.count("library.quiz_attempts_left", r.AttemptsLeft)
	}
	switch r.Outcome {
	case vocab.QuizPassed:
		var head string
		switch {
		case r.CreditMinutes > 0:
			head = w.count("library.quiz_passed_minutes", r.CreditMinutes)
		case r.CreditCents > 0:
			head = w.T("library.quiz_passed_amount", "amount", r.CreditCents.String())
		case r.NoCredit == vocab.QuizAlreadyCredited:
			head = w.T("library.quiz_passed_before")
		default:
			head = w.T("library.quiz_passed_no_credit")
		}
		return []fyne.CanvasObject{theme.Text(head, theme.SubHeadingSize, theme.Green, true),
			label(w.T("library.quiz_score", args(score)...))}
	case vocab.QuizFailed:
		return []fyne.CanvasObject{theme.Text(w.T("library.quiz_failed", args(score)...)+" "+attempts, theme.SubHeadingSize, theme.Orange, true)}
	case vocab.QuizNotGraded:
		return []fyne.CanvasObject{theme.Text(w.T("library.quiz_not_graded"), theme.SubHeadingSize, theme.Orange, true)}
	}
	return []fyne.CanvasObject{theme.Text(w.T("library.quiz_refused"), theme.SubHeadingSize, theme.Orange, true)}
}
