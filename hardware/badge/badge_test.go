package badge

import (
	"reflect"
	"strings"
	"testing"
)

func ok(id string) Result { return Result{ID: id} }
func bad(r Reason) Result { return Result{Reason: r} }
func decodeAll(t *testing.T, framing string, o Options, chunks ...string) []Result {
	t.Helper()
	d, err := NewDecoder(framing, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []Result
	for _, c := range chunks {
		out = d.Feed([]byte(c), out)
	}
	return d.Flush(out)
}

// Published example frames and the ids a user should see.
func TestPublishedFrames(t *testing.T) {
	cases := []struct {
		name, framing string
		o             Options
		in            string
		want          []Result
	}{
		// Seeed RDM630 wiki: card 62E3086CED, checksum 62^E3^08^6C^ED = 08; tag E3086CED = 3808980205.
		{"rdm630 decimal", EM4100, Options{}, "\x0262E3086CED08\x03", []Result{ok("3808980205")}},
		{"rdm630 hex", EM4100, Options{IDFormat: "hex"}, "\x0262E3086CED08\x03", []Result{ok("62E3086CED")}},
		{"rdm630 lower-case hex", EM4100, Options{IDFormat: "hex"}, "\x0262e3086ced08\x03", []Result{ok("62E3086CED")}},
		// Allegion 26A example: facility 101, card 4095 = 0 01100101 0000111111111111 1.
		{"allegion 26A, 6 chars", Wiegand26, Options{}, "CA1FFF\r", []Result{ok("101-04095")}},
		{"allegion 26A, 7 chars", Wiegand26, Options{}, "0CA1FFF\r", []Result{ok("101-04095")}},
		// CN56 reader manual: data D4 1B 81 sent as 1 11010100 00011011 10000001 0.
		{"cn56 manual", Wiegand26, Options{}, "3A83702\r", []Result{ok("212-07041")}},
		{"cn56 card only", Wiegand26, Options{IDFormat: "card"}, "3a83702\r\n", []Result{ok("07041")}},
		// ISO 7813 layout: track 2 ;PAN=YYMM service discretionary?LRC.
		{"track 2 with lrc", Magstripe, Options{}, string(MagstripeFrame(2, "4111111111111111=29121010000", true, false)), []Result{ok("4111111111111111")}},
		{"track 2 no lrc", Magstripe, Options{}, ";4111111111111111=29121010000?\r", []Result{ok("4111111111111111")}},
		{"track 2 stx/etx", Magstripe, Options{}, "\x02;6011000990139424=2912?\x03", []Result{ok("6011000990139424")}},
		{"track 1 with lrc", Magstripe, Options{}, string(MagstripeFrame(1, "B4111111111111111^DOE/JOHN^2912101", true, false)), []Result{ok("4111111111111111")}},
		{"track 1 and 2 in one swipe", Magstripe, Options{}, "%B5555^DOE/J^2912?;5555=2912?\r", []Result{ok("5555"), ok("5555")}},
		{"track 2 error marker", Magstripe, Options{}, ";E?\r", []Result{bad(ReasonReaderError)}},
		{"track 1 error marker", Magstripe, Options{}, "%E?\r", []Result{bad(ReasonReaderError)}},
		{"barcode CRLF", Line, Options{}, "A1234567\r\n", []Result{ok("A1234567")}},
		{"barcode LF", Line, Options{}, "0012345678905\n", []Result{ok("0012345678905")}},
		{"barcode prefix suffix", Line, Options{Prefix: "]C0", Suffix: "#"}, "]C0INMATE-42#\r", []Result{ok("INMATE-42")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := decodeAll(t, c.framing, c.o, c.in)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("decode %q = %+v, want %+v", c.in, got, c.want)
			}
		})
	}
}

func TestRejections(t *testing.T) {
	cases := []struct {
		name, framing string
		o             Options
		in            string
		want          Reason
	}{
		{"em4100 checksum", EM4100, Options{}, "\x0262E3086CED09\x03", ReasonBadChecksum},
		{"em4100 short", EM4100, Options{}, "\x0262E3086CED0\x03", ReasonBadLength},
		{"em4100 non-hex", EM4100, Options{}, "\x0262E3086CXD08\x03", ReasonNotHex},
		{"em4100 never ends", EM4100, Options{}, "\x02" + strings.Repeat("6", 100), ReasonTooLong},
		{"em4100 restarted", EM4100, Options{}, "\x0262E3\x02", ReasonTruncated},
		{"wiegand even parity", Wiegand26, Options{}, "2CA1FFF\r", ReasonBadParity},
		{"wiegand odd parity", Wiegand26, Options{}, "0CA1FFE\r", ReasonBadParity},
		{"wiegand 5 chars", Wiegand26, Options{}, "CA1FF\r", ReasonBadLength},
		{"wiegand 27 bits", Wiegand26, Options{}, "4CA1FFF\r", ReasonBadLength},
		{"wiegand 8 chars", Wiegand26, Options{}, "00CA1FFF\r", ReasonTooLong},
		{"track 2 bad lrc", Magstripe, Options{}, ";1234=29?9\r", ReasonBadLRC},
		{"track 2 letters", Magstripe, Options{}, ";12A4=29?\r", ReasonBadCharacter},
		{"track 2 no pan", Magstripe, Options{}, ";=2912?\r", ReasonNoID},
		{"track 1 format A", Magstripe, Options{}, "%A1234^X^29?\r", ReasonBadFormat},
		{"track cut by CR", Magstripe, Options{}, ";1234=29\r", ReasonTruncated},
		{"track 2 too long", Magstripe, Options{}, ";" + strings.Repeat("1", 60) + "?\r", ReasonTooLong},
		{"line too long", Line, Options{MaxLen: 8}, "123456789\r", ReasonTooLong},
		{"line control char", Line, Options{}, "AB\x07CD\r", ReasonNotPrintable},
		{"line missing prefix", Line, Options{Prefix: "]C0"}, "INMATE-42\r", ReasonMissingPrefix},
		{"line missing suffix", Line, Options{Suffix: "#"}, "INMATE-42\r", ReasonMissingSuffix},
		{"line only affixes", Line, Options{Prefix: "<", Suffix: ">"}, "<>\r", ReasonNoID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := decodeAll(t, c.framing, c.o, c.in)
			if len(got) != 1 || got[0] != bad(c.want) {
				t.Errorf("decode %q = %+v, want one rejection %q", c.in, got, c.want)
			}
		})
	}
}

// Every invalid frame the simulators send is rejected for the reason they announce.
func TestEncodeInvalid(t *testing.T) {
	for _, f := range Framings() {
		o := Options{}
		if f == Line {
			o.Prefix = "]C0"
		}
		for _, kind := range InvalidKinds(f) {
			frame, reason, err := EncodeInvalid(f, kind, o)
			if err != nil {
				t.Fatalf("%s/%s: %v", f, kind, err)
			}
			got := decodeAll(t, f, o, string(frame))
			if len(got) != 1 || got[0] != bad(reason) {
				t.Errorf("%s/%s: decode %q = %+v, want rejection %q", f, kind, frame, got, reason)
			}
		}
	}
}

// Splitting a stream at every byte, or merging frames into one read, changes nothing.
func TestSplitAndMerged(t *testing.T) {
	ids := map[string][]string{
		EM4100:    {"3808980205", "0000000001", "4294967295"},
		Wiegand26: {"101-04095", "212-07041", "000-00000", "255-65535"},
		Magstripe: {"4111111111111111", "DOE CORP 77", "6011000990139424"},
		Line:      {"A1", "INMATE 42", "0012345678905"},
	}
	for _, f := range Framings() {
		var stream []byte
		var want []Result
		for _, id := range ids[f] {
			frame, err := Encode(f, id, Options{})
			if err != nil {
				t.Fatalf("encode %s %q: %v", f, id, err)
			}
			stream = append(stream, frame...)
			want = append(want, ok(id))
		}
		if got := decodeAll(t, f, Options{}, string(stream)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s merged: got %+v, want %+v", f, got, want)
		}
		var bytewise []string
		for _, b := range stream {
			bytewise = append(bytewise, string([]byte{b}))
		}
		if got := decodeAll(t, f, Options{}, bytewise...); !reflect.DeepEqual(got, want) {
			t.Errorf("%s byte by byte: got %+v, want %+v", f, got, want)
		}
	}
}

// Garbage between frames is skipped and counted; the frames around it still decode.
func TestNoiseBetweenFrames(t *testing.T) {
	noise := "\x00\xff\x13\x80\x7f"
	for _, f := range Framings() {
		a, _ := Encode(f, map[string]string{EM4100: "3808980205", Wiegand26: "101-04095", Magstripe: "4111", Line: "ABC"}[f], Options{})
		d, _ := NewDecoder(f, Options{})
		got := d.Feed([]byte(noise+string(a)+noise+string(a)+noise), nil)
		if len(got) != 2 || !got[0].OK() || got[0] != got[1] {
			t.Errorf("%s: got %+v, want the same id twice", f, got)
		}
		if d.Noise() < uint64(3*len(noise)) {
			t.Errorf("%s: noise counted %d, want at least %d", f, d.Noise(), 3*len(noise))
		}
	}
}

// A frame that never ends and an endless stream of junk leave the buffer bounded
// and the next good frame still decodes.
func TestBoundedAndRecovers(t *testing.T) {
	junk := strings.Repeat("7", 1<<16)
	for _, f := range Framings() {
		good, _ := Encode(f, map[string]string{EM4100: "0000000042", Wiegand26: "001-00042", Magstripe: "42", Line: "42"}[f], Options{})
		start := map[string]string{EM4100: "\x02", Wiegand26: "", Magstripe: ";", Line: ""}[f]
		got := decodeAll(t, f, Options{}, start+junk, "\r", string(good))
		if len(got) == 0 || !got[len(got)-1].OK() {
			t.Fatalf("%s: after junk got %+v, want the good frame last", f, got)
		}
		if len(got) > 2 {
			t.Errorf("%s: %d results from one endless frame, want at most one rejection", f, len(got)-1)
		}
	}
}

// An LRC that follows the end sentinel only after a pause is not mistaken; a frame
// without LRC is completed by Flush when the line goes quiet.
func TestMagstripeFlush(t *testing.T) {
	d, _ := NewDecoder(Magstripe, Options{})
	got := d.Feed([]byte(";1234=29?"), nil)
	if len(got) != 0 {
		t.Fatalf("before flush: %+v", got)
	}
	if got = d.Flush(got); !reflect.DeepEqual(got, []Result{ok("1234")}) {
		t.Fatalf("after flush: %+v", got)
	}
	if got = d.Flush(nil); len(got) != 0 {
		t.Fatalf("second flush repeated: %+v", got)
	}
}

func TestCheckOptions(t *testing.T) {
	for _, c := range []struct {
		f    string
		o    Options
		want string
	}{
		{"foo", Options{}, `framing "foo" unknown (want em4100, wiegand26, magstripe, line)`},
		{EM4100, Options{IDFormat: "octal"}, `id format "octal" unknown for em4100 (want decimal, hex)`},
		{Wiegand26, Options{IDFormat: "hex"}, `id format "hex" unknown for wiegand26 (want fc-card, card)`},
		{Line, Options{MaxLen: 5000}, "max length 5000 out of range"},
		{EM4100, Options{Prefix: "x"}, "line framing only"},
	} {
		err := CheckOptions(c.f, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckOptions(%s, %+v) = %v, want %q", c.f, c.o, err, c.want)
		}
	}
}
