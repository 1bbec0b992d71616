package badge

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// benchStream is 1000 valid frames of framing with distinct ids, and the byte that ends each.
func benchStream(b *testing.B, framing string) ([]byte, byte, int) {
	var s []byte
	const frames = 1000
	for i := 0; i < frames; i++ {
		var id string
		switch framing {
		case EM4100:
			id = fmt.Sprintf("%010d", 3808980205+i)
		case Wiegand26:
			id = fmt.Sprintf("%03d-%05d", i%256, 4095+i)
		case Magstripe:
			id = fmt.Sprintf("4111%012d", i)
		case Line:
			id = fmt.Sprintf("INMATE-%06d", i)
		}
		f, err := Encode(framing, id, Options{})
		if err != nil {
			b.Fatal(err)
		}
		s = append(s, f...)
	}
	end := byte(cr)
	if framing == EM4100 {
		end = etx
	}
	return s, end, frames
}

// BenchmarkDecode measures frames decoded per second for each framing, and the ratio of
// its time to a bare bytes.IndexByte scan for frame ends over the same input, same run.
func BenchmarkDecode(b *testing.B) {
	for _, f := range Framings() {
		b.Run(f, func(b *testing.B) {
			stream, end, frames := benchStream(b, f)
			d, _ := NewDecoder(f, Options{})
			out := make([]Result, 0, frames)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				out = d.Feed(stream, out[:0])
			}
			decode := time.Since(start)
			b.StopTimer()
			if len(out) != frames || !out[0].OK() {
				b.Fatalf("decoded %d frames, first %+v", len(out), out[0])
			}
			// Baseline: find every frame end and nothing else.
			count := 0
			start = time.Now()
			for i := 0; i < b.N; i++ {
				rest := stream
				for {
					j := bytes.IndexByte(rest, end)
					if j < 0 {
						break
					}
					count++
					rest = rest[j+1:]
				}
			}
			scan := time.Since(start)
			if count != frames*b.N {
				b.Fatalf("baseline found %d ends", count)
			}
			b.ReportMetric(float64(frames*b.N)/decode.Seconds(), "frames/s")
			b.ReportMetric(decode.Seconds()/scan.Seconds(), "x-indexbyte")
		})
	}
}
