package wire

import (
	"reflect"
	"strings"
	"testing"
)

// downDecSeeds are down frames as the relay writes them and in shapes the one-pass reader
// leaves to encoding/json.
func downDecSeeds() []string {
	charge := `{"seq":7,"kind":"remote_charge","body":{"record_id":"ls-t1-ab12cd34-0/000007","session_id":"ls-t1-ab12cd34-0","inmate_id":"A1","minute":7,"cents":5,"at":"2026-03-01T12:00:00Z"}}`
	good := `{"type":"down","body":{"items":[` + charge + `,{"seq":9,"kind":"message_status","body":{"id":"m-1","state":"delivered","x":[1,{"y":null}],"s":"a\"b\\c\u2028é"}}]}}`
	return []string{
		good,
		`{"type":"down","body":{"items":[` + charge + `]}}`,
		`{"type":"down","body":{"items":[]}}`,
		`{"type":"down","body":{}}`,
		`{"type":"down","body":{"items":null}}`,
		strings.Replace(good, `"seq":7`, `"Seq":7`, 1),
		strings.Replace(good, `"seq":7`, `"seq":7,"seq":7`, 1),
		strings.Replace(good, `"seq":7`, `"seq":7.0`, 1),
		strings.Replace(good, `"seq":9`, `"seq":7`, 1), // out of order: refused
		strings.Replace(good, `"seq":7`, `"seq":0`, 1),
		strings.Replace(good, `"kind":"remote_charge"`, `"kind":""`, 1),
		strings.Replace(good, `"kind":"remote_charge"`, `"kind":"re\u006dote_charge"`, 1),
		strings.Replace(good, `"kind":"remote_charge"`, `"kind":null`, 1),
		strings.Replace(good, `"body":{"record_id"`, `"body": {"record_id"`, 1),
		strings.Replace(good, `"body":{"record_id"`, `"body":[],"b":{"record_id"`, 1),
		strings.Replace(good, `"body":{"record_id"`, `"body":null,"b":{"record_id"`, 1),
		strings.Replace(good, `"body":{"record_id"`, `"body":{"a":1},"body":{"record_id"`, 1),
		strings.Replace(good, `"body":{"record_id"`, `"x":1,"body":{"record_id"`, 1),
		strings.Replace(good, `"cents":5`, `"cents":5 `, 1), // white space inside a body, kept
		strings.Replace(good, `"cents":5`, `"cents":`, 1),   // not JSON
		strings.Replace(good, `]}}`, `]},"extra":true}`, 1),
		strings.Replace(good, `]}}`, `]},"body":{}}`, 1),
		strings.Replace(good, `]}}`, `],"items":[]}}`, 1),
		good + "\n",
		good + "{}",
	}
}

// TestDownDecoderSameAsReflection reads every seed both ways: the same frame, or the same
// error; and the relay's frames in one pass.
func TestDownDecoderSameAsReflection(t *testing.T) {
	fast := 0
	for _, s := range downDecSeeds() {
		b := []byte(s)
		want, werr := decodeFrameStd(b)
		got, gerr := DecodeFrame(b)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("%s: encoding/json says %v, DecodeFrame %v", s, werr, gerr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %#v\nwant %#v", s, got, want)
		}
		if _, ok := decodeDownFast(b); ok {
			fast++
		}
	}
	if _, ok := decodeDownFast([]byte(downDecSeeds()[0])); !ok || fast < 5 {
		t.Fatalf("the relay's down frame was left to encoding/json (%d seeds read in one pass)", fast)
	}
	// The bodies are the decoder's own: the frame's buffer may be reused.
	b := []byte(downDecSeeds()[1])
	f, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	before := string(f.Down.Items[0].Body)
	for i := range b {
		b[i] = 'x'
	}
	if string(f.Down.Items[0].Body) != before {
		t.Fatal("an item's body shares the frame's buffer")
	}
}

// FuzzDownDecoderSame holds the one-pass down reader to encoding/json on any text.
func FuzzDownDecoderSame(f *testing.F) {
	for _, s := range downDecSeeds() {
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
