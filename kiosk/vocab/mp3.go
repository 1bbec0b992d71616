package vocab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// CheckMP3 reads an MP3 file from r and reports its playing time in whole seconds (rounded
// up), or why it is not one: staff upload tracks, and a file that is not MPEG audio must not
// reach a terminal's player as if it were. The rule: an optional ID3v2 tag, then MPEG-1, 2 or
// 2.5 Layer III frames back to back from the first byte after it (at least MinMP3Frames of
// them, each header valid, free-format bitrates refused), then at most a small trailer (an
// ID3v1 tag, an APE tag) no larger than a tenth of the audio. It reads r once, a frame at a
// time: memory stays small whatever the size.
func CheckMP3(r io.Reader) (seconds int, err error) {
	br := bufio.NewReaderSize(r, 16<<10)
	var pos int64
	head, err := br.Peek(10)
	if err == nil && string(head[:3]) == "ID3" {
		if head[6]|head[7]|head[8]|head[9] >= 0x80 {
			return 0, errors.New("mp3: the ID3v2 tag's size is not syncsafe")
		}
		n := int64(head[6])<<21 | int64(head[7])<<14 | int64(head[8])<<7 | int64(head[9])
		n += 10
		if head[5]&0x10 != 0 {
			n += 10 // a footer
		}
		if k, err := io.CopyN(io.Discard, br, n); err != nil {
			return 0, fmt.Errorf("mp3: the ID3v2 tag of %d bytes ends after %d: %w", n, k, err)
		}
		pos = n
	}
	var frames, samples, audio int64
	rate := 0
	var hdr [4]byte
	for {
		n, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("mp3: read at %d: %w", pos, err)
		}
		f, ok := parseMP3Header(hdr)
		if n < 4 || !ok {
			if frames < MinMP3Frames {
				return 0, fmt.Errorf("mp3: byte %d is not an MPEG Layer III frame header (after %d frames)", pos, frames)
			}
			rest, err := io.Copy(io.Discard, br)
			if err != nil {
				return 0, fmt.Errorf("mp3: read at %d: %w", pos, err)
			}
			if trailer := rest + int64(n); trailer > max(audio/10, 128) {
				return 0, fmt.Errorf("mp3: %d bytes after the last frame at %d are not audio", trailer, pos)
			}
			break
		}
		if rate != 0 && f.rate != rate {
			return 0, fmt.Errorf("mp3: the frame at %d changes the sample rate from %d to %d", pos, rate, f.rate)
		}
		rate = f.rate
		k, err := io.CopyN(io.Discard, br, int64(f.length-4))
		if err != nil && err != io.EOF {
			return 0, fmt.Errorf("mp3: read at %d: %w", pos, err)
		}
		if k < int64(f.length-4) && frames < MinMP3Frames {
			return 0, fmt.Errorf("mp3: the frame at %d is cut short", pos)
		}
		frames++
		samples += int64(f.samples)
		audio += int64(f.length)
		pos += int64(f.length)
		if k < int64(f.length-4) {
			break // a last frame cut short: players skip it
		}
	}
	if frames < MinMP3Frames {
		return 0, fmt.Errorf("mp3: %d frames, at least %d needed", frames, MinMP3Frames)
	}
	return int((samples + int64(rate) - 1) / int64(rate)), nil
}

// MinMP3Frames is the fewest frames a track holds (about a tenth of a second): one header
// that happens to look right is not a file.
const MinMP3Frames = 4

type mp3Frame struct{ length, samples, rate int }

var (
	mp3Rates1 = [15]int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}
	mp3Rates2 = [15]int{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}
)

// parseMP3Header reads one Layer III frame header.
func parseMP3Header(h [4]byte) (mp3Frame, bool) {
	if h[0] != 0xff || h[1]&0xe0 != 0xe0 {
		return mp3Frame{}, false
	}
	version := (h[1] >> 3) & 3 // 0: 2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
	layer := (h[1] >> 1) & 3   // 1: Layer III
	bi, si, pad := int(h[2]>>4), int(h[2]>>2)&3, int(h[2]>>1)&1
	if version == 1 || layer != 1 || bi == 0 || bi == 15 || si == 3 {
		return mp3Frame{}, false
	}
	rate := [3]int{44100, 48000, 32000}[si]
	var f mp3Frame
	if version == 3 {
		f.rate, f.samples = rate, 1152
		f.length = 144*mp3Rates1[bi]*1000/f.rate + pad
	} else {
		f.rate, f.samples = rate/2, 576
		if version == 0 {
			f.rate = rate / 4
		}
		f.length = 72*mp3Rates2[bi]*1000/f.rate + pad
	}
	return f, f.length > 4
}
