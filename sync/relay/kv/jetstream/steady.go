package jskv

// Keys of steady buckets by their bucket's version (issue 16, docs/SCALE.md "The revocation
// check by the bucket's version"). A held facility's group commit reads what it does not
// hold through a CurrentView, and most of those reads were each batch's terminal record, for
// the check that the terminal is not revoked: some twenty subjects a group, read again every
// group though only an enrollment or a revocation ever writes one.
//
// Every commit that writes a key rewrites its bucket's version (its sequence is that
// commit's), so a key's state read at one moment with the version there is its state at any
// moment the version is the same. A CurrentView's reads ahead of a steady bucket's keys
// therefore ask for the version with the keys it has no such state of, in one multi get (one
// moment of one replica, no older than the view's floor), and keep what they read marked with
// that version in the gateway's cache (entry.ver). The next view asks for the version alone
// where the cache holds the keys so marked, and takes them from the cache if the version has
// not moved; a key whose mark differs is read as before. So the check stays as prompt as a
// replica read of the record: a revocation moves the version, and the record is read again.
//
// Only CurrentViews take keys this way. An Update validates what it reads at commit and
// needs no version for it; a View reads the leader, twice. The cache holds what a
// CurrentView read only for steady buckets, bounded as the cache is (a record a terminal
// that sent a batch).

// noteSteady records, from a Prefetch's bucket generations by path (gens), those of
// Options.SteadyRoots, where this transaction may take their keys by version.
func (t *tx) noteSteady(gens map[string]string) {
	if !t.current || t.writable || t.s.cache == nil || t.s.o.LeaderReadsOnly {
		return
	}
	for _, root := range t.s.o.SteadyRoots {
		gen := gens[pathKey([][]byte{root})]
		if gen == "" {
			continue
		}
		if t.steady == nil {
			t.steady = map[string]bool{}
		}
		t.steady[gen] = true
	}
}

// readSteady reads ahead those of subjs (a CurrentView's, each one a replica may answer)
// that are keys of a steady bucket, by the bucket's version, into t.pre, and returns the
// subjects still to read: the others, those whose cached mark the version did not match,
// and all of them if the replica read failed or was behind the view's floor.
func (t *tx) readSteady(subjs []string) []string {
	byGen := map[string][]string{}
	rest := make([]string, 0, len(subjs))
	for _, subj := range subjs {
		if kind, gen := t.s.parse(subj); kind == 'k' && t.steady[gen] {
			byGen[gen] = append(byGen[gen], subj)
		} else {
			rest = append(rest, subj)
		}
	}
	if len(byGen) == 0 {
		return subjs
	}
	// ask: each bucket's version, and the keys the cache holds no marked state of.
	ask := make([]string, 0, len(subjs)-len(rest)+len(byGen)+1)
	marked := map[string]entry{}
	for gen, keys := range byGen {
		ask = append(ask, t.s.subj('v', gen, ""))
		for _, subj := range keys {
			if e, ok := t.s.cache.get(subj); ok && e.ver > 0 {
				marked[subj] = e
			} else {
				ask = append(ask, subj)
			}
		}
	}
	if t.floor > 0 {
		// As readReplicas: a replica that finds none of the subjects would not say its
		// position, so the read markers' subject, always there, is asked too.
		ask = append(ask, t.s.readMarkerSubj())
	}
	if len(ask) > replicaBatch {
		return subjs
	}
	a, err := t.s.multiGet(t.ctx, ask)
	if err != nil || a.upTo < t.floor {
		t.s.replicaMisses.Add(1)
		return subjs
	}
	if t.floor > 0 {
		t.s.replicaReads.Add(-1) // the read markers' subject, asked only for the position
	}
	if t.pre == nil {
		t.pre = make(map[string]entry, len(subjs)-len(rest))
	}
	for gen, keys := range byGen {
		vsubj := t.s.subj('v', gen, "")
		ver := a.got[vsubj].seq // 0: no version there, nothing to mark with
		var again []string
		for _, subj := range keys {
			if e, ok := marked[subj]; ok {
				if ver > 0 && e.ver == ver {
					t.s.cacheHits.Add(1)
					t.pre[subj] = e
				} else {
					again = append(again, subj) // written since, or marked at another version
				}
				continue
			}
			t.keepSteady(subj, a.got[subj], ver) // absent from the answer: the zero entry
		}
		if len(again) == 0 {
			continue
		}
		if ver == 0 {
			rest = append(rest, again...)
			continue
		}
		// Read again where the bucket's version is still ver, so that they are marked at it
		// (and taken by version from the next view on); from a replica where it is not, they
		// are read as any other key.
		got, missed := t.readReplicas(again, vsubj, ver)
		for subj, e := range got {
			t.keepSteady(subj, e, ver)
		}
		rest = append(rest, missed...)
	}
	return rest
}

// keepSteady puts e, subj's state read at one moment with its bucket's version ver, in t.pre,
// and in the cache marked with ver.
func (t *tx) keepSteady(subj string, e entry, ver uint64) {
	if ver > 0 {
		e.ver = ver
		t.s.cache.put(subj, e)
	}
	t.pre[subj] = e
}
