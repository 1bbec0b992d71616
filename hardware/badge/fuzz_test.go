package badge

import (
	"testing"
)

// fuzzDecoder feeds data to a decoder of framing in two chunks split at cut, then checks
// what a user relies on: no panic, a bounded buffer, at most one result per byte, and every
// id re-encodes (with the encoders the simulators use) to a frame that decodes to that id.
func fuzzDecoder(t *testing.T, framing string, o Options, data []byte, cut uint16) {
	d, err := NewDecoder(framing, o)
	if err != nil {
		t.Fatal(err)
	}
	at := int(cut) % (len(data) + 1)
	out := d.Feed(data[:at], nil)
	checkBounded(t, d, o)
	out = d.Feed(data[at:], out)
	checkBounded(t, d, o)
	out = d.Flush(out)
	if len(out) > len(data) {
		t.Fatalf("%d results from %d bytes", len(out), len(data))
	}
	for _, r := range out {
		if !r.OK() {
			if r.ID != "" {
				t.Fatalf("rejection %q carries id %q", r.Reason, r.ID)
			}
			continue
		}
		frame, err := Encode(framing, r.ID, o)
		if err != nil {
			t.Fatalf("decoded id %q does not re-encode: %v", r.ID, err)
		}
		d2, _ := NewDecoder(framing, o)
		back := d2.Flush(d2.Feed(frame, nil))
		if len(back) != 1 || back[0] != (Result{ID: r.ID}) {
			t.Fatalf("id %q -> frame %q -> %+v", r.ID, frame, back)
		}
	}
}

// checkBounded fails if any decoder holds more than its largest valid frame.
func checkBounded(t *testing.T, d Decoder, o Options) {
	switch d := d.(type) {
	case *em4100Decoder:
		if d.n > em4100Body {
			t.Fatalf("em4100 holds %d bytes", d.n)
		}
	case *wiegandDecoder:
		if d.n > wiegandMaxChars {
			t.Fatalf("wiegand holds %d bytes", d.n)
		}
	case *magDecoder:
		if d.n > track1Max {
			t.Fatalf("magstripe holds %d bytes", d.n)
		}
	case *lineDecoder:
		max := o.MaxLen
		if max == 0 {
			max = DefaultLineMaxLen
		}
		if want := len(o.Prefix) + max + len(o.Suffix); len(d.buf) > want || cap(d.buf) != want {
			t.Fatalf("line holds %d bytes, capacity %d, want at most %d", len(d.buf), cap(d.buf), want)
		}
	}
}

func FuzzEM4100(f *testing.F) {
	for _, s := range []string{"\x0262E3086CED08\x03", "\x0262e3086ced08\x03", "\x0262E3086CED09\x03",
		"\x02\x02\x03\x03", "\x0200000000000000000000", "xx\x020000000000\x0300\x03"} {
		f.Add([]byte(s), uint16(5), false)
		f.Add([]byte(s), uint16(0), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, hex bool) {
		o := Options{}
		if hex {
			o.IDFormat = "hex"
		}
		fuzzDecoder(t, EM4100, o, data, cut)
	})
}

func FuzzWiegand26(f *testing.F) {
	for _, s := range []string{"0CA1FFF\r", "CA1FFF\r\n", "3a83702\r", "2CA1FFF\r", "FFFFFFFF\r", "\x00CA1FFF\rCA1FFF\n"} {
		f.Add([]byte(s), uint16(3), false)
		f.Add([]byte(s), uint16(0), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, cardOnly bool) {
		o := Options{}
		if cardOnly {
			o.IDFormat = "card"
		}
		fuzzDecoder(t, Wiegand26, o, data, cut)
	})
}

func FuzzMagstripe(f *testing.F) {
	for _, s := range []string{";4111111111111111=2912101?\r", "%B4111^DOE/J^2912?;4111=29?\r", ";E?\r",
		"\x02;6011000990139424=2912?\x03", ";1234=29?9", "%BABC?%BABC?", ";;;;???"} {
		f.Add([]byte(s), uint16(7))
	}
	f.Add(MagstripeFrame(1, "B5555^X^2912", true, false), uint16(3))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		fuzzDecoder(t, Magstripe, Options{}, data, cut)
	})
}

func FuzzLine(f *testing.F) {
	for _, s := range []string{"A1234567\r\n", "]C0INMATE-42#\r", "\x00\xffABC\n", "AB\x07CD\r", "\r\n\r\n"} {
		f.Add([]byte(s), uint16(2), uint8(0))
		f.Add([]byte(s), uint16(9), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, variant uint8) {
		o := Options{}
		if variant%2 == 1 {
			o = Options{Prefix: "]C0", Suffix: "#", MaxLen: 16}
		}
		fuzzDecoder(t, Line, o, data, cut)
	})
}
