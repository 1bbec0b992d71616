package printer

import (
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/internal/cupstest"
)

var testMark = Watermark{Person: "Ana Pérez (A1)", Terminal: "kiosk-north-3", At: time.Date(2026, 3, 4, 15, 30, 0, 0, time.UTC)}

// twoPageLetter is a letter that takes two pages.
func twoPageLetter() Document {
	var b strings.Builder
	for i := range 60 {
		b.WriteString("Querida mamá, this is line ")
		b.WriteString(strings.Repeat("x", i%20))
		b.WriteString(" of my letter.\n")
	}
	return Document{Title: "Letter to Mamá", Body: b.String()}
}

// assertWatermarked checks that pdf has want pages, each carrying the watermark.
func assertWatermarked(t *testing.T, pdf []byte, want int, w Watermark) {
	t.Helper()
	pages := cupstest.PDFText(t, pdf)
	if len(pages) != want {
		t.Fatalf("the PDF has %d pages, want %d", len(pages), want)
	}
	mark := w.Text()
	if w.At.IsZero() { // any time: up to the comma before it
		mark = mark[:strings.LastIndex(mark, ",")+1]
	}
	for i, p := range pages {
		// pdftotext may break the rotated copy; the header line is whole.
		if !strings.Contains(strings.Join(strings.Fields(p), " "), mark) {
			t.Errorf("page %d lacks the watermark %q:\n%s", i+1, mark, p)
		}
	}
}

func TestRenderWatermarksEveryPage(t *testing.T) {
	pdf, n, err := Render(twoPageLetter(), testMark)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("a 60-line letter took %d pages, want 2", n)
	}
	if got, err := Pages(twoPageLetter()); err != nil || got != n {
		t.Fatalf("Pages = %d, %v; the print took %d", got, err, n)
	}
	if one, _ := Pages(Document{Title: "Short", Body: "Hello"}); one != 1 {
		t.Fatalf("a short letter takes %d pages", one)
	}
	if empty, _ := Pages(Document{}); empty != 1 {
		t.Fatalf("an empty page takes %d pages", empty)
	}
	assertWatermarked(t, pdf, 2, testMark)
	if text := strings.Join(cupstest.PDFText(t, pdf), ""); !strings.Contains(text, "Querida mamá") {
		t.Errorf("the body is not in the PDF:\n%s", text)
	}
}

func TestRenderRefusesWhatItCannotPrint(t *testing.T) {
	if _, _, err := Render(Document{Body: strings.Repeat("a", MaxDocumentBytes+1)}, testMark); err == nil ||
		!strings.Contains(err.Error(), "bytes") {
		t.Errorf("an oversized document: %v", err)
	}
	if _, _, err := Render(Document{Body: "x"}, Watermark{Terminal: "k", At: testMark.At}); err == nil ||
		!strings.Contains(err.Error(), "watermark") {
		t.Errorf("no person in the watermark: %v", err)
	}
	// Control characters never reach the printer.
	pdf, _, err := Render(Document{Title: "a\x1b[2Jb", Body: "line\x1bE\x00one\r\nline two"}, testMark)
	if err != nil {
		t.Fatal(err)
	}
	if text := strings.Join(cupstest.PDFText(t, pdf), ""); strings.ContainsAny(text, "\x1b\x00") || !strings.Contains(text, "lineEone") {
		t.Errorf("control characters reached the page: %q", text)
	}
}
