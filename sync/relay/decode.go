package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// decodeStrict decodes exactly one JSON value into v, refusing unknown fields and trailing
// data; every error names the field it is about ("body" when it is the whole document).
func decodeStrict(op string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return invalid(op, "body", "is empty; a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(op, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid(op, "body", "holds data after the JSON value")
	}
	return nil
}

// jsonError turns an encoding/json error into a field error without echoing the input.
func jsonError(op string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return invalid(op, "body", "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return invalid(op, field, "must be %s, not a JSON %s", kindName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid(op, "body", "JSON ends too early")
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name := strings.Trim(rest, `"`)
		if name == "" || len(name) > 64 {
			return invalid(op, "body", "holds an unknown field")
		}
		return invalid(op, name, "is not a known field")
	}
	// Errors from a field's own decoder (e.g. a duration) carry no field name.
	return invalid(op, "body", "%s", strings.TrimPrefix(msg, "json: "))
}

func kindName(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "an integer"
	case k == "string":
		return "a string"
	case k == "bool":
		return "true or false"
	case k == "slice":
		return "a list"
	case k == "struct", k == "map":
		return "an object"
	}
	return fmt.Sprintf("a %s", k)
}
