package wire

import (
	"encoding/json"
	"strconv"
)

// The relay answers every uplink batch with an ack frame; under a thousand terminals sending
// one-item batches, encoding it through encoding/json (the body by reflection, then the
// envelope, which validates the body again) was a fifth of the relay's time sending it.
// appendAckFrame writes the same bytes by hand: Encode gives the same frame either way
// (TestAckFrameSameAsReflection, FuzzAckFrameSame).

// ackStringSafe marks the bytes encoding/json writes as they are inside a string: printable
// ASCII other than '"', '\\' and the HTML characters it escapes ('<', '>', '&').
var ackStringSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONStr appends s as encoding/json writes a string: as it is when every byte is
// plain, else through json.Marshal (escapes, invalid UTF-8, U+2028 and U+2029).
func appendJSONStr(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !ackStringSafe[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendSeqs appends "name":[seqs] after a comma, as encoding/json writes a []uint64.
func appendSeqs(dst []byte, name string, seqs []uint64) []byte {
	dst = append(dst, name...)
	dst = append(dst, '[')
	for i, s := range seqs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, s, 10)
	}
	return append(dst, ']')
}

// appendRejections appends name and the list rs: [{"seq":N,"reason":"..."},...] (an ack's
// rejected items, a down_ack's refused ones).
func appendRejections(dst []byte, name string, rs []Rejection) []byte {
	dst = append(dst, name...)
	dst = append(dst, '[')
	for i, r := range rs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"seq":`...)
		dst = strconv.AppendUint(dst, r.Seq, 10)
		dst = append(dst, `,"reason":`...)
		dst = appendJSONStr(dst, r.Reason)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendAckFrame appends the ack frame of a: {"type":"ack","body":{...}}, the fields in the
// order of Ack's declaration, empty lists and a nil Letters left out (omitempty).
func appendAckFrame(dst []byte, a *Ack) []byte {
	dst = append(dst, `{"type":"ack","body":{"epoch":`...)
	dst = appendJSONStr(dst, a.Epoch)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, a.Seq, 10)
	if len(a.Rejected) > 0 {
		dst = appendRejections(dst, `,"rejected":`, a.Rejected)
	}
	if l := a.Letters; l != nil {
		dst = append(dst, `,"letters":{`...)
		if len(l.Delivered) > 0 {
			dst = appendSeqs(dst, `"delivered":`, l.Delivered)
		}
		if len(l.Held) > 0 {
			if len(l.Delivered) > 0 {
				dst = append(dst, ',')
			}
			dst = appendSeqs(dst, `"held":`, l.Held)
		}
		dst = append(dst, '}')
	}
	return append(dst, "}}"...)
}

// appendDownAckFrame appends the down_ack frame of d, as encodeReflect writes it: a terminal
// sends one after each down frame it applied, and with charges fanning out to a facility's
// kiosks that is one frame per charge per kiosk (TestDownAckFrameSameAsReflection,
// FuzzDownAckFrameSame).
func appendDownAckFrame(dst []byte, d *DownAck) []byte {
	dst = append(dst, `{"type":"down_ack","body":{"seq":`...)
	dst = strconv.AppendUint(dst, d.Seq, 10)
	if len(d.Refused) > 0 {
		dst = appendRejections(dst, `,"refused":`, d.Refused)
	}
	return append(dst, "}}"...)
}
