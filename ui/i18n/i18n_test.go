package i18n

import (
	"strings"
	"testing"
)

func TestEmbeddedCatalogsAgree(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Languages(), ","); got != "en,es" {
		t.Fatalf("languages = %s, want en,es", got)
	}
	for _, id := range c.IDs() {
		if c.T("en", id) == c.T("es", id) && !sameOnPurpose[id] {
			t.Errorf("%s: Spanish text is the English one (%q): untranslated?", id, c.T("en", id))
		}
	}
}

// sameOnPurpose lists ids whose text is the same in both languages.
var sameOnPurpose = map[string]bool{
	"lang.en": true, "lang.es": true, "welcome.clock": true, "write.reply_subject": true,
}

func TestPlaceholdersAndFallback(t *testing.T) {
	c := MustLoad()
	if got := c.T("es", "refuse.locked", "until", "14:35"); got != "Demasiados PIN incorrectos. Puede volver a intentarlo a las 14:35." {
		t.Errorf("es refuse.locked = %q", got)
	}
	if got := c.For("fr").T("tile.inbox"); got != "Inbox" {
		t.Errorf("unknown language should fall back to English, got %q", got)
	}
	if got := c.T("en", "no.such.id"); got != "no.such.id" {
		t.Errorf("unknown id should show itself, got %q", got)
	}
}

func TestCheckFindsGaps(t *testing.T) {
	_, err := Parse(map[string][]byte{
		"en": []byte(`{"a":"A {n}","b":"B"}`),
		"es": []byte(`{"a":"A {m}","c":"C"}`),
	})
	if err == nil {
		t.Fatal("mismatched catalogs accepted")
	}
	for _, want := range []string{`es lacks "b"`, `es has "c"`, `placeholders {m}`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Parse(map[string][]byte{"en": []byte(`{"a":`)}); err == nil {
		t.Error("broken JSON accepted")
	}
}
