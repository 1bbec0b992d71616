package jskv

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzSubjectToken: any key or bucket name becomes one valid NATS subject token (non-empty,
// no dot, no whitespace, not a wildcard), and decodes back to exactly its bytes, so no key can
// reach into another key's subject or match a filter it should not.
func FuzzSubjectToken(f *testing.F) {
	for _, seed := range [][]byte{{0}, {0xff}, []byte("a.b"), []byte("*"), []byte(">"), []byte("a b\tc\r\n"),
		[]byte("Ä"), bytes.Repeat([]byte{0xfe}, 300), []byte("terminal/7f3a/0000000000000001")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		if len(key) == 0 {
			return // refused before it is encoded (kv.ErrKeyRequired)
		}
		tk := tok(key)
		if tk == "" || tk == "*" || tk == ">" || strings.ContainsAny(tk, ". \t\r\n") {
			t.Fatalf("key %q encodes to %q, not one subject token", key, tk)
		}
		back, err := untok(tk)
		if err != nil || !bytes.Equal(back, key) {
			t.Fatalf("key %q encodes to %q and decodes to %q (%v)", key, tk, back, err)
		}
	})
}

// FuzzUntok: a subject token that is not one of the store's (a stray subject in the stream)
// is refused or decoded, never a panic.
func FuzzUntok(f *testing.F) {
	for _, seed := range []string{"", "*", "AA", "A", "a.b", "____", "-_-_", "ÿ"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if b, err := untok(s); err == nil && tok(b) != s {
			t.Fatalf("%q decodes to %q, which encodes to %q: two tokens for one key", s, b, tok(b))
		}
	})
}
