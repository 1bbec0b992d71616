// Package faclog is the facilities' logs: for each facility an ordered list of entries that
// one gateway at a time appends to (docs/SCALE.md, "The per-facility log").
//
// A gateway that serves a facility claims its log. A claim is itself an entry, appended after
// whatever the log holds, and each later append of the holder names the entry it follows. A
// gateway that claims a facility therefore fences off the one that held it before: that
// one's next append names an entry that is no longer the last, and fails (ErrDeposed). The
// fence is the store's own check of the last entry, not a lease's clock, so a gateway paused
// for minutes and then woken writes nothing after the facility moved.
//
// The relay will append each group commit's effects on a held facility as one entry and
// write them into the kv state behind it; a gateway taking a facility over reads the entries
// its state has not taken in. This package is only the log.
package faclog

import (
	"context"
	"errors"
)

// Log holds every facility's log. Implementations are safe for concurrent use.
type Log interface {
	// Claim makes holder the writer of facility's log. It appends a claim entry after the last
	// entry, whoever wrote it, and returns the writer; the claim's sequence is its Term.
	// Every entry before the claim is final: its holder can append nothing more.
	Claim(ctx context.Context, facility, holder string) (Writer, error)
	// Read calls fn with each entry of facility's log after sequence after, in order, up to
	// the last entry when Read began. Entries trimmed away are not read. An error from fn
	// stops the read and is returned.
	Read(ctx context.Context, facility string, after uint64, fn func(Entry) error) error
}

// Writer appends to one facility's log for as long as its claim stands. It is not safe for
// concurrent use: one group commit is appended at a time.
type Writer interface {
	Facility() string
	// Term is the sequence of the claim entry this writer appended.
	Term() uint64
	// Last is the sequence of the last entry this writer knows to be the log's last: its own
	// last append, or its claim.
	Last() uint64
	// MaxEntry is the most bytes one entry's data may hold.
	MaxEntry() int
	// Append appends data after Last and returns its sequence. ErrDeposed: the facility was
	// claimed since, and nothing was appended. ErrInDoubt (with kv.ErrTimeout or
	// kv.ErrNoQuorum): no answer came, the entry may or may not be in the log, and nothing
	// more can be appended until Settle has put it there.
	Append(ctx context.Context, data []byte) (uint64, error)
	// Settle finishes the append left in doubt: it sends the same entry again until it has
	// an answer, so that the entry is in the log once, at the sequence returned, and can
	// never land later. ErrDeposed with a sequence: the entry is in the log, and the facility
	// was claimed after it. ErrDeposed with 0: the facility was claimed and the writer cannot
	// tell whether the entry went in before; take it for lost (the terminals whose batches it
	// held were not acknowledged, and send them again to the new holder). ErrInDoubt again:
	// still no answer. With nothing in doubt it answers Last.
	Settle(ctx context.Context) (uint64, error)
	// Trim drops the entries up to and including through, once their effects are in the kv
	// state. The last entry always stays: it is what the next append names.
	Trim(ctx context.Context, through uint64) error
}

// Entry is one entry of a facility's log.
type Entry struct {
	Seq uint64
	// Prev is the entry it was appended after (0 for the log's first): each entry names the
	// one before it, so a reader can tell that none is missing (Project).
	Prev uint64
	// Term is the claim the entry was appended under (a claim's own sequence, for a claim).
	Term uint64
	// Holder is the gateway that claimed the log, for a claim entry; empty for data.
	Holder string
	Data   []byte
}

// Claim reports whether e is a claim entry.
func (e Entry) Claim() bool { return e.Holder != "" }

var (
	// ErrDeposed: another gateway claimed the facility after this writer. Give up: drop what
	// is held of the facility, and let its terminals reconnect to the holder.
	ErrDeposed = errors.New("faclog: the facility was claimed by another writer")
	// ErrInDoubt: an append got no answer; Settle before appending again.
	ErrInDoubt = errors.New("faclog: an append's outcome is not known")
)
