package printer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/clock"
)

// Service prints for the inmate in session and moves the money as the printer answers
// (kiosk/print.go): the price is held before the job leaves, charged once the printer reports
// it completed, and given back when it failed, was cancelled, or never reached the printer.
// Its logs name jobs by id and page count, never the person or the text.
type Service struct {
	Term    *kiosk.Terminal
	Printer *Printer
	// Terminal names this terminal in the watermark.
	Terminal string
	Clock    clock.Clock
	// Every is how often a job in progress is asked about (0: every 2 seconds).
	Every time.Duration
	Logf  func(format string, args ...any)

	mu       sync.Mutex
	inflight map[string]bool // jobs a Print call of this process is still following
}

// Quote is what doc would cost to print now: its pages and their price, for the screen to
// show before the inmate presses Print. An error says why it may not print (too many pages,
// printing off).
func (s *Service) Quote(doc Document) (pages int, price kiosk.Cents, err error) {
	if pages, err = Pages(doc); err != nil {
		return 0, 0, err
	}
	price, err = s.Term.PrintPrice(pages)
	return pages, price, err
}

// Print lays doc out with the watermark for person (the inmate's name and number) on this
// terminal now, holds its price, sends it to the printer and follows the job until the printer
// is done with it. The job comes back charged or released. If ctx ends first the job stays
// held, and SettleHeld settles it later by asking the printer.
func (s *Service) Print(ctx context.Context, inmateID, person string, doc Document) (kiosk.PrintJob, error) {
	now := s.Clock.Now()
	pdf, pages, err := Render(doc, Watermark{Person: person, Terminal: s.Terminal, At: now})
	if err != nil {
		return kiosk.PrintJob{}, err
	}
	job, err := s.Term.HoldPrint(inmateID, pages)
	if err != nil {
		return kiosk.PrintJob{}, err
	}
	s.track(job.ID, true)
	defer s.track(job.ID, false)
	// The job name is the job's id: a title can be a letter's subject, which CUPS would log.
	id, err := s.Printer.Submit(ctx, "tether-"+job.ID, pdf)
	if err != nil {
		s.logf("printer: job %s (%d pages) did not reach queue %s: %v", job.ID, pages, s.Printer.Queue, err)
		released, serr := s.Term.SettlePrint(job.ID, false, "not submitted")
		if serr != nil {
			return job, errors.Join(err, serr)
		}
		return released, err
	}
	if err := s.Term.PrintSubmitted(job.ID, id); err != nil {
		return job, fmt.Errorf("printer: record job %s as printer job %d: %w", job.ID, id, err)
	}
	st, err := s.Printer.Follow(ctx, s.Clock, id, s.every())
	if err != nil && !errors.Is(err, ErrNoSuchJob) {
		return s.jobOr(job, err)
	}
	return s.settle(job, st, err)
}

// SettleHeld settles the jobs whose price is still held that no Print call of this process is
// following: those a kiosk restarted mid-job left behind. Each is asked of the printer once:
// completed is charged; cancelled, aborted, unknown to the server, or never submitted is
// given back. It returns how many are still printing (ask again later).
func (s *Service) SettleHeld(ctx context.Context) (printing int, err error) {
	held, err := s.Term.PrintsHeld()
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, j := range held {
		if s.following(j.ID) {
			continue
		}
		if j.Printer == 0 {
			// Held, then the kiosk stopped before the printer gave a job id: without the
			// printer's word the inmate is not charged.
			if _, err := s.Term.SettlePrint(j.ID, false, "not submitted"); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		st, err := s.Printer.State(ctx, j.Printer)
		switch {
		case errors.Is(err, ErrNoSuchJob):
		case err != nil:
			errs = append(errs, fmt.Errorf("printer: job %s (printer job %d): %w", j.ID, j.Printer, err))
			continue
		case !st.State.Done():
			printing++
			continue
		}
		if _, err := s.settle(j, st, err); err != nil {
			errs = append(errs, err)
		}
	}
	return printing, errors.Join(errs...)
}

// settle ends job as the printer reported it (lookup is ErrNoSuchJob when the server has
// forgotten it: given back).
func (s *Service) settle(job kiosk.PrintJob, st JobStatus, lookup error) (kiosk.PrintJob, error) {
	completed := lookup == nil && st.State == JobCompleted
	reason := "printer: " + st.State.String()
	if lookup != nil {
		reason = "printer: job unknown to the print server"
	}
	s.logf("printer: job %s (%d pages, printer job %d) %s", job.ID, job.Pages, st.ID, map[bool]string{true: "completed: charged", false: reason + ": released"}[completed])
	return s.Term.SettlePrint(job.ID, completed, reason)
}

func (s *Service) jobOr(job kiosk.PrintJob, err error) (kiosk.PrintJob, error) {
	if j, jerr := s.Term.PrintJobByID(job.ID); jerr == nil {
		job = j
	}
	return job, err
}

func (s *Service) every() time.Duration {
	if s.Every > 0 {
		return s.Every
	}
	return 2 * time.Second
}

func (s *Service) track(id string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == nil {
		s.inflight = map[string]bool{}
	}
	if on {
		s.inflight[id] = true
	} else {
		delete(s.inflight, id)
	}
}

func (s *Service) following(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[id]
}

func (s *Service) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}
