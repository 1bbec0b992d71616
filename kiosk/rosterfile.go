package kiosk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Roster is the JSON a facility provisions a terminal with (and the shape of a full roster
// from the relay). PINs travel only as argon2id hashes made by `kioskctl hash-pin`:
//
//	{"inmates": [{"id": "I-1", "name": "Ana Ruiz", "badges": ["B-1001"], "pin_hash": "$argon2id$...",
//	  "language": "es", "status": "active", "messaging": true, "media": false, "tablet_bound": false}],
//	 "technicians": [{"id": "T-1", "name": "Sam Lee", "badges": ["T-9001"], "pin_hash": "$argon2id$...",
//	  "role": "installer"}]}
type Roster struct {
	Inmates     []Inmate     `json:"inmates"`
	Technicians []Technician `json:"technicians"`
}

// ImportStats says what an import stored.
type ImportStats struct {
	Inmates     int
	Technicians int
}

// MaxRosterBytes bounds a roster file; a large facility's roster is well under a megabyte.
const MaxRosterBytes = 32 << 20

// ParseRoster decodes and validates a roster file; src (the file name) starts every error,
// which names the record and field at fault. Missing language means "en", missing status "active".
func ParseRoster(src string, data []byte) (Roster, error) {
	var r Roster
	if len(data) > MaxRosterBytes {
		return r, rosterErr(src, badField("", "is %d bytes, more than the %d allowed", len(data), MaxRosterBytes))
	}
	var top struct {
		Inmates     []json.RawMessage `json:"inmates"`
		Technicians []json.RawMessage `json:"technicians"`
	}
	if err := decodeStrict(data, &top); err != nil {
		return r, rosterErr(src, jsonFieldErr("", data, err))
	}
	for i, raw := range top.Inmates {
		path := fmt.Sprintf("inmates[%d]", i)
		var in Inmate
		if err := decodeStrict(raw, &in); err != nil {
			return Roster{}, rosterErr(src, jsonFieldErr(path, raw, err))
		}
		if in.Language == "" {
			in.Language = "en"
		}
		if in.Status == "" {
			in.Status = StatusActive
		}
		r.Inmates = append(r.Inmates, in)
	}
	for i, raw := range top.Technicians {
		path := fmt.Sprintf("technicians[%d]", i)
		var tc Technician
		if err := decodeStrict(raw, &tc); err != nil {
			return Roster{}, rosterErr(src, jsonFieldErr(path, raw, err))
		}
		r.Technicians = append(r.Technicians, tc)
	}
	if err := r.Validate(src); err != nil {
		return Roster{}, err
	}
	return r, nil
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("is empty")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("has more after the end of the JSON value")
	}
	return nil
}

// jsonFieldErr turns a decoder error into a field error; it quotes no value from the input,
// which might hold a PIN typed into the wrong field.
func jsonFieldErr(path string, data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := lineCol(data, syn.Offset)
		return badField(path, "bad JSON at line %d, column %d: %v", line, col, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return badField(path, "must be a JSON object, not %s", typ.Value)
		}
		return badField(join(path, field), "must be %s, not %s", jsonTypeName(typ.Type.Kind().String()), typ.Value)
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, `json: unknown field "`); ok {
		name = strings.TrimSuffix(name, `"`)
		if strings.Contains(strings.ToLower(name), "pin") {
			return badField(join(path, name), "is not a field; PINs are never stored in clear: put `kioskctl hash-pin` output in pin_hash")
		}
		return badField(join(path, name), "is not a field of this record")
	}
	return badField(path, "%s", strings.TrimPrefix(msg, "json: "))
}

func jsonTypeName(kind string) string {
	switch kind {
	case "slice":
		return "a list"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	default:
		return "a " + kind
	}
}

// lineCol gives the 1-based position of the byte a decoder stopped at (Offset counts it).
func lineCol(data []byte, offset int64) (line, col int) {
	at := min(max(int(offset)-1, 0), len(data))
	line = 1 + bytes.Count(data[:at], []byte("\n"))
	col = at - bytes.LastIndexByte(data[:at], '\n')
	return line, col
}

func rosterErr(src string, err error) error {
	if src != "" {
		err = fmt.Errorf("%s: %w", src, err)
	}
	return &Error{Kind: KindInvalid, Op: "roster", Err: err}
}

// Validate checks every record and what must hold across records: ids and badges unique
// among inmates and technicians together, and no two records sharing a PIN hash (a shared
// salt means a hash was copied instead of made for that person).
func (r Roster) Validate(src string) error {
	type owner struct{ kind, id, path string }
	ids := map[string]owner{}
	badges := map[string]owner{}
	hashes := map[string]string{}
	check := func(kind, path, id, hash string, bs []string) error {
		if o, dup := ids[id]; dup {
			return badField(path+".id", "%q is also the id of %s", id, o.path)
		}
		ids[id] = owner{kind, id, path}
		for j, b := range bs {
			if o, dup := badges[b]; dup {
				return badField(fmt.Sprintf("%s.badges[%d]", path, j), "badge %q already belongs to %s %s", b, o.kind, o.id)
			}
			badges[b] = owner{kind, id, path}
		}
		if other, dup := hashes[hash]; dup {
			return badField(path+".pin_hash", "is the same hash and salt as %s; hash each PIN on its own", other)
		}
		hashes[hash] = path
		return nil
	}
	for i, in := range r.Inmates {
		path := fmt.Sprintf("inmates[%d]", i)
		if err := validateInmate(path, in); err != nil {
			return rosterErr(src, err)
		}
		if err := check(PersonInmate, path, in.ID, in.PINHash, in.Badges); err != nil {
			return rosterErr(src, err)
		}
	}
	for i, tc := range r.Technicians {
		path := fmt.Sprintf("technicians[%d]", i)
		if err := validateTechnician(path, tc); err != nil {
			return rosterErr(src, err)
		}
		if err := check(PersonTechnician, path, tc.ID, tc.PINHash, tc.Badges); err != nil {
			return rosterErr(src, err)
		}
	}
	return nil
}

// ImportRoster stores every record of r in one transaction: all of it or, on any error
// (which names src, the record and the field), none of it.
func (s *Store) ImportRoster(now time.Time, src string, r Roster, actor string) (ImportStats, error) {
	if err := r.Validate(src); err != nil {
		return ImportStats{}, err
	}
	err := s.update("import roster", func(tx *bolt.Tx) error {
		if err := applyRosterTx(tx, now, src, r, actor); err != nil {
			return err
		}
		return appendAudit(tx, now, "roster_imported", actor, map[string]string{
			"source":      src,
			"inmates":     fmt.Sprint(len(r.Inmates)),
			"technicians": fmt.Sprint(len(r.Technicians)),
		})
	})
	if err != nil {
		return ImportStats{}, err
	}
	return ImportStats{Inmates: len(r.Inmates), Technicians: len(r.Technicians)}, nil
}

// ImportRoster parses a roster file's bytes and imports it (kioskd's provisioning flag).
func (t *Terminal) ImportRoster(src string, data []byte, actor string) (ImportStats, error) {
	r, err := ParseRoster(src, data)
	if err != nil {
		return ImportStats{}, err
	}
	st, err := t.store.ImportRoster(t.clock.Now(), src, r, actor)
	if err == nil {
		t.emit(Event{Kind: EventChanged, At: t.clock.Now()})
	}
	return st, err
}
