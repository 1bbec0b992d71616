// Package vocab is the vocabulary the terminal and the relay share: the records that travel
// between them (inmates, technicians, sessions, charges, credits, deposits, contacts, letters,
// audit events, notices, uplink items), money (Cents), the facility's Policy and its
// validation, the rules for a letter, a roster entry and an id, the languages, the limits, the
// states, and the error kinds (Error, Kind, KindOf, Retryable, Reason, FieldError).
//
// Both sides call these same functions, so the relay refuses exactly what a terminal would
// refuse: a rule lives here once, and neither side keeps a copy of it.
//
// What does not belong here: storage (bbolt, buckets, keys), sessions and the meter, screens,
// the sync engine, anything only a terminal or only the relay needs, and anything with a heavy
// dependency. PIN hashing (argon2id) is kiosk/pin; the comparison of a terminal's ledger with
// the relay's is kiosk/ledger. The package imports nothing of the module, so importing it ties
// no layer to another; the layering test in package kiosk guards this.
package vocab
