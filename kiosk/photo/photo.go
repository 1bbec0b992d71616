// Package photo checks the photos families send with their letters, the same way on the relay
// (before a photo is accepted for review) and on the terminal (before one is shown): JPEG or
// PNG only, within a byte limit, a pixel limit read from the header before anything is
// decoded, and the declared type matching the bytes. Each refusal is a named error carrying a
// reason code (Reason) that the relay reports and the terminal translates.
package photo

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
)

// Types accepted.
const (
	TypeJPEG = "image/jpeg"
	TypePNG  = "image/png"
)

// Policy bounds inbound photos; a facility may tighten it.
type Policy struct {
	// MaxBytes bounds one photo's file (JPay's limit is 1 MB).
	MaxBytes int64 `json:"max_bytes"`
	// MaxPerMessage bounds the photos of one letter.
	MaxPerMessage int `json:"max_per_message"`
	// MaxPixels bounds width x height as the header declares them: decoding allocates about 4
	// bytes a pixel, so this is what refuses a decompression bomb (a small file declaring a
	// huge image) before a byte of it is decoded.
	MaxPixels int64 `json:"max_pixels"`
	// MaxSide bounds either dimension (a 1 x 16,000,000 strip is no photo).
	MaxSide int `json:"max_side"`
}

// Defaults: 1 MB, 5 a letter, 16 megapixels (a phone's 4032 x 3024 is 12.2), 8192 a side.
const (
	DefaultMaxBytes      = 1 << 20
	DefaultMaxPerMessage = 5
	DefaultMaxPixels     = 16_000_000
	DefaultMaxSide       = 8192
)

// DefaultPolicy is the policy a facility gets unless it says otherwise.
func DefaultPolicy() Policy {
	return Policy{MaxBytes: DefaultMaxBytes, MaxPerMessage: DefaultMaxPerMessage,
		MaxPixels: DefaultMaxPixels, MaxSide: DefaultMaxSide}
}

// orDefault fills the limits a policy leaves at zero.
func (p Policy) orDefault() Policy {
	d := DefaultPolicy()
	if p.MaxBytes <= 0 {
		p.MaxBytes = d.MaxBytes
	}
	if p.MaxPerMessage <= 0 {
		p.MaxPerMessage = d.MaxPerMessage
	}
	if p.MaxPixels <= 0 {
		p.MaxPixels = d.MaxPixels
	}
	if p.MaxSide <= 0 {
		p.MaxSide = d.MaxSide
	}
	return p
}

// Refusal is a named reason a photo is refused. Code is the protocol's word for it (a relay's
// refusal reason, docs/PROTOCOL.md "Content"); the terminal shows its own words for each.
type Refusal struct{ Code string }

func (r *Refusal) Error() string { return "photo refused: " + r.Code }

// The refusals. Errors returned by this package wrap exactly one of them, with the detail.
var (
	ErrTooManyPhotos = &Refusal{"photo_too_many"}     // more photos than MaxPerMessage
	ErrTooLarge      = &Refusal{"photo_too_large"}    // more bytes than MaxBytes
	ErrNotImage      = &Refusal{"photo_not_image"}    // neither JPEG nor PNG, nor any image known
	ErrTypeRefused   = &Refusal{"photo_type_refused"} // an image, but not JPEG or PNG (GIF, WebP...), or a declared type other than those
	ErrTypeMismatch  = &Refusal{"photo_type_mismatch"}
	ErrTooManyPixels = &Refusal{"photo_too_many_pixels"} // beyond MaxPixels or MaxSide: a decompression bomb or simply too big
	ErrDamaged       = &Refusal{"photo_damaged"}         // the header is sound, the image data is not
)

// Refusals lists every refusal, for the screens that translate them and the tests.
var Refusals = []*Refusal{ErrTooManyPhotos, ErrTooLarge, ErrNotImage, ErrTypeRefused, ErrTypeMismatch, ErrTooManyPixels, ErrDamaged}

// Reason is the refusal code an error carries ("" for nil or an error of another kind).
func Reason(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Code
	}
	return ""
}

// Info is what a photo that passed is.
type Info struct {
	Type          string // TypeJPEG or TypePNG
	Width, Height int
	Bytes         int64
}

// Sniff names the type the bytes are, from their signature: TypeJPEG, TypePNG, another image
// type for GIF, WebP, BMP and TIFF, or "" for anything else.
func Sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return TypeJPEG
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return TypePNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "image/gif"
	case len(b) >= 12 && bytes.Equal(b[:4], []byte("RIFF")) && bytes.Equal(b[8:12], []byte("WEBP")):
		return "image/webp"
	case bytes.HasPrefix(b, []byte("BM")):
		return "image/bmp"
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "image/tiff"
	}
	return ""
}

// CheckCount refuses a letter with more photos than the policy allows.
func (p Policy) CheckCount(n int) error {
	p = p.orDefault()
	if n > p.MaxPerMessage {
		return fmt.Errorf("%d photos in one letter, limit %d: %w", n, p.MaxPerMessage, ErrTooManyPhotos)
	}
	return nil
}

// CheckHeader checks a photo without decoding its pixels: its size, its type (declared, when
// not empty, must be what the bytes are) and the dimensions its header declares. It is what
// runs before any decoding, on every photo.
func (p Policy) CheckHeader(declared string, b []byte) (Info, error) {
	p = p.orDefault()
	info := Info{Bytes: int64(len(b))}
	if info.Bytes > p.MaxBytes {
		return info, fmt.Errorf("%d bytes, limit %d: %w", info.Bytes, p.MaxBytes, ErrTooLarge)
	}
	if declared != "" && declared != TypeJPEG && declared != TypePNG {
		return info, fmt.Errorf("declared as %q; only %s and %s are accepted: %w", cut(declared), TypeJPEG, TypePNG, ErrTypeRefused)
	}
	sniffed := Sniff(b)
	switch sniffed {
	case TypeJPEG, TypePNG:
	case "":
		return info, fmt.Errorf("the bytes are not an image: %w", ErrNotImage)
	default:
		return info, fmt.Errorf("the bytes are %s; only %s and %s are accepted: %w", sniffed, TypeJPEG, TypePNG, ErrTypeRefused)
	}
	if declared != "" && declared != sniffed {
		return info, fmt.Errorf("declared as %s, the bytes are %s: %w", declared, sniffed, ErrTypeMismatch)
	}
	info.Type = sniffed
	var cfg image.Config
	var err error
	// Each format's own DecodeConfig, not image.DecodeConfig: the type is already known, and
	// no decoder registered elsewhere in the program gets a say.
	if sniffed == TypeJPEG {
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(b))
	} else {
		cfg, err = png.DecodeConfig(bytes.NewReader(b))
	}
	if err != nil {
		return info, fmt.Errorf("%s header does not read: %v: %w", sniffed, err, ErrDamaged)
	}
	info.Width, info.Height = cfg.Width, cfg.Height
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return info, fmt.Errorf("declares %d x %d pixels: %w", cfg.Width, cfg.Height, ErrDamaged)
	}
	if cfg.Width > p.MaxSide || cfg.Height > p.MaxSide {
		return info, fmt.Errorf("declares %d x %d pixels, at most %d a side: %w", cfg.Width, cfg.Height, p.MaxSide, ErrTooManyPixels)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > p.MaxPixels {
		return info, fmt.Errorf("declares %d x %d = %d pixels, limit %d: %w", cfg.Width, cfg.Height, px, p.MaxPixels, ErrTooManyPixels)
	}
	return info, nil
}

// Decode checks the header (CheckHeader) and only then decodes the image, refusing one whose
// data is damaged or whose decoded size differs from its header.
func (p Policy) Decode(declared string, b []byte) (image.Image, Info, error) {
	info, err := p.CheckHeader(declared, b)
	if err != nil {
		return nil, info, err
	}
	var img image.Image
	if info.Type == TypeJPEG {
		img, err = jpeg.Decode(bytes.NewReader(b))
	} else {
		img, err = png.Decode(bytes.NewReader(b))
	}
	if err != nil {
		return nil, info, fmt.Errorf("%s data does not decode: %v: %w", info.Type, err, ErrDamaged)
	}
	if r := img.Bounds(); r.Dx() != info.Width || r.Dy() != info.Height {
		return nil, info, fmt.Errorf("decodes to %d x %d, header said %d x %d: %w", r.Dx(), r.Dy(), info.Width, info.Height, ErrDamaged)
	}
	return img, info, nil
}

// Check is Decode for a photo only to be accepted or refused (the relay's check).
func (p Policy) Check(declared string, b []byte) (Info, error) {
	_, info, err := p.Decode(declared, b)
	return info, err
}

// Read reads a photo from r (a content.Reader, an upload), refusing one beyond MaxBytes
// without reading more than a byte past it, and decodes it (Decode).
func (p Policy) Read(declared string, r io.Reader) (image.Image, Info, error) {
	p = p.orDefault()
	b, err := io.ReadAll(io.LimitReader(r, p.MaxBytes+1))
	if err != nil {
		return nil, Info{}, fmt.Errorf("read photo: %w", err)
	}
	if int64(len(b)) > p.MaxBytes {
		return nil, Info{Bytes: int64(len(b))}, fmt.Errorf("more than %d bytes: %w", p.MaxBytes, ErrTooLarge)
	}
	return p.Decode(declared, b)
}

// ThumbSide is the default longest side of a thumbnail, in pixels.
const ThumbSide = 256

// Thumbnail scales img down so its longest side is at most side pixels, keeping its aspect
// (an image already that small is copied as it is). The result is at most side x side, so
// a screen listing letters holds a bounded amount per photo, whatever the photo.
func Thumbnail(img image.Image, side int) *image.RGBA {
	if side <= 0 {
		side = ThumbSide
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > side || h > side {
		if w >= h {
			w, h = side, max(1, h*side/w)
		} else {
			w, h = max(1, w*side/h), side
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	// BiLinear, not ApproxBiLinear: its kernel widens with the scale, so a large photo
	// shrunk to a thumbnail averages every source pixel instead of sampling a few (aliasing).
	draw.BiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	return dst
}

func cut(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
