package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// ReadFrame returns every byte of each message whatever the hint, and the hint follows the
// last message's length (capped at the frame limit), not the largest.
func TestReadFrameWholeMessagesAndHint(t *testing.T) {
	hint := 0
	for _, size := range []int{0, 1, 511, 512, 513, 300 << 10, 40} {
		msg := bytes.Repeat([]byte{'x'}, size)
		got, err := ReadFrame(iotest.OneByteReader(bytes.NewReader(msg)), &hint)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("size %d: got %d bytes, err %v", size, len(got), err)
		}
		if hint != min(size, MaxFrameBytes) {
			t.Fatalf("size %d: hint %d", size, hint)
		}
	}
	broken := errors.New("link cut")
	if _, err := ReadFrame(io.MultiReader(bytes.NewReader([]byte("{\"half")), iotest.ErrReader(broken)), &hint); !errors.Is(err, broken) {
		t.Fatalf("a reader that fails mid-message: %v, want the failure", err)
	}
}
