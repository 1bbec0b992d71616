package ui

import "sync"

// worker runs domain calls one at a time, in the order the screens asked, off the UI
// goroutine: a draft save queued before a logout lands before it, and the screen never
// waits for a disk write or a sync.
type worker struct {
	mu      sync.Mutex
	queue   []func()
	pending int // queued or running
	wake    chan struct{}
	done    chan struct{}
	closed  bool
}

func newWorker() *worker {
	w := &worker{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *worker) submit(f func()) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.queue = append(w.queue, f)
	w.pending++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) loop() {
	defer close(w.done)
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return
			}
			<-w.wake
			continue
		}
		f := w.queue[0]
		w.queue[0] = nil
		w.queue = w.queue[1:]
		w.mu.Unlock()
		f()
		w.mu.Lock()
		w.pending--
		w.mu.Unlock()
	}
}

// busy reports how many calls are queued or running.
func (w *worker) busy() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending
}

// close finishes what is queued and stops.
func (w *worker) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
}
