package main

import (
	"bytes"
	"fmt"

	"github.com/tether-kiosk/tether/assets/library"
	"github.com/tether-kiosk/tether/kiosk"
	"github.com/tether-kiosk/tether/kiosk/vocab"
	"github.com/tether-kiosk/tether/sync/relay"
)

// The demo's library, published through the relay's Go API as staff publish through the admin
// API: the project's three tracks (one free, two priced), two short lessons written for the
// demo, and a course over them with a three-question quiz. It reaches the kiosk by sync; the
// media follow when a person opens an item.

// demoTrackPrices are the tracks' prices, in the order library.Tracks lists them.
var demoTrackPrices = []kiosk.Cents{99, 129, 0}

// demoLessons are the lessons: each page a text object.
var demoLessons = []struct {
	id, title string
	pages     []string
}{
	{"les-letter-review", "Writing a letter that gets through review", []string{
		"Every letter you send is read by the mailroom before it leaves the facility. A letter " +
			"that follows the rules goes out the same day; one that breaks them is held or " +
			"rejected, and you are told why.\n\nKeep to one subject a letter. Write to the " +
			"person you address, about your life and theirs. Name no other inmate and no " +
			"officer, and never write about another person's case.",
		"Write plainly. Codes, ciphers, lists of numbers and letters in another alphabet are " +
			"held for a translator and can take days.\n\nDo not ask the person to pass a message " +
			"on, call someone for you, or send money to anyone but you. Three-way messages are " +
			"the most common reason a letter is rejected.\n\nRead it once before Send: a letter " +
			"cannot be taken back.",
	}},
	{"les-budgeting", "Budgeting your account", []string{
		"Your balance pays for kiosk minutes, stamps, printing and the library. Each one is " +
			"on the Usage screen, with the balance after it, so you can see where the money " +
			"went.\n\nA stamp is 25 cents a letter here. Letters to staff departments and PREA " +
			"reports are always free.",
		"Plan the week: decide how many letters you will send and how many minutes you need, " +
			"then look at what is left for music or printing.\n\nWhen the kiosk is offline it " +
			"still works, up to the offline spending limit; what you spend then is settled when " +
			"the connection returns. Lessons and courses in the library are free.",
	}},
}

// demoCourse is the course over the lessons, its quiz and the quiz's key (kept on the relay).
var demoCourse = struct {
	item vocab.CatalogItem
	key  []int
}{
	item: vocab.CatalogItem{ID: "crs-staying-in-touch", Kind: vocab.CatalogCourse, Title: "Staying in touch",
		Description: "Two short lessons on writing letters that reach your family and on paying for them, then a quiz.",
		Lessons:     []string{"les-letter-review", "les-budgeting"},
		Quizzes: []vocab.Quiz{{ID: "q-staying-in-touch", Title: "Staying in touch: quiz", PassScore: 2,
			Questions: []vocab.QuizQuestion{
				{Text: "Who reads a letter before it leaves the facility?", Choices: []string{"No one", "The mailroom", "Another inmate"}},
				{Text: "Which letter costs no stamp?", Choices: []string{"A letter to Medical", "A letter to your mother", "A long letter"}},
				{Text: "What is the most common reason a letter is rejected?", Choices: []string{"It is too short", "It asks someone to pass a message on", "It has a subject"}},
			}}},
	},
	key: []int{1, 0, 1},
}

// seedLibrary publishes the demo's library for the facility.
func (d *demo) seedLibrary() error {
	fac := d.fac.ID
	tracks, err := library.Tracks()
	if err != nil {
		return fmt.Errorf("demo tracks: %w", err)
	}
	for i, t := range tracks {
		ref, secs, err := d.relay.PutCatalogMedia(bytes.NewReader(t.MP3), fac, vocab.MediaMP3)
		if err != nil {
			return fmt.Errorf("upload %s: %w", t.File, err)
		}
		it := vocab.CatalogItem{ID: "trk-" + t.File[:len(t.File)-len(".mp3")], Kind: vocab.CatalogTrack, Title: t.Title,
			Artist: "The Tether Project", Duration: secs, Audio: &ref, PriceCents: demoTrackPrices[i]}
		if _, err := d.relay.PublishCatalogItem(relay.CatalogRequest{FacilityID: fac, Item: it}); err != nil {
			return fmt.Errorf("publish %s: %w", t.Title, err)
		}
	}
	for _, l := range demoLessons {
		it := vocab.CatalogItem{ID: l.id, Kind: vocab.CatalogLesson, Title: l.title}
		for _, p := range l.pages {
			ref, _, err := d.relay.PutCatalogMedia(bytes.NewReader([]byte(p)), fac, vocab.MediaText)
			if err != nil {
				return fmt.Errorf("upload a page of %s: %w", l.title, err)
			}
			it.Pages = append(it.Pages, ref)
		}
		if _, err := d.relay.PublishCatalogItem(relay.CatalogRequest{FacilityID: fac, Item: it}); err != nil {
			return fmt.Errorf("publish %s: %w", l.title, err)
		}
	}
	c := demoCourse.item
	if _, err := d.relay.PublishCatalogItem(relay.CatalogRequest{FacilityID: fac, Item: c,
		QuizKeys: map[string][]int{c.Quizzes[0].ID: demoCourse.key}}); err != nil {
		return fmt.Errorf("publish %s: %w", c.Title, err)
	}
	return nil
}
