package boltkv

import (
	"sync"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

// notifyHub delivers kv.Notifier messages in process: only relays sharing this Store in one
// process can share a bbolt file (bbolt locks it), so they are every possible subscriber.
type notifyHub struct {
	mu   sync.Mutex
	next int
	subs map[string]map[int]func([]byte)
}

var _ kv.Notifier = (*Store)(nil)

// Notify calls every subscriber of topic, each on a goroutine of its own, as a network store
// would deliver it (the sender never waits for, or runs inside, a receiver).
func (s *Store) Notify(topic string, msg []byte) error {
	if err := kv.CheckTopic(topic); err != nil {
		return err
	}
	s.notify.mu.Lock()
	var fns []func([]byte)
	for _, fn := range s.notify.subs[topic] {
		fns = append(fns, fn)
	}
	s.notify.mu.Unlock()
	for _, fn := range fns {
		go fn(append([]byte(nil), msg...))
	}
	return nil
}

// Subscribe registers fn for topic until the returned function is called.
func (s *Store) Subscribe(topic string, fn func(msg []byte)) (func(), error) {
	if err := kv.CheckTopic(topic); err != nil {
		return nil, err
	}
	h := &s.notify
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[string]map[int]func([]byte){}
	}
	if h.subs[topic] == nil {
		h.subs[topic] = map[int]func([]byte){}
	}
	id := h.next
	h.next++
	h.subs[topic][id] = fn
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[topic], id)
		if len(h.subs[topic]) == 0 {
			delete(h.subs, topic)
		}
	}, nil
}
