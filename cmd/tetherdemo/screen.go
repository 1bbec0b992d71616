package main

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/widget"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/ui/i18n"
)

// screens follows which screen the kiosk shows, as ui names it (OnScreen), and lets the demo
// script wait for one, tap a button and take a screenshot.
type screens struct {
	win    fyne.Window
	cat    *i18n.Catalog
	logf   kiosk.Logf
	doWait func(func()) // runs f on the UI goroutine and waits for it (fyne.DoAndWait)

	mu      sync.Mutex
	cur     string
	since   time.Time
	changed chan struct{} // closed and replaced at each change
}

func newScreens(cat *i18n.Catalog, logf kiosk.Logf) *screens {
	return &screens{cat: cat, logf: logf, changed: make(chan struct{})}
}

// attach gives the screens the kiosk's window, once it is built.
func (s *screens) attach(win fyne.Window, doWait func(func())) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.win, s.doWait = win, doWait
}

// shown is the kiosk's OnScreen hook: name is on show from now.
func (s *screens) shown(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur, s.since = name, time.Now()
	close(s.changed)
	s.changed = make(chan struct{})
}

// walk calls fn for every visible text under o: canvas texts, labels and buttons.
func walk(o fyne.CanvasObject, fn func(text string, b *widget.Button)) {
	if o == nil || !o.Visible() {
		return
	}
	switch v := o.(type) {
	case *fyne.Container:
		for _, c := range v.Objects {
			walk(c, fn)
		}
	case *canvas.Text:
		fn(v.Text, nil)
	case *widget.Label:
		fn(v.Text, nil)
	case *widget.Button:
		fn(v.Text, v)
	}
}

// wait returns when name is on show (at once if it is), with the time it appeared.
func (s *screens) wait(ctx context.Context, name string, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		cur, since, ch := s.cur, s.since, s.changed
		s.mu.Unlock()
		if cur == name {
			return since, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("screen %q did not show within %v (showing %q)", name, timeout, cur)
		}
	}
}

// tap presses the enabled button labelled with translation id (any language), as a finger
// on the touchscreen does.
func (s *screens) tap(id string) error {
	labels := map[string]bool{}
	for _, lang := range s.cat.Languages() {
		labels[s.cat.T(lang, id)] = true
	}
	var err error
	s.doWait(func() {
		var hit *widget.Button
		walk(s.win.Content(), func(text string, b *widget.Button) {
			// A tile may carry a count after its label: "Inbox (2)".
			base, _, _ := strings.Cut(text, " (")
			if b != nil && hit == nil && (labels[text] || labels[base]) && !b.Disabled() {
				hit = b
			}
		})
		if hit == nil {
			err = fmt.Errorf("tap %s: no such button on screen", id)
			return
		}
		hit.Tapped(&fyne.PointEvent{})
	})
	return err
}

// screenshot writes the window as a PNG (captured on the UI goroutine, written atomically).
func (s *screens) screenshot(path string) error {
	var img image.Image
	s.doWait(func() { img = s.win.Canvas().Capture() })
	how := "canvas Capture"
	if blank(img) {
		// Under Xvfb's software GL the front buffer reads back empty; the X server has the pixels.
		var err error
		s.doWait(func() { img, err = grabX11(s.win) })
		if err != nil {
			return fmt.Errorf("canvas capture is empty and %v", err)
		}
		how = "X server (canvas capture came back empty)"
	}
	if blank(img) {
		return fmt.Errorf("capture of the window is empty")
	}
	if err := writePNG(path, img); err != nil {
		return err
	}
	s.logf("screenshot: %s (%dx%d, from the %s)", path, img.Bounds().Dx(), img.Bounds().Dy(), how)
	return nil
}

// blank reports an image with no opaque pixel (sampled on a grid).
func blank(img image.Image) bool {
	if img == nil || img.Bounds().Empty() {
		return true
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 5 {
		for x := b.Min.X; x < b.Max.X; x += 5 {
			if _, _, _, a := img.At(x, y).RGBA(); a != 0 {
				return false
			}
		}
	}
	return true
}

func writePNG(path string, img image.Image) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("screenshot %s: %w", path, err)
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("screenshot %s: %w", path, err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("screenshot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("screenshot %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
