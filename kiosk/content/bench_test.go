package content

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

const benchSize = 50 << 20

// benchChunk fills buf with chunk i of the benchmark object (each chunk from its own seed, so
// any chunk can be made on its own, as a relay would send it).
func benchChunk(buf []byte, i int) []byte {
	buf = buf[:ChunkLen(benchSize, i)]
	rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 0xbe}).Read(buf)
	return buf
}

// benchReader yields the benchmark object, chunk by chunk.
type benchReader struct {
	i   int
	buf []byte
	off int
}

func (r *benchReader) Read(p []byte) (int, error) {
	if r.off == len(r.buf) {
		if r.i == ChunkCount(benchSize) {
			return 0, io.EOF
		}
		r.buf = benchChunk(r.buf[:cap(r.buf)], r.i)
		r.i++
		r.off = 0
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// heapPeak samples the heap in use (live and not yet collected, no collection forced) and the
// live heap as the last collection found it.
type heapPeak struct{ peak, live uint64 }

func (h *heapPeak) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = max(h.peak, ms.HeapAlloc)
	m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(m)
	h.live = max(h.live, m[0].Value.Uint64())
}

// BenchmarkContent50MB stores 50 MB three ways in each iteration, each on a fresh file in the
// same directory, and reports the two content paths as ratios to the first:
//
//   - raw: the bytes written to a plain file 256 KiB at a time, one fsync at the end (baseline);
//   - put: Store.Put, a relay taking an upload: chunked, hashed, 16 chunks per fsync'd transaction;
//   - receive: Begin, then PutChunk for every chunk, each checked against the manifest and
//     committed in its own fsync'd transaction (a terminal receiving, resumable after any cut),
//     ending with the whole-object check; then the object read back through a Reader, every
//     chunk checked again, and hashed.
//
// put-heap-MB and receive-heap-MB are the largest heap in use (HeapAlloc above the start,
// garbage included: what the process holds, not only what is live) sampled every chunk;
// put-live-MB and receive-live-MB the largest live heap the collector found meanwhile.
func BenchmarkContent50MB(b *testing.B) {
	dir := b.TempDir()
	m, err := Build(&benchReader{buf: make([]byte, 0, ChunkSize)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ref, enc := m.Ref(), m.Encode()
	buf := make([]byte, ChunkSize)
	var raw, put, recv, read time.Duration
	var hp, hr heapPeak
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		// raw
		start := time.Now()
		f, err := os.Create(filepath.Join(dir, "raw"))
		if err != nil {
			b.Fatal(err)
		}
		for i := range ChunkCount(benchSize) {
			if _, err := f.Write(benchChunk(buf, i)); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		raw += time.Since(start)

		// put
		start = time.Now()
		s, err := Open(filepath.Join(dir, "put.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		r := &benchReader{buf: make([]byte, 0, ChunkSize)}
		pm, err := s.Put(&sampling{r: r, h: &hp})
		if err != nil || pm.Object != m.Object {
			b.Fatalf("put: %v", err)
		}
		s.Close()
		put += time.Since(start)

		// receive, then read back
		b.StopTimer()
		runtime.GC() // so the live heap sampled below is the receiving's, not the put's
		b.StartTimer()
		start = time.Now()
		t, err := Open(filepath.Join(dir, File), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := t.Begin(ref, enc); err != nil {
			b.Fatal(err)
		}
		var done bool
		for i := range m.Chunks {
			if done, err = t.PutChunk(m.Object, i, benchChunk(buf, i)); err != nil {
				b.Fatal(err)
			}
			hr.sample()
		}
		if !done {
			b.Fatal("not complete after every chunk")
		}
		recv += time.Since(start)
		start = time.Now()
		rd, err := t.Open(m.Object)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.CopyBuffer(h, rd, buf); err != nil || Hash(h.Sum(nil)) != m.Object {
			b.Fatalf("read back: %v", err)
		}
		read += time.Since(start)
		t.Close()

		b.StopTimer()
		for _, name := range []string{"raw", "put.db", File} {
			os.Remove(filepath.Join(dir, name))
		}
		b.StartTimer()
	}
	mb := float64(benchSize) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/raw.Seconds(), "raw-MB/s")
	b.ReportMetric(mb/put.Seconds(), "put-MB/s")
	b.ReportMetric(mb/recv.Seconds(), "receive-MB/s")
	b.ReportMetric(mb/read.Seconds(), "read-MB/s")
	b.ReportMetric(put.Seconds()/raw.Seconds(), "put/raw")
	b.ReportMetric(recv.Seconds()/raw.Seconds(), "receive/raw")
	b.ReportMetric(float64(hp.peak-min(hp.peak, base.HeapAlloc))/(1<<20), "put-heap-MB")
	b.ReportMetric(float64(hr.peak-min(hr.peak, base.HeapAlloc))/(1<<20), "receive-heap-MB")
	b.ReportMetric(float64(hp.live-min(hp.live, base.HeapAlloc))/(1<<20), "put-live-MB")
	b.ReportMetric(float64(hr.live-min(hr.live, base.HeapAlloc))/(1<<20), "receive-live-MB")
}

type sampling struct {
	r io.Reader
	h *heapPeak
	n int
}

func (s *sampling) Read(p []byte) (int, error) {
	s.n++
	if s.n%4 == 0 {
		s.h.sample()
	}
	return s.r.Read(p)
}
