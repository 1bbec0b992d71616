// Package demo holds the seed of the demo facility that tetherdemo (make run) loads:
// a roster whose PINs are stored only as argon2id hashes, balances, contacts and messages.
// The badges and PINs of the demo people are listed in README.md, not here.
package demo

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

//go:embed roster.json
var rosterJSON []byte

//go:embed facility.json
var facilityJSON []byte

// RosterJSON is the demo roster in the relay's roster format (relay.Roster).
func RosterJSON() []byte { return append([]byte(nil), rosterJSON...) }

// Facility is what the demo seeds besides the roster.
type Facility struct {
	ID       string    `json:"facility"`
	Name     string    `json:"facility_name"`
	Balances []Balance `json:"balances"`
	Contacts []Contact `json:"contacts"`
	Inbound  []Inbound `json:"inbound"`
	Held     []Held    `json:"held"`
}

// Balance is the balance an inmate starts the demo with, in cents.
type Balance struct {
	InmateID string `json:"inmate_id"`
	Cents    int64  `json:"cents"`
}

// Contact is an approved contact of an inmate.
type Contact struct {
	InmateID string `json:"inmate_id"`
	Name     string `json:"name"`
	Email    string `json:"email"`
}

// Inbound is a message from an approved contact, waiting in the inmate's inbox.
type Inbound struct {
	InmateID string `json:"inmate_id"`
	From     string `json:"from"`
	Subject  string `json:"subject"`
	Body     string `json:"body"`
	// Photos is how many photos come with the letter: the demo draws them itself (PNG), so
	// it ships no image file.
	Photos int `json:"photos,omitempty"`
}

// Held is a message the inmate sent earlier that waits for a reviewer.
type Held struct {
	InmateID string `json:"inmate_id"`
	To       string `json:"to"`
	Subject  string `json:"subject"`
	Body     string `json:"body"`
}

// LoadFacility parses the embedded facility seed.
func LoadFacility() (Facility, error) {
	var f Facility
	if err := json.Unmarshal(facilityJSON, &f); err != nil {
		return Facility{}, fmt.Errorf("demo facility seed: %w", err)
	}
	if f.ID == "" || f.Name == "" {
		return Facility{}, fmt.Errorf("demo facility seed: facility and facility_name are required")
	}
	return f, nil
}
