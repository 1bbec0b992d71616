package faclog

import "hash/maphash"

// cowMap is a map from string keys that a copy shares until it writes, a shard at a time. A
// held Update copies each bucket it writes (the committed state is never changed, Views read
// it), and copied the maps of a bucket's keys and stamps whole: a bucket written by every
// group commit (the facility's id records, the items log's blocks, a root keyed by terminal)
// holds every key written to it since the last Forget, so each group commit copied a thousand
// entries or more a bucket, 14 % of a held gateway's CPU under tetherload's status mix, and
// more of its allocator's. A small map is still copied whole, which costs less than its
// shards; one grown past cowSmall is split into cowShards maps by the keys' hashes, and a
// copy takes the shards' pointers, copying a shard the first time it writes in it.
//
// The zero value is an empty map. Reads may run at once; a write may not run beside anything
// else, and a map copied (clone) is not written again: the held state writes only the copies
// its Update made, never the committed buckets they came from.
type cowMap[V any] struct {
	m      map[string]V             // every entry, while shards is nil
	shards *[cowShards]map[string]V // each entry in the shard of its key's hash
	mine   uint64                   // bit i: shards[i] was made by this copy, which may change it
	seed   maphash.Seed             // the shards' hash, kept by every copy
	n      int                      // entries, with shards
}

const (
	// cowShards is how many shards a large map is split into: one bit each in mine.
	cowShards = 64
	// cowSmall is the most entries a map holds before it is split.
	cowSmall = 64
)

func (c *cowMap[V]) shardOf(k string) int {
	return int(maphash.String(c.seed, k) % cowShards)
}

// get is k's value and whether the map holds k.
func (c *cowMap[V]) get(k string) (V, bool) {
	if c.shards == nil {
		v, ok := c.m[k]
		return v, ok
	}
	v, ok := c.shards[c.shardOf(k)][k]
	return v, ok
}

// len is how many entries the map holds.
func (c *cowMap[V]) len() int {
	if c.shards == nil {
		return len(c.m)
	}
	return c.n
}

// set puts v under k.
func (c *cowMap[V]) set(k string, v V) {
	if c.shards == nil {
		if c.m == nil {
			c.m = map[string]V{}
		}
		c.m[k] = v
		if len(c.m) > cowSmall {
			c.split()
		}
		return
	}
	s := c.own(c.shardOf(k))
	if _, had := s[k]; !had {
		c.n++
	}
	s[k] = v
}

// del removes k, if the map holds it.
func (c *cowMap[V]) del(k string) {
	if c.shards == nil {
		delete(c.m, k)
		return
	}
	i := c.shardOf(k)
	if _, had := c.shards[i][k]; !had {
		return
	}
	delete(c.own(i), k)
	c.n--
}

// each calls fn with every entry, in no order, until fn returns false. fn must not write the
// map.
func (c *cowMap[V]) each(fn func(k string, v V) bool) {
	if c.shards == nil {
		for k, v := range c.m {
			if !fn(k, v) {
				return
			}
		}
		return
	}
	for _, s := range c.shards {
		for k, v := range s {
			if !fn(k, v) {
				return
			}
		}
	}
}

// clone is a copy of the map that shares its shards, copying each the first time it writes
// there. The map it was copied from must not be written from then on (a committed bucket is
// not): its shards are the copy's too.
func (c *cowMap[V]) clone() cowMap[V] {
	if c.shards == nil {
		if c.m == nil {
			return cowMap[V]{}
		}
		return cowMap[V]{m: cloneMap(c.m)}
	}
	shards := *c.shards
	return cowMap[V]{shards: &shards, seed: c.seed, n: c.n}
}

// own is shard i made changeable by this copy: copied the first time.
func (c *cowMap[V]) own(i int) map[string]V {
	if c.mine&(1<<i) == 0 {
		c.shards[i] = cloneMap(c.shards[i])
		c.mine |= 1 << i
	}
	return c.shards[i]
}

// split spreads the entries over shards, every one this copy's own.
func (c *cowMap[V]) split() {
	c.seed = maphash.MakeSeed()
	c.shards = new([cowShards]map[string]V)
	for i := range c.shards {
		c.shards[i] = map[string]V{}
	}
	c.mine = ^uint64(0)
	for k, v := range c.m {
		c.shards[c.shardOf(k)][k] = v
	}
	c.n = len(c.m)
	c.m = nil
}
