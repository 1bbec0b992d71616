package wire

import "strconv"

// A terminal sends every uplink item in a batch frame. Through encoding/json that is two
// passes of reflection (the batch, then the envelope, which validates and compacts the batch's
// text again) and each item's body compacted twice: under a thousand terminals sending
// one-item batches, a fifth of the load tool's CPU, which shares the machine with the relay it
// measures (docs/BENCHMARKS.md, tenth round). appendBatchFrame writes the same bytes by hand
// (TestBatchFrameSameAsReflection, FuzzBatchFrameSame); whatever it cannot write byte for byte
// (a body that is not compact JSON, a time encoding/json refuses) goes through encoding/json.

// appendBatchFrame appends the batch frame of b: {"type":"batch","body":{...}}, as
// encodeReflect writes it. ok is false when the frame must go through encodeReflect: an item
// body that is not JSON already compacted as encoding/json compacts it (no white space
// outside strings, none of < > & U+2028 U+2029, at most fastMaxDepth deep), or a created_at
// encoding/json refuses (a year outside 0-9999).
func appendBatchFrame(dst []byte, b *Batch) (_ []byte, ok bool) {
	dst = append(dst, `{"type":"batch","body":{"epoch":`...)
	dst = appendJSONStr(dst, b.Epoch)
	dst = append(dst, `,"items":`...)
	if b.Items == nil {
		return append(dst, "null}}"...), true
	}
	dst = append(dst, '[')
	var s *scanner // made at the first body, for all of the frame's
	for i := range b.Items {
		it := &b.Items[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"seq":`...)
		dst = strconv.AppendUint(dst, it.Seq, 10)
		dst = append(dst, `,"id":`...)
		dst = appendJSONStr(dst, it.ID)
		dst = append(dst, `,"kind":`...)
		dst = appendJSONStr(dst, it.Kind)
		dst = append(dst, `,"created_at":"`...)
		var err error
		if dst, err = it.CreatedAt.AppendText(dst); err != nil {
			return nil, false
		}
		dst = append(dst, `","body":`...)
		if it.Body == nil {
			dst = append(dst, "null"...) // a nil json.RawMessage encodes as null
		} else {
			if s == nil {
				s = &scanner{special: strSpecial()}
			}
			if !compactJSON(s, it.Body) {
				return nil, false
			}
			dst = append(dst, it.Body...)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}}"...), true
}

// compactJSON reports whether body is one JSON value that encoding/json's compaction (as
// json.Marshal applies it to a json.RawMessage, HTML escaping included) leaves as it is.
func compactJSON(s *scanner, body []byte) bool {
	s.b, s.i, s.compact = body, 0, true
	if !s.value(0) {
		return false
	}
	s.ws()
	return s.i == len(body) && s.compact
}
