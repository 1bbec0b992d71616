// Package printer prints a letter or a lesson page on the facility printer through CUPS: it
// lays the text out into PDF pages watermarked with who printed it, where and when (as
// PrisonPC does), counts the pages, submits the PDF to a named CUPS queue over IPP, and
// follows the job until the printer reports it completed or failed. Service ties that to the
// terminal's money (kiosk/print.go): the price is held before the job goes out, charged when
// it completed and given back when it failed.
package printer

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/go-pdf/fpdf"
)

// Document is what an inmate prints: a letter or a lesson page, as plain text with a title.
type Document struct {
	Title string
	Body  string
}

// Watermark names who printed a page, on which terminal and when; it is on every page.
type Watermark struct {
	Person   string // the inmate's name and number, as staff read them
	Terminal string
	At       time.Time
}

// Text is the watermark's line, as it is printed.
func (w Watermark) Text() string {
	return fmt.Sprintf("Printed for %s at %s, %s", w.Person, w.Terminal, w.At.UTC().Format("2006-01-02 15:04 UTC"))
}

// MaxDocumentBytes bounds the text of one document before layout: a lesson or a letter is far
// smaller, and no job may hold the kiosk's CPU for long.
const MaxDocumentBytes = 256 << 10

// Layout of a US Letter page in millimetres.
const (
	pageMargin = 20.0
	lineHeight = 5.5
	bodySize   = 11
)

// Render lays doc out into a PDF with w on every page and returns it with its page count.
func Render(doc Document, w Watermark) ([]byte, int, error) {
	if len(doc.Title)+len(doc.Body) > MaxDocumentBytes {
		return nil, 0, fmt.Errorf("printer: the document is %d bytes, more than the %d a job may hold",
			len(doc.Title)+len(doc.Body), MaxDocumentBytes)
	}
	if strings.TrimSpace(w.Person) == "" || strings.TrimSpace(w.Terminal) == "" || w.At.IsZero() {
		return nil, 0, fmt.Errorf("printer: the watermark needs the person, the terminal and the time")
	}
	pdf := fpdf.New("P", "mm", "Letter", "")
	// Fixed dates: the same document and watermark give the same bytes.
	pdf.SetCreationDate(w.At)
	pdf.SetModificationDate(w.At)
	pdf.SetMargins(pageMargin, pageMargin+8, pageMargin)
	pdf.SetAutoPageBreak(true, pageMargin+6)
	pdf.AliasNbPages("{nb}")
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252: the core fonts' encoding
	mark := tr(clean(w.Text(), false))
	pdf.SetTitle(clean(doc.Title, false), true)
	pageW, pageH := pdf.GetPageSize()
	pdf.SetHeaderFunc(func() {
		// Drawn first on each page, so the body prints over the diagonal mark.
		pdf.SetFont("Helvetica", "B", 22)
		pdf.SetTextColor(215, 215, 215)
		pdf.TransformBegin()
		pdf.TransformRotate(55, pageW/2, pageH/2)
		tw := pdf.GetStringWidth(mark)
		pdf.Text(pageW/2-tw/2, pageH/2, mark)
		pdf.TransformEnd()
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(90, 90, 90)
		pdf.SetXY(pageMargin, pageMargin-8)
		pdf.CellFormat(0, 5, mark, "B", 0, "L", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
		pdf.SetXY(pageMargin, pageMargin+8)
	})
	pdf.SetFooterFunc(func() {
		pdf.SetY(-pageMargin)
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(90, 90, 90)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("%s - page %d of {nb}", clean(w.Terminal, false), pdf.PageNo())), "T", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	if t := strings.TrimSpace(clean(doc.Title, false)); t != "" {
		pdf.SetFont("Helvetica", "B", 14)
		pdf.MultiCell(0, 7, tr(t), "", "L", false)
		pdf.Ln(3)
	}
	pdf.SetFont("Helvetica", "", bodySize)
	pdf.MultiCell(0, lineHeight, tr(clean(doc.Body, true)), "", "L", false)
	var out bytes.Buffer
	if err := pdf.Output(&out); err != nil {
		return nil, 0, fmt.Errorf("printer: lay out the document: %w", err)
	}
	return out.Bytes(), pdf.PageNo(), nil
}

// Pages counts the pages doc takes, for the price shown before printing; the watermark takes
// the same room on every page whatever it says.
func Pages(doc Document) (int, error) {
	_, n, err := Render(doc, Watermark{Person: "-", Terminal: "-", At: time.Unix(0, 0)})
	return n, err
}

// clean drops control characters (a stray escape must not reach the printer), keeping line
// breaks where multiline allows them and turning tabs into spaces.
func clean(s string, multiline bool) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' && multiline:
			return r
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r) || r == unicode.ReplacementChar:
			return -1
		}
		return r
	}, s)
}
