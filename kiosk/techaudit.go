package kiosk

import (
	"strings"

	bolt "go.etcd.io/bbolt"
)

// TechAuditPrefix starts the audit kind of every technician action ("tech_sync_now", ...).
const TechAuditPrefix = "tech_"

// maxTechDetail bounds one detail value, so a screen cannot flood the audit trail.
const maxTechDetail = 200

// secretDetailKeys are detail keys a technician action may never carry: the audit goes to
// the relay and to kioskctl, and an enrollment code or a PIN must reach neither.
var secretDetailKeys = []string{"pin", "code", "secret", "token", "password", "key"}

// TechnicianAction records that technician techID did action (lowercase letters, digits
// and '_', e.g. "sync_now", "device_set", "enroll") with detail, as an audit event of kind
// TechAuditPrefix+action that is kept locally and forwarded to the relay in the same
// transaction. It refuses an unknown technician and any detail key that names a secret.
func (t *Terminal) TechnicianAction(techID, action string, detail map[string]string) error {
	const op = "technician action"
	if techID == "" {
		return errInvalid(op, "no technician")
	}
	if action == "" || len(action) > 40 || strings.Trim(action, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		return errInvalid(op, "action %q: want 1 to 40 of a-z, 0-9 and _", action)
	}
	d := make(map[string]string, len(detail)+1)
	for k, v := range detail {
		lk := strings.ToLower(k)
		for _, s := range secretDetailKeys {
			if strings.Contains(lk, s) {
				return errInvalid(op, "detail %q may hold a secret and is never audited", k)
			}
		}
		if len(v) > maxTechDetail {
			v = capText(v, maxTechDetail) + "…" // never half a character
		}
		d[k] = v
	}
	return t.store.update(op, func(tx *bolt.Tx) error {
		var tc Technician
		found, err := getJSON(tx, bTechnicians, techID, &tc)
		if err != nil {
			return err
		}
		if !found {
			return errNotFound(op, "technician %q", techID)
		}
		return appendAudit(tx, t.clock.Now(), TechAuditPrefix+action, techID, d)
	})
}

// RecentTechnicianActions returns up to n of the newest technician actions, newest first.
func (t *Terminal) RecentTechnicianActions(n int) ([]AuditEvent, error) {
	if n <= 0 {
		return nil, nil
	}
	return t.store.RecentAudit(n, func(ev AuditEvent) bool { return strings.HasPrefix(ev.Kind, TechAuditPrefix) })
}
