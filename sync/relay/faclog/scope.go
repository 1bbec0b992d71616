package faclog

import "errors"

// Scope says how much of what lies at path in the kv state a held facility holds: a bucket's
// path, or a key's (the bucket's path and the key). The relay's says which of its records are
// the facility's own (its terminals', its inmates', its own), and so written only by its
// holder.
type Scope func(path [][]byte) Reach

// Reach is what a Scope answers.
type Reach int

const (
	// Outside: nothing at or below path is the facility's. Read from the kv state as it is
	// there, never remembered; never written by the holder.
	Outside Reach = iota
	// Partly: path is not the facility's, but some keys or buckets in it are (a root bucket
	// with a key or a nested bucket per terminal). The Scope is asked again for each of them.
	Partly
	// Inside: path and everything below it are the facility's.
	Inside
)

// ErrNotHeld: a held transaction tried to write what its facility does not hold, or to walk
// a bucket whose keys are only partly its facility's (the kv state's copy of its own would be
// behind). The relay writes such records in a kv transaction of their own.
var ErrNotHeld = errors.New("faclog: not the held facility's")

// everything is the Scope of a Held made without one: it holds the whole kv state.
func everything([][]byte) Reach { return Inside }

// reach is how much of path scope gives the facility: the first answer along path that is
// not Partly.
func reach(scope Scope, path [][]byte) Reach {
	for i := range path {
		if r := scope(path[:i+1]); r != Partly {
			return r
		}
	}
	return Partly
}
