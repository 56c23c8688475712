package idletrack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// ID names a session without revealing it: the first 16 bytes of
// HMAC-SHA256(key, zone || 0x00 || cookie value). Only IDs are ever stored,
// logged or shown; the cookie value itself never leaves the request.
type ID [16]byte

// Short is the public name of a session in the admin API, webhooks, logs and
// metrics: the first 8 bytes of the ID in hex.
func (id ID) Short() string { return hex.EncodeToString(id[:8]) }

// String returns Short, so an ID printed by accident is still safe.
func (id ID) String() string { return id.Short() }

// Keyer derives IDs from cookie values with a secret key that the store
// generates once. It is safe for concurrent use and does not allocate in the
// steady state: HMAC states are pooled, and the IDs of recently seen values
// are cached under a keyed 128-bit hash (idCache), so a known session's
// request does not compute the HMAC again.
type Keyer struct {
	pool  sync.Pool
	cache *idCache
}

// NewKeyer returns a Keyer for the given secret key.
func NewKeyer(key []byte) *Keyer {
	k := append([]byte(nil), key...)
	return &Keyer{pool: sync.Pool{New: func() any {
		return &keyerState{mac: hmac.New(sha256.New, k)}
	}}, cache: newIDCache()}
}

type keyerState struct {
	mac hash.Hash
	sum [sha256.Size]byte
	buf []byte
}

// ID returns the ID of the session whose cookie has the given value in zone.
func (k *Keyer) ID(zone, value string) ID {
	k0, k1 := k.cache.key(zone, value)
	if id, ok := k.cache.get(k0, k1); ok {
		return id
	}
	id := k.sum(zone, "", "", value)
	k.cache.put(k0, k1, id)
	return id
}

// MemberID returns the ID of value as the cookie called name of a session's
// family in zone: the ID of value in the zone "<zone>\x00member\x00<name>",
// apart from every session ID, computed without building that name.
func (k *Keyer) MemberID(zone, name, value string) ID {
	return k.sum(zone, "\x00member\x00", name, value)
}

// sum is HMAC-SHA256(key, zone || infix || name || 0x00 || value), cut to
// the ID's size.
func (k *Keyer) sum(zone, infix, name, value string) ID {
	st := k.pool.Get().(*keyerState)
	st.mac.Reset()
	st.buf = append(st.buf[:0], zone...)
	st.buf = append(st.buf, infix...)
	st.buf = append(st.buf, name...)
	st.buf = append(st.buf, 0)
	st.buf = append(st.buf, value...)
	st.mac.Write(st.buf)
	sum := st.mac.Sum(st.sum[:0])
	var id ID
	copy(id[:], sum)
	if cap(st.buf) > 8<<10 {
		st.buf = nil // do not pin a huge cookie's buffer in the pool
	}
	k.pool.Put(st)
	return id
}
