package assets

import (
	"bytes"
	"testing"
)

func TestEmbedded(t *testing.T) {
	if got := Languages(); len(got) != 2 || got[0] != "en" || got[1] != "es" {
		t.Fatalf("languages = %v", got)
	}
	if _, err := Translation("xx"); err == nil {
		t.Error("missing translation gave no error")
	}
	// TrueType files start with 0x00010000.
	for _, f := range [][]byte{FontRegular().Content(), FontBold().Content()} {
		if !bytes.HasPrefix(f, []byte{0, 1, 0, 0}) {
			t.Errorf("font is not TrueType: % x", f[:4])
		}
	}
	if !bytes.Contains(AppIcon().Content(), []byte("<svg")) {
		t.Error("app icon is not SVG")
	}
}
