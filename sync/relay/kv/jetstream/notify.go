package jskv

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/tether-kiosk/tether/sync/relay/kv"
)

var _ kv.Notifier = (*Store)(nil)

// notifySubject is where topic's messages go: a core NATS subject outside the stream's
// subjects (Prefix.>), so that nothing is stored; the stream name keeps the stores of two
// relays on one cluster apart.
func (s *Store) notifySubject(topic string) string {
	return "_tether_notify." + s.o.Stream + "." + topic
}

// Notify publishes msg on topic's subject with core NATS: at most once, never stored.
func (s *Store) Notify(topic string, msg []byte) error {
	if err := kv.CheckTopic(topic); err != nil {
		return err
	}
	if err := s.nc.Publish(s.notifySubject(topic), msg); err != nil {
		return fmt.Errorf("jskv: notify %s: %w", topic, err)
	}
	return nil
}

// Subscribe subscribes to topic's subject; fn runs on the subscription's goroutine.
func (s *Store) Subscribe(topic string, fn func(msg []byte)) (func(), error) {
	if err := kv.CheckTopic(topic); err != nil {
		return nil, err
	}
	sub, err := s.nc.Subscribe(s.notifySubject(topic), func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("jskv: subscribe %s: %w", topic, err)
	}
	// Flush: the server has the interest once Subscribe returns, so a Notify sent after it
	// (by any gateway) is delivered.
	if err := s.nc.FlushTimeout(s.o.OpTimeout); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("jskv: subscribe %s: %w", topic, err)
	}
	return func() { sub.Unsubscribe() }, nil
}
