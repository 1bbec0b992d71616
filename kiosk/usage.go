package kiosk

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// Usage is the inmate's statement: every session on this terminal with its start, end, minutes,
// cost (Charged - Credited) and end reason, newest first. A session in progress has no End yet.
func (t *Terminal) Usage(inmateID string) ([]Session, error) {
	const op = "usage statement"
	if inmateID == "" {
		return nil, errInvalid(op, "inmate id is empty")
	}
	var out []Session
	err := t.store.view(func(tx *bolt.Tx) error {
		prefix := []byte(inmateID + "/")
		c := tx.Bucket([]byte(bSessIndex)).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := k[len(prefix):]
			if bytes.IndexByte(id, '/') >= 0 {
				continue // another inmate whose id starts with this one's and a slash
			}
			s, err := loadSessionTx(tx, string(id))
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, errIO(op, err)
	}
	// Session ids are UUIDv7, so index order is the order the sessions began in.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
