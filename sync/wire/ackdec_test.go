package wire

import (
	"reflect"
	"strings"
	"testing"
)

// ackDecSeeds are ack frames as the relay writes them and in every shape the one-pass reader
// leaves to encoding/json.
func ackDecSeeds() []string {
	var out []string
	for _, a := range ackSamples() {
		b, _ := Encode(a)
		out = append(out, string(b))
	}
	good := `{"type":"ack","body":{"epoch":"e1","seq":9,"rejected":[{"seq":5,"reason":"suspended"}],"letters":{"delivered":[1,2],"held":[4]}}}`
	return append(out,
		good,
		strings.Replace(good, `"seq":9`, `"Seq":9`, 1),                    // a name in other case
		strings.Replace(good, `"seq":9`, `"seq":9,"seq":9`, 1),            // a duplicate
		strings.Replace(good, `"seq":9`, `"seq":9.0`, 1),                  // not an unsigned integer
		strings.Replace(good, `"seq":9`, `"seq":-0`, 1),                   // not an unsigned integer
		strings.Replace(good, `"seq":9`, `"seq":18446744073709551616`, 1), // overflow
		strings.Replace(good, `"seq":9`, `"seq":"9"`, 1),                  // a string
		strings.Replace(good, `"epoch":"e1"`, `"epoch":null`, 1),          // a null
		strings.Replace(good, `"epoch":"e1"`, `"ep\u006fch":"e1"`, 1),     // an escaped name
		strings.Replace(good, `"epoch":"e1"`, `"epoch":"e\u0031"`, 1),     // an escaped value
		strings.Replace(good, `"epoch":"e1"`, `"epoch":"e1","x":[1,{"y":null}]`, 1),
		strings.Replace(good, `"rejected":[`, `"rejected":null,"r":[`, 1),
		strings.Replace(good, `"letters":{`, `"letters":null,"l":{`, 1),
		strings.Replace(good, `"held":[4]`, `"held":[4],"held":[]`, 1),
		strings.Replace(good, `"held":[4]`, `"held":[9]`, 1),  // a letter refused and listed: invalid
		strings.Replace(good, `"held":[4]`, `"held":[10]`, 1), // beyond the ack's seq: invalid
		strings.Replace(good, `[{"seq":5`, `[{"seq":5,"seq":6`, 1),
		strings.Replace(good, `"reason":"suspended"`, `"reason":"\ud800x"`, 1),
		strings.Replace(good, `}}`, `},"extra":{"a":[]}}`, 1), // an unknown envelope member
		strings.Replace(good, `}}`, `},"type":"ack"}`, 1),     // the type again
		strings.Replace(good, `}}`, `},"Body":{}}`, 1),        // the body in other case
		strings.Replace(good, `{"type":"ack","body":`, `{"type":"ack","body": `, 1),
		good+" ",
		good+"x",
		good[:len(good)-1],
		`{"type":"ack","body":{}}`,
		`{"type":"ack","body":[]}`,
		`{"type":"ack","body":{"epoch":"e","seq":1,"letters":{"delivered":[1],"x":1}}}`,
		// down_ack frames, as a terminal writes them and otherwise.
		`{"type":"down_ack","body":{"seq":12}}`,
		`{"type":"down_ack","body":{"seq":12,"refused":[{"seq":3,"reason":"unknown kind"},{"seq":12,"reason":"<x>"}]}}`,
		`{"type":"down_ack","body":{"seq":12,"refused":[]}}`,
		`{"type":"down_ack","body":{"seq":12,"refused":[{"seq":13,"reason":"beyond"}]}}`,
		`{"type":"down_ack","body":{"seq":12,"refused":null}}`,
		`{"type":"down_ack","body":{"seq":12,"seq":13}}`,
		`{"type":"down_ack","body":{"SEQ":12}}`,
		`{"type":"down_ack","body":{"seq":-1}}`,
		`{"type":"down_ack","body":{"seq":1,"x":{"y":[true]}},"z":0}`,
		`{"type":"down_ack","body":{}}`,
		`{"type":"down_ack","body":{"seq":1}`,
	)
}

// TestAckDecoderSameAsReflection reads every seed (acks and down_acks) both ways: the same frame, or the same
// error.
func TestAckDecoderSameAsReflection(t *testing.T) {
	fast := 0
	for _, s := range ackDecSeeds() {
		b := []byte(s)
		want, werr := decodeFrameStd(b)
		got, gerr := DecodeFrame(b)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("%s: encoding/json says %v, DecodeFrame %v", s, werr, gerr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %#v\nwant %#v", s, got, want)
		}
		if _, ok := decodeAckFast(b); ok {
			fast++
		}
	}
	// The relay's own acks are read in one pass (else this test compares encoding/json to itself).
	for _, a := range ackSamples()[1:9] {
		b, _ := Encode(a)
		if _, ok := decodeAckFast(b); !ok {
			t.Fatalf("the relay's ack %s was left to encoding/json", b)
		}
	}
	for _, d := range []DownAck{{Seq: 1}, {Seq: 9, Refused: []Rejection{{Seq: 2, Reason: "unknown kind"}}}} {
		b, _ := Encode(d)
		if _, ok := decodeDownAckFast(b); !ok {
			t.Fatalf("a terminal's down_ack %s was left to encoding/json", b)
		}
	}
	if fast < 10 {
		t.Fatalf("only %d seeds read in one pass", fast)
	}
}

// FuzzAckDecoderSame holds the one-pass ack reader to encoding/json on any text.
func FuzzAckDecoderSame(f *testing.F) {
	for _, s := range ackDecSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := decodeFrameStd(b)
		got, gerr := DecodeFrame(b)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("encoding/json says %v, DecodeFrame %v\n%q", werr, gerr, b)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded otherwise:\n got %#v\nwant %#v", got, want)
		}
	})
}
