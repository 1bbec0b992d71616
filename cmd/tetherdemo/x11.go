//go:build linux

package main

/*
#cgo LDFLAGS: -lX11
#include <stdlib.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>

// grab copies window win as RGBA (4 bytes a pixel) into a buffer the caller frees.
static int grab(unsigned long win, int *w, int *h, unsigned char **out) {
	Display *d = XOpenDisplay(NULL);
	if (!d) return 1;
	XWindowAttributes a;
	if (!XGetWindowAttributes(d, (Window)win, &a)) { XCloseDisplay(d); return 2; }
	XImage *img = XGetImage(d, (Window)win, 0, 0, a.width, a.height, AllPlanes, ZPixmap);
	if (!img) { XCloseDisplay(d); return 3; }
	unsigned char *buf = malloc((size_t)a.width * a.height * 4);
	if (!buf) { XDestroyImage(img); XCloseDisplay(d); return 4; }
	int rs = 0, gs = 0, bs = 0;
	while (rs < 32 && !((img->red_mask >> rs) & 1)) rs++;
	while (gs < 32 && !((img->green_mask >> gs) & 1)) gs++;
	while (bs < 32 && !((img->blue_mask >> bs) & 1)) bs++;
	for (int y = 0; y < a.height; y++) {
		for (int x = 0; x < a.width; x++) {
			unsigned long p = XGetPixel(img, x, y);
			unsigned char *o = buf + ((size_t)y * a.width + x) * 4;
			o[0] = (p & img->red_mask) >> rs;
			o[1] = (p & img->green_mask) >> gs;
			o[2] = (p & img->blue_mask) >> bs;
			o[3] = 255;
		}
	}
	*w = a.width; *h = a.height; *out = buf;
	XDestroyImage(img);
	XCloseDisplay(d);
	return 0;
}

// place moves window win to x, y (there is no window manager under Xvfb to place it).
static int place(unsigned long win, int x, int y) {
	Display *d = XOpenDisplay(NULL);
	if (!d) return 1;
	XMoveWindow(d, (Window)win, x, y);
	XSync(d, False);
	XCloseDisplay(d);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"image"
	"unsafe"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver"
)

// x11Window is the X11 id of w, if it runs on X11.
func x11Window(w fyne.Window) (uintptr, bool) {
	nw, ok := w.(driver.NativeWindow)
	if !ok {
		return 0, false
	}
	var id uintptr
	nw.RunNative(func(ctx any) {
		if x, ok := ctx.(driver.X11WindowContext); ok {
			id = x.WindowHandle
		}
	})
	return id, id != 0
}

// grabX11 reads window w's pixels from the X server.
func grabX11(w fyne.Window) (image.Image, error) {
	id, ok := x11Window(w)
	if !ok {
		return nil, fmt.Errorf("not an X11 window")
	}
	var cw, ch C.int
	var buf *C.uchar
	if rc := C.grab(C.ulong(id), &cw, &ch, &buf); rc != 0 {
		return nil, fmt.Errorf("read window from the X server: step %d failed", int(rc))
	}
	defer C.free(unsafe.Pointer(buf))
	img := image.NewNRGBA(image.Rect(0, 0, int(cw), int(ch)))
	copy(img.Pix, unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(cw)*int(ch)*4))
	return img, nil
}

// placeX11 moves w to x, y on the X screen.
func placeX11(w fyne.Window, x, y int) error {
	id, ok := x11Window(w)
	if !ok {
		return fmt.Errorf("not an X11 window")
	}
	if rc := C.place(C.ulong(id), C.int(x), C.int(y)); rc != 0 {
		return fmt.Errorf("move window: cannot open the display")
	}
	return nil
}
