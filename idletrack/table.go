package idletrack

import (
	"encoding/binary"
	"math/bits"
)

// entry is a live session as a shard holds it: fixed size and pointer-free,
// so it can live off the Go heap (offheap.go). The user name, the one
// variable-length field, is kept in the table's users slice at the same slot.
type entry struct {
	ID           ID
	StartedAt    int64
	LoginAt      int64
	LastActivity int64
	Requests     uint32
	storedReq    uint32 // Requests as last written to the store
	inflight     int32  // requests of the session being served now (InFlight)
	flags        uint8
}

const (
	fDirty     uint8 = 1 << iota // changed since the last Collect
	fProbation                   // adopted, seen once, not yet persisted
	fStored                      // the store has a record of it
	fUsed                        // the slot holds a session
	fAdopted                     // adopted from an unknown value, never issued or rotated by the upstream
)

func newEntry(s Session, flags uint8) entry {
	return entry{ID: s.ID, StartedAt: s.StartedAt, LoginAt: s.LoginAt, LastActivity: s.LastActivity,
		Requests: s.Requests, storedReq: s.Requests, flags: flags}
}

// session returns the session in e, whose user is user.
func (e *entry) session(user string) Session {
	return Session{ID: e.ID, User: user, StartedAt: e.StartedAt, LoginAt: e.LoginAt,
		LastActivity: e.LastActivity, Requests: e.Requests}
}

func (e *entry) deadline(p *Policy) (int64, Reason) {
	return deadlineOf(e.StartedAt, e.LastActivity, p)
}

// chunkLen is the number of entries per slab chunk: 56 KiB, mapped at once.
const chunkLen = 1024

// table is one shard's live sessions: a slab of entries in fixed chunks
// (an entry never moves, so a pointer to it stays valid while the shard is
// locked), an open-addressing hash index from ID to slot (linear probing,
// deletion by backward shift, so no tombstones), the user names by slot,
// and a free list of slots. It is not safe for concurrent use: the shard's
// lock guards it.
//
// An index bucket holds the top 32 bits of the ID's hash and slot+1 (0 is
// empty), so a probe compares IDs only when the hashes agree: a lookup
// reads one entry, not one per probe. The bucket's position is the top
// bits of the hash, so the stored half also gives it back when the index
// grows or a deletion shifts a run.
type table struct {
	index  []uint64 // hash>>32 << 32 | slot+1 per bucket, 0 = empty; length a power of two
	shift  uint     // 64 - log2(len(index)), at least 32
	chunks []*[chunkLen]entry
	users  []string // by slot
	free   []uint32
	next   uint32 // slots below next have been handed out
	n      int
}

// hashID spreads an ID (already an HMAC output, but tests and the flood
// tests use structured IDs) over 64 bits.
func hashID(id *ID) uint64 {
	h := binary.LittleEndian.Uint64(id[0:8]) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(id[8:16]), 31)
	return h * 0x9e3779b97f4a7c15
}

// pos is the home bucket of a bucket value or of a hash's top half.
func (tb *table) pos(top uint64) uint64 { return top >> (tb.shift - 32) }

func (tb *table) at(slot uint32) *entry { return &tb.chunks[slot/chunkLen][slot%chunkLen] }

func (tb *table) len() int { return tb.n }

// lookup returns the bucket of id, or the index of the empty bucket that
// ends its probe run.
func (tb *table) lookup(id *ID) (i uint64, found bool) {
	top := hashID(id) >> 32
	mask := uint64(len(tb.index) - 1)
	for i = tb.pos(top); ; i = (i + 1) & mask {
		b := tb.index[i]
		if b == 0 {
			return i, false
		}
		if b>>32 == top && tb.at(uint32(b)-1).ID == *id {
			return i, true
		}
	}
}

// find returns the slot of id.
func (tb *table) find(id ID) (uint32, bool) {
	if tb.n == 0 {
		return 0, false
	}
	i, ok := tb.lookup(&id)
	return uint32(tb.index[i]) - 1, ok
}

// get returns the entry of id, or nil.
func (tb *table) get(id ID) *entry {
	if s, ok := tb.find(id); ok {
		return tb.at(s)
	}
	return nil
}

// user returns the user of the session in slot.
func (tb *table) user(slot uint32) string { return tb.users[slot] }

// insert adds e (whose ID must not be in the table) and returns its slot.
func (tb *table) insert(e entry, user string) uint32 {
	if (tb.n+1)*4 > len(tb.index)*3 {
		tb.resize(max(64, 2*len(tb.index)))
	}
	var slot uint32
	if k := len(tb.free); k > 0 {
		slot = tb.free[k-1]
		tb.free = tb.free[:k-1]
	} else {
		slot = tb.next
		tb.next++
		if int(slot/chunkLen) == len(tb.chunks) {
			tb.chunks = append(tb.chunks, (*[chunkLen]entry)(makeOff[entry](chunkLen)))
		}
		if int(slot) == len(tb.users) {
			tb.users = append(tb.users, "")
		}
	}
	e.flags |= fUsed
	*tb.at(slot) = e
	tb.users[slot] = user
	i, _ := tb.lookup(&e.ID)
	tb.index[i] = hashID(&e.ID)>>32<<32 | uint64(slot+1)
	tb.n++
	return slot
}

// put inserts e, or overwrites the session with its ID, and returns its slot.
func (tb *table) put(e entry, user string) uint32 {
	if slot, ok := tb.find(e.ID); ok {
		e.flags |= fUsed
		*tb.at(slot) = e
		tb.users[slot] = user
		return slot
	}
	return tb.insert(e, user)
}

// remove deletes id and returns whether it was there.
func (tb *table) remove(id ID) bool {
	if tb.n == 0 {
		return false
	}
	i, ok := tb.lookup(&id)
	if !ok {
		return false
	}
	slot := uint32(tb.index[i]) - 1
	// Backward shift: move later members of the probe run into the hole,
	// unless that would put one before its home bucket.
	mask := uint64(len(tb.index) - 1)
	tb.index[i] = 0
	for j := (i + 1) & mask; tb.index[j] != 0; j = (j + 1) & mask {
		b := tb.index[j]
		h := tb.pos(b >> 32)
		// b may move to the hole i unless its home lies cyclically in (i, j].
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			tb.index[i], tb.index[j] = b, 0
			i = j
		}
	}
	*tb.at(slot) = entry{}
	tb.users[slot] = ""
	tb.free = append(tb.free, slot)
	tb.n--
	return true
}

// resize rebuilds the index with size buckets (a power of two).
func (tb *table) resize(size int) {
	old := tb.index
	tb.index = makeOff[uint64](size)
	tb.shift = uint(64 - bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for _, b := range old {
		if b != 0 {
			i := tb.pos(b >> 32)
			for tb.index[i] != 0 {
				i = (i + 1) & mask
			}
			tb.index[i] = b
		}
	}
	freeOff(old)
}

// reserve sizes the index for n sessions.
func (tb *table) reserve(n int) {
	size := 64
	for size*3 < n*4 {
		size *= 2
	}
	if size > len(tb.index) {
		tb.resize(size)
	}
}

// each calls fn for every session in slot order until fn returns false.
func (tb *table) each(fn func(slot uint32, e *entry) bool) bool {
	for s := range tb.next {
		if e := tb.at(s); e.flags&fUsed != 0 && !fn(s, e) {
			return false
		}
	}
	return true
}

// release frees the table's memory; the table is empty afterwards.
func (tb *table) release() {
	freeOff(tb.index)
	for _, c := range tb.chunks {
		freeOff(c[:])
	}
	*tb = table{}
}
