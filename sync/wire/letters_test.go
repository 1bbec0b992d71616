package wire

import (
	"strings"
	"testing"
)

// An ack's letters list each acknowledged letter once, in order, never beyond the ack nor among
// its refusals; anything else is refused with what is wrong.
func TestAckLettersChecked(t *testing.T) {
	const ep = "e1"
	ok := []Ack{
		{Epoch: ep, Seq: 5},
		{Epoch: ep, Seq: 5, Letters: &Letters{Delivered: []uint64{1, 3}, Held: []uint64{2, 5}}},
		{Epoch: ep, Seq: 5, Rejected: []Rejection{{Seq: 4, Reason: RefuseUnknownContact}}, Letters: &Letters{Held: []uint64{5}}},
	}
	for _, a := range ok {
		b, err := Encode(a)
		if err != nil {
			t.Fatal(err)
		}
		f, err := DecodeFrame(b)
		if err != nil || f.Ack == nil || f.Ack.Letters.Len() != a.Letters.Len() {
			t.Fatalf("%s: %+v, %v", b, f.Ack, err)
		}
	}
	bad := map[string]string{
		`{"seq":5,"letters":{"held":[6]}}`:                                           "beyond 5",
		`{"seq":5,"letters":{"held":[2,1]}}`:                                         "out of order",
		`{"seq":5,"letters":{"held":[0]}}`:                                           "out of order",
		`{"seq":5,"letters":{"held":[2],"delivered":[2]}}`:                           "listed twice",
		`{"seq":5,"rejected":[{"seq":2,"reason":"invalid"}],"letters":{"held":[2]}}`: "refused",
		`{"seq":5,"letters":{"held":"2"}}`:                                           "cannot unmarshal",
	}
	for body, want := range bad {
		_, err := DecodeFrame([]byte(`{"type":"ack","body":{"epoch":"e1",` + strings.TrimPrefix(body, "{") + "}"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", body, err, want)
		}
	}
}
