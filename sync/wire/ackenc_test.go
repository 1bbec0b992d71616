package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

// ackSamples are acks as the relay sends them, and with every string encoding/json escapes.
func ackSamples() []Ack {
	return []Ack{
		{},
		{Epoch: "0f3c9a", Seq: 1},
		{Epoch: "e", Seq: 18446744073709551615, Rejected: []Rejection{}},
		{Epoch: "e", Seq: 7, Rejected: []Rejection{{Seq: 3, Reason: RefuseInvalid}, {Seq: 7, Reason: "contact_limit"}}},
		{Epoch: "e", Seq: 7, Letters: &Letters{}},
		{Epoch: "e", Seq: 7, Letters: &Letters{Delivered: []uint64{}, Held: []uint64{}}},
		{Epoch: "e", Seq: 9, Letters: &Letters{Delivered: []uint64{1, 2, 9}}},
		{Epoch: "e", Seq: 9, Letters: &Letters{Held: []uint64{4}}},
		{Epoch: "e", Seq: 9, Rejected: []Rejection{{Seq: 5, Reason: RefuseSuspended}}, Letters: &Letters{Delivered: []uint64{1}, Held: []uint64{4, 9}}},
		{Epoch: "<a&b>\"\\\n\t\u2028\u2029é\xff", Seq: 2, Rejected: []Rejection{{Seq: 2, Reason: "a<b>&\x00\x7f\u00e9\xc3"}}},
	}
}

// Encode writes an ack frame by hand (ackenc.go): byte for byte the frame encoding/json
// writes, given as a value or a pointer.
func TestAckFrameSameAsReflection(t *testing.T) {
	for _, a := range ackSamples() {
		want, err := encodeReflect(a)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []any{a, &a} {
			got, err := Encode(msg)
			if err != nil {
				t.Fatalf("Encode(%T %+v): %v", msg, a, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("ack %+v (%T):\n got %s\nwant %s", a, msg, got, want)
			}
		}
	}
	// A nil *Ack is still encoded by encoding/json (a null body), as before.
	var nilAck *Ack
	got, err := Encode(nilAck)
	want, werr := encodeReflect(nilAck)
	if !bytes.Equal(got, want) || (err == nil) != (werr == nil) {
		t.Fatalf("nil ack: %s, %v; want %s, %v", got, err, want, werr)
	}
}

// FuzzAckFrameSame holds the hand-written ack frame to encoding/json's on any strings and
// numbers.
func FuzzAckFrameSame(f *testing.F) {
	for _, a := range ackSamples() {
		reason := ""
		if len(a.Rejected) > 0 {
			reason = a.Rejected[0].Reason
		}
		f.Add(a.Epoch, a.Seq, reason, uint8(3))
	}
	f.Fuzz(func(t *testing.T, epoch string, seq uint64, reason string, shape uint8) {
		a := Ack{Epoch: epoch, Seq: seq}
		if shape&1 != 0 {
			a.Rejected = []Rejection{{Seq: seq / 2, Reason: reason}, {Seq: seq, Reason: epoch}}
		}
		if shape&2 != 0 {
			a.Letters = &Letters{}
			if shape&4 != 0 {
				a.Letters.Delivered = []uint64{seq / 3, seq}
			}
			if shape&8 != 0 {
				a.Letters.Held = []uint64{seq / 5}
			}
		}
		want, err := encodeReflect(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Encode(&a)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ack %+v:\n got %s\nwant %s", a, got, want)
		}
		if !json.Valid(got) {
			t.Fatalf("ack frame is not JSON: %s", got)
		}
	})
}

// downAckSamples are down_acks as a terminal sends them, and with strings encoding/json escapes.
func downAckSamples() []DownAck {
	return []DownAck{
		{},
		{Seq: 18446744073709551615},
		{Seq: 7, Refused: []Rejection{}},
		{Seq: 7, Refused: []Rejection{{Seq: 3, Reason: "unknown kind"}, {Seq: 7, Reason: "a<b>&\x00\x7f\u00e9\xc3\u2028"}}},
	}
}

// Encode writes a down_ack frame by hand: byte for byte the frame encoding/json writes.
func TestDownAckFrameSameAsReflection(t *testing.T) {
	for _, d := range downAckSamples() {
		want, err := encodeReflect(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []any{d, &d} {
			got, err := Encode(msg)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("down_ack %+v (%T):\n got %s, %v\nwant %s", d, msg, got, err, want)
			}
		}
	}
	var nilAck *DownAck
	got, err := Encode(nilAck)
	want, werr := encodeReflect(nilAck)
	if !bytes.Equal(got, want) || (err == nil) != (werr == nil) {
		t.Fatalf("nil down_ack: %s, %v; want %s, %v", got, err, want, werr)
	}
}

// FuzzDownAckFrameSame holds the hand-written down_ack frame to encoding/json's.
func FuzzDownAckFrameSame(f *testing.F) {
	f.Add(uint64(7), "unknown kind", true)
	f.Add(uint64(0), "", false)
	f.Fuzz(func(t *testing.T, seq uint64, reason string, refused bool) {
		d := DownAck{Seq: seq}
		if refused {
			d.Refused = []Rejection{{Seq: seq / 2, Reason: reason}, {Seq: seq, Reason: reason + "x"}}
		}
		want, err := encodeReflect(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Encode(&d)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("down_ack %+v:\n got %s, %v\nwant %s", d, got, err, want)
		}
	})
}
