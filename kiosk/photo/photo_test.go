package photo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// picture is a w x h image, left half red and right half blue, with a little noise so JPEG
// has something to encode.
func picture(w, h int, seed uint64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(seed, 1))
	for y := range h {
		for x := range w {
			n := uint8(r.IntN(16))
			if x < w/2 {
				img.SetRGBA(x, y, color.RGBA{240 + n/2, n, n, 255})
			} else {
				img.SetRGBA(x, y, color.RGBA{n, n, 240 + n/2, 255})
			}
		}
	}
	return img
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngBomb is a PNG of a few dozen bytes whose header declares w x h pixels: decoded, it would
// need w*h*4 bytes (100,000 x 100,000: 40 GB).
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}) // an empty zlib stream
	chunk("IEND", nil)
	return b.Bytes()
}

// jpegBomb is a real small JPEG whose frame header is rewritten to declare w x h pixels.
func jpegBomb(t testing.TB, w, h uint16) []byte {
	b := encodeJPEG(t, picture(16, 16, 1))
	i := bytes.Index(b, []byte{0xff, 0xc0}) // SOF0: marker, length (2), precision (1), height, width
	if i < 0 {
		t.Fatal("no SOF0 in the encoded JPEG")
	}
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

func TestAcceptsJPEGAndPNG(t *testing.T) {
	p := DefaultPolicy()
	for _, c := range []struct {
		typ  string
		data []byte
	}{
		{TypeJPEG, encodeJPEG(t, picture(1200, 900, 1))},
		{TypePNG, encodePNG(t, picture(300, 200, 2))},
	} {
		for _, declared := range []string{c.typ, ""} {
			img, info, err := p.Decode(declared, c.data)
			if err != nil {
				t.Fatalf("%s declared %q: %v", c.typ, declared, err)
			}
			if info.Type != c.typ || info.Width != img.Bounds().Dx() || info.Bytes != int64(len(c.data)) {
				t.Fatalf("%s: info %+v", c.typ, info)
			}
		}
	}
}

// Each refusal names what was wrong and carries its reason code, the same on both sides.
func TestRefusals(t *testing.T) {
	p := DefaultPolicy()
	jpg := encodeJPEG(t, picture(64, 48, 3))
	bigJPG := encodeJPEG(t, picture(400, 300, 3))
	pn := encodePNG(t, picture(64, 48, 3))
	var gifb bytes.Buffer
	gif.Encode(&gifb, picture(8, 8, 4), nil)
	noise := image.NewRGBA(image.Rect(0, 0, 600, 600))
	rand.NewChaCha8([32]byte{5}).Read(noise.Pix) // does not compress: about 1.4 MB as PNG
	big := encodePNG(t, noise)
	cases := []struct {
		name, declared string
		data           []byte
		want           *Refusal
		words          string
	}{
		{"PNG bomb 100,000 x 100,000", TypePNG, pngBomb(100_000, 100_000), ErrTooManyPixels, "100000 x 100000"},
		{"PNG bomb within a side", "", pngBomb(8000, 8000), ErrTooManyPixels, "64000000 pixels"},
		{"JPEG bomb 60,000 x 60,000", TypeJPEG, jpegBomb(t, 60_000, 60_000), ErrTooManyPixels, "60000 x 60000"},
		{"PNG declared JPEG", TypeJPEG, pn, ErrTypeMismatch, "declared as image/jpeg, the bytes are image/png"},
		{"JPEG declared PNG", TypePNG, jpg, ErrTypeMismatch, "the bytes are image/jpeg"},
		{"GIF", "", gifb.Bytes(), ErrTypeRefused, "image/gif"},
		{"GIF declared", "image/gif", jpg, ErrTypeRefused, `declared as "image/gif"`},
		{"text", "", []byte("hello, not a photo"), ErrNotImage, "not an image"},
		{"empty", TypeJPEG, nil, ErrNotImage, "not an image"},
		{"over 1 MB", TypePNG, big, ErrTooLarge, "limit 1048576"},
		{"truncated JPEG", TypeJPEG, bigJPG[:len(bigJPG)/2], ErrDamaged, "does not decode"},
		{"truncated PNG header", TypePNG, pn[:20], ErrDamaged, "header does not read"},
		{"PNG 0 wide", TypePNG, pngBomb(0, 10), ErrDamaged, ""},
	}
	for _, c := range cases {
		_, err := p.Check(c.declared, c.data)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.words) {
			t.Errorf("%s: %v, want %s saying %q", c.name, err, c.want.Code, c.words)
			continue
		}
		if Reason(err) != c.want.Code {
			t.Errorf("%s: Reason %q, want %q", c.name, Reason(err), c.want.Code)
		}
	}
	if err := p.CheckCount(6); !errors.Is(err, ErrTooManyPhotos) || Reason(err) != "photo_too_many" {
		t.Errorf("six photos: %v", err)
	}
	if err := p.CheckCount(5); err != nil {
		t.Errorf("five photos: %v", err)
	}
	tight := Policy{MaxPerMessage: 2, MaxBytes: 1000}
	if err := tight.CheckCount(3); !errors.Is(err, ErrTooManyPhotos) {
		t.Errorf("policy of 2, three photos: %v", err)
	}
	if _, err := tight.Check(TypeJPEG, jpg); !errors.Is(err, ErrTooLarge) {
		t.Errorf("policy of 1000 bytes: %v", err)
	}
}

// The bomb is refused from its header: refusing it allocates almost nothing, where decoding it
// would ask for 40 GB.
func TestBombRefusedBeforeDecoding(t *testing.T) {
	bomb := pngBomb(100_000, 100_000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := DefaultPolicy().Decode(TypePNG, bomb)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooManyPixels) {
		t.Fatalf("bomb: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("refusing the bomb allocated %d bytes", n)
	}
}

func TestReadStopsPastTheLimit(t *testing.T) {
	p := Policy{MaxBytes: 4096}
	src := bytes.NewReader(make([]byte, 1<<20))
	_, _, err := p.Read("", src)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("1 MB read under a 4 KB limit: %v", err)
	}
	if read := 1<<20 - src.Len(); read > 4097 {
		t.Fatalf("read %d bytes to refuse it", read)
	}
	img, info, err := DefaultPolicy().Read("", bytes.NewReader(encodePNG(t, picture(40, 30, 6))))
	if err != nil || info.Width != 40 || img.Bounds().Dy() != 30 {
		t.Fatalf("a small PNG read: %+v %v", info, err)
	}
}

func TestThumbnail(t *testing.T) {
	img, _, err := DefaultPolicy().Decode("", encodeJPEG(t, picture(2000, 1500, 7)))
	if err != nil {
		t.Fatal(err)
	}
	th := Thumbnail(img, 256)
	if b := th.Bounds(); b.Dx() != 256 || b.Dy() != 192 {
		t.Fatalf("thumbnail of 2000 x 1500 is %v, want 256 x 192", b)
	}
	// The red half stays red, the blue half blue.
	if c := th.RGBAAt(20, 96); c.R < 200 || c.B > 60 {
		t.Fatalf("left of thumbnail %v, want red", c)
	}
	if c := th.RGBAAt(235, 96); c.B < 200 || c.R > 60 {
		t.Fatalf("right of thumbnail %v, want blue", c)
	}
	tall := Thumbnail(picture(100, 1000, 8), 256)
	if b := tall.Bounds(); b.Dx() != 25 || b.Dy() != 256 {
		t.Fatalf("thumbnail of 100 x 1000 is %v", b)
	}
	small := Thumbnail(picture(100, 50, 9), 256)
	if b := small.Bounds(); b.Dx() != 100 || b.Dy() != 50 {
		t.Fatalf("a small image was resized to %v", b)
	}
}

// FuzzCheck: whatever the bytes and the declared type, the checker does not panic, refuses
// with exactly one named reason, and accepts only JPEG or PNG within the limits.
func FuzzCheck(f *testing.F) {
	f.Add(TypeJPEG, encodeJPEG(f, picture(32, 24, 1)))
	f.Add(TypePNG, encodePNG(f, picture(32, 24, 2)))
	f.Add("", pngBomb(100_000, 100_000))
	f.Add(TypeJPEG, jpegBomb(f, 60_000, 60_000))
	f.Add("image/gif", []byte("GIF89a"))
	f.Add("", []byte{})
	p := Policy{MaxPixels: 1 << 20, MaxSide: 4096, MaxBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, declared string, b []byte) {
		info, err := p.Check(declared, b)
		if err != nil {
			if Reason(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		if info.Type != TypeJPEG && info.Type != TypePNG {
			t.Fatalf("accepted type %q", info.Type)
		}
		if declared != "" && declared != info.Type {
			t.Fatalf("declared %q, accepted as %q", declared, info.Type)
		}
		if int64(info.Width)*int64(info.Height) > p.MaxPixels || info.Width > p.MaxSide || info.Height > p.MaxSide {
			t.Fatalf("accepted %d x %d", info.Width, info.Height)
		}
	})
}
