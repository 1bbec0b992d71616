package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
)

// demoPhoto draws photo n of a demo letter with image/png: a sky, a sun, a hill and a small
// house, tinted by n so two photos differ. The demo makes its photos itself rather than
// shipping an image file.
func demoPhoto(n int) ([]byte, error) {
	const w, h = 480, 360
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var c color.RGBA
			switch {
			case inCircle(x, y, 380, 80, 40): // the sun
				c = color.RGBA{255, 210, 60, 255}
			case y > 250-int(30*float64(x)/w): // the hill
				c = color.RGBA{60, uint8(140 + (y-250)/3), 70, 255}
			default: // the sky, lighter towards the horizon
				c = color.RGBA{uint8(90 + y/4), uint8(150 + y/5), 235, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	// The house: walls, a door, a roof.
	fill(img, image.Rect(120, 170, 240, 260), color.RGBA{230, 220, 200, 255})
	fill(img, image.Rect(170, 210, 195, 260), color.RGBA{120, 70, 40, 255})
	for y := 120; y < 170; y++ {
		half := (y - 120) * 70 / 50
		fill(img, image.Rect(180-half, y, 180+half, y+1), color.RGBA{uint8(170 + 20*n), 50, 40, 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("draw demo photo: %w", err)
	}
	return b.Bytes(), nil
}

func inCircle(x, y, cx, cy, r int) bool { return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r }

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}
