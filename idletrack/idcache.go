package idletrack

import (
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"
)

// idCache remembers the IDs of recently seen cookie values, so that a
// request of a known session does not compute HMAC-SHA256 again (docs/
// design.md, "The request path"). It maps a 128-bit keyed hash of (zone,
// value) — two hash/maphash sums under seeds drawn at random per process,
// computed with AES instructions where the CPU has them — to the value's ID.
//
// What it holds is no more revealing than the table itself: the keyed hashes
// and IDs, never a value, and only in this process's memory; the seeds are
// never stored or shown. A wrong answer needs two values whose 128-bit hash
// under unknown seeds collides, and its effect would be bounded to the
// request that carries it: the upstream still reads the value the request
// carried.
//
// It is 2-way set associative with random replacement, of a fixed size, and
// safe for concurrent use without locks: each slot is a sequence lock over
// atomic words, so a reader never pairs one value's hash with another's ID.
type idCache struct {
	seed0, seed1 maphash.Seed
	seedZ        maphash.Seed
	sets         []idSet
	mask         uint64
}

// idCacheSets is the number of sets: 2×16,384 slots of 40 bytes, 1.3 MiB
// per engine. A working set of up to about 30k sessions stays in it.
const idCacheSets = 1 << 14

type idSet [2]idSlot

// idSlot is one cached (hash, ID). seq is even when the slot is stable and
// odd while it is written; 0 means empty.
type idSlot struct {
	seq    atomic.Uint64
	k0, k1 atomic.Uint64
	i0, i1 atomic.Uint64
}

func newIDCache() *idCache {
	return &idCache{
		seed0: maphash.MakeSeed(),
		seed1: maphash.MakeSeed(),
		seedZ: maphash.MakeSeed(),
		sets:  make([]idSet, idCacheSets),
		mask:  idCacheSets - 1,
	}
}

// key is the 128-bit keyed hash of (zone, value): two sums of the value
// under independent seeds, the first mixed with a third seed's sum of the
// zone. maphash.String hashes in place (no copy into a Hash's buffer), a
// few dozen instructions for a cookie value.
func (c *idCache) key(zone, value string) (k0, k1 uint64) {
	return maphash.String(c.seed0, value) ^ maphash.String(c.seedZ, zone), maphash.String(c.seed1, value)
}

func (c *idCache) get(k0, k1 uint64) (ID, bool) {
	set := &c.sets[k0&c.mask]
	for w := range set {
		s := &set[w]
		seq := s.seq.Load()
		if seq == 0 || seq&1 != 0 {
			continue
		}
		a0, a1, i0, i1 := s.k0.Load(), s.k1.Load(), s.i0.Load(), s.i1.Load()
		if s.seq.Load() != seq || a0 != k0 || a1 != k1 {
			continue
		}
		var id ID
		binary.LittleEndian.PutUint64(id[:8], i0)
		binary.LittleEndian.PutUint64(id[8:], i1)
		return id, true
	}
	return ID{}, false
}

func (c *idCache) put(k0, k1 uint64, id ID) {
	set := &c.sets[k0&c.mask]
	w := 0
	switch {
	case set[0].seq.Load() == 0:
	case set[1].seq.Load() == 0:
		w = 1
	default:
		w = int(k1 >> 63) // random replacement: the hash's top bit
	}
	s := &set[w]
	seq := s.seq.Load()
	if seq&1 != 0 || !s.seq.CompareAndSwap(seq, seq+1) {
		return // another writer has the slot: skip, it is only a cache
	}
	s.k0.Store(k0)
	s.k1.Store(k1)
	s.i0.Store(binary.LittleEndian.Uint64(id[:8]))
	s.i1.Store(binary.LittleEndian.Uint64(id[8:]))
	s.seq.Store(seq + 2)
}
