// Package i18n looks up the screens' words by message id in the catalogs embedded in assets.
//
// It is a tiny lookup rather than fyne's lang package because the language changes with each
// inmate who logs in, while lang holds one process-wide language.
package i18n

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/tether-kiosk/tether/assets"
)

// Fallback is the language used for an unknown code and for ids a catalog lacks.
const Fallback = "en"

// Catalog holds every language's messages; it is read-only after Load, so safe to share.
type Catalog struct {
	msgs  map[string]map[string]string
	langs []string
}

// Load reads every catalog embedded in assets and checks they all have the same ids.
func Load() (*Catalog, error) {
	c := &Catalog{msgs: map[string]map[string]string{}}
	for _, lang := range assets.Languages() {
		raw, err := assets.Translation(lang)
		if err != nil {
			return nil, err
		}
		if err := c.add(lang, raw); err != nil {
			return nil, err
		}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// MustLoad is Load for program start and tests: the catalogs are compiled in, so an error is a bug.
func MustLoad() *Catalog {
	c, err := Load()
	if err != nil {
		panic(err)
	}
	return c
}

// Parse builds a catalog from raw JSON per language (for tests of broken catalogs).
func Parse(raw map[string][]byte) (*Catalog, error) {
	c := &Catalog{msgs: map[string]map[string]string{}}
	for lang, b := range raw {
		if err := c.add(lang, b); err != nil {
			return nil, err
		}
	}
	return c, c.check()
}

func (c *Catalog) add(lang string, raw []byte) error {
	m := map[string]string{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("catalog %s: %w", lang, err)
	}
	c.msgs[lang] = m
	c.langs = append(c.langs, lang)
	sort.Strings(c.langs)
	return nil
}

var placeholder = regexp.MustCompile(`\{[a-z_]+\}`)

// check makes sure no language misses an id or a placeholder another has.
func (c *Catalog) check() error {
	if _, ok := c.msgs[Fallback]; !ok {
		return fmt.Errorf("catalog: no %q catalog", Fallback)
	}
	var problems []string
	base := c.msgs[Fallback]
	for _, lang := range c.langs {
		m := c.msgs[lang]
		for id, text := range base {
			other, ok := m[id]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s lacks %q", lang, id))
				continue
			}
			if a, b := placeholders(text), placeholders(other); a != b {
				problems = append(problems, fmt.Sprintf("%s %q has placeholders %s, %s has %s", lang, id, b, Fallback, a))
			}
		}
		for id := range m {
			if _, ok := base[id]; !ok {
				problems = append(problems, fmt.Sprintf("%s has %q that %s lacks", lang, id, Fallback))
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("catalog: %s", strings.Join(problems, "; "))
	}
	return nil
}

func placeholders(s string) string {
	p := placeholder.FindAllString(s, -1)
	sort.Strings(p)
	return strings.Join(p, ",")
}

// Languages lists the catalog's language codes, sorted.
func (c *Catalog) Languages() []string { return append([]string(nil), c.langs...) }

// Has reports whether lang has a catalog.
func (c *Catalog) Has(lang string) bool { _, ok := c.msgs[lang]; return ok }

// IDs lists every message id, sorted (for tests that check each one renders).
func (c *Catalog) IDs() []string {
	ids := make([]string, 0, len(c.msgs[Fallback]))
	for id := range c.msgs[Fallback] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// T returns the text for id in lang with {name} placeholders replaced from kv pairs
// ("name", value, ...). An unknown id shows as itself so a gap is visible, never blank.
func (c *Catalog) T(lang, id string, kv ...string) string {
	text, ok := c.msgs[lang][id]
	if !ok {
		text, ok = c.msgs[Fallback][id]
	}
	if !ok {
		return id
	}
	if len(kv) == 0 {
		return text
	}
	pairs := make([]string, 0, len(kv))
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, "{"+kv[i]+"}", kv[i+1])
	}
	return strings.NewReplacer(pairs...).Replace(text)
}

// Lang binds a catalog to one language, for a screen's convenience.
type Lang struct {
	c    *Catalog
	code string
}

// For returns the catalog bound to lang (the fallback when lang has no catalog).
func (c *Catalog) For(lang string) Lang {
	if !c.Has(lang) {
		lang = Fallback
	}
	return Lang{c: c, code: lang}
}

// Code is the bound language code.
func (l Lang) Code() string { return l.code }

// T is Catalog.T in the bound language.
func (l Lang) T(id string, kv ...string) string { return l.c.T(l.code, id, kv...) }
