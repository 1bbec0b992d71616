package faclog

import "testing"

// Entries the kv state holds are let go of: no slot of the pending list's array keeps their
// data, so a burst of entries is not held in memory for as long as the facility is quiet.
func TestProjectedEntriesAreLetGo(t *testing.T) {
	var pending []Entry
	for seq := uint64(1); seq <= 10; seq++ {
		pending = append(pending, Entry{Seq: seq, Data: make([]byte, 1<<10)})
	}
	pending = dropProjected(pending, 7)
	if len(pending) != 3 || pending[0].Seq != 8 || pending[2].Seq != 10 {
		t.Fatalf("after projecting to 7: %d entries pending from %d", len(pending), pending[0].Seq)
	}
	for i, e := range pending[len(pending):cap(pending)] {
		if e.Data != nil || e.Seq != 0 {
			t.Errorf("slot %d past the pending entries still holds entry %d's data", len(pending)+i, e.Seq)
		}
	}
	if pending = dropProjected(pending, 10); pending != nil {
		t.Errorf("after projecting everything: %d entries, capacity %d kept", len(pending), cap(pending))
	}
	if got := dropProjected(nil, 3); got != nil {
		t.Errorf("nothing pending: %v", got)
	}
}
