// Package kiosk is the terminal's domain: everything a kiosk or tablet decides on its own,
// offline, and keeps across crashes and power cuts in one bbolt file (terminal.db).
//
// A Terminal (terminal.go) wraps the Store (store.go) with an injectable clock and is what the
// screens, the sync engine and kioskctl call. Its parts, one concern per file:
//
//   - login.go: badge and PIN checks (argon2id, in kiosk/pinhash), lockouts, the monitoring notice;
//   - session.go, meter.go: sessions and the per-minute meter on the monotonic clock, cool-down,
//     stall and fault credits (Recover closes a session a crash cut);
//   - ledger.go, remote.go, usage.go: balances (deposits − charges + credits), the offline spend
//     cap, records from the facility's other terminals applied once by id;
//   - mailbox.go, drafts.go, contacts.go: letters, drafts, approved contacts, PREA reports;
//   - roster.go, rosterfile.go: the facility's people, from the relay or a technician's file;
//   - forward.go: the uplink queue: every record that must reach the relay is queued in the same
//     transaction that makes it, numbered within the store's epoch, removed only on the relay's
//     acknowledgement (NewEpoch renumbers it when the relay cannot take the numbering);
//   - downlink.go: what the relay sends, applied once each with its position in one transaction;
//   - maintenance.go, reconcile.go: backup, verify, reissue, compaction, and the comparison of
//     a terminal's ledger with the relay's (kiosk/ledger);
//   - vocab.go: the names of the vocabulary shared with the relay, re-exported from kiosk/vocab
//     (records, Cents, Policy, the validators of a letter, a person and an id, languages,
//     limits, states, and the error kinds that say retry, tell the person, or give up).
//
// The package imports none of ui, sync or hardware (a test guards it); they depend on it.
package kiosk
