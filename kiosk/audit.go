package kiosk

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// maxLocalAudit bounds the audit copy kept on the terminal; the relay keeps them all.
const maxLocalAudit = 5000

// appendAudit records an event locally and queues it for the relay, in the caller's
// transaction. Callers must never put a PIN or a secret in detail.
func appendAudit(tx *bolt.Tx, now time.Time, kind, actor string, detail map[string]string) error {
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("make audit id: %w", err)
	}
	ev := fitAudit(AuditEvent{ID: id.String(), At: now.UTC(), Kind: kind, Actor: actor, Detail: detail})
	if err := putJSON(tx, bAudit, ev.ID, ev); err != nil {
		return err
	}
	n, err := addCount(tx, kAuditCount, 1)
	if err != nil {
		return err
	}
	if n > maxLocalAudit {
		c := tx.Bucket([]byte(bAudit)).Cursor()
		if k, _ := c.First(); k != nil {
			if err := c.Delete(); err != nil {
				return fmt.Errorf("trim local audit: %w", err)
			}
			if _, err := addCount(tx, kAuditCount, -1); err != nil {
				return err
			}
		}
	}
	_, err = enqueue(tx, now, ItemAudit, ev)
	return err
}

// RecentAudit returns up to n of the newest audit events, newest first, that keep(ev) accepts.
func (s *Store) RecentAudit(n int, keep func(AuditEvent) bool) ([]AuditEvent, error) {
	var out []AuditEvent
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bAudit)).Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			var ev AuditEvent
			if err := json.Unmarshal(v, &ev); err != nil {
				return &Error{Kind: KindCorrupt, Op: "read audit", Err: err}
			}
			if keep == nil || keep(ev) {
				out = append(out, ev)
			}
		}
		return nil
	})
	return out, err
}
