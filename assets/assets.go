// Package assets embeds what the screens need at run time, so a kiosk never reads them from
// disk: the translation catalogs (translations/<lang>.json), the fonts (DejaVu Sans, chosen
// for legibility and its Latin coverage: ñ, á, ¿, ¡...) and the icons.
package assets

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"fyne.io/fyne/v2"
)

//go:embed translations/*.json
var translations embed.FS

//go:embed fonts/DejaVuSans.ttf
var fontRegular []byte

//go:embed fonts/DejaVuSans-Bold.ttf
var fontBold []byte

//go:embed icons/tether.svg
var iconApp []byte

// Languages lists the language codes that have a catalog, sorted ("en", "es").
func Languages() []string {
	entries, err := fs.ReadDir(translations, "translations")
	if err != nil {
		return nil // cannot happen: the directory is embedded at build time
	}
	var langs []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			langs = append(langs, name)
		}
	}
	sort.Strings(langs)
	return langs
}

// Translation returns the raw JSON catalog (message id -> text) for lang.
func Translation(lang string) ([]byte, error) {
	b, err := translations.ReadFile("translations/" + lang + ".json")
	if err != nil {
		return nil, fmt.Errorf("translation %q: %w", lang, err)
	}
	return b, nil
}

// FontRegular is the body text font.
func FontRegular() fyne.Resource { return fyne.NewStaticResource("DejaVuSans.ttf", fontRegular) }

// FontBold is the heading and button font.
func FontBold() fyne.Resource { return fyne.NewStaticResource("DejaVuSans-Bold.ttf", fontBold) }

// AppIcon is the window and launcher icon.
func AppIcon() fyne.Resource { return fyne.NewStaticResource("tether.svg", iconApp) }
