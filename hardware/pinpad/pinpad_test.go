package pinpad

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

func newPad(t *testing.T) (*Pad, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	return New(Options{Clock: clk}), clk
}

// typeKeys presses each byte 100 ms apart, as a person does, and returns the outcomes.
func typeKeys(p *Pad, clk *clock.Fake, s string) []Outcome {
	var out []Outcome
	for i := 0; i < len(s); i++ {
		clk.Advance(100 * time.Millisecond)
		out = append(out, p.Press(s[i]))
	}
	return out
}

func TestDefaultKeyMap(t *testing.T) {
	p, clk := newPad(t)
	want := map[byte]string{'0': "digit", '9': "digit", '\r': "enter", '\n': "enter", '#': "enter",
		0x08: "backspace", 0x7F: "backspace", '*': "clear", 0x1B: "cancel", 0x18: "cancel"}
	for b, kind := range want {
		clk.Advance(time.Second)
		if o := p.Press(b); o.Kind != Pressed || o.Key.Kind() != kind {
			t.Errorf("byte 0x%02X: got %+v (%s), want %s", b, o, o.Key, kind)
		}
	}
	for _, b := range []byte{'A', 0x00, 0xFF, ' '} {
		clk.Advance(time.Second)
		if o := p.Press(b); o.Kind != Unknown {
			t.Errorf("byte 0x%02X: got %+v, want Unknown", b, o)
		}
	}
}

func TestPINAssembly(t *testing.T) {
	p, clk := newPad(t)
	out := typeKeys(p, clk, "12\x0834#")
	last := out[len(out)-1]
	if last.PIN == nil || last.PIN.Reveal() != "134" {
		t.Fatalf("enter after 1 2 BS 3 4: got %+v", last)
	}
	if out[2].Len != 1 || out[3].Len != 2 || last.Len != 0 {
		t.Errorf("lengths shown: %d %d %d, want 1 2 0", out[2].Len, out[3].Len, last.Len)
	}
	out = typeKeys(p, clk, "99*12\r")
	if pin := out[len(out)-1].PIN; pin == nil || pin.Reveal() != "12" {
		t.Errorf("clear then 12 enter: got %v", out[len(out)-1])
	}
	out = typeKeys(p, clk, "55\x1b\r")
	if out[len(out)-1].PIN != nil {
		t.Errorf("cancel then enter gave a PIN")
	}
}

func TestBounceIsOneKey(t *testing.T) {
	p, clk := newPad(t)
	p.Press('7')
	clk.Advance(10 * time.Millisecond)
	if o := p.Press('7'); o.Kind != Bounced {
		t.Errorf("same key 10 ms later: %+v, want Bounced", o)
	}
	clk.Advance(15 * time.Millisecond)
	if o := p.Press('7'); o.Kind != Bounced {
		t.Errorf("bounce train: %+v, want Bounced", o)
	}
	clk.Advance(10 * time.Millisecond)
	if o := p.Press('8'); o.Kind != Pressed {
		t.Errorf("different key 10 ms later: %+v, want Pressed", o)
	}
	clk.Advance(40 * time.Millisecond)
	if o := p.Press('8'); o.Kind != Pressed {
		t.Errorf("same key 40 ms later: %+v, want Pressed", o)
	}
	clk.Advance(time.Second)
	if o := p.Press('\r'); o.PIN == nil || o.PIN.Reveal() != "788" {
		t.Errorf("got %v, want PIN 788", o.PIN)
	}
}

func TestIdleDropAndBadgeDrop(t *testing.T) {
	p, clk := newPad(t)
	typeKeys(p, clk, "12")
	clk.Advance(29 * time.Second)
	if p.Expire() {
		t.Fatal("dropped after 29 s")
	}
	clk.Advance(time.Second)
	if !p.Expire() || p.Len() != 0 {
		t.Fatal("not dropped after 30 s")
	}
	if out := typeKeys(p, clk, "3\r"); out[1].PIN.Reveal() != "3" {
		t.Errorf("after drop: got %q, want 3", out[1].PIN.Reveal())
	}
	typeKeys(p, clk, "45")
	if !p.Drop() || p.Drop() {
		t.Error("Drop: want true then false")
	}
}

func TestMaxDigitsBounded(t *testing.T) {
	p, clk := newPad(t)
	out := typeKeys(p, clk, strings.Repeat("12", 50)+"\r")
	if n := out[len(out)-1].PIN.Len(); n != DefaultMaxDigits {
		t.Errorf("PIN length %d, want %d", n, DefaultMaxDigits)
	}
}

// Nothing a log line, dump or JSON encoding might use shows a digit.
func TestDigitsNeverPrinted(t *testing.T) {
	p, clk := newPad(t)
	out := typeKeys(p, clk, "9876\r")
	pin := out[len(out)-1].PIN
	j, _ := json.Marshal(out)
	s := fmt.Sprintf("%v %+v %#v %s %v", out, out, out, pin, p) + string(j)
	for _, d := range "9876" {
		if strings.ContainsRune(s, d) {
			t.Fatalf("digit %c printed: %s", d, s)
		}
	}
	pin.Wipe()
	if pin.Reveal() != "" {
		t.Error("wipe left digits")
	}
}

func TestParseKeyMap(t *testing.T) {
	m, err := ParseKeyMap(map[byte]string{'A': "enter", '#': "ignore", 'B': "7"})
	if err != nil {
		t.Fatal(err)
	}
	if m['A'] != KeyEnter || m['B'] != Key7 {
		t.Errorf("overrides not applied: A=%v B=%d", m['A'], m['B'])
	}
	if _, ok := m['#']; ok {
		t.Error("# still bound after ignore")
	}
	if m['1'] != Key1 {
		t.Error("defaults lost")
	}
	if _, err := ParseKeyMap(map[byte]string{'Z': "launch"}); err == nil || !strings.Contains(err.Error(), `byte 0x5A: action "launch" unknown`) {
		t.Errorf("bad action: %v", err)
	}
}
