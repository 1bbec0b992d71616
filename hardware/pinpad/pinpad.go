// Package pinpad turns the bytes of a one-byte-per-key PIN pad into keys and PINs:
// a configurable key map, contact-bounce suppression and PIN assembly with an idle drop.
//
// Digits are secret: Key's String says only "digit", a PIN prints as "PIN(redacted)",
// and nothing here logs; the digits leave only through (*PIN).Reveal, for the login.
package pinpad

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tether-kiosk/tether/kiosk/clock"
)

// Key is what a pressed byte means. Digit keys hide their value from String.
type Key uint8

// Keys. Key0+n is digit n.
const (
	KeyNone Key = iota
	Key0
	Key1
	Key2
	Key3
	Key4
	Key5
	Key6
	Key7
	Key8
	Key9
	KeyEnter
	KeyBackspace
	KeyClear
	KeyCancel
)

// IsDigit reports whether k is one of Key0..Key9.
func (k Key) IsDigit() bool { return k >= Key0 && k <= Key9 }

// Kind is "digit", "enter", "backspace", "clear", "cancel" or "none", never a digit's value.
func (k Key) Kind() string {
	switch {
	case k.IsDigit():
		return "digit"
	case k == KeyEnter:
		return "enter"
	case k == KeyBackspace:
		return "backspace"
	case k == KeyClear:
		return "clear"
	case k == KeyCancel:
		return "cancel"
	}
	return "none"
}

// String, GoString and MarshalText are Kind, so no log line, dump or JSON leaks a digit.
func (k Key) String() string               { return k.Kind() }
func (k Key) GoString() string             { return "pinpad.Key(" + k.Kind() + ")" }
func (k Key) MarshalText() ([]byte, error) { return []byte(k.Kind()), nil }

// KeyMap says what each byte from the pad means; bytes not in it are ignored and counted.
type KeyMap map[byte]Key

// DefaultKeyMap: 0-9 digits, Enter CR/LF/#, Backspace BS/DEL, Clear *, Cancel ESC/CAN.
func DefaultKeyMap() KeyMap {
	m := KeyMap{'\r': KeyEnter, '\n': KeyEnter, '#': KeyEnter, 0x08: KeyBackspace, 0x7F: KeyBackspace,
		'*': KeyClear, 0x1B: KeyCancel, 0x18: KeyCancel}
	for d := byte(0); d < 10; d++ {
		m['0'+d] = Key0 + Key(d)
	}
	return m
}

// ParseKeyMap overlays config on the default map. Values: "0".."9", "enter", "backspace",
// "clear", "cancel", or "ignore" to remove a default binding.
func ParseKeyMap(cfg map[byte]string) (KeyMap, error) {
	m := DefaultKeyMap()
	bytes := make([]int, 0, len(cfg))
	for b := range cfg {
		bytes = append(bytes, int(b))
	}
	sort.Ints(bytes) // report the same bad entry every time
	for _, bi := range bytes {
		b := byte(bi)
		v := strings.ToLower(cfg[b])
		switch {
		case len(v) == 1 && v[0] >= '0' && v[0] <= '9':
			m[b] = Key0 + Key(v[0]-'0')
		case v == "enter":
			m[b] = KeyEnter
		case v == "backspace":
			m[b] = KeyBackspace
		case v == "clear":
			m[b] = KeyClear
		case v == "cancel":
			m[b] = KeyCancel
		case v == "ignore":
			delete(m, b)
		default:
			return nil, fmt.Errorf("key map: byte 0x%02X: action %q unknown (want 0-9, enter, backspace, clear, cancel, ignore)", b, cfg[b])
		}
	}
	return m, nil
}

// PIN is a completed entry. Its digits come out only through Reveal.
type PIN struct{ digits []byte }

// Reveal returns the digits, for the login check and nothing else.
func (p *PIN) Reveal() string { return string(p.digits) }

// Len is the number of digits.
func (p *PIN) Len() int { return len(p.digits) }

// Wipe overwrites the digits once the login is done with them.
func (p *PIN) Wipe() {
	for i := range p.digits {
		p.digits[i] = 0
	}
	p.digits = p.digits[:0]
}

// String, GoString and MarshalJSON keep digits out of logs, %#v dumps and JSON.
func (p *PIN) String() string               { return "PIN(redacted)" }
func (p *PIN) GoString() string             { return "PIN(redacted)" }
func (p *PIN) MarshalJSON() ([]byte, error) { return []byte(`"redacted"`), nil }

// Defaults from the issue.
const (
	DefaultDebounce  = 30 * time.Millisecond
	DefaultIdle      = 30 * time.Second
	DefaultMaxDigits = 12
)

// Options tune a Pad; zero values give the defaults.
type Options struct {
	Clock     clock.Clock   // monotonic time for debounce and idle drop; nil = real
	KeyMap    KeyMap        // nil = DefaultKeyMap
	Debounce  time.Duration // the same byte again within this is contact bounce
	Idle      time.Duration // a half-typed PIN is dropped after this without a key
	MaxDigits int           // digits beyond this are ignored (keeps memory bounded)
}

// OutcomeKind says what a byte did.
type OutcomeKind uint8

const (
	Unknown OutcomeKind = iota // byte not in the key map: ignored, count it
	Bounced                    // repeat within the debounce time: ignored
	Pressed                    // a key; see Outcome.Key
)

// Outcome is the result of one byte from the pad.
type Outcome struct {
	Kind OutcomeKind
	Key  Key
	Len  int  // digits held after this key, for the screen's dots
	PIN  *PIN // set when Enter completed a non-empty entry
}

// Pad assembles PINs from one pad. Safe for concurrent use: the badge reader's goroutine
// calls Drop while the pad's own goroutine calls Press.
type Pad struct {
	opt Options

	mu       sync.Mutex
	digits   []byte
	lastByte int // -1 before the first byte
	lastAt   time.Duration
	lastKey  time.Duration // when the last key was accepted, for the idle drop
}

// New returns a Pad with an empty entry.
func New(o Options) *Pad {
	if o.Clock == nil {
		o.Clock = clock.NewReal()
	}
	if o.KeyMap == nil {
		o.KeyMap = DefaultKeyMap()
	}
	if o.Debounce == 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Idle == 0 {
		o.Idle = DefaultIdle
	}
	if o.MaxDigits == 0 {
		o.MaxDigits = DefaultMaxDigits
	}
	return &Pad{opt: o, digits: make([]byte, 0, o.MaxDigits), lastByte: -1}
}

// Press handles one byte from the pad.
func (p *Pad) Press(b byte) Outcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opt.Clock.Mono()
	bounce := int(b) == p.lastByte && now-p.lastAt < p.opt.Debounce
	p.lastByte, p.lastAt = int(b), now
	k, known := p.opt.KeyMap[b]
	if !known || k == KeyNone {
		return Outcome{Kind: Unknown}
	}
	if bounce {
		return Outcome{Kind: Bounced}
	}
	p.lastKey = now
	out := Outcome{Kind: Pressed, Key: k}
	switch {
	case k.IsDigit():
		if len(p.digits) < p.opt.MaxDigits {
			p.digits = append(p.digits, '0'+byte(k-Key0))
		}
	case k == KeyBackspace:
		if n := len(p.digits); n > 0 {
			p.digits[n-1] = 0
			p.digits = p.digits[:n-1]
		}
	case k == KeyClear, k == KeyCancel:
		p.wipe()
	case k == KeyEnter:
		if len(p.digits) > 0 {
			out.PIN = &PIN{digits: append([]byte(nil), p.digits...)}
			p.wipe()
		}
	}
	out.Len = len(p.digits)
	return out
}

// Expire drops a half-typed entry idle for the idle time; it reports whether it did.
func (p *Pad) Expire() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.digits) == 0 || p.opt.Clock.Mono()-p.lastKey < p.opt.Idle {
		return false
	}
	p.wipe()
	return true
}

// Drop discards a half-typed entry (a new badge was read); it reports whether there was one.
func (p *Pad) Drop() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	had := len(p.digits) > 0
	p.wipe()
	return had
}

// String and GoString show how many digits are held, never which (the last byte may be one).
func (p *Pad) String() string   { return fmt.Sprintf("pinpad.Pad(%d digits held)", p.Len()) }
func (p *Pad) GoString() string { return p.String() }

// Len is the number of digits held, never their values.
func (p *Pad) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.digits)
}

func (p *Pad) wipe() {
	for i := range p.digits {
		p.digits[i] = 0
	}
	p.digits = p.digits[:0]
}
